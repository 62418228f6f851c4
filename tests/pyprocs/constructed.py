"""Processors for tests/test_constructed_once.py: each construction appends a line to `out`
(the process's pid), so a test counts how many instances a run made, and in which processes."""
import os

import flowos
from flowos.cprocessor import CProcessor


def record(out):
    """One line, this process's pid, appended to out (O_APPEND: processes at once each add a whole line)."""
    fd = os.open(out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{os.getpid()}\n".encode())
    finally:
        os.close(fd)


class Constructed(flowos.Processor):
    """Passes everything; its constructor writes one line to `out` per call (record)."""
    level = "l4"

    def __init__(self, out, fail=False):
        super().__init__()
        if fail:
            raise ValueError("told to fail")
        record(out)

    def process(self, batch):
        pass


class CConstructed(CProcessor):
    """The Cython tier's (a CProcessor subclass, written in Python): worker threads run it, so
    several workers make their instances in one process."""

    def __init__(self, out):
        super().__init__()
        record(out)
