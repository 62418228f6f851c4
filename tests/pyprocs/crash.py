"""A processor that ends the process under FlowOS, for tests/test_supervisor.py (its Cython
siblings, which segfault or hold the GIL for ever, are in tests/cyprobe)."""
import os
import time

import flowos


class Exits(flowos.Processor):
    """Ends the process with os._exit(42) (no teardown, no statistics, no exception) in its first
    call `after` seconds or more after setup()."""

    def __init__(self, after=0):
        super().__init__()
        self.after = float(after)

    def setup(self, context):
        self.set_up_at = time.monotonic()

    def process(self, batch):
        if time.monotonic() - self.set_up_at >= self.after:
            os._exit(42)
