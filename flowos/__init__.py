"""FlowOS: a programmable middlebox platform, a DPDK fast path in C under Python and Cython."""
__version__ = "0.1.0"

from flowos.processor import DROP, HOLD, MODIFIED, PASS, REDIRECT, Processor  # noqa: E402

__all__ = ["Processor", "PASS", "DROP", "HOLD", "MODIFIED", "REDIRECT", "get_include"]


def get_include():
    """The directory of FlowOS's C headers, for building Cython processors (see docs/cython.md)."""
    import os
    return os.path.join(os.path.dirname(__file__), "include")
