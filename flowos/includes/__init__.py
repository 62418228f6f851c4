"""The C declarations Cython reads (.pxd files only): DPDK's (dpdk.pxd) and the fast path's
(fo.pxd: ports, workers, decode; fo_engine.pxd; fo_processor.pxd: the processor ABI;
fo_control.pxd). Nothing here runs; the boundary (flowos.boundary) cimports them."""
