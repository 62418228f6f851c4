"""The run configuration: a YAML file, the command line, or both (the command line wins).

Sections (each optional):

  eal:     memory (auto | hugepages | no-huge), memory_mb, file_prefix, worker_cpus (or worker_cpu), log_level,
           args
  pool:    mbufs, cache, data_room
  ports:   list of {name, vdev | pci, rx_descriptors, tx_descriptors, promiscuous, mtu, tx_checksum_offload}
  forward: list of "a -> b", "a <-> b" or {from: a, to: b}
  run:     workers, burst, duration, packets, source_idle_ms, call_budget_ms, worker_processes,
           worker_process_queues, on_worker_death
  engine:  the flow engine's settings, and flows: the flow definitions (see flowos/configuration/flows.py)

Every error names the file, the key and what was expected; unknown keys are rejected.
"""
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from flowos.configuration import devices, eal_args, flows as flow_defs
from flowos.errors import ConfigError, FlowOSError
from flowos.facts import MAX_BURST


@dataclass
class EalConfig:
    memory: str = "auto"
    memory_mb: int | None = None       # None: sized from the pool
    file_prefix: str | None = None     # None: flowos-<pid>
    worker_cpu: int | None = None      # the one-worker form of worker_cpus; finish() folds it in
    worker_cpus: list | None = None    # None: the last run.workers CPUs this process may use (finish())
    log_level: str | None = None
    args: list = field(default_factory=list)


@dataclass
class PoolConfig:
    mbufs: int | None = None           # None: sized from the ports' descriptors
    cache: int = 256
    data_room: int | None = None       # None: DATA_ROOM, or more where a port needs it
    data_room_given: bool = False      # the user's: never raised for a port's MTU (flowos/configuration/port_settings.py)

# RTE_MBUF_DEFAULT_BUF_SIZE: 2048 bytes + headroom. Longer frames come as chains (docs/ports.md),
# except where a driver copies a frame into one mbuf (net_af_packet): it sets a larger room.
DATA_ROOM = 2176
MAX_DATA_ROOM = 65535

# eal.memory: hugepages when enough are free, else without (flowos/runtime/hugepages.py chooses).
MEMORY_MODES = ("auto", "hugepages", "no-huge")


# Packets per receive burst, by default: 32 (as testpmd), or 256 when a pipeline has a Python
# processor, which is called once per burst and so pays its fixed cost per call once per up to 256
# packets. rte_eth_rx_burst never waits for a burst to fill: a light load still goes in small bursts.
BURST = 32
PYTHON_BURST = 256


# RTE_MAX_LCORE (128 in DPDK 22.11's default build) less the main lcore.
MAX_WORKERS = 127


@dataclass
class RunConfig:
    workers: int | str | None = None   # an int, or "auto"; None: one per eal.worker_cpus, else 1 (finish())
    burst: int | None = None           # None: BURST, or PYTHON_BURST with a Python processor
    duration: float | None = None      # seconds
    packets: int | None = None         # stop after receiving this many
    source_idle_ms: int = 1000         # a capture source silent this long counts as finished
    call_budget_ms: int = 1000         # a Python processor call or message past this is reported (flowos/runtime/watchdog.py)
    worker_processes: str = "auto"     # auto: processes for several workers with a Python processor; always
    # own: worker processes poll their own queues of the ports whose driver lets them; relay: the relay serves all
    worker_process_queues: str = "own"
    on_worker_death: str = "restart"   # a worker process that dies or is stuck: restart it, or stop the run


@dataclass
class Config:
    source: str = ""                   # where it came from, for messages
    eal: EalConfig = field(default_factory=EalConfig)
    pool: PoolConfig = field(default_factory=PoolConfig)
    ports: list = field(default_factory=list)     # devices.PortSpec
    forward: list = field(default_factory=list)   # (from name, to name)
    run: RunConfig = field(default_factory=RunConfig)
    engine: flow_defs.EngineConfig = field(default_factory=flow_defs.EngineConfig)
    flows: list = field(default_factory=list)     # flow_defs.FlowDefinition; none: a plain bridge
    notes: list = field(default_factory=list)     # defaults applied, to tell the user
    flags: dict = field(default_factory=dict)     # key -> the command-line flag that set it, for messages

    def port(self, name):
        return next(p for p in self.ports if p.name == name)

    def error(self, key, problem):
        """A ConfigError about `key`, naming the flag when the command line set it."""
        return _Reader(self.source, self.flags).error(key, problem)


# --- a small schema: what each key accepts ----------------------------------------------------

def _int(lo, hi=None):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int):
            return f"expected an integer, got {v!r}"
        if v < lo or (hi is not None and v > hi):
            return f"expected an integer in {lo}..{hi}" if hi is not None else f"expected an integer >= {lo}"
    return check


def _number(lo):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not lo < v < math.inf:
            return f"expected a finite number > {lo}, got {v!r}"
    return check


def _choice(*options):
    def check(v):
        if v not in options:
            return f"expected one of {', '.join(options)}, got {v!r}"
    return check


def _string(pattern=None, what="a string"):
    def check(v):
        if not isinstance(v, str) or (pattern and not re.fullmatch(pattern, v)):
            return f"expected {what}, got {v!r}"
    return check


def _bool(v):
    if not isinstance(v, bool):
        return f"expected true or false, got {v!r}"


def _workers(v):
    if v != "auto" and _int(1, MAX_WORKERS)(v):
        return f"expected an integer in 1..{MAX_WORKERS} or auto, got {v!r}"


def _cpus(v):
    if (not isinstance(v, list) or not 1 <= len(v) <= MAX_WORKERS
            or any(isinstance(c, bool) or not isinstance(c, int) or c < 0 for c in v)):
        return f"expected a list of 1 to {MAX_WORKERS} CPU ids (integers >= 0), got {v!r}"


def _strings(v):
    if not isinstance(v, list) or not all(isinstance(s, str) for s in v):
        return f"expected a list of strings, got {v!r}"


PORT_NAME = r"[A-Za-z][A-Za-z0-9_.:-]*"
SCHEMA = {
    "eal": {"memory": _choice(*MEMORY_MODES), "memory_mb": _int(16), "file_prefix": _string(r"[A-Za-z0-9_.-]+", "letters, digits, _ . -"),
            "worker_cpu": _int(0), "worker_cpus": _cpus, "log_level": _string(), "args": _strings},
    "pool": {"mbufs": _int(64, 2**31 - 1), "cache": _int(0, 512), "data_room": _int(256, MAX_DATA_ROOM)},
    "run": {"workers": _workers, "burst": _int(1, MAX_BURST), "duration": _number(0), "packets": _int(1, 2**64 - 1),
            "source_idle_ms": _int(1, 2**32 - 1), "call_budget_ms": _int(1),
            "worker_processes": _choice("auto", "always"), "worker_process_queues": _choice("own", "relay"),
            "on_worker_death": _choice("restart", "stop")},
    "port": {"name": _string(PORT_NAME, "a name of letters, digits, _ . : -"), "vdev": _string(), "pci": _string(),
             "rx_descriptors": _int(1, 32768), "tx_descriptors": _int(1, 32768), "promiscuous": _bool,
             "mtu": _int(68, 65535), "tx_checksum_offload": _bool},
}
TOP_LEVEL = ("eal", "pool", "ports", "forward", "run", "engine", "flows")


class _Reader:
    """Walks a parsed YAML document, naming the file and key in every error."""

    def __init__(self, source, flags=None):
        self.source = source
        self.flags = flags or {}     # keys the command line set: their errors name the flag

    def name(self, key):
        """How the user gave `key`: its flag when the command line set it."""
        return self.flags.get(key, key)

    def error(self, key, problem):
        if key in self.flags:
            return ConfigError("command line", self.flags[key], problem)
        return ConfigError(self.source, key, problem)

    def mapping(self, value, key):
        if not isinstance(value, dict):
            raise self.error(key, f"expected a mapping, got {type(value).__name__}")
        return value

    def fields(self, value, key, schema, required=()):
        value = self.mapping(value, key)
        for k in value:
            if k not in schema:
                raise self.error(f"{key}.{k}", f"unknown key (expected one of: {', '.join(schema)})")
        for k in required:
            if k not in value:
                raise self.error(f"{key}.{k}", "required")
        for k, v in value.items():
            problem = schema[k](v)
            if problem:
                raise self.error(f"{key}.{k}", problem)
        return value


def load(path):
    """Reads and validates a YAML config file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(str(path), None, f"cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        line = path.read_bytes()[:e.start].count(b"\n") + 1
        raise ConfigError(str(path), None, f"not UTF-8 text: byte 0x{e.object[e.start]:02x} at line {line}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(str(path), None, f"not valid YAML{at}: {getattr(e, 'problem', e)}") from None
    return from_dict(data if data is not None else {}, str(path), base_dir=path.parent)


def from_dict(data, source="<config>", base_dir=None):
    r = _Reader(source)
    data = r.mapping(data, "(top level)")
    for k in data:
        if k not in TOP_LEVEL:
            raise r.error(k, f"unknown section (expected one of: {', '.join(TOP_LEVEL)})")
    config = Config(source=source)
    # A section left empty ("eal:") is the defaults; one of the wrong type ("flows: {}") is an error.
    for section, target in (("eal", config.eal), ("pool", config.pool), ("run", config.run)):
        given = data.get(section)
        for k, v in r.fields(given if given is not None else {}, section, SCHEMA[section]).items():
            setattr(target, k, v)
    bad = eal_args.check_user_args(config.eal.args)
    if bad:
        raise r.error(f"eal.args[{bad[0]}]", bad[1])

    ports = data.get("ports")
    ports = ports if ports is not None else []
    if not isinstance(ports, list):
        raise r.error("ports", f"expected a list of ports, got {type(ports).__name__}")
    for i, entry in enumerate(ports):
        key = f"ports[{i}]"
        entry = r.fields(entry, key, SCHEMA["port"], required=("name",))
        if ("vdev" in entry) == ("pci" in entry):
            raise r.error(key, "expected exactly one of vdev or pci")
        try:
            port = devices.parse_vdev(entry["vdev"], base_dir) if "vdev" in entry else devices.parse_pci(entry["pci"])
        except FlowOSError as e:
            raise r.error(f"{key}.{'vdev' if 'vdev' in entry else 'pci'}", str(e)) from None
        port.name = entry["name"]
        port.origin = key
        for k in ("rx_descriptors", "tx_descriptors", "promiscuous", "mtu", "tx_checksum_offload"):
            if k in entry:
                setattr(port, k, entry[k])
        config.ports.append(port)

    try:
        config.engine = flow_defs.parse_engine(data.get("engine"))
        flows = data.get("flows")
        config.flows = flow_defs.parse_flows(flows if flows is not None else [], source)
    except flow_defs.Invalid as e:
        raise r.error(e.key, e.problem) from None

    forward = data.get("forward")
    forward = forward if forward is not None else []
    if not isinstance(forward, list):
        raise r.error("forward", "expected a list such as [\"lan -> wan\", \"wan -> lan\"]")
    for i, entry in enumerate(forward):
        config.forward += _parse_route(r, f"forward[{i}]", entry)
    return config


def _parse_route(r, key, entry):
    if isinstance(entry, dict):
        r.fields(entry, key, {"from": _string(PORT_NAME), "to": _string(PORT_NAME)}, required=("from", "to"))
        return [(entry["from"], entry["to"])]
    m = re.fullmatch(rf"\s*({PORT_NAME})\s*(<->|->)\s*({PORT_NAME})\s*", entry) if isinstance(entry, str) else None
    if not m:
        raise r.error(key, f"expected \"a -> b\", \"a <-> b\" or {{from: a, to: b}}, got {entry!r}")
    a, arrow, b = m.groups()
    return [(a, b), (b, a)] if arrow == "<->" else [(a, b)]


def finish(config, cpus=None):
    """Checks the whole (file + command line) configuration and fills in defaults. cpus: those
    the workers may take (default: those this process may run on)."""
    r = _Reader(config.source, config.flags)
    for key in config.flags:   # what the command line set gets the checks the file's values get
        section, attr = key.split(".")
        check = SCHEMA.get(section, {}).get(attr)
        problem = check(getattr(getattr(config, section), attr)) if check else None
        if problem:
            raise r.error(key, problem)
    resolve_workers(config, cpus)
    if not config.ports:
        raise r.error("ports", "no ports: give --vdev/--pci or a ports: section")
    for what in ("name", "device"):
        values = [getattr(p, what) for p in config.ports]
        twice = next((v for v in values if values.count(v) > 1), None)
        if twice is not None:
            raise r.error("ports", f"{what} {twice!r} is used by two ports")
    for port in config.ports:
        note = devices.apply_defaults(port)
        if note:
            config.notes.append(note)
        try:
            devices.check(port)
        except FlowOSError as e:
            raise r.error(port.origin or None, str(e)) from None
    if not config.forward:
        config.forward = default_forwarding(r, config.ports)
    if config.run.burst is None:
        python = next((spec for flow in config.flows for stage in flow.stages for spec in stage
                       if spec.python is not None and not spec.cython), None)
        config.run.burst = BURST if python is None else PYTHON_BURST
        if python is not None:
            config.notes.append(f"receive bursts of up to {PYTHON_BURST} packets: {python.name} is called once per "
                                "burst (--burst sets it)")
    check_pool(r, config)
    check_single_instances(r, config)
    check_worker_processes(r, config)
    names = {p.name for p in config.ports}
    receivers = set()
    for src, dst in config.forward:
        for name in (src, dst):
            if name not in names:
                raise r.error("forward", f"no port named {name!r} (ports: {', '.join(sorted(names))})")
        if src in receivers:
            raise r.error("forward", f"port {src!r} forwards to two places; a port receives into one route")
        receivers.add(src)
    # Port names in flow definitions are checked now; they become DPDK port ids once DPDK runs.
    flow_defs.check_port_names(config.flows, names, r.error)
    if config.flows and config.engine.clock == "capture":
        endless = [p.name for p in config.ports if p.capture_source is None and p.name in receivers]
        if endless:
            raise r.error("engine.clock", f"capture time needs every receiving port to replay a capture "
                                          f"(net_pcap rx_pcap=, not infinite_rx); not: {', '.join(endless)}")
    return config


def check_single_instances(r, config):
    """A processor that declares single_instance (its state spans flows) cannot run on several
    workers: each would have an instance of its own, seeing only its flows."""
    if config.run.workers == 1:
        return
    single = single_instance_processor(config.flows)
    if single is not None:
        raise r.error(single.where, f"{single.name} needs a single instance (single_instance = True: its state "
                                    f"spans flows), but {r.name('run.workers')} is {config.run.workers} and each "
                                    "worker has its own instance: run it with one worker")


def single_instance_processor(flows):
    """The first processor of flows that declares single_instance, or None."""
    return next((spec for flow in flows for stage in flow.stages for spec in stage
                 if spec.python is not None and getattr(spec.python, "single_instance", False)), None)


def python_processor(config):
    """The first Python (not Cython) processor of the pipelines, or None."""
    return next((spec for flow in config.flows for stage in flow.stages for spec in stage
                 if spec.python is not None and not spec.cython), None)


def worker_processes(config):
    """Whether the workers run as processes: several workers and a Python processor, which would
    otherwise wait on each other (one interpreter runs one Python call at a time), or
    run.worker_processes: always (any flow pipeline, one worker too: a processor that crashes or
    hangs then takes only its worker process). Otherwise they run as threads of one process
    (docs/architecture.md, "Worker processes")."""
    if config.run.worker_processes == "always":
        return bool(config.flows)
    return config.run.workers > 1 and python_processor(config) is not None


# The primary has lcores 0 and 1, worker process w 2 + 2w and 3 + 2w, under DPDK's RTE_MAX_LCORE (128).
MAX_WORKER_PROCESSES = 62


def check_worker_processes(r, config):
    """Worker processes attach to the primary's memory as DPDK secondaries: that needs hugepages."""
    if config.run.worker_processes == "always" and not config.flows:
        raise r.error("run.worker_processes", "always: worker processes run the flow engine, and there are "
                                              "no flows: (a plain bridge runs as threads)")
    if not worker_processes(config):
        return
    python = python_processor(config)
    if config.run.worker_processes == "always":
        why = f"{r.name('run.worker_processes')} is always, so the workers run as worker processes"
    else:
        why = (f"{python.name} is a Python processor, so {r.name('run.workers')} = {config.run.workers} workers "
               "run as worker processes")
    if config.eal.memory == "no-huge":
        raise r.error("eal.memory", f"{why}, which need hugepages (DPDK secondary processes cannot attach "
                                    "to --no-huge memory): run scripts/hugepages, use one worker, or write it "
                                    "in Cython (docs/cython.md) to run it on every worker as a thread")
    if config.run.workers > MAX_WORKER_PROCESSES:
        raise r.error("run.workers", f"{why}: at most {MAX_WORKER_PROCESSES}")


def resolve_workers(config, cpus=None):
    """Settles run.workers to an int and eal.worker_cpus to that many CPUs of `cpus` (default:
    those this process may run on): CPUs given and no count, one worker each; a count and no CPUs,
    the last CPUs (the main lcore floats over the others), shared in turn when there are more
    workers than CPUs; auto, one worker per CPU but one. Each CPU must be one of `cpus`.
    eal.worker_cpu becomes worker_cpus, so
    that resolving again changes nothing."""
    r = _Reader(config.source, config.flags)
    cpus = sorted(cpus) if cpus is not None else eal_args.usable_cpus()
    eal, run = config.eal, config.run
    cpus_key = "eal.worker_cpus"
    if eal.worker_cpu is not None:
        if eal.worker_cpus is not None:
            raise r.error(cpus_key, f"give {r.name('eal.worker_cpu')} (one worker) or {r.name(cpus_key)}, not both")
        eal.worker_cpus, eal.worker_cpu, cpus_key = [eal.worker_cpu], None, "eal.worker_cpu"
    auto = run.workers == "auto"
    if eal.worker_cpus is not None:
        try:
            eal_args.check_worker_cpus(eal.worker_cpus, cpus)
        except FlowOSError as e:
            raise r.error(cpus_key, str(e)) from None
        if run.workers not in (None, "auto") and run.workers != len(eal.worker_cpus):
            raise r.error("run.workers", f"{run.workers} workers, but {r.name(cpus_key)} gives "
                                         f"{len(eal.worker_cpus)} CPU(s) ({eal_args.cpu_list(eal.worker_cpus)}): "
                                         "one CPU per worker")
        run.workers = len(eal.worker_cpus)
    else:
        run.workers = eal_args.auto_workers(cpus) if auto else run.workers or 1
        # More workers than CPUs: they share them, in turn (for tests; not a way to go faster).
        eal.worker_cpus = cpus[-run.workers:] if run.workers <= len(cpus) else \
            [cpus[i % len(cpus)] for i in range(run.workers)]
    main = eal_args.main_cpus(eal.worker_cpus, cpus)
    if auto:
        config.notes.append(f"{r.name('run.workers')} auto: {run.workers} worker(s) on CPU(s) "
                            f"{eal_args.cpu_list(eal.worker_cpus)}, the main lcore on {eal_args.cpu_list(main)}")
    shared = eal_args.shared_cpus(eal.worker_cpus)
    if shared:
        config.notes.append(f"workers share CPU(s) {eal_args.cpu_list(shared)}: they take turns on them, each "
                            "at a fraction of a CPU (fine for tests, not for throughput)")
    if set(main) & set(eal.worker_cpus):
        config.notes.append(f"the main lcore shares CPU(s) {eal_args.cpu_list(main)} with the workers: "
                            "this process may run on no other")
    return config


def lcores(config):
    """The lcores a run has, each with a mempool cache: the main one and the workers."""
    return 1 + config.run.workers


def ring_mbufs(config, rx_only=False):
    """The mbufs the ports' descriptor rings hold when full: each port has one RX queue and one TX
    queue per worker."""
    per_queue = sum(p.rx_descriptors + (0 if rx_only else p.tx_descriptors) for p in config.ports)
    return per_queue * config.run.workers


def forwarding_mbufs(config):
    """The mbufs forwarding holds, whatever the flow engine keeps: every descriptor ring full, each
    lcore's mempool cache full, and two bursts in each worker's hands (one received, one sending)."""
    return ring_mbufs(config) + config.pool.cache * lcores(config) + 2 * config.run.burst * config.run.workers


def check_pool(r, config):
    """A pool size given by the user must be one DPDK can make, and one that can fill every port's
    receive ring (one per worker) while each lcore's cache and each worker's burst hold theirs (some
    drivers fill the ring when the port starts, and fail without enough). The default size always can."""
    mbufs, cache = config.pool.mbufs, config.pool.cache
    if mbufs is None:
        return
    # rte_mempool_create refuses a cache whose flush threshold (1.5 times its size) passes the pool.
    largest_cache = (2 * mbufs + 1) // 3
    if cache > largest_cache:
        raise r.error("pool.cache", f"{cache} is too large for a pool of {mbufs} mbufs: at most {largest_cache} "
                                    "(DPDK flushes a cache at one and a half times its size)")
    rings, caches, bursts = ring_mbufs(config, rx_only=True), cache * lcores(config), config.run.burst * config.run.workers
    least = rings + caches + bursts
    if mbufs < least:
        raise r.error("pool.mbufs", f"{mbufs} mbufs are too few: the ports' receive rings hold {rings}, the "
                                    f"{lcores(config)} lcores' caches {caches} and the workers' bursts {bursts}, "
                                    f"so at least {least} (or leave it out: sized from the ports)")


def default_forwarding(r, ports):
    """One port sends back out of itself; ports pair up in order (0 <-> 1, 2 <-> 3)."""
    if len(ports) == 1:
        return [(ports[0].name, ports[0].name)]
    if len(ports) % 2:
        raise r.error("forward", f"{len(ports)} ports cannot pair up by themselves: say where each one forwards")
    routes = []
    for a, b in zip(ports[::2], ports[1::2]):
        routes += [(a.name, b.name), (b.name, a.name)]
    return routes
