"""Changing a running box (docs/reload.md): a new configuration of the flow engine, built and set
up beside the running one, then taken by each worker between two bursts.

A reload applies the `flows:` section (and the engine's policies and timeouts) of a configuration;
everything is checked before anything changes: the YAML, the definitions, the pipelines, the C
configuration's build, and every shard's processor setup. A reload that fails any of these
changes nothing and says why. New flows take the new configuration at once; a live flow keeps the
pipeline it started with until it ends, or, with migrate, ends now (flow_end "reload"; what it
held is sent on, in order) and its next packets start a flow in the new configuration.
"""
import copy
import threading

from flowos.configuration import config as configuration
from flowos.configuration import flows as flow_defs
from flowos.errors import FlowOSError
from flowos.runtime import pipelines
from flowos.runtime.pipelines import PartialReload


class ReloadError(FlowOSError):
    """A reload refused: nothing changed."""


class Reloader:
    """Reloads of one run, one at a time (flowos-ctl and SIGHUP may ask together)."""

    def __init__(self, bridge):
        self.bridge = bridge
        self.lock = threading.RLock()   # also held by those who read the configuration's names (Bridge.snapshot)
        self.counts = {"reloads": 0, "reloads_refused": 0, "reloads_partial": 0}
        self.last_error = None
        self.started_from = None     # the configuration file as the run started with it, parsed

    def load_start_file(self):
        """Parses the run's configuration file at its start: what later reloads compare with."""
        if self.bridge.config_path:
            self.started_from = configuration.load(self.bridge.config_path)

    def reload_file(self, path, migrate=False):
        """Reloads the flows: and engine: sections of the YAML file at path; its other sections must
        be the running file's."""
        with self.lock:
            try:
                cfg = configuration.load(path)
                if self.started_from is None and self.bridge.config_path:
                    self.started_from = configuration.load(self.bridge.config_path)
                section = other_section_changed(self.started_from, cfg)
                if section:
                    raise FlowOSError(f"its {section}: section differs from the running configuration's: a reload "
                                      "changes flows: and engine: only (restart the run for the rest)")
            except FlowOSError as e:
                return self._refused(e)
            return self.apply(cfg.flows, cfg.engine, migrate)

    def edit(self, what, request, migrate=False):
        """flowos-ctl attach or detach (see edit()): the running flows with one change, applied."""
        with self.lock:
            try:
                flows = edit(self.bridge.config.flows, what, request)
            except FlowOSError as e:
                return self._refused(e)
            return self.apply(flows, self.bridge.config.engine, migrate)

    def apply(self, flows, engine, migrate=False):
        """Makes flows (flow_defs.FlowDefinition) and engine (flow_defs.EngineConfig) the running
        configuration. Returns a summary; raises ReloadError when it changed nothing."""
        with self.lock:
            try:
                summary = switch(self.bridge, flows, engine, migrate)
            except PartialReload as e:
                self.counts["reloads_partial"] += 1
                self.last_error = str(e)
                raise
            except FlowOSError as e:
                return self._refused(e)
            self.counts["reloads"] += 1
            self.last_error = None
            return summary

    def _refused(self, error):
        self.counts["reloads_refused"] += 1
        self.last_error = str(error)
        raise ReloadError(f"reload refused, nothing changed: {error}") from None


RUN_SECTIONS = ("eal", "pool", "ports", "forward", "run")


def other_section_changed(start, new):
    """The first section other than flows: and engine: that differs between two parsed files, or None."""
    if start is None:
        return None
    return next((name for name in RUN_SECTIONS if getattr(start, name) != getattr(new, name)), None)


def check_reloadable(bridge, flows, engine):
    """Why this run cannot take these flows without a restart, or None."""
    from flowos.boundary._python import PythonTier

    processes = bridge.relay_engine is not None
    if bridge.engine is None and not processes:
        return "this run started without flows: it has no flow engine to reload (restart it with a flows: section)"
    try:
        flow_defs.check_port_names(flows, {port.name for port in bridge.config.ports},
                                   lambda where, problem: FlowOSError(f"{where}: {problem}"))
    except FlowOSError as e:
        return str(e)
    for key in ("clock", "capacity", "keep_budget"):     # the shards' tables and clocks are made at the start
        running = getattr(bridge.config.engine, key)
        if getattr(engine, key) != running:
            return f"engine.{key} is {running!r} in the running configuration: a reload cannot change it"
    single = configuration.single_instance_processor(flows) if bridge.config.run.workers > 1 else None
    if single is not None:
        return (f"{single.name} needs a single instance (single_instance = True: its state spans flows), and each "
                f"of this run's {bridge.config.run.workers} workers would have its own")
    if processes and engine.malformed != bridge.config.engine.malformed:
        return (f"engine.malformed is {bridge.config.engine.malformed!r} in the running configuration, and the relay "
                "of its worker processes decodes with it: a reload cannot change it")
    if processes:      # each worker process has its own interpreter, its worker's thread ready for Python
        return None
    python_now = any(isinstance(tier, PythonTier) for tier in bridge.tiers)
    for flow in flows:
        for procs in flow.stages:
            for proc in procs:
                if proc.python is not None and not proc.cython and not python_now:
                    return (f"flow {flow.name!r}: {proc.name} is a Python processor, and this run started "
                            "without one (its workers prepare for Python at start): restart it")
    return None


def switch(bridge, flows, engine, migrate):
    problem = check_reloadable(bridge, flows, engine)
    if problem:
        raise FlowOSError(problem)
    if bridge.engine is None:      # worker processes: each stages its own shard (flowos.runtime.process_reload)
        from flowos.runtime import process_reload
        return process_reload.switch(bridge, flows, engine, migrate)
    shards = bridge.engine.all
    tiers = pipelines.stage(shards, flows, engine, bridge.port_ids(), bridge.worker.address())
    switched = 0
    try:
        for shard, control, worker in zip(shards, bridge.control.all, bridge.worker.all):
            pipelines.switch_through(control, worker, migrate)
            shard.switched()
            switched += 1
    except FlowOSError as e:
        for shard in shards[switched:]:
            shard.unstage()
        if switched == 0:
            raise FlowOSError(f"the workers did not take the new configuration: {e}") from None
        raise PartialReload(f"reload partly done: worker {switched} did not take the new configuration ({e}): "
                            f"workers 0 to {switched - 1} run it, the others the old one; reload again") from None
    bridge.tiers.extend(tier for own in tiers for _, _, tier in own)
    bridge.config.flows = flows
    bridge.config.engine = engine
    return {"definitions": [flow.name for flow in flows], "migrate": bool(migrate),
            "generations": max(shard.generations() for shard in shards)}


def edit(flows, what, request):
    """flows with one change, as flowos-ctl attach and detach ask it (docs/reload.md):
    attach {"flow": NAME, "processor": ENTRY, "stage": N}: the processor (as a pipeline entry has
    it: a name, or {name: parameters}) in a new stage at index N of the definition's pipeline (its
    end when N is left out); attach {"definition": DEFINITION, "position": N}: a whole definition
    (as a flows: entry has it) at priority N (the last when left out); detach {"flow": NAME,
    "processor": NAME}: the first processor of that name taken out (its stage too, once empty);
    detach {"flow": NAME}: the whole definition."""
    flows = copy.deepcopy(flows)
    names = [flow.name for flow in flows]
    unknown = set(request) - {"flow", "processor", "stage", "definition", "position", "migrate"}
    if unknown:
        raise FlowOSError(f"unknown parameters: {', '.join(sorted(unknown))}")
    if what == "attach" and "definition" in request:
        flow = parse_definition(request["definition"])
        if flow.name in names:
            raise FlowOSError(f"a flow definition is named {flow.name!r} already")
        flows.insert(position(request.get("position"), len(flows) + 1, len(flows)), flow)
        return checked(flows)
    name = request.get("flow")
    if name not in names:
        raise FlowOSError(f"no flow definition {name!r} (there are: {', '.join(names) or 'none'})")
    flow = flows[names.index(name)]
    if what == "attach":
        if "processor" not in request:
            raise FlowOSError("attach needs a processor, or a whole definition")
        try:
            spec = flow_defs.parse_pipeline([request["processor"]], f"flow {name!r}")[0][0]
        except flow_defs.Invalid as e:
            raise FlowOSError(f"{e.key}: {e.problem}") from None
        flow.stages.insert(position(request.get("stage"), len(flow.stages) + 1, len(flow.stages)), [spec])
        return checked(flows)
    if "processor" not in request:
        flows.remove(flow)
        return flows
    for stage in flow.stages:
        for spec in stage:
            if spec.name == request["processor"] or (spec.python is not None and
                                                     spec.name.rsplit(":", 1)[-1] == request["processor"]):
                stage.remove(spec)
                flow.stages = [s for s in flow.stages if s]
                return flows
    here = [spec.name for stage in flow.stages for spec in stage]
    raise FlowOSError(f"flow {name!r} has no processor {request['processor']!r} (it has: {', '.join(here) or 'none'})")


def position(value, count, default):
    """An index from 0 to count - 1 (default when None)."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < count:
        raise FlowOSError(f"expected a position from 0 to {count - 1}, got {value!r}")
    return value


def checked(flows):
    """The limits parse_flows applies, after an edit."""
    try:
        for flow in flows:
            flow_defs.check_pipeline_size(flow.stages, f"flow {flow.name!r}")
        flow_defs.check_definition_count(len(flows))
    except flow_defs.Invalid as e:
        raise FlowOSError(f"{e.key}: {e.problem}") from None
    return flows


def parse_definition(spec):
    """A whole flow definition (a dict as a flows: entry has it), parsed and checked."""
    try:
        return flow_defs.parse_flows([spec])[0]
    except flow_defs.Invalid as e:
        raise FlowOSError(f"{e.key}: {e.problem}") from None
