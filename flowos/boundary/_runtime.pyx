# cython: language_level=3
"""The DPDK resources FlowOS holds, one class each: Eal, Mempool, Port, Worker.

Each object keeps a strong reference to what it depends on, so that teardown happens in DPDK's
order (stop ports, close ports, free pools, clean up the EAL). close() is explicit and
idempotent; __dealloc__ only warns about a resource nobody closed.
"""
import os
import sys
import warnings
from collections import namedtuple
from contextlib import contextmanager

from libc.stdlib cimport malloc, free
from libc.string cimport memset
from libc.stdio cimport fflush as libc_fflush
from libc.errno cimport EINVAL, EPIPE
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from flowos.includes.dpdk cimport *
from flowos.includes.fo cimport *

from flowos.errors import FlowOSError

# linktype: the DLT_ value; linktype_name: libpcap's name for it ("EN10MB", "RAW (Raw IP)");
# longest: the longest packet's captured bytes, and its number (from 1).
CaptureInfo = namedtuple("CaptureInfo", "packets bytes truncated linktype damaged longest longest_at linktype_name")
RouteStats = namedtuple("RouteStats", "rx_packets tx_packets tx_unsent hook_kept")

STOP_REASONS = {
    FO_STOP_NONE: None,
    FO_STOP_REQUESTED: "stopped",
    FO_STOP_PACKET_LIMIT: "packet-limit",
    FO_STOP_INPUT_DONE: "input-done",
}

MAX_BURST = FO_MAX_BURST
MAX_ROUTES = FO_MAX_ROUTES


cdef int check(int ret, str what, str detail=None) except -1:
    """The one place a C return code (-errno) becomes a Python exception, which keeps the errno:
    "what: detail" (the C function's own words), or "what: strerror" where it said none."""
    if ret < 0:
        reason = detail or rte_strerror(-ret).decode()
        raise FlowOSError(f"{what}: {reason}" if what else reason, -ret)
    return ret


def _warn_unclosed(obj):
    warnings.warn(f"{obj!r} was not closed; call close()", ResourceWarning, stacklevel=2)


def scan_capture(path):
    """Packets and bytes in a capture file, as net_pcap will replay them."""
    cdef fo_capture_info info
    cdef char err[512]
    cdef bytes bpath = str(path).encode()
    ret = fo_capture_scan(bpath, &info, err, sizeof(err))
    if ret != -EPIPE:  # a damaged record: what comes before it is replayed
        check(ret, str(path), err.decode(errors="replace"))
    name = info.linktype_name.decode() if info.linktype_name != NULL else f"DLT {info.linktype}"
    if info.linktype_description != NULL:
        name += f" ({info.linktype_description.decode()})"
    return CaptureInfo(info.packets, info.bytes, info.truncated, info.linktype,
                       err.decode(errors="replace") if ret == -EPIPE else None, info.longest, info.longest_at, name)


def steer_hash(uint16_t pattern, uint16_t fold):
    """fo_steer_hash under a key repeating pattern, of a fold (the XOR of the input's 16-bit words)."""
    cdef fo_steer steer
    fo_steer_init(&steer, pattern)
    return fo_steer_hash(&steer, fold)


def steer_rss_key(uint16_t pattern, uint32_t length=40):
    """The RSS key (bytes) a NIC hashes with to agree with steer_hash."""
    cdef uint8_t key[64]
    if length > 64:
        raise ValueError("an RSS key of at most 64 bytes")
    fo_steer_rss_key(pattern, key, length)
    return bytes(key[:length])


@contextmanager
def _fds_redirected_to(path):
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    target = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.dup2(target, 1)
        os.dup2(target, 2)
        yield
    finally:
        libc_fflush(NULL)
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved + [target]:
            os.close(fd)


def _option(argv, name):
    """The value of EAL option --name in argv, or None."""
    for i, arg in enumerate(argv):
        if arg == f"--{name}" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(f"--{name}="):
            return arg.split("=", 1)[1]
    return None


def _remove_shared_files(argv, runtime_dir):
    """What a primary whose memory others could attach to (no --no-shconf, no --huge-unlink)
    leaves behind after rte_eal_cleanup: the shared configuration in its runtime folder and its
    hugepage files. Only once no secondary runs (they have ended before the primary cleans up)."""
    if "--no-shconf" in argv or _option(argv, "proc-type") == "secondary":
        return
    for name in ("config", "hugepage_info", "mp_socket"):
        try:
            os.unlink(os.path.join(runtime_dir, name))
        except OSError:
            pass
    try:   # and the socket of a secondary that died without its cleanup (they have all ended)
        for name in os.listdir(runtime_dir):
            if name.startswith(("fbarray_", "mp_socket_")):
                os.unlink(os.path.join(runtime_dir, name))
    except OSError:
        pass
    huge_dir, prefix = _option(argv, "huge-dir"), _option(argv, "file-prefix")
    if huge_dir and prefix and "--huge-unlink" not in argv:
        for name in os.listdir(huge_dir):
            if name.startswith(f"{prefix}map_"):
                try:
                    os.unlink(os.path.join(huge_dir, name))
                except OSError:
                    pass


def _remove_runtime_dir(path):
    """The EAL leaves its runtime folder behind; removed only once empty (another process of the
    same prefix may be using it)."""
    if path:
        try:
            os.rmdir(path)
        except OSError:
            pass


cdef object _the_eal = None
cdef list _eal_argv_keepalive = []


cdef class Eal:
    """The DPDK environment of this process. It can start once per process."""

    @staticmethod
    def start(argv, log_path):
        global _the_eal
        if _the_eal is not None:
            raise FlowOSError("the DPDK EAL is already initialised in this process (it can start once per process)")
        cdef list encoded = [str(a).encode() for a in argv]
        cdef int argc = len(encoded)
        cdef char **c_argv = <char **>malloc((argc + 1) * sizeof(char *))
        if c_argv == NULL:
            raise MemoryError()
        for i, a in enumerate(encoded):
            c_argv[i] = a
        c_argv[argc] = NULL
        # EAL may keep pointers into argv for the life of the process.
        _eal_argv_keepalive.extend(encoded)
        check(fo_log_to_file(str(log_path).encode()), f"cannot write the DPDK log to {log_path}")
        # rte_eal_init also prints (usage text, fatal errors) straight to stdout and stderr.
        with _fds_redirected_to(log_path):
            with nogil:
                ret = rte_eal_init(argc, c_argv)
        free(c_argv)
        if ret < 0:
            _the_eal = False  # a failed init cannot be retried in this process either
            error = rte_errno
            _remove_runtime_dir(rte_eal_get_runtime_dir().decode())   # made before most failures
            check(-(error or EINVAL), "DPDK EAL start-up failed")   # rte_eal_init sets rte_errno
        cdef Eal eal = Eal.__new__(Eal)
        eal.argv = list(argv)
        eal.log_path = str(log_path)
        _the_eal = eal
        return eal

    def worker_lcores(self):
        """The lcores other than the main one, in order."""
        lcores = []
        cdef unsigned int lc = rte_get_next_lcore(<unsigned int>-1, 1, 0)
        while lc < RTE_MAX_LCORE:
            lcores.append(lc)
            lc = rte_get_next_lcore(lc, 1, 0)
        return lcores

    @property
    def main_lcore(self):
        return rte_get_main_lcore()

    @property
    def runtime_dir(self):
        """Where the EAL keeps its runtime files: the telemetry socket (dpdk_telemetry.v2)."""
        return rte_eal_get_runtime_dir().decode()

    def close(self):
        if self.closed:
            return
        self.closed = True
        runtime_dir = rte_eal_get_runtime_dir().decode()
        rte_eal_cleanup()
        fo_log_close()
        try:  # telemetry unlinks its socket only at exit
            os.unlink(os.path.join(runtime_dir, "dpdk_telemetry.v2"))
        except OSError:
            pass
        _remove_shared_files(self.argv, runtime_dir)
        _remove_runtime_dir(runtime_dir)

    def __dealloc__(self):
        if not self.closed:
            _warn_unclosed(self)


cdef class Mempool:
    """A pool of packet buffers (mbufs)."""

    @staticmethod
    def create(Eal eal, str name, unsigned int size, unsigned int cache, unsigned int data_room, int socket_id=-1):
        cdef Mempool pool = Mempool.__new__(Mempool)
        cdef bytes bname = name.encode()
        pool.mp = rte_pktmbuf_pool_create(bname, size, cache, 0, data_room, socket_id)
        if pool.mp == NULL:
            check(-rte_errno, f"cannot create mbuf pool {name!r} of {size} mbufs")
        pool.eal = eal
        pool.name = name
        pool.owned = True
        return pool

    @staticmethod
    def lookup(Eal eal, str name):
        """The primary's pool of this name, in a secondary process (not freed by close)."""
        cdef Mempool pool = Mempool.__new__(Mempool)
        pool.mp = rte_mempool_lookup(name.encode())
        if pool.mp == NULL:
            check(-rte_errno, f"no mbuf pool {name!r} in the primary process")
        pool.eal = eal
        pool.name = name
        return pool

    @property
    def size(self):
        return self.mp.size if self.mp != NULL else 0

    @property
    def in_use(self):
        return rte_mempool_in_use_count(self.mp) if self.mp != NULL else 0

    def close(self):
        if self.mp != NULL:
            if self.owned:
                rte_mempool_free(self.mp)
            self.mp = NULL

    def __dealloc__(self):
        if self.mp != NULL:
            _warn_unclosed(self)


cdef class Port:
    """An ethdev port (a vdev or a PCI NIC) with one RX and one TX queue per worker."""

    @staticmethod
    def find(Eal eal, str device):
        cdef uint16_t port_id
        check(rte_eth_dev_get_port_by_name(device.encode(), &port_id), f"no port for device {device!r}")
        cdef Port port = Port.__new__(Port)
        port.port_id = port_id
        port.device = device
        port.eal = eal
        return port

    @staticmethod
    def of_primary(Eal eal, uint16_t port_id, str device):
        """A port only the primary process has attached (net_pcap, net_af_packet), named in a worker
        process by its id: the TX port of a route whose engine sends through the relay's outbox."""
        cdef Port port = Port.__new__(Port)
        port.port_id = port_id
        port.device = device
        port.eal = eal
        return port

    def info(self):
        """What the device offers: its queues, the RSS hash types FlowOS asks for that it has, its RETA
        size, the MTUs and frame lengths it takes, whether it receives into chains (scattered RX)."""
        cdef fo_port_info info
        check(fo_port_info_get(self.port_id, &info), f"port {self.device}")
        return {"max_rx_queues": info.max_rx_queues, "max_tx_queues": info.max_tx_queues,
                "rss_types": info.rss_types, "reta_size": info.reta_size, "driver": self.driver,
                "min_mtu": info.min_mtu, "max_mtu": info.max_mtu, "max_rx_pktlen": info.max_rx_pktlen,
                "frame_overhead": info.frame_overhead, "rx_scatter": bool(info.rx_scatter)}

    def start(self, Mempool pool, uint16_t rx_queues=1, uint16_t tx_queues=1, uint16_t rss_pattern=0,
              uint16_t rx_descriptors=1024, uint16_t tx_descriptors=1024, bint promiscuous=True,
              bint rx_timestamp=False, tx_chain_max=None, Mempool linear_pool=None, uint16_t mtu=0,
              bint rx_scatter=False, bint tx_checksum=False):
        """rss_pattern: with several RX queues, the symmetric RSS key's pattern (fo_steer.h), 0: no RSS.
        mtu: set on the device (0: its default); rx_scatter: receive longer frames than an mbuf holds
        as chains (the device must have scattered RX). Afterwards self.mtu, self.rx_descriptors and
        self.tx_descriptors say what the device took.
        tx_chain_max: the longest chained packet the device sends whole (None: no limit);
        longer ones are copied into one mbuf of linear_pool (which the port owns from now on and
        frees on close), or left unsent and counted (tx_oversize)."""
        cdef fo_port_conf conf
        cdef fo_port_info info
        memset(&conf, 0, sizeof(conf))
        conf.pool = pool.mp
        conf.nb_rx_queues = rx_queues
        conf.nb_tx_queues = tx_queues
        conf.rss_pattern = rss_pattern
        conf.nb_rxd = rx_descriptors
        conf.nb_txd = tx_descriptors
        conf.promiscuous = promiscuous
        conf.rx_timestamp = rx_timestamp
        conf.mtu = mtu
        conf.rx_scatter = rx_scatter
        conf.tx_checksum = tx_checksum
        conf.tx_chain_max = 0xFFFFFFFF if tx_chain_max is None else tx_chain_max
        conf.tx_linear_pool = linear_pool.mp if linear_pool is not None else NULL
        self.pool = pool
        self.linear_pool = linear_pool
        self.started = True  # a half-started port still needs closing
        check(fo_port_start(self.port_id, &conf, &info), f"cannot start port {self.device}")
        self.rx_queues = rx_queues
        self.tx_queues = tx_queues
        self.spread = {FO_SPREAD_RSS: "rss", FO_SPREAD_DEVICE: "device"}.get(info.spread, "none")
        self.spread_why = info.why.decode(errors="replace")
        self.mtu = info.mtu
        self.rx_descriptors = info.nb_rxd
        self.tx_descriptors = info.nb_txd
        self.tx_checksums = tuple(name for name, bit in (("ipv4", RTE_ETH_TX_OFFLOAD_IPV4_CKSUM),
                                                          ("tcp", RTE_ETH_TX_OFFLOAD_TCP_CKSUM),
                                                          ("udp", RTE_ETH_TX_OFFLOAD_UDP_CKSUM))
                                  if info.tx_checksums & bit)

    @property
    def driver(self):
        cdef rte_eth_dev_info info
        check(rte_eth_dev_info_get(self.port_id, &info), f"port {self.device}")
        return info.driver_name.decode()

    def stats(self):
        cdef rte_eth_stats s
        cdef fo_port_tx_fit fit
        check(rte_eth_stats_get(self.port_id, &s), f"cannot read the stats of port {self.device}")
        check(fo_port_tx_fit_stats(self.port_id, &fit), f"cannot read the stats of port {self.device}")
        return {
            "rx_packets": s.ipackets, "rx_bytes": s.ibytes,
            "tx_packets": s.opackets, "tx_bytes": s.obytes,
            "rx_missed": s.imissed, "rx_errors": s.ierrors,
            "tx_errors": s.oerrors, "rx_nombuf": s.rx_nombuf,
            "tx_linearised": fit.linearised, "tx_oversize": fit.oversize,
        }

    def link(self):
        cdef rte_eth_link link
        check(rte_eth_link_get_nowait(self.port_id, &link), f"cannot read the link of port {self.device}")
        # RTE_ETH_SPEED_NUM_UNKNOWN (UINT32_MAX): 0, as a device that says nothing
        return {"up": bool(link.link_status), "speed_mbps": 0 if link.link_speed == 0xFFFFFFFF else link.link_speed,
                "full_duplex": bool(link.link_duplex)}

    def free_queued(self):
        """Frees what is left in this port's RX queues (its workers have ended) and returns how many
        there were: for a driver whose queues keep their mbufs when the port closes (net_ring)."""
        cdef void *pkts[64]
        cdef uint16_t n, queue
        cdef uint64_t freed = 0
        for queue in range(self.rx_queues):
            while True:
                n = rte_eth_rx_burst(self.port_id, queue, pkts, 64)
                if n == 0:
                    break
                rte_pktmbuf_free_bulk(pkts, n)
                freed += n
        return freed

    def close(self):
        if not self.started:
            return
        self.started = False
        try:
            check(fo_port_close(self.port_id), f"cannot close port {self.device}")
        finally:
            if self.linear_pool is not None:
                self.linear_pool.close()

    def __repr__(self):
        return f"<Port {self.port_id} {self.device}>"

    def __dealloc__(self):
        if self.started:
            _warn_unclosed(self)


cdef class TxLock:
    """The lock of a TX queue several workers send on (fo_tx.h)."""

    @staticmethod
    def create():
        cdef TxLock lock = TxLock.__new__(TxLock)
        lock.lock = fo_tx_lock_create()
        if lock.lock == NULL:
            check(-rte_errno, "cannot create a TX queue lock")
        return lock

    def close(self):
        if self.lock != NULL:
            fo_tx_lock_free(self.lock)
            self.lock = NULL


cdef class Inbox:
    """A worker's inbox: packets other workers hand it (many producers, its worker consumes); or,
    single_producer, a worker process's outbox for a port (it produces, the relay consumes)."""

    @staticmethod
    def create(Eal eal, str name, unsigned int size, bint single_producer=False):
        cdef Inbox inbox = Inbox.__new__(Inbox)
        flags = RING_F_SC_DEQ | (RING_F_SP_ENQ if single_producer else 0)
        inbox.ring = rte_ring_create(name.encode(), size, SOCKET_ID_ANY, flags)
        if inbox.ring == NULL:
            check(-rte_errno, f"cannot create the ring {name!r}")
        inbox.eal = eal
        inbox.owned = True
        return inbox

    @staticmethod
    def lookup(Eal eal, str name):
        """The primary's ring of this name, in a worker process (the primary frees it)."""
        cdef Inbox inbox = Inbox.__new__(Inbox)
        inbox.ring = rte_ring_lookup(name.encode())
        if inbox.ring == NULL:
            check(-rte_errno, f"no ring {name!r} in the primary process")
        inbox.eal = eal
        return inbox

    def address(self):
        return <size_t>self.ring

    def drain(self):
        """Frees the packets in the ring: how many. Only where nothing else consumes it (its worker
        has ended: a worker process that died, or at close)."""
        cdef void *pkts[256]
        cdef unsigned int n, left = 0
        if self.ring == NULL:
            return 0
        while True:
            n = rte_ring_dequeue_burst(self.ring, pkts, 256, NULL)
            if n == 0:
                break
            rte_pktmbuf_free_bulk(pkts, n)
            left += n
        return left

    def reset_abandoned_end(self, bint consumer_end):
        """Gives back the slots a dead process had claimed on its end of the ring (it died inside a
        dequeue, consumer_end, or an enqueue): how many. Only while nothing else uses that end."""
        return fo_ring_reset_abandoned_end(self.ring, consumer_end) if self.ring != NULL else 0

    def close(self):
        """Frees the ring, and the packets left in it (none once its worker has drained it): how many."""
        if self.ring == NULL:
            return 0
        if not self.owned:
            self.ring = NULL
            return 0
        left = self.drain()
        rte_ring_free(self.ring)
        self.ring = NULL
        return left

    def __dealloc__(self):
        if self.ring != NULL:
            _warn_unclosed(self)


cdef class WorkerGroup:
    """Workers that stop together (fo_worker.h): a packet limit for all, one stop for all."""

    @staticmethod
    def create(Eal eal, uint16_t workers, uint64_t packet_limit=0):
        cdef WorkerGroup group = WorkerGroup.__new__(WorkerGroup)
        group.g = fo_worker_group_create(workers, packet_limit)
        if group.g == NULL:
            check(-rte_errno, f"cannot create a group of {workers} workers")
        group.eal = eal
        group.owned = True
        return group

    @staticmethod
    def create_shared(Eal eal, str name, uint16_t workers, uint64_t packet_limit=0):
        """A group whose members are in several processes, in a memzone they look up by name."""
        cdef WorkerGroup group = WorkerGroup.__new__(WorkerGroup)
        group.g = fo_worker_group_create_shared(name.encode(), workers, packet_limit)
        if group.g == NULL:
            check(-rte_errno, f"cannot create the shared group {name!r} of {workers} workers")
        group.eal = eal
        group.owned = True
        return group

    @staticmethod
    def lookup(Eal eal, str name):
        cdef WorkerGroup group = WorkerGroup.__new__(WorkerGroup)
        group.g = fo_worker_group_lookup(name.encode())
        if group.g == NULL:
            check(-rte_errno, f"no worker group {name!r} in the primary process")
        group.eal = eal
        return group

    def stop_receiving(self, uint16_t member):
        """Counts member out of the group's receivers, if it was not yet (fo_worker.h): a worker
        process that died receiving and is not replaced."""
        return fo_worker_group_stop_receiving(self.g, member)

    def leave(self):
        """This process's member has sent its last packet (fo_worker.h)."""
        fo_worker_group_leave(self.g)

    @property
    def left(self):
        return fo_worker_group_left(self.g)

    def close(self):
        if self.g != NULL:
            if self.owned:
                fo_worker_group_free(self.g)
            self.g = NULL

    def __dealloc__(self):
        if self.g != NULL:
            _warn_unclosed(self)


def polls_at(size_t address):
    """(loop iterations, those that found packets) of the fo_worker at `address` in DPDK's shared
    memory (Worker.address): a worker process's, read while it runs (the primary's flowos-ctl stats)."""
    cdef uint64_t polls, busy
    fo_worker_polls(<fo_worker *>address, &polls, &busy)
    return polls, busy


def route_stats_at(size_t address, uint16_t route):
    """Route `route`'s counters of the fo_worker at `address` (polls_at): a worker process's that
    polls its own queues."""
    cdef fo_route_stats s
    check(fo_worker_route_stats(<fo_worker *>address, route, &s), f"no route {route}")
    return RouteStats(s.rx_packets, s.tx_packets, s.tx_unsent, s.hook_kept)


cdef class Worker:
    """A C poll loop on one lcore, forwarding along its routes without the GIL."""

    @staticmethod
    def create(Eal eal, uint16_t burst=32, uint64_t packet_limit=0, unsigned int source_idle_ms=1000):
        cdef fo_worker_conf conf
        memset(&conf, 0, sizeof(conf))
        conf.burst = burst
        conf.packet_limit = packet_limit
        conf.source_idle_ms = source_idle_ms
        cdef Worker worker = Worker.__new__(Worker)
        worker.w = fo_worker_create(&conf, SOCKET_ID_ANY)
        if worker.w == NULL:
            check(-rte_errno, "cannot create a worker")
        worker.eal = eal
        worker.routes = []
        worker.outboxes = []
        return worker

    def add_route(self, Port rx, Port tx, expected_rx=None, uint16_t rx_queue=0, uint16_t tx_queue=0,
                  TxLock tx_lock=None):
        """Forward what rx receives on rx_queue out of tx's tx_queue (under tx_lock, shared with other
        workers, if given). expected_rx: packets a finite source will deliver."""
        cdef fo_route route
        memset(&route, 0, sizeof(route))
        route.rx_port = rx.port_id
        route.rx_queue = rx_queue
        route.tx_port = tx.port_id
        route.tx_queue = tx_queue
        route.tx_lock = tx_lock.lock if tx_lock is not None else NULL
        route.finite = expected_rx is not None
        route.expected_rx = expected_rx or 0
        check(fo_worker_add_route(self.w, &route), f"cannot add route {rx.device} -> {tx.device}")
        self.routes.append((rx, tx))

    def add_outbox(self, Inbox outbox, Port port, uint16_t queue=0, TxLock lock=None):
        """Send what a worker process puts in outbox on port's queue (the relay, fo_worker.h)."""
        check(fo_worker_add_outbox(self.w, outbox.ring, port.port_id, queue, lock.lock if lock is not None else NULL),
              f"cannot add an outbox to {port.device}")
        self.outboxes.append((outbox, port))

    def outbox_stats(self, uint16_t outbox):
        cdef fo_route_stats s
        check(fo_worker_outbox_stats(self.w, outbox, &s), f"no outbox {outbox}")
        return RouteStats(s.rx_packets, s.tx_packets, s.tx_unsent, s.hook_kept)

    def join_group(self, WorkerGroup group, uint16_t member, Inbox inbox=None, size_t hook=0, size_t ctx=0,
                   owner=None):
        """Makes this worker group's member `member`; it drains inbox (if any) into the C hook at
        address hook with context ctx (which belongs to owner, kept alive meanwhile)."""
        check(fo_worker_join_group(self.w, group.g, member, inbox.ring if inbox is not None else NULL,
                                   <fo_inbox_hook_t>hook, <void *>ctx), "cannot join the worker group")
        self.group = group
        self.inbox = inbox
        self.inbox_owner = owner

    @property
    def polls(self):
        """(loop iterations, those that found packets): the worker's load."""
        cdef uint64_t polls, busy
        fo_worker_polls(self.w, &polls, &busy)
        return polls, busy

    def set_thread_hooks(self, size_t start, size_t stop):
        """C functions (addresses) the worker's thread calls when its loop starts and ends."""
        check(fo_worker_set_thread_hooks(self.w, <fo_thread_hook_t>start, <fo_thread_hook_t>stop, NULL),
              "cannot set the worker's thread hooks")

    def launch(self, unsigned int lcore):
        check(fo_worker_launch(self.w, lcore), f"cannot launch the worker on lcore {lcore}")

    def request_stop(self):
        fo_worker_request_stop(self.w)

    def address(self):
        """The fo_worker, for a processor tier that stops it at a fault (0 once closed)."""
        return <size_t>self.w

    @property
    def running(self):
        return bool(fo_worker_running(self.w))

    def join(self):
        cdef int ret
        with nogil:
            ret = fo_worker_join(self.w)
        check(ret, "worker")

    @property
    def stop_reason(self):
        return STOP_REASONS[fo_worker_stop_reason(self.w)]

    def tx_unsent(self):
        """Packets each TX device refused on this worker's routes (by device name)."""
        unsent = {}
        for i, (_, tx) in enumerate(self.routes):
            unsent[tx.device] = unsent.get(tx.device, 0) + self.route_stats(i).tx_unsent
        return unsent

    @property
    def short_sources(self):
        return fo_worker_short_sources(self.w)

    def route_stats(self, uint16_t route):
        cdef fo_route_stats s
        check(fo_worker_route_stats(self.w, route, &s), f"no route {route}")
        return RouteStats(s.rx_packets, s.tx_packets, s.tx_unsent, s.hook_kept)

    def close(self):
        if self.w == NULL:
            return
        fo_worker_request_stop(self.w)
        self.join()
        fo_worker_free(self.w)
        self.w = NULL
        self.routes = []
        self.outboxes = []
        self.hook_owner = None
        self.inbox_owner = None

    def __dealloc__(self):
        if self.w != NULL:
            _warn_unclosed(self)
