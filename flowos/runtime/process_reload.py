"""Reloads of a run whose workers are processes (docs/reload.md, "Worker processes"): each worker
process has its own interpreter and its own engine shard, so each builds and stages the new
configuration itself. Two phases, asked on each process's stdin and answered on its pipe:

    prepare RID PATH   build the flows and engine pickled at PATH, stage them, set their
                       processors up        -> "reload RID prepare ok BASE" | "... error WHY"
    commit RID MIGRATE switch through its own control mailbox, between two bursts
                                            -> "reload RID commit ok GENERATIONS" | "... error WHY"
    abort RID          drop what was staged (no answer)

The primary (flowos.runtime.reload checked the flows first, once) asks every process to prepare; only
when every one has does it ask each to commit; if any could not prepare, each drops what it
staged and nothing changed anywhere. A process restarted later builds the running configuration
(the plan it reads is written from it then, flowos.runtime.worker_processes)."""
import itertools
import os
import pickle
import select
import time

from flowos.errors import FlowOSError

PREPARE_TIMEOUT = 30.0   # seconds a worker process may take to build and set up a configuration
COMMIT_TIMEOUT = 15.0    # seconds it may take to switch: its control mailbox waits 10 s for its worker
# Both together within the 60 s flowos-ctl waits for a reload's answer at least.
_request_ids = itertools.count(1)


# --- the primary's side -----------------------------------------------------------------------

def switch(bridge, flows, engine, migrate):
    """Makes flows and engine (flow_defs) every worker process's configuration, or none's.
    Returns the reload's summary; raises FlowOSError (nothing changed) or pipelines.PartialReload."""
    from flowos.runtime.pipelines import PartialReload
    procs = bridge.worker
    rid = next(_request_ids)
    with procs.reload_lock:     # no worker process is restarted meanwhile (WorkerProcesses._check)
        busy = procs.not_reloadable()
        if busy:
            raise FlowOSError(busy)
        path = os.path.join(procs.plan.folder, f"fo_reload{rid}")
        with open(path, "wb") as f:
            pickle.dump((flows, engine), f)
        try:
            prepared = ask_all(procs, rid, "prepare", path, PREPARE_TIMEOUT)
        finally:
            os.unlink(path)
        refused = {w: why for w, (ok, why) in prepared.items() if not ok}
        if refused:
            for w in range(len(procs)):    # one that did not answer in time drops it once it has staged it
                procs.tell(w, f"abort {rid}")
            w = min(refused)
            raise FlowOSError(f"worker process {w}: {refused[w]}")
        committed = ask_all(procs, rid, "commit", str(int(bool(migrate))), COMMIT_TIMEOUT)
        switched = sorted(w for w, (ok, _) in committed.items() if ok)
        for w in switched:
            procs.switched(w, flows, int(prepared[w][1]))
        failed = {w: why for w, (ok, why) in committed.items() if not ok}
        if failed:
            w = min(failed)
            if not switched:
                raise FlowOSError(f"the workers did not take the new configuration: worker process {w}: {failed[w]}")
            raise PartialReload(f"reload partly done: worker process {w} did not take the new configuration "
                                f"({failed[w]}): worker processes {', '.join(map(str, switched))} run it, the others "
                                "the old one; reload again")
        bridge.config.flows = flows     # the plan's config too: a process restarted from now on builds these
        bridge.config.engine = engine
    return {"definitions": [flow.name for flow in flows], "migrate": bool(migrate),
            "generations": max(int(why) for _, why in committed.values())}


def ask_all(procs, rid, phase, argument, timeout):
    """Asks every worker process `phase` of reload rid; returns, per worker, (True, what it said)
    or (False, why not): its error, its end, or no answer within timeout seconds."""
    for w in range(len(procs)):
        procs.tell(w, f"{phase} {rid} {argument}")
    prefix = f"reload {rid} {phase} "
    answers, deadline = {}, time.monotonic() + timeout
    while len(answers) < len(procs):
        pending = [w for w in range(len(procs)) if w not in answers]
        for w in pending:
            said = procs.said[w]
            reply = said.take(prefix)
            if reply is not None:
                status, _, what = reply.partition(" ")
                answers[w] = (status == "ok", what)
            elif said.closed or procs.procs[w].poll() is not None:
                answers[w] = (False, "its process ended")
            elif time.monotonic() >= deadline:
                answers[w] = (False, f"no answer within {timeout:.0f} s")
        pending = [fd for w in range(len(procs)) if w not in answers and (fd := procs.said[w].fd) is not None]
        if pending:
            try:
                select.select(pending, [], [], min(0.05, max(0.0, deadline - time.monotonic())))
            except (OSError, ValueError):    # closed meanwhile (the run's end): the next look says so
                time.sleep(0.001)
    return answers


# --- a worker process's side ------------------------------------------------------------------

class WorkerReloads:
    """A worker process's side: serves the primary's prepare, commit and abort lines, on its main
    thread, while its worker runs the engine. tiers: the process's Python and Cython tiers, which
    a commit extends with the new configuration's."""

    def __init__(self, plan, engine, worker, control, tiers, say):
        self.plan, self.engine, self.worker, self.control, self.tiers, self.say = (plan, engine, worker, control,
                                                                                   tiers, say)
        self.staged = None     # the staged configuration's (definition, processor, tier) list
        self.ending = False    # the worker's loop has ended: no more reloads

    def serve(self, line):
        """Serves a line of the primary's if it is a reload's; returns whether it was."""
        words = line.split(" ", 2)
        if words[0] not in ("prepare", "commit", "abort") or len(words) < 2:
            return False
        phase, rid, argument = words[0], words[1], words[2] if len(words) > 2 else ""
        if phase == "abort":
            self.drop()
            return True
        try:
            answer = self.prepare(argument) if phase == "prepare" else self.commit(argument == "1")
        except Exception as e:     # a processor's class or constructor may raise anything: said, not fatal here
            why = str(e) if isinstance(e, FlowOSError) else f"{type(e).__name__}: {e}"
            self.say(f"reload {rid} {phase} error {' '.join(why.split())}")
        else:
            self.say(f"reload {rid} {phase} ok {answer}")
        return True

    def prepare(self, path):
        from flowos.runtime import pipelines
        if self.ending:
            raise FlowOSError("its worker has ended (the run is stopping)")
        self.drop()
        with open(path, "rb") as f:
            flows, engine = pickle.load(f)
        (self.staged,) = pipelines.stage([self.engine], flows, engine, self.plan.port_ids, self.worker.address())
        return self.engine.staged[2]     # where its definitions sit in this shard's space

    def commit(self, migrate):
        if self.staged is None:
            raise FlowOSError("nothing staged")
        from flowos.runtime import pipelines
        try:
            pipelines.switch_through(self.control, self.worker, migrate)
        except FlowOSError:
            self.drop()
            raise
        self.engine.switched()
        self.tiers.extend(tier for _, _, tier in self.staged)
        self.staged = None
        return self.engine.generations()

    def drop(self):
        if self.staged is not None:
            self.engine.unstage()
            self.staged = None
