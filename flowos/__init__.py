"""FlowOS: a programmable middlebox platform, a DPDK fast path in C under Python and Cython."""
__version__ = "0.1.0"
