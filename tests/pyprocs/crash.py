"""A processor that ends the process under FlowOS, for tests/test_supervisor.py (its Cython
siblings, which segfault or hold the GIL for ever, are in tests/cyprobe)."""
import os

import flowos


class ExitsAtOnce(flowos.Processor):
    """Its first call ends the process with os._exit(42): no teardown, no statistics, no exception."""

    def process(self, batch):
        os._exit(42)
