# The runtime's classes, declared for the other extension modules (the flow engine) to use.
from libc.stdint cimport uint16_t

from flowos.dpdk cimport rte_mempool
from flowos.fo cimport fo_worker


cdef class Eal:
    cdef readonly list argv
    cdef readonly str log_path
    cdef bint closed


cdef class Mempool:
    cdef rte_mempool *mp
    cdef readonly Eal eal
    cdef readonly str name


cdef class Port:
    cdef readonly uint16_t port_id
    cdef readonly str device
    cdef readonly Eal eal
    cdef readonly Mempool pool
    cdef readonly Mempool linear_pool
    cdef bint started


cdef class Worker:
    cdef fo_worker *w
    cdef readonly Eal eal
    cdef readonly list routes
    cdef readonly object hook_owner   # what the hook's context belongs to, kept alive while set
