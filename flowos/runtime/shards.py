"""A run's workers and engine shards, read as one box: each worker polls its own queues and runs
its own shard of the flow engine (docs/architecture.md, "Workers and shards"); what the operator
reads is their sum, with a row per worker where it helps."""


def add_up(values):
    """Numbers summed, dicts merged key by key, lists joined; anything else: the first value."""
    first = values[0]
    if isinstance(first, bool) or not isinstance(first, (int, float, dict, list)):
        return first
    if isinstance(first, (int, float)):
        return sum(values)
    if isinstance(first, list):
        return [item for value in values for item in value]
    keys = dict.fromkeys(k for value in values for k in value)
    return {k: add_up([value[k] for value in values if k in value]) for k in keys}


from flowos.errors import FlowOSError


def group_stop_reason(reasons):
    """Why a group stopped, from its receiving workers' reasons: told to first, then its packet
    limit, then every source read to its end."""
    reasons = set(reasons)
    return next((r for r in ("stopped", "packet-limit", "input-done") if r in reasons), None)


class Each:
    """One object per worker, in worker order."""

    def __init__(self, items):
        self.all = items

    def __len__(self):
        return len(self.all)

    def __iter__(self):
        return iter(self.all)


class Workers(Each):
    """The run's workers: one stop for all (their group), one load row each."""

    def __init__(self, workers, cpus):
        super().__init__(workers)
        self.cpus = cpus

    @property
    def running(self):
        return any(w.running for w in self.all)

    def request_stop(self):
        self.all[0].request_stop()     # the group's stop: every worker stops receiving

    def join(self):
        for w in self.all:
            w.join()

    def address(self):
        """A worker of the group, for a processor tier that stops the run at a fault."""
        return self.all[0].address()

    @property
    def stop_reason(self):
        """Why the group stopped: told to, its packet limit, or every source it reads done."""
        return group_stop_reason(w.stop_reason for w in self.all if w.routes)

    @property
    def short_sources(self):
        return sum(w.short_sources for w in self.all)

    def tx_unsent(self):
        """Packets each TX device refused on the workers' own sends (by device name)."""
        return add_up([w.tx_unsent() for w in self.all])

    def received(self, device):
        """Packets the workers received from a port, all queues together."""
        return sum(w.route_stats(i).rx_packets for w in self.all for i, (rx, _) in enumerate(w.routes)
                   if rx.device == device)

    def rows(self, engines, full=False):
        """Per worker: its CPU, its load (loop iterations, those that found packets), what it received
        from its queues, and its shard's counters (all of them with full, else WORKER_COUNTS)."""
        shards = engines.per_worker() if engines is not None else [None] * len(self)
        rows = []
        for load, worker, shard in zip(self.loads(), self, shards):
            row = dict(load, rx_packets=sum(worker.route_stats(i).rx_packets for i in range(len(worker.routes))))
            if shard is not None:
                row["engine"] = shard if full else {k: shard[k] for k in WORKER_COUNTS}
            rows.append(row)
        return rows

    def loads(self):
        """Per worker: its CPU, loop iterations and those that found packets."""
        return [{"worker": i, "cpu": cpu, "polls": w.polls[0], "busy_polls": w.polls[1]}
                for i, (w, cpu) in enumerate(zip(self.all, self.cpus))]

    def close(self):
        for w in self.all:
            w.close()


# A worker's row in flowos-ctl stats and the dashboard (--stats-json has its shard's every counter).
WORKER_COUNTS = ("packets", "handed_off", "handoff_full", "flows_created", "flows_active", "tx_packets", "dropped")


def worker_rows(workers, engines, full=False):
    """A row per worker (Workers.rows; worker processes: flowos.runtime.worker_processes)."""
    return workers.rows(engines, full)


class Engines(Each):
    """The engine's shards, one per worker, made from one read-only configuration (PipelineConf):
    definitions and processor names are the first shard's; counters are every shard's sum."""

    @property
    def definitions(self):
        return self.all[0].definitions

    @property
    def processors(self):
        return self.all[0].processors

    @property
    def keep_budget(self):
        return sum(e.keep_budget for e in self.all)

    def instances(self, definition, processor):
        """A processor's instance in every shard (names for the C built-ins, tiers for the others)."""
        return [e.processors[definition][processor] for e in self.all]

    def stats(self):
        return add_up([e.stats() for e in self.all])

    def per_worker(self):
        return [e.stats() for e in self.all]

    def definition_stats(self, definition):
        return add_up([e.definition_stats(definition) for e in self.all])

    def processor_stats(self, definition, processor):
        return add_up([e.processor_stats(definition, processor) for e in self.all])

    def report(self, definition, processor):
        reports = [e.report(definition, processor) for e in self.all]
        reports = [r for r in reports if r is not None]
        return add_up(reports) if reports else None

    def definition_name(self, definition, worker=0):
        """Worker's shard's definition (any generation's) by the index a flow's key has."""
        return self.all[worker].definition_name(definition)

    def processor_at(self, worker, definition, processor):
        """Worker's shard's processor (any generation's) by the indexes its current_call gives."""
        return self.all[worker].processor_at(definition, processor)

    def current_calls(self):
        """Each shard's processor callback under way, as Engine.current_call has it, with the worker
        (the shard's index) last."""
        return [(*call, w) for w, e in enumerate(self.all) if (call := e.current_call()) is not None]

    def shutdown(self):
        for e in self.all:
            e.shutdown()

    def teardown(self):
        for e in self.all:
            e.teardown()

    def close(self):
        for e in self.all:
            e.close()


class Controls(Each):
    """Each shard's control mailbox: flows from every shard, a message to every instance."""

    def flows(self, top, timeout_ms):
        live, flows = 0, []
        for i, control in enumerate(self.all):
            n, found = control.flows(top, timeout_ms)
            live += n
            flows += [dict(f, worker=i) if len(self.all) > 1 else f for f in found]
        flows.sort(key=lambda f: -sum(f["bytes"]))
        return live, flows[:top]

    def message(self, definition, processor, text, timeout_ms):
        """Each instance's (ret, reply), worker by worker; a FlowOSError (in place) where its worker
        did not deliver it."""
        answers = []
        for control in self.all:
            try:
                answers.append(control.message(definition, processor, text, timeout_ms))
            except FlowOSError as e:
                answers.append(e)
        return answers

    def stop(self):
        for control in self.all:
            control.stop()

    def close(self):
        for control in self.all:
            control.close()
