"""The watchdog: names a processor's call (or message handler) that runs past its budget while it
still runs, and ends a run whose worker does not stop when told.

It lives on the main thread, which a processor cannot block: the worker takes the GIL per Python
call, and a call that sleeps, waits or loops in Python lets it go; C and Cython calls run without
it, and the engine says which callback (process, flow_start, flow_end) of which processor the
worker is in (a C extension that holds the GIL for ever is the one case it cannot see: the
supervisor, flowos/runtime/supervisor.py, kills that process and names the call from outside). Python
calls are timed by their tier, with their flow; any other tier's by the engine; the messages of
either tier by the tier's message desk (flowos/message_desk.py). docs/operations.md describes
the budget, the reports and the exit rule.
"""
import os
import shutil
import sys
import time

from flowos.boundary import _control
from flowos.runtime.stats import RunReport, SourceReport

STOP_GRACE = 1.0        # seconds the worker gets to stop, on top of the budget, before it is stuck
INTERRUPT_WAIT = 0.5    # seconds to wait after raising CallOverBudget into the stuck call
POLL = 0.01             # seconds between looks at the worker while it stops


class CallOverBudget(Exception):
    """Raised into a processor call still running when the run has to end (a fault of the call)."""


def describe(call):
    flow = f", {call['flow']}" if call["flow"] else ""
    return f"processor {call['processor']} in {call['call']}() for {call['seconds']:.1f} s{flow}"


class Watchdog:
    def __init__(self, tiers, budget_s, name_of, out=None, engine=None):
        self.tiers = [t for t in tiers if hasattr(t, "busy")]     # the Python tier's calls are timed
        self.engine = engine                                      # and the engine's other calls
        self.desks = [t for t in tiers if hasattr(t, "message_desk")]   # and the messages, any tier's
        self.budget = budget_s
        for tier in self.tiers:
            tier.set_budget(budget_s)
        for tier in self.desks:
            tier.message_desk.budget = budget_s
        self.name_of = name_of
        self.out = out or sys.stderr
        self.reported = set()     # (tier, call, start) of the calls reported
        self.reports = 0
        self.stuck = None         # the call that kept the worker from stopping (or a description)

    def calls(self):
        """The processor calls and messages under way now, longest first."""
        now = time.monotonic()
        found = []
        for tier, busy, worker in ([(t, t.busy(), True) for t in self.tiers] +
                                   [(t, t.message_desk.busy(), False) for t in self.desks]):
            for what, since, flow in busy:        # a handler's thread is not the worker's: never interrupted
                found.append({"processor": self.name_of(tier), "call": what, "seconds": round(now - since, 3),
                              "flow": flow, "key": (id(tier), what, since), "tier": tier if worker else None})
        for d, p, what, seconds, began, worker in self.engine.current_calls() if self.engine is not None else ():
            proc = self.engine.processor_at(worker, d, p)
            if not hasattr(proc, "busy"):      # a Python one is in the tier's list, with its flow
                found.append({"processor": proc if isinstance(proc, str) else self.name_of(proc),
                              "call": what, "seconds": round(seconds, 3), "flow": None,
                              "key": ("engine", worker, d, p, what, began), "tier": None})
        return sorted(found, key=lambda c: -c["seconds"])

    def check(self):
        """Reports each call past the budget, once."""
        for call in self.calls():
            if call["seconds"] <= self.budget or call["key"] in self.reported:
                continue
            self.reported.add(call["key"])
            self.reports += 1
            self.out.write(f"flowos: watchdog: {describe(call)}, past its budget of "
                           f"{self.budget * 1000:.0f} ms (still running)\n")
            self.out.flush()

    def wait_for_stop(self, worker):
        """After the worker was asked to stop: True once it has. A worker still running after the
        budget and STOP_GRACE is stuck: the call it is in is named (self.stuck) and interrupted;
        False if it still runs INTERRUPT_WAIT later (a call waiting in C)."""
        deadline = time.monotonic() + self.budget + STOP_GRACE
        while worker.running:
            if time.monotonic() >= deadline:
                if self.stuck is not None:
                    return False
                calls = [c for c in self.calls() if c["call"] != "on_message"]   # the worker's, not a handler thread's
                if calls:
                    self.stuck = calls[0]
                    if self.stuck["tier"] is not None:    # C and Cython calls cannot be interrupted
                        self.stuck["tier"].interrupt(CallOverBudget)
                else:
                    self.stuck = {"processor": None, "call": None, "seconds": None, "flow": None}
                deadline = time.monotonic() + INTERRUPT_WAIT
            time.sleep(POLL)
            self.check()
        return True

    def stuck_text(self):
        if self.stuck is None:
            return None
        if self.stuck["processor"] is None:
            return "the worker, in no processor call (in the engine)"
        return describe(self.stuck)

    def report(self):
        """The watchdog's part of --stats-json."""
        stuck = None
        if self.stuck is not None:
            stuck = {k: v for k, v in self.stuck.items() if k not in ("tier", "key")}
            stuck["text"] = self.stuck_text()
        return {"budget_ms": round(self.budget * 1000), "reports": self.reports, "stuck": stuck}


def abandon(bridge, reason, name_of):
    """The run's report when its worker will not stop, from what can be read beside it: port and
    pool counters, the engine's (relaxed atomics), the Python processors' (under the GIL). C and
    Cython processors' reports are left out: their state is the worker's. Nothing is torn down:
    the process must end with os._exit (see verdict); the EAL's runtime folder (its telemetry
    socket) goes now."""
    if bridge.control is not None:
        bridge.control.stop()    # wakes a telemetry request waiting for the worker
    _control.stop_serving()
    shutil.rmtree(bridge.eal.runtime_dir, ignore_errors=True)
    engine = None
    if bridge.engine is not None:
        engine = {"stats": bridge.engine.stats(),
                  "flows": [{"name": name, **bridge.engine.definition_stats(i),
                             "processors": [{"name": proc if isinstance(proc, str) else name_of(proc),
                                             "report": proc.stats() if hasattr(proc, "busy") else None}
                                            for proc in bridge.engine.processors[i]]}
                            for i, name in enumerate(bridge.engine.definitions)]}
    ports = bridge.port_stats()
    sources = [SourceReport(name, bridge.config.port(name).capture_source, info.packets, info.bytes,
                            next(p.rx_packets for p in ports if p.name == name), info.damaged, info.truncated)
               for name, info in bridge.sources.items()]
    return RunReport(bridge.memory.mode, bridge.memory.reason, bridge.memory.memory_mb, bridge.file_prefix,
                     bridge.elapsed, reason, ports, bridge.pool.size, bridge.pool.in_use, sources, engine,
                     burst=bridge.config.run.burst, worker_left_running=True)


def undrained(report):
    """What a run that ended without its worker could not drain, in words."""
    parts = [f"{report.mbufs_in_use_at_exit} mbufs still in use (the stuck call's burst, rings, what flows held)"]
    if report.engine is not None:
        parts.append(f"{report.engine['stats']['flows_active']} flows never ended (no flow_end, no teardown)")
    return "; ".join(parts)


def verdict(report, status, say):
    """After the summary and --stats-json: None for a run whose worker stopped when told; else
    `status`, once say() has named the stuck call and what was not drained. A worker still
    running ends the process here, with os._exit: Python's exit would wait for it for ever.
    (Output is flushed first: os._exit does not.)"""
    stuck = (report.watchdog or {}).get("stuck")
    if stuck is None:
        return None
    say(f"the worker did not stop when told: {stuck['text']}" +
        (f"; not drained: {report.watchdog['undrained']}" if report.worker_left_running else ""))
    if report.worker_left_running:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    return status
