"""Flow definitions (`flows:`) and the engine's settings (`engine:`), validated into the
canonical form the C engine is built from.

  engine:
    capacity: 1048576            # concurrent flows
    unmatched: pass | drop       # traffic no definition matches
    malformed: pass | drop       # packets whose headers do not decode
    table_full: bypass | drop    # new flows when the table is full
    clock: tsc | capture         # capture: time from the capture's timestamps (deterministic replays)
    timeouts: {tcp_opening: 30, tcp_established: 300, tcp_closing: 10, udp: 30, icmp: 10, other: 60}
    keep_budget: auto            # packets kept across all flows; auto: sized from the pool
  flows:
    - name: web
      match: {in_port: lan, src: 10.0.0.0/8, dst: "fd00::/8", proto: tcp, sport: 1024-65535, dport: 80,
              src_mac: "02:00:00:00:00:01", dst_mac: ...}      # every field optional: a wildcard
      pipeline:                  # stages, in order; each a processor or a list of read-only ones
        - counter
        - [{acl: {rules: [{action: allow, proto: tcp, dport: 80}], default: deny}}]
      limits: {hold_packets: 1024, hold_bytes: 4194304, hold_overflow: drop}
"""
import ipaddress
import math
import re
import sys
from dataclasses import dataclass, field

from flowos import builtins as python_builtins
from flowos.errors import ConfigError
from flowos.facts import LEVELS, MAX_DEFINITIONS, MAX_PROCESSORS, MAX_STAGES

TIMEOUT_DEFAULTS = {"tcp_opening": 30, "tcp_established": 300, "tcp_closing": 10, "udp": 30, "icmp": 10,
                    "other": 60}
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "sctp": 132, "gre": 47, "esp": 50}
MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
MATCH_KEYS = ("in_port", "src_mac", "dst_mac", "src", "dst", "proto", "sport", "dport")


@dataclass
class EngineConfig:
    capacity: int = 1 << 20
    unmatched: str = "pass"
    malformed: str = "pass"
    table_full: str = "bypass"
    clock: str = "tsc"
    timeouts: dict = field(default_factory=lambda: dict(TIMEOUT_DEFAULTS))
    keep_budget: int | None = None   # None: sized from the pool (flowos.runtime.runner.keep_budget)


@dataclass
class ProcessorSpec:
    name: str                    # a built-in's name, or the import path of a Python processor
    params: dict                 # validated; port names still names
    where: str                   # "flows[0].pipeline[1]", for messages
    python: type | None = None   # the flowos.Processor (or, Cython, CProcessor) subclass, by import path
    on_error: str | None = None  # a Python processor's fault policy (None: the class's)
    source: str | None = None    # where the configuration came from (a file, --processor), for messages

    @property
    def level(self):
        return self.python.level if self.python is not None else BUILTINS[self.name]["level"]

    @property
    def cython(self):
        """Whether it is a Cython processor (a flowos.cprocessor.CProcessor subclass)."""
        return self.python is not None and is_cython_processor(self.python)

    @property
    def readonly(self):
        return self.python.readonly if self.python is not None else BUILTINS[self.name]["readonly"]

    def instantiate(self):
        """A fresh instance of a Python or Cython processor, made where it runs (a worker's shard,
        a worker process's, a reload's next generation): its constructor runs once per instance
        used. The constructor is the check of its own parameters, so that one it rejects is said
        as the configuration's other errors are (ConfigError: the source, the key; exit status 2),
        though it is found only as the run (or --check, or a reload) makes the instance."""
        try:
            return self.python(**self.params)
        except Exception as e:
            raise ConfigError(self.source, self.where, f"{self.name} rejects its parameters: "
                                                       f"{type(e).__name__}: {e}") from None


@dataclass
class FlowDefinition:
    name: str
    match: dict                  # canonical (see parse_match); in_port still a port name
    stages: list                 # list of lists of ProcessorSpec
    hold_packets: int = 1024
    hold_bytes: int = 4 << 20
    hold_overflow: str = "drop"
    reorder_packets: int = 64
    stream_hold_ms: int = 500    # held stream bytes go on once the flow brings no new bytes this long
    streams: str = "auto"        # on | off | auto: on when a processor works at the payload level

    @property
    def cython_state_bytes(self):
        """Per-flow state its Cython processors ask for (state_size, 8-byte aligned, as the engine
        lays it out); the engine keeps it for every flow of engine.capacity."""
        return sum(-(-spec.python.state_size // 8) * 8 for stage in self.stages for spec in stage if spec.cython)

    @property
    def wants_streams(self):
        """Whether the engine keeps payload streams (and normalises TCP) for this definition."""
        if self.streams != "auto":
            return self.streams == "on"
        return any(spec.level == "payload" for stage in self.stages for spec in stage)


class Invalid(Exception):
    """A value is wrong: (key suffix, problem). The config reader adds the file and the key."""

    def __init__(self, key, problem):
        super().__init__(problem)
        self.key = key
        self.problem = problem


def _port_range(key, value):
    if isinstance(value, bool):
        raise Invalid(key, f"expected a port or a range lo-hi, got {value!r}")
    if isinstance(value, int):
        lo = hi = value
    elif isinstance(value, str) and re.fullmatch(r"\d+\s*-\s*\d+", value):
        lo, hi = (int(v) for v in value.split("-"))
    elif isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) for v in value):
        lo, hi = value
    else:
        raise Invalid(key, f"expected a port or a range lo-hi, got {value!r}")
    if not 0 <= lo <= hi <= 65535:
        raise Invalid(key, f"expected ports 0..65535 with lo <= hi, got {value!r}")
    return (lo, hi)


def _network(key, value):
    try:
        net = ipaddress.ip_network(str(value), strict=False)
    except ValueError:
        raise Invalid(key, f"expected an address or a prefix (10.0.0.0/8, fd00::/8), got {value!r}") from None
    family = 4 if net.version == 4 else 6
    return (family, net.network_address.packed.ljust(16, b"\0"), net.prefixlen)


def parse_match(value, key="match"):
    """{in_port, src_mac, dst_mac, src, dst, proto, sport, dport} -> the canonical match."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Invalid(key, f"expected a mapping of {', '.join(MATCH_KEYS)}")
    out = {}
    for k, v in value.items():
        where = f"{key}.{k}"
        if k == "in_port":
            if not isinstance(v, str):
                raise Invalid(where, f"expected a port name, got {v!r}")
            out[k] = v
        elif k in ("src_mac", "dst_mac"):
            if not isinstance(v, str) or not MAC.match(v):
                raise Invalid(where, f"expected a MAC address such as 02:00:00:00:00:01, got {v!r}")
            out[k] = bytes.fromhex(v.replace(":", ""))
        elif k in ("src", "dst"):
            out[k] = _network(where, v)
        elif k == "proto":
            if isinstance(v, str) and v.lower() in PROTOCOLS:
                out[k] = PROTOCOLS[v.lower()]
            elif isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255:
                out[k] = v
            else:
                raise Invalid(where, f"expected {', '.join(PROTOCOLS)} or 0..255, got {v!r}")
        elif k in ("sport", "dport"):
            out[k] = _port_range(where, v)
        else:
            raise Invalid(where, f"unknown key (expected one of: {', '.join(MATCH_KEYS)})")
    if "src" in out and "dst" in out and out["src"][0] != out["dst"][0]:
        raise Invalid(key, "src and dst are of different address families")
    return out


# --- built-in processors: level, whether they change packets, and their parameters -----------

def _int_param(lo, hi, required=False, default=None):
    return ("int", lo, hi, required, default)


BUILTINS = {
    "counter": {"level": "l2", "readonly": True, "params": {"max_flows": _int_param(0, 1 << 26, default=65536)}},
    "acl": {"level": "l2", "readonly": True, "params": {"rules": ("rules",), "default": ("choice", ("allow", "deny"))}},
    "ttl": {"level": "l3", "readonly": False,
            "params": {"set": _int_param(1, 255, default=0), "decrement": _int_param(1, 255, default=1)}},
    "redirect": {"level": "l2", "readonly": True,
                 "params": {"port": ("port", True), "direction": ("choice", ("both", "forward", "reverse"))}},
    "hold": {"level": "l2", "readonly": True, "params": {"packets": _int_param(1, 1 << 20, required=True)}},
    "mirror": {"level": "l2", "readonly": True, "params": {"port": ("port", True)}},
}
DIRECTIONS = {"both": -1, "forward": 0, "reverse": 1}


def _processor_params(name, params, key):
    spec = BUILTINS[name]["params"]
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise Invalid(key, f"expected the parameters of {name} as a mapping, got {params!r}")
    for k in params:
        if k not in spec:
            raise Invalid(f"{key}.{k}", f"unknown parameter of {name} (expected: {', '.join(spec) or 'none'})")
    out = {}
    for k, kind in spec.items():
        where, v = f"{key}.{k}", params.get(k)
        if kind[0] == "int":
            _, lo, hi, required, default = kind
            if v is None:
                if required:
                    raise Invalid(where, "required")
                v = default
            elif isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise Invalid(where, f"expected an integer in {lo}..{hi}, got {v!r}")
            out[k] = v
        elif kind[0] == "choice":
            if v is not None and v not in kind[1]:
                raise Invalid(where, f"expected one of {', '.join(kind[1])}, got {v!r}")
            out[k] = v if v is not None else kind[1][0]
        elif kind[0] == "port":
            if v is None:
                raise Invalid(where, "required: the name of a port")
            if not isinstance(v, str):
                raise Invalid(where, f"expected a port name, got {v!r}")
            out[k] = v
        elif kind[0] == "rules":
            out[k] = _acl_rules(v if v is not None else [], where)
    if name == "acl":
        out["default_allow"] = out.pop("default") == "allow"
    if name == "redirect":
        out["direction"] = DIRECTIONS[out["direction"]]
    return out


def _acl_rules(rules, key):
    if not isinstance(rules, list):
        raise Invalid(key, "expected a list of rules such as {action: allow, proto: tcp, dport: 80}")
    out = []
    for i, rule in enumerate(rules):
        where = f"{key}[{i}]"
        if not isinstance(rule, dict) or rule.get("action") not in ("allow", "deny"):
            raise Invalid(where, "expected a rule with action: allow or deny, and match fields")
        fields = {k: v for k, v in rule.items() if k != "action"}
        out.append({"allow": rule["action"] == "allow", "match": parse_match(fields, where)})
    return out


def _processor(entry, key):
    if isinstance(entry, str):
        name, params = entry, None
    elif isinstance(entry, dict) and len(entry) == 1:
        (name, params), = entry.items()
    else:
        raise Invalid(key, f"expected a processor name or {{name: {{parameters}}}}, got {entry!r}")
    if ":" in name:
        return _python_processor(name, params, key)
    if name not in BUILTINS:
        path = python_builtins.import_path(name)
        if path is None:
            raise Invalid(key, f"no processor {name!r} (built-ins: {', '.join([*BUILTINS, *python_builtins.names()])}; "
                               "or a Python processor as package.module:Class)")
        return _python_processor(path, params, key)
    return ProcessorSpec(name, _processor_params(name, params, f"{key}.{name}"), key)


def is_cython_processor(cls):
    """Whether cls subclasses flowos.cprocessor.CProcessor, told without importing that compiled
    module: a class can subclass it only once its module has loaded it (a Cython processor's
    module cimports it), so where it is not loaded, no class is one."""
    cprocessor = sys.modules.get("flowos.cprocessor")
    return cprocessor is not None and issubclass(cls, cprocessor.CProcessor)


def load_python_processor(path):
    """package.module:Class -> the class, which must subclass flowos.Processor (Python) or
    flowos.cprocessor.CProcessor (Cython)."""
    import importlib

    from flowos.processor import Processor, process_problem
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as e:
        raise Invalid(None, f"cannot import {module_name!r}: {type(e).__name__}: {e}") from None
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type) or not (issubclass(cls, Processor) or is_cython_processor(cls)):
        raise Invalid(None, f"{path} is not a flowos.Processor subclass (nor a flowos.cprocessor.CProcessor one)")
    problem = process_problem(cls) if issubclass(cls, Processor) else None
    if problem:
        raise Invalid(None, f"{path} {problem}")
    return cls


def _python_processor(path, params, key):
    from flowos.processor import ON_ERROR, state_size_problem
    if params is not None and not isinstance(params, dict):
        raise Invalid(key, f"expected the parameters of {path} as a mapping, got {params!r}")
    params = dict(params or {})
    try:
        cls = load_python_processor(path)
    except Invalid as e:
        raise Invalid(key, e.problem) from None
    on_error = params.pop("on_error", None)
    if on_error is not None and on_error not in ON_ERROR:
        raise Invalid(f"{key}.on_error", f"expected one of {', '.join(ON_ERROR)}, got {on_error!r}")
    if cls.level not in LEVELS or cls.on_error not in ON_ERROR:
        raise Invalid(key, f"{path}: level must be one of {', '.join(LEVELS)}, on_error one of {', '.join(ON_ERROR)}")
    problem = state_size_problem(cls) if is_cython_processor(cls) else None
    if problem:
        raise Invalid(key, f"{path}: {problem}")
    # Not constructed here: its constructor checks its parameters, and runs once per instance
    # the run uses (ProcessorSpec.instantiate).
    return ProcessorSpec(path, params, key, python=cls, on_error=on_error)


def parse_pipeline(value, key):
    if value is None:
        return []
    if not isinstance(value, list):
        raise Invalid(key, "expected a list of stages")
    stages = []
    for s, stage in enumerate(value):
        where = f"{key}[{s}]"
        entries = stage if isinstance(stage, list) else [stage]
        if not entries:
            raise Invalid(where, "an empty stage")
        procs = [_processor(e, f"{where}[{i}]" if isinstance(stage, list) else where) for i, e in enumerate(entries)]
        writers = [p.name for p in procs if not p.readonly]
        if writers and len(procs) > 1:
            raise Invalid(where, f"{', '.join(p.name for p in procs)} share a stage, but {writers[0]} changes "
                                 "packets: a writer stands alone in its stage")
        stages.append(procs)
    check_pipeline_size(stages, key)
    return stages


def check_pipeline_size(stages, key):
    """A definition's pipeline within the fast path's limits (also after a reload's edit)."""
    if len(stages) > MAX_STAGES:
        raise Invalid(key, f"at most {MAX_STAGES} stages, got {len(stages)}")
    count = sum(len(stage) for stage in stages)
    if count > MAX_PROCESSORS:
        raise Invalid(key, f"at most {MAX_PROCESSORS} processors per flow definition, got {count}")


def check_definition_count(count):
    if count > MAX_DEFINITIONS:
        raise Invalid("flows", f"at most {MAX_DEFINITIONS} flow definitions, got {count}")


LIMIT_KEYS = ("hold_packets", "hold_bytes", "hold_overflow", "reorder_packets", "stream_hold_ms")


def parse_flow(value, key):
    if not isinstance(value, dict):
        raise Invalid(key, "expected a flow definition with name, match, pipeline, limits")
    for k in value:
        if k not in ("name", "match", "pipeline", "limits", "streams"):
            raise Invalid(f"{key}.{k}", "unknown key (expected one of: name, match, pipeline, limits, streams)")
    name = value.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,46}", name):
        raise Invalid(f"{key}.name", f"expected a name of letters, digits, _ . - (up to 47), got {name!r}")
    flow = FlowDefinition(name, parse_match(value.get("match"), f"{key}.match"),
                          parse_pipeline(value.get("pipeline"), f"{key}.pipeline"))
    streams = value.get("streams", "auto")
    if streams is True or streams is False:
        streams = "on" if streams else "off"
    if streams not in ("auto", "on", "off"):
        raise Invalid(f"{key}.streams", f"expected auto, on or off, got {streams!r}")
    flow.streams = streams
    limits = value.get("limits")
    limits = limits if limits is not None else {}
    if not isinstance(limits, dict):
        raise Invalid(f"{key}.limits", "expected a mapping")
    for k, v in limits.items():
        where = f"{key}.limits.{k}"
        if k == "hold_overflow":
            if v not in ("drop", "release"):
                raise Invalid(where, f"expected drop or release, got {v!r}")
        elif k in ("hold_packets", "hold_bytes", "reorder_packets", "stream_hold_ms"):
            top = {"hold_packets": 1 << 20, "hold_bytes": 1 << 31, "reorder_packets": 4096, "stream_hold_ms": 3_600_000}[k]
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= top:
                raise Invalid(where, f"expected an integer from 1 to {top}, got {v!r}")
        else:
            raise Invalid(where, f"unknown key (expected one of: {', '.join(LIMIT_KEYS)})")
        setattr(flow, k, v)
    return flow


def parse_flows(value, source=None):
    """The flows: section; source: where it came from (a file, --processor), for the messages of
    processors that reject their parameters as the run constructs them."""
    if not isinstance(value, list):
        raise Invalid("flows", f"expected a list of flow definitions, got {type(value).__name__}")
    check_definition_count(len(value))
    flows = [parse_flow(v, f"flows[{i}]") for i, v in enumerate(value)]
    for spec in processor_specs(flows):
        spec.source = source
    names = [f.name for f in flows]
    twice = next((n for n in names if names.count(n) > 1), None)
    if twice:
        raise Invalid("flows", f"two flow definitions are named {twice!r}")
    return flows


def parse_engine(value):
    engine = EngineConfig()
    if value is None:
        return engine
    if not isinstance(value, dict):
        raise Invalid("engine", "expected a mapping")
    choices = {"unmatched": ("pass", "drop"), "malformed": ("pass", "drop"), "table_full": ("bypass", "drop"),
               "clock": ("tsc", "capture")}
    for k, v in value.items():
        where = f"engine.{k}"
        if k in choices:
            if v not in choices[k]:
                raise Invalid(where, f"expected one of {', '.join(choices[k])}, got {v!r}")
        elif k == "capacity":
            if isinstance(v, bool) or not isinstance(v, int) or not 8 <= v <= 1 << 26:
                raise Invalid(where, f"expected an integer in 8..{1 << 26}, got {v!r}")
        elif k == "keep_budget":
            if v == "auto":
                v = None
            elif isinstance(v, bool) or not isinstance(v, int) or not 1 <= v < 1 << 31:
                raise Invalid(where, f"expected auto or a number of packets >= 1, got {v!r}")
        elif k == "timeouts":
            if not isinstance(v, dict):
                raise Invalid(where, "expected a mapping of seconds")
            for cls, seconds in v.items():
                if cls not in TIMEOUT_DEFAULTS:
                    raise Invalid(f"{where}.{cls}", f"unknown timeout (expected: {', '.join(TIMEOUT_DEFAULTS)})")
                if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not 0 < seconds < math.inf:
                    raise Invalid(f"{where}.{cls}", f"expected a finite number of seconds > 0, got {seconds!r}")
            v = dict(TIMEOUT_DEFAULTS, **v)
        else:
            raise Invalid(where, f"unknown key (expected one of: capacity, {', '.join(choices)}, timeouts, "
                                 "keep_budget)")
        setattr(engine, k, v)
    return engine


def processor_specs(flows):
    """Every ProcessorSpec of the flows' pipelines, in order."""
    return [spec for flow in flows for stage in flow.stages for spec in stage]


def port_names(flows):
    """(name, where) for each port the flows name: a match's in_port, a built-in's port parameter,
    an acl rule's in_port. A Python or Cython processor gets its parameters as written."""
    for i, flow in enumerate(flows):
        if "in_port" in flow.match:
            yield flow.match["in_port"], f"flows[{i}].match.in_port"
        for stage in flow.stages:
            for proc in stage:
                if proc.name not in BUILTINS:
                    continue
                if isinstance(proc.params.get("port"), str):
                    yield proc.params["port"], f"{proc.where}.port"
                for rule in proc.params.get("rules", []):
                    if "in_port" in rule["match"]:
                        yield rule["match"]["in_port"], proc.where


def check_port_names(flows, names, source_error):
    """Every port the flows name is one of names (checked once, with the configuration; the
    runtime turns them into port ids, match_with_port_ids and params_with_port_ids, trusting it)."""
    for name, where in port_names(flows):
        if name not in names:
            raise source_error(where, f"no port named {name!r} (ports: {', '.join(sorted(names))})")


def match_with_port_ids(match, port_ids):
    """A match with the DPDK port id for its in_port's name (which check_port_names checked);
    the original unchanged."""
    return {**match, "in_port": port_ids[match["in_port"]]} if "in_port" in match else match


def params_with_port_ids(params, port_ids):
    """A built-in's parameters with DPDK port ids for the port names they name (its port, its
    acl rules' in_port); the originals unchanged."""
    params = dict(params)
    if isinstance(params.get("port"), str):
        params["port"] = port_ids[params["port"]]
    if "rules" in params:
        params["rules"] = [{**rule, "match": match_with_port_ids(rule["match"], port_ids)} for rule in params["rules"]]
    return params