"""Shards of the flow engine built from the configuration's flow definitions: the read-only
pipeline configuration (built once), a shard per worker with its own processor instances, set
up; and what a shard's processors report at the end. The runner, worker processes and reloads
build their shards here."""

import errno

from flowos.boundary._engine import Engine, PipelineConf
from flowos.boundary._python import PythonTier, thread_hooks
from flowos.configuration import flows as flow_defs
from flowos.cprocessor import CythonTier
from flowos.errors import FlowOSError


class ProcessorContext:
    """What a processor's setup() gets: the port ids by name (for batch.redirect)."""

    def __init__(self, ports):
        self.ports = ports


def class_path(cls):
    """A Python or Cython processor class's import path, module:qualname."""
    return f"{cls.__module__}:{cls.__qualname__}"


def tier_name(tier):
    """A Python or Cython processor's import path, without asking it for its report (a Cython
    processor's report() must not run while the worker may be running it)."""
    return class_path(type(tier.processor))


def build_shards(cfg, pool, port_ids, shards, keep_budget, workers, stop_address, steer_and_send, processors=True,
                 capacity=None, made=None):
    """Shards of the flow engine for the config's definitions, with port names turned into port ids:
    one read-only configuration, built once, and a shard made from it for each worker of `workers`,
    which runs it (docs/architecture.md, "Workers and shards"); the shards hold the configuration,
    freed with the last one. Each shard has its own processor instances (that stop the run through
    the worker at stop_address at a fault; none without `processors`: the relay's), its share of
    the flow table (one of `shards`, or `capacity` flows) and of keep_budget.
    steer_and_send(engine, k) sets where shard k hands packets and sends, before the processors'
    setup. made: the workers' processor instances (make_instances), when made already. Returns (the
    engines, each one's Python and Cython tiers)."""
    conf = PipelineConf.create(pool, cfg.engine.unmatched, cfg.engine.malformed, cfg.engine.table_full,
                               cfg.engine.clock, cfg.engine.timeouts)
    engines = []
    try:
        tiers = fill_conf(conf, cfg.flows, port_ids, len(workers), processors, made)
        for k, worker in enumerate(workers):
            engines.append(_build_shard(conf, port_ids, capacity or -(-cfg.engine.capacity // shards),
                                        keep_budget // shards, worker, stop_address, tiers[k],
                                        lambda engine: steer_and_send(engine, k)))
    except BaseException:
        for engine in engines:
            engine.close()
        raise
    finally:
        conf.close()
    return engines, [[tier for _, _, tier in shard_tiers] for shard_tiers in tiers]


def make_instances(flows, shards):
    """Each Python and Cython processor of flows constructed once per shard of `shards`, in the
    flows' order: a list per processor of its instances, one per shard. Raises the ConfigError of
    a constructor that rejects its parameters (ProcessorSpec.instantiate)."""
    return [[spec.instantiate() for _ in range(shards)]
            for spec in flow_defs.processor_specs(flows) if spec.python is not None]


def fill_conf(conf, flows, port_ids, shards, processors=True, made=None):
    """Adds the flow definitions and their pipelines to conf, and builds it. Returns, per shard of
    `shards`, its own instances of the Python and Cython processors: (definition, processor, tier),
    those of `made` (make_instances) when given, else made here."""
    made = iter(made if made is not None else make_instances(flows, shards) if processors else [])
    tiers = [[] for _ in range(shards)]
    for flow in flows:
        index = conf.add_definition(flow.name, flow_defs.match_with_port_ids(flow.match, port_ids),
                                    flow.hold_packets, flow.hold_bytes, flow.hold_overflow, flow.wants_streams,
                                    flow.reorder_packets, flow.stream_hold_ms)
        for stage, procs in enumerate(flow.stages if processors else []):
            for proc in procs:
                if proc.python is None:
                    conf.add_processor(index, stage, proc.name, flow_defs.params_with_port_ids(proc.params, port_ids))
                    continue
                shard_tiers = [(CythonTier if proc.cython else PythonTier)(instance, proc.on_error)
                               for instance in next(made)]
                at = conf.add_tier_processor(index, stage, shard_tiers[0])
                for k, tier in enumerate(shard_tiers):
                    tiers[k].append((index, at, tier))
    conf.build()
    return tiers


def _build_shard(conf, port_ids, capacity, keep_budget, worker, stop_address, tiers, steer_and_send):
    engine = Engine.create(conf, capacity, keep_budget)
    try:
        for definition, processor, tier in tiers:
            tier.stop_worker_on_fault(stop_address)
            engine.bind_tier(definition, processor, tier)
        engine.build()
        steer_and_send(engine)
        context = ProcessorContext(dict(port_ids))
        for _, _, tier in tiers:
            try:
                tier.processor.setup(context)
            except Exception as e:
                raise FlowOSError(f"processor {tier_name(tier)} failed to set up: "
                                  f"{type(e).__name__}: {e}") from None
    except BaseException:
        engine.close()
        raise
    if any(isinstance(tier, PythonTier) for _, _, tier in tiers):   # Cython tiers run without the GIL
        worker.set_thread_hooks(*thread_hooks())
    return engine


def engine_report(engine):
    """An engine's (or Engines') statistics, each definition's, and what its processors report."""
    return {
        "stats": engine.stats(),
        "flows": [{"name": name, **engine.definition_stats(i),
                   "processors": processors_of(engine, i, lambda j, proc: engine.report(i, j))}
                  for i, name in enumerate(engine.definitions)],
    }


def processors_of(engine, i, report):
    """Definition i's processors: each one's name, the engine's counts of its calls, and
    report(index, processor)."""
    return [{"name": proc if isinstance(proc, str) else tier_name(proc), **engine.processor_stats(i, j),
             "report": report(j, proc)} for j, proc in enumerate(engine.processors[i])]


def refresh_tier_reports(engine, report):
    """Python and Cython processors' counts again: after teardown, which may fault too. (The C
    built-ins' reports are read before teardown, which releases what they report from.)"""
    for i, flow in enumerate(report["flows"]):
        for j, proc in enumerate(engine.processors[i]):
            if not isinstance(proc, str):
                flow["processors"][j]["report"] = engine.report(i, j)


class PartialReload(FlowOSError):
    """Some workers took the new configuration, the others did not (one stuck past the wait)."""


def switch_through(control, worker, migrate):
    """The worker takes its shard's staged configuration between two bursts (control: its
    mailbox). A timeout says what the worker did meanwhile, which an operator and a bug report
    need: held in one burst (a processor's call, say), or round its loop without taking the request."""
    polls = worker.polls[0]
    try:
        control.switch(migrate)
    except FlowOSError as e:
        if e.errno != errno.ETIMEDOUT:
            raise
        rounds = worker.polls[0] - polls
        did = "stayed in one burst" if rounds == 0 else f"went round its loop {rounds} times"
        raise FlowOSError(f"{e}: its worker {did} meanwhile", e.errno) from None


def stage(shards, flows, engine, port_ids, stop_address):
    """Builds flows and engine (flow_defs) as the next generation of the running shards, and stages
    it on each with its own processor instances, set up (each stopping the worker at stop_address
    at a fault under on_error: stop). Returns each shard's (definition, processor, tier) list.
    Raises FlowOSError with nothing staged anywhere when any of it fails."""
    conf = PipelineConf.create(shards[0].pool, engine.unmatched, engine.malformed, engine.table_full, engine.clock,
                               engine.timeouts, after=shards[0])
    staged = []
    try:
        tiers = fill_conf(conf, flows, port_ids, len(shards))
        context = ProcessorContext(dict(port_ids))
        for shard, own in zip(shards, tiers):
            for _, _, tier in own:
                tier.stop_worker_on_fault(stop_address)
            shard.stage(conf, own)
            staged.append(shard)
            for _, _, tier in own:
                try:
                    tier.processor.setup(context)
                except Exception as e:
                    raise FlowOSError(f"processor {tier_name(tier)} failed to set up: {type(e).__name__}: {e}") from None
    except BaseException:
        for shard in staged:
            shard.unstage()
        raise
    finally:
        conf.close()     # the shards hold it
    return tiers
