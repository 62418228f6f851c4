# The runtime's classes, declared for the other extension modules (the flow engine) to use.
from libc.stdint cimport uint16_t

from flowos.includes.dpdk cimport rte_mempool, rte_ring
from flowos.includes.fo cimport fo_worker, fo_worker_group


# The one place a C return code (-errno) becomes a FlowOSError (with its errno), for every module.
cdef int check(int ret, str what, str detail=*) except -1


cdef class Eal:
    cdef readonly list argv
    cdef readonly str log_path
    cdef bint closed


cdef class Mempool:
    cdef rte_mempool *mp
    cdef readonly Eal eal
    cdef readonly str name
    cdef bint owned       # created here (freed on close), not looked up


cdef class Port:
    cdef readonly uint16_t port_id
    cdef readonly str device
    cdef readonly Eal eal
    cdef readonly Mempool pool
    cdef readonly Mempool linear_pool
    cdef bint started
    cdef readonly uint16_t rx_queues, tx_queues
    cdef readonly str spread          # how it spreads what it receives: none, rss, device
    cdef readonly str spread_why      # device: why not RSS
    cdef readonly uint16_t mtu        # once started: the device's
    cdef readonly uint16_t rx_descriptors, tx_descriptors   # once started: per queue, as the device took them
    cdef readonly tuple tx_checksums  # once started: the TX checksum offloads turned on ("ipv4", "tcp", "udp")


cdef class TxLock:
    cdef void *lock


cdef class Inbox:
    cdef rte_ring *ring
    cdef readonly Eal eal
    cdef bint owned


cdef class WorkerGroup:
    cdef fo_worker_group *g
    cdef readonly Eal eal
    cdef bint owned


cdef class Worker:
    cdef fo_worker *w
    cdef readonly Eal eal
    cdef readonly list routes
    cdef readonly object hook_owner   # what the hook's context belongs to, kept alive while set
    cdef readonly WorkerGroup group
    cdef readonly Inbox inbox
    cdef object inbox_owner
    cdef readonly list outboxes      # (Inbox, Port) the worker sends from (the relay)
