"""A processor for tests/test_constructed_once.py: each construction appends a line to `out`
(the process's pid), so a test counts how many instances a run made, and in which processes."""
import os

import flowos


class Constructed(flowos.Processor):
    """Passes everything; its constructor writes one line to `out` per call (with O_APPEND, so
    worker processes constructing at once each add a whole line)."""
    level = "l4"

    def __init__(self, out, fail=False):
        super().__init__()
        if fail:
            raise ValueError("told to fail")
        fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{os.getpid()}\n".encode())
        finally:
            os.close(fd)

    def process(self, batch):
        pass
