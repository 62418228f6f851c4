"""Builds the runtime from a configuration, runs it until a stop condition, and tears it down
in DPDK's order: stop the worker, stop and close the ports, count and free the pool, clean up
the EAL."""
import logging
import os
import select
import signal
import stat
import tempfile
import time

from flowos.boundary import _control
from flowos.boundary._python import cover_kept_views
from flowos.boundary._runtime import Eal, Inbox, Mempool, Port, TxLock, Worker, WorkerGroup
from flowos.configuration import devices, eal_args, port_settings
from flowos.configuration.config import forwarding_mbufs, worker_processes as runs_worker_processes
from flowos.errors import ConfigError, FlowOSError
from flowos.runtime import control as control_api, control_server, hugepages, reload, watchdog, worker_processes
from flowos.runtime.dpdk_log import explain_failure
from flowos.runtime.pipelines import (build_shards, engine_report, make_instances, processors_of, refresh_tier_reports,
                                      tier_name)
from flowos.runtime.shards import Controls, Engines, Workers, add_up, worker_rows
from flowos.runtime.stats import PortStats, RunReport, Snapshot, SourceReport

MIN_POOL = 8191
ENGINE_TX_BUFFER = 64  # packets the engine gathers per port before a TX burst (TX_BUF in fo_engine_priv.h)
# Ports that cannot send long chains (PortSpec.tx_chain_max) get a pool of one-segment buffers to
# copy them into: the largest data room an mbuf has, as many as one TX burst carries (a worker's
# burst, or the engine's TX buffer).
LINEAR_DATA_ROOM = 65535
STANDARD_FRAME = 1522  # an Ethernet frame with a VLAN tag, what ports other than captures bring
# With several workers: the symmetric RSS key's 16-bit pattern (fo_steer.h), the one of Woo and
# Park's "Scalable TCP Session Monitoring with Symmetric Receive-side Scaling".
STEER_PATTERN = 0x6D5A
INBOX_SIZE = 1024      # packets other workers may have handed a worker before it drains them
RELAY_CAPACITY = 64    # flows of the relay's engine, which hands every packet over (it keeps none)


log = logging.getLogger("flowos.run")


def inbox_mbufs(config):
    """What the workers' inboxes may hold: packets handed to the worker of their flow; and worker
    processes' outboxes, what they sent on each port before the relay sends it."""
    outboxes = worker_processes.OUTBOX_SIZE * len(config.ports) if runs_worker_processes(config) else 0
    return (INBOX_SIZE + outboxes) * config.run.workers if config.run.workers > 1 and config.flows else 0


def pool_size(config):
    """Enough mbufs for what forwarding holds (every descriptor ring of every worker's queues, each
    lcore's cache, each worker's bursts) twice over, as 2^k - 1 (a mempool's best size)."""
    need = forwarding_mbufs(config) + inbox_mbufs(config)
    size = MIN_POOL
    while size < 2 * need:
        size = size * 2 + 1
    return size


def keep_budget(config, mbufs):
    """The packets the flow engine may keep across all flows (docs/flows.md, "The keep budget"):
    the pool less what forwarding needs whatever the engine keeps (every descriptor ring full, a
    mempool cache per lcore, bursts in each worker's hands, each worker's engine TX buffers) and an eighth
    of the pool for what processors make, a quarter of the pool at least; divided by the mbufs the
    longest frame a capture holds takes, where it is longer than one mbuf."""
    reserve = (forwarding_mbufs(config) + ENGINE_TX_BUFFER * len(config.ports) * config.run.workers +
               inbox_mbufs(config))
    longest = max([STANDARD_FRAME] + [p.capture.longest for p in config.ports if p.capture is not None])
    segments = -(-longest // (config.pool.data_room - devices.MBUF_HEADROOM))
    spare = max(mbufs - reserve - mbufs // 8, mbufs // 4) // segments
    asked = config.engine.keep_budget
    if asked is None:
        return spare
    if asked > spare:
        raise ConfigError(config.source, "engine.keep_budget",
                          f"{asked} packets is more than the pool of {mbufs} mbufs can spare for the engine "
                          f"({spare}, after {reserve} for forwarding): lower it, or raise pool.mbufs")
    return asked


def linear_pool_size(config):
    return max(config.run.burst, ENGINE_TX_BUFFER)


def replace_tx_captures(ports):
    """Removes each existing output capture (tx_pcap) before the EAL opens it, so that net_pcap
    creates the file instead of truncating it: ext4 writes a truncated-then-rewritten file back
    when it is closed (auto_da_alloc), which held the port's close, and so a SIGTERM's exit, for
    0.3-1 s after a fast run. Only a plain file with one link that no port reads goes."""
    read = {p.arg("rx_pcap") for p in ports if p.driver == "net_pcap"}
    for port in ports:
        path = port.arg("tx_pcap") if port.driver == "net_pcap" else None
        if path is None or path in read or os.path.islink(path):
            continue
        try:
            st = os.stat(path)
            if stat.S_ISREG(st.st_mode) and st.st_nlink == 1:
                os.unlink(path)
        except OSError:
            pass     # not there, or not ours to remove: net_pcap opens it as before


def memory_needed_mb(config, mbufs, page_size):
    """The EAL memory a run needs in pages of `page_size`: its pool, the one-segment pools of the
    ports that cannot send long chains, the flow table and the engine's processing windows."""
    needed = eal_args.needed_memory_mb(mbufs, port_settings.data_room_at_most(config), page_size)
    linear_ports = [p for p in config.ports if p.tx_chain_max is not None]
    needed += len(linear_ports) * eal_args.pool_memory_mb(linear_pool_size(config), LINEAR_DATA_ROOM, page_size)
    if config.flows:
        needed += eal_args.flow_table_memory_mb(config.engine.capacity,
                                                max(flow.cython_state_bytes for flow in config.flows))
        # Each worker's shard has its processing windows; the flow table is split between them.
        needed += config.run.workers * eal_args.window_memory_mb(max(flow.hold_packets for flow in config.flows))
        if runs_worker_processes(config):    # the relay's engine: a shard too
            needed += eal_args.window_memory_mb(max(flow.hold_packets for flow in config.flows))
    return needed


def memory_mode(config, mbufs):
    """Hugepages or not, and how much memory: what the run needs in the mode chosen, or what
    eal.memory_mb says (refused when too little, or more than the machine has, and without
    hugepages for worker processes)."""
    huge = memory_needed_mb(config, mbufs, eal_args.HUGEPAGE_SIZE)
    small = memory_needed_mb(config, mbufs, eal_args.SMALL_PAGE_SIZE)
    given = config.eal.memory_mb
    needed = small if config.eal.memory == "no-huge" else huge
    if given is not None and given < needed:
        raise config.error("eal.memory_mb", f"{given} MB is too little: a pool of "
                           f"{mbufs} mbufs needs {needed} MB (raise it, or lower pool.mbufs)")
    available = available_memory_mb()
    if given is not None and available is not None and given > available:
        raise config.error("eal.memory_mb", f"{given} MB is more than the {available} MB of memory this "
                           "machine has available")
    memory = hugepages.choose(config.eal.memory, given or huge, no_huge_mb=given or small)
    if given is not None and memory.mode == "no-huge" and given < small:
        raise config.error("eal.memory_mb", f"{given} MB is too little: without hugepages "
                           f"({memory.reason}) a pool of {mbufs} mbufs needs {small} MB (raise it, or lower pool.mbufs)")
    if available is not None and memory.memory_mb > available:
        raise config.error("pool.mbufs", f"{mbufs} mbufs need {memory.memory_mb} MB, "
                           f"more than the {available} MB of memory this machine has available")
    if runs_worker_processes(config) and memory.mode != "hugepages":
        raise config.error("eal.memory", "the workers run as worker processes (docs/configuration.md), which need "
                                         f"hugepages, and there are none to use ({memory.reason}): "
                                         "run scripts/hugepages (as root), or use worker threads")
    return memory


def available_memory_mb():
    """MemAvailable plus free hugepages: what a run can take without the OOM killer stepping in."""
    try:
        with open("/proc/meminfo") as f:
            fields = dict(line.split(":", 1) for line in f)
    except OSError:
        return None
    return int(fields["MemAvailable"].split()[0]) // 1024 + sum(state.free_mb for state in hugepages.probe_all())


class Bridge:
    """The DPDK resources of one run, built from a finished Config."""

    def __init__(self, config):
        self.config = config
        self.eal = self.pool = self.worker = self.engine = None
        self.keep_budget = 0       # packets the flow engine may keep across all flows
        self.control = None        # the engine's control mailbox (flowos-ctl flows, message)
        self.telemetry_socket = None
        self.control_server = None # FlowOS's control socket (flowos-ctl)
        self.tiers = []            # the Python and Cython processors in the engine, every shard's
        self.instances = None      # the worker threads' processor instances, made before DPDK starts
        self.group = None          # the workers' WorkerGroup
        self.inboxes = []          # each worker's Inbox (several workers with a flow engine)
        self.outboxes = []         # worker processes': each one's Inbox for each relayed port, that the relay sends
        self.own_queue_ports = set()   # worker processes: the ports they poll themselves (the relay: the others)
        self.relay_engine = None   # worker processes: the relay's engine (steers, owns no flow)
        self.tx_locks = {}         # port id -> a TxLock per TX queue, where workers share them
        self.ports = {}
        self.sources = {}      # port name -> CaptureInfo of the capture it replays
        self.started_at = None
        self.memory = None
        self.file_prefix = config.eal.file_prefix or f"flowos-{os.getpid()}"
        self.log_path = os.path.join(tempfile.gettempdir(), f"{self.file_prefix}.log")
        self.keep_log = False  # a failed start-up keeps DPDK's log: the error names it
        self.config_path = config.source if os.path.isfile(config.source or "") else None   # what SIGHUP reloads
        self.reloader = reload.Reloader(self)

    def start(self):
        cfg = self.config
        # The configuration was checked once, and against this machine (flowos.runtime.machine).
        assert cfg.pool.data_room is not None, "flowos.runtime.machine.check(config) first"
        mbufs = cfg.pool.mbufs or pool_size(cfg)
        self.keep_budget = keep_budget(cfg, mbufs) if cfg.flows else 0
        self.memory = memory_mode(cfg, mbufs)
        self.sources = {p.name: p.capture for p in cfg.ports if p.capture_source}
        processes = runs_worker_processes(cfg)
        if processes:
            lcores = eal_args.relay_lcores(cfg.eal.worker_cpus)
        else:
            lcores, _ = eal_args.lcore_map(cfg.eal.worker_cpus)
        argv = eal_args.eal_argv(self.memory, self.file_prefix, lcores, cfg.ports, cfg.eal.log_level, cfg.eal.args,
                                 primary=processes)
        # The worker threads' processor instances first, each constructed once: a constructor that
        # rejects its parameters stops the start before DPDK opens anything (worker processes make
        # their own, flowos.runtime.worker_process).
        self.instances = make_instances(cfg.flows, cfg.run.workers) if cfg.flows and not processes else None
        if os.path.exists(self.log_path):
            os.unlink(self.log_path)
        replace_tx_captures(cfg.ports)
        try:
            self.eal = Eal.start(argv, self.log_path)
        except FlowOSError as e:
            self.keep_log = True
            raise FlowOSError(explain_failure(str(e), self.log_path)) from None
        infos, mtu_fits = {}, {}
        for spec in cfg.ports:
            try:
                port = Port.find(self.eal, spec.device)
            except FlowOSError as e:
                # The EAL starts even when a vdev's driver refused it; why is in DPDK's log.
                self.keep_log = True
                raise FlowOSError(explain_failure(str(e), self.log_path, device=spec.device)) from None
            self.ports[spec.name] = port
            infos[spec.name] = port.info()
            mtu_fits[spec.name] = port_settings.fit_mtu(cfg, spec, infos[spec.name])
        cfg.notes += [fit.note for fit in mtu_fits.values() if fit.note]
        data_room = max([cfg.pool.data_room] + [fit.data_room for fit in mtu_fits.values()])
        try:
            self.pool = Mempool.create(self.eal, "fo_pool", mbufs, cfg.pool.cache, data_room)
        except FlowOSError as e:
            raise FlowOSError(f"{e} in {self.memory.memory_mb} MB ({self.memory.mode}); "
                              "raise --memory-mb or lower --mbufs") from None
        n_workers = cfg.run.workers
        for spec in cfg.ports:
            port, info = self.ports[spec.name], infos[spec.name]
            linear = None
            if spec.tx_chain_max is not None:
                linear = Mempool.create(self.eal, f"fo_linear{port.port_id}", linear_pool_size(cfg), 0, LINEAR_DATA_ROOM)
            rx_queues, tx_queues = min(n_workers, info["max_rx_queues"]), min(n_workers, info["max_tx_queues"])
            if processes and worker_processes.polls_own_queues(cfg, spec, info):
                self.own_queue_ports.add(spec.name)
                tx_queues = n_workers + 1     # one per worker process, and the relay's
            elif processes:
                tx_queues = 1        # the relay sends for every worker process
            port.start(self.pool, rx_queues, tx_queues, STEER_PATTERN, spec.rx_descriptors, spec.tx_descriptors,
                       spec.promiscuous,
                       rx_timestamp=bool(cfg.flows) and cfg.engine.clock == "capture" and spec.capture_source is not None,
                       tx_chain_max=spec.tx_chain_max, linear_pool=linear, mtu=spec.mtu or 0,
                       rx_scatter=mtu_fits[spec.name].scatter, tx_checksum=spec.tx_checksum_offload)
            cfg.notes += filter(None, [port_settings.descriptor_note(spec, port.rx_descriptors, port.tx_descriptors),
                                       port_settings.checksum_note(spec, port.tx_checksums, bool(cfg.flows))])
            if tx_queues < n_workers and not processes:     # workers share its queues, each under a lock
                self.tx_locks[port.port_id] = [TxLock.create() for _ in range(tx_queues)]
        if processes:
            self._start_worker_processes()
            return
        self.group = WorkerGroup.create(self.eal, n_workers, cfg.run.packets or 0)
        self.worker = Workers([Worker.create(self.eal, cfg.run.burst, 0, cfg.run.source_idle_ms)
                               for _ in range(n_workers)], cfg.eal.worker_cpus)
        self._add_routes()
        if n_workers > 1 and cfg.flows:
            self.inboxes = [Inbox.create(self.eal, f"fo_inbox{w}", INBOX_SIZE) for w in range(n_workers)]
        if cfg.flows:
            self.engine = self._build_engines(n_workers)
            self.control = Controls([_control.Control.attach(engine, worker)
                                     for engine, worker in zip(self.engine, self.worker)])
        for w, worker in enumerate(self.worker):
            if self.inboxes:
                self.engine.all[w].attach_inbox(worker, self.group, w, self.inboxes[w])
            else:
                worker.join_group(self.group, w)
        lcores = self.eal.worker_lcores()
        if len(lcores) < n_workers:
            raise FlowOSError(f"{len(lcores)} worker lcores for {n_workers} workers: the EAL started with too few")
        for worker, lcore in zip(self.worker, lcores):
            worker.launch(lcore)
        self.started_at = time.monotonic()
        self._serve_control(control_api.Commands(self, self.control).handle)

    def _start_worker_processes(self):
        """The relay here, a process per worker (flowos.runtime.worker_processes): the rings and the group
        first, for the processes to look up; the relay runs once every process runs its worker.
        The relay receives from the ports the worker processes do not poll themselves, sends on
        its own TX queue of those they do (queue n_workers), and sends the outboxes of the others."""
        cfg, n_workers, own = self.config, self.config.run.workers, self.own_queue_ports
        relayed = [port for name, port in self.ports.items() if name not in own]
        self.inboxes = [Inbox.create(self.eal, worker_processes.inbox_name(w), INBOX_SIZE) for w in range(n_workers)]
        self.outboxes = [Inbox.create(self.eal, worker_processes.outbox_name(w, port.port_id), worker_processes.OUTBOX_SIZE,
                                      single_producer=True)
                         for w in range(n_workers) for port in relayed]
        self.group = WorkerGroup.create_shared(self.eal, worker_processes.GROUP, n_workers + 1, cfg.run.packets or 0)
        relay = Worker.create(self.eal, cfg.run.burst, 0, cfg.run.source_idle_ms)
        self.relay_engine = None
        routes = [[] for _ in range(n_workers)]
        for w, src, dst, queue in self.queue_owners():
            if src in own:
                routes[w].append((src, dst, queue, w if dst in own else 0))
        plan = worker_processes.Plan(cfg, self.file_prefix, self.port_ids(), self.keep_budget, STEER_PATTERN,
                                     self.eal.runtime_dir, {name: port.device for name, port in self.ports.items()},
                                     frozenset(own), routes)
        outboxes = [self.outboxes[w * len(relayed):(w + 1) * len(relayed)] for w in range(n_workers)]
        self.worker = worker_processes.WorkerProcesses(relay, None, plan, cfg.eal.worker_cpus, self.group, self.inboxes,
                                                       outboxes, 5 * cfg.run.call_budget_ms / 1000 + watchdog.STOP_GRACE)
        for r, (src, dst) in enumerate(cfg.forward):
            source, rx, tx = self.sources.get(src), self.ports[src], self.ports[dst]
            for queue in range(rx.rx_queues if src not in own else 0):
                relay.add_route(rx, tx, source.packets if source else None, queue, n_workers if dst in own else 0)
        for outbox, (w, port) in zip(self.outboxes, [(w, p) for w in range(n_workers) for p in relayed]):
            relay.add_outbox(outbox, port, 0)

        def relay_and_send(engine, _):
            engine.set_relay(relay, self.inboxes, STEER_PATTERN)
            for name in own:
                engine.set_txq(self.ports[name].port_id, n_workers)
        (self.relay_engine,), _ = build_shards(cfg, self.pool, self.port_ids(), n_workers + 1, 0, [relay], relay.address(),
                                               relay_and_send, processors=False, capacity=RELAY_CAPACITY)
        self.worker.relay_engine = self.relay_engine
        self.control = Controls([worker_processes.ProcessControl(self.worker, w) for w in range(n_workers)])
        relay.join_group(self.group, n_workers)
        self.worker.spawn()
        lcores = self.eal.worker_lcores()
        self.worker.launch(lcores[0])
        self.started_at = time.monotonic()
        self._serve_control(control_api.Commands(self, self.control).handle)

    def txq(self, port, worker):
        """(queue, lock or None) worker w sends on at port."""
        queue = worker % port.tx_queues
        locks = self.tx_locks.get(port.port_id)
        return queue, locks[queue] if locks else None

    def queue_owners(self):
        """(worker, rx port, tx port, rx queue) of each route: each worker polls its own RX queue of
        every port (queue w: what RSS gives worker w); a port with fewer queues than workers has its
        queues polled by the first ones, a single queue by the worker of the route's turn (so that
        two captures go to two workers)."""
        n_workers = self.config.run.workers
        for r, (src, dst) in enumerate(self.config.forward):
            rx_queues = self.ports[src].rx_queues
            for queue in range(rx_queues):
                yield (queue if rx_queues > 1 else r % n_workers), src, dst, queue

    def _add_routes(self):
        for w, src, dst, queue in self.queue_owners():
            source, rx, tx = self.sources.get(src), self.ports[src], self.ports[dst]
            tx_queue, lock = self.txq(tx, w)
            self.worker.all[w].add_route(rx, tx, source.packets if source else None, queue, tx_queue, lock)

    def _serve_control(self, handler):
        """Answers flowos-ctl on FlowOS's control socket, and DPDK's tools on telemetry's (if on)."""
        path = os.path.join(self.eal.runtime_dir, control_server.SOCKET_NAME)
        try:
            self.control_server = control_server.ControlServer(path, handler)
        except OSError as e:
            raise FlowOSError(f"cannot serve the control socket {path}: {e.strerror or e}") from None
        socket_path = os.path.join(self.eal.runtime_dir, control_api.SOCKET_NAME)
        if os.path.exists(socket_path):   # not with --eal-arg=--no-telemetry
            self.telemetry_socket = socket_path
            _control.register(control_api.COMMANDS)
            _control.serve(handler)

    def _build_engines(self, n_workers):
        """A shard of the flow engine per worker thread, from one configuration: each with its own
        processor instances, its own TX queues, its share of the flow table and keep budget."""
        def steer_and_send(engine, shard):
            if self.inboxes:
                engine.set_shard(shard, self.inboxes, STEER_PATTERN)
            for port in self.ports.values():
                engine.set_txq(port.port_id, *self.txq(port, shard))
        engines, tiers = build_shards(self.config, self.pool, self.port_ids(), n_workers, self.keep_budget,
                                      self.worker.all, self.worker.address(), steer_and_send, made=self.instances)
        self.instances = None      # the shards' tiers hold them
        self.tiers += [tier for shard in tiers for tier in shard]
        return Engines(engines)

    def port_ids(self):
        return {name: port.port_id for name, port in self.ports.items()}

    def reload_on_hangup(self):
        """SIGHUP: the configuration file again (docs/reload.md); the answer goes to the run's log."""
        if not self.config_path:
            log.warning("SIGHUP: this run has no configuration file to reload (it was configured on the command line)")
            return
        try:
            summary = self.reloader.reload_file(self.config_path)
        except FlowOSError as e:
            log.warning("SIGHUP: %s", e)
            return
        log.warning("SIGHUP: reloaded %s: flow definitions %s", self.config_path, ", ".join(summary["definitions"]))

    def processor_fault(self):
        """The Python processor whose fault policy asks the run to stop, if one does."""
        return next((t for t in self.tiers if t.stop_requested), None)

    def stop_reason(self, reason):
        """Why the run ended: a fault under on_error: stop whenever one came (the faulting tier stops
        the worker itself, so the end of the input, a signal or --duration may be seen after it), else
        `reason`."""
        tier = self.processor_fault()
        if tier is not None:
            return f"processor fault ({tier_name(tier)})"
        return getattr(self.worker, "failure", None) or reason

    def engine_report(self):
        """The engine's statistics, each definition's, and what its processors report."""
        with self.reloader.lock:
            return engine_report(self.engine) if self.engine is not None else None

    def refresh_tier_reports(self, report):
        refresh_tier_reports(self.engine, report)

    @property
    def elapsed(self):
        return time.monotonic() - self.started_at if self.started_at else 0.0

    def port_stats(self):
        unsent = self.worker.tx_unsent()
        out = []
        for spec in self.config.ports:
            port = self.ports[spec.name]
            link = port.link()
            out.append(PortStats(name=spec.name, device=spec.device, driver=port.driver, mtu=port.mtu,
                                 tx_unsent=unsent.get(port.device, 0), link_up=link["up"],
                                 link_speed_mbps=link["speed_mbps"], link_full_duplex=link["full_duplex"],
                                 **port.stats()))
        return out

    def _processors(self, i, report):
        return processors_of(self.engine, i, report)

    def processor_counts(self):
        """engine_report()'s "flows" while the worker runs: the engine's counts, and a Python or
        Cython processor's counters (safe to read meanwhile); no report for the C built-ins (not safe)."""
        return [{"name": name, "processors": self._processors(i, lambda j, proc: None if isinstance(proc, str)
                                                              else add_up([t.counts() for t in self.engine.instances(i, j)]))}
                for i, name in enumerate(self.engine.definitions)]

    def engine_stats(self):
        """The engine's totals while it runs (worker processes: read from each, see WorkerProcesses)."""
        if self.engine is not None:
            return self.engine.stats()
        return self.worker.live_engine_stats() if self.relay_engine is not None else None

    def snapshot(self):
        with self.reloader.lock:    # definitions and processors are one configuration's, not half a reload's
            return Snapshot(self.elapsed, self.port_stats(), self.pool.in_use, self.pool.size, self.engine_stats(),
                            self.processor_counts() if self.engine is not None else None,
                            worker_rows(self.worker, self.engine))

    def close(self, stop_reason):
        """Tears down whatever start() built, in DPDK's order, and reports the run."""
        report = None
        if self.control is not None:
            self.control.stop()       # wakes a request waiting for the worker
        if self.control_server is not None:
            self.control_server.close()   # answers a request under way; disconnects every client
        _control.stop_serving()       # waits for a telemetry request under way; refuses later ones
        if self.worker is not None:
            self.worker.request_stop()
            self.worker.join()
            for tier in self.tiers:   # the worker has ended: a later fault (teardown) has nothing to stop
                tier.stop_worker_on_fault(0)
            if self.control is not None:
                self.control.close()
            stop_reason = self.stop_reason(stop_reason)   # worker processes: known once they have ended
            engine_report = None
            if self.engine is not None:
                self.engine.shutdown()   # every flow ends; what they held goes out
                engine_report = self.engine_report()
                self.engine.teardown()
                self.refresh_tier_reports(engine_report)   # with the faults of their teardown
            elif self.relay_engine is not None:    # worker processes: their reports, the relay's counts
                self.relay_engine.shutdown()
                engine_report = self.worker.engine_report()
                self.relay_engine.teardown()
            ports = self.port_stats()
            sources = [SourceReport(name, self.config.port(name).capture_source, info.packets, info.bytes,
                                    next(p.rx_packets for p in ports if p.name == name), info.damaged,
                                    info.truncated)
                       for name, info in self.sources.items()]
            report = RunReport(self.memory.mode, self.memory.reason, self.memory.memory_mb, self.file_prefix,
                               self.elapsed, stop_reason or self.worker.stop_reason, ports, self.pool.size, 0, sources,
                               engine_report, burst=self.config.run.burst,
                               workers=worker_rows(self.worker, self.engine, full=True))
            if self.relay_engine is not None:
                report.mbufs_lost_with_workers = self.worker.mbufs_lost()
            report.mbufs_left_in_port_queues = sum(self.ports[spec.name].free_queued() for spec in self.config.ports
                                                   if spec.driver in devices.KEEPS_QUEUED_MBUFS)
            self.worker.close()
        if self.engine is not None:
            self.engine.close()
        if self.relay_engine is not None:
            self.relay_engine.close()
        for inbox in self.inboxes + self.outboxes:
            inbox.close()      # empty: its worker (an outbox: the relay) drained it before it ended
        for lock in (lock for locks in self.tx_locks.values() for lock in locks):
            lock.close()
        if self.group is not None:
            self.group.close()
        errors = []
        for port in self.ports.values():
            try:
                port.close()
            except FlowOSError as e:
                errors.append(str(e))
        if self.pool is not None:
            if report is not None:
                report.mbufs_in_use_at_exit = self.pool.in_use
            self.pool.close()
        if self.eal is not None:
            self.eal.close()
            cover_kept_views()   # a processor's memoryview kept past its call reads zeros, not unmapped memory
            if os.path.exists(self.log_path) and not errors and not self.keep_log:
                os.unlink(self.log_path)
        if errors:
            raise FlowOSError("; ".join(errors))
        return report


class StopRequest:
    """SIGINT/SIGTERM end the run cleanly: the handler only records the signal.

    The handler runs on the main thread between any two bytecodes, so it must take no lock: a
    threading.Event's set() there deadlocks when the signal lands while Event.wait() holds the
    Event's own lock (the run then ignores every later SIGINT too). wait() sleeps in select() on
    a pipe that the interpreter writes a byte to on each signal (signal.set_wakeup_fd), whichever
    thread the kernel delivered it to."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signal_name = None
        self.hangups = 0            # SIGHUPs not yet acted on: reload the configuration file
        self._read, self._write = os.pipe()
        for fd in (self._read, self._write):
            os.set_blocking(fd, False)
        self.saved_wakeup = signal.set_wakeup_fd(self._write, warn_on_full_buffer=False)
        self.saved = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        self.saved[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._hangup)

    def _handle(self, signum, frame):
        self.signal_name = signal.Signals(signum).name

    def _hangup(self, signum, frame):
        self.hangups += 1

    def take_hangup(self):
        """Whether a SIGHUP came since the last call."""
        came, self.hangups = self.hangups > 0, 0
        return came

    def wait(self, timeout):
        """True once a signal came; else after `timeout` seconds (sooner when one comes)."""
        if self.signal_name is None:
            select.select([self._read], [], [], timeout)
            try:
                os.read(self._read, 512)
            except BlockingIOError:
                pass
        return self.signal_name is not None

    def restore(self):
        for s, handler in self.saved.items():
            signal.signal(s, handler)
        signal.set_wakeup_fd(self.saved_wakeup)
        os.close(self._read)
        os.close(self._write)


def run(config, view):
    """Runs until a signal, --duration, --packets, or the end of every input capture. A worker
    that does not stop when told is left running (flowos.runtime.watchdog): the report says so."""
    bridge = Bridge(config)
    stop = StopRequest()
    reason = dog = None
    stopped = True
    try:
        bridge.reloader.load_start_file()
        bridge.start()
        dog = watchdog.Watchdog(bridge.tiers, config.run.call_budget_ms / 1000, tier_name, engine=bridge.engine)
        view.started(bridge)
        while bridge.worker.running:
            wait = view.interval
            if config.run.duration is not None:
                wait = max(0.0, min(wait, config.run.duration - bridge.elapsed))
            if stop.wait(wait):
                reason = reason or f"signal ({stop.signal_name})"
                bridge.worker.request_stop()
            elif stop.take_hangup():
                bridge.reload_on_hangup()
            elif config.run.duration is not None and bridge.elapsed >= config.run.duration:
                reason = reason or "duration"
                bridge.worker.request_stop()
            view.update(bridge.snapshot())
            dog.check()
            if reason is not None:     # told to stop: it does, or it is left running (bounded)
                if isinstance(bridge.worker, worker_processes.WorkerProcesses):
                    stopped = bridge.worker.wait_stopped()    # bounded: it ends a stuck process
                else:
                    stopped = dog.wait_for_stop(bridge.worker)
                break
        reason = bridge.stop_reason(reason)
    finally:
        try:
            report = bridge.close(reason) if stopped else watchdog.abandon(bridge, reason, tier_name)
            if dog is not None and report is not None:
                report.watchdog = dog.report()
                if not stopped:
                    report.watchdog["undrained"] = watchdog.undrained(report)
        finally:
            stop.restore()
            view.stopped()
    return report
