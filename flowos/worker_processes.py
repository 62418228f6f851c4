"""Workers as processes (docs/architecture.md, "Worker processes"): with several workers and a
Python processor, each worker runs in a process of its own, with its own interpreter, so that
Python processors run on every core instead of waiting on one interpreter's lock.

flowos-run's process is the DPDK primary: it owns the ports, the mbuf pool and the control
sockets, and runs the relay, one C worker without processors that receives from every port queue,
hands each packet to the inbox of the worker process that owns its flow (the symmetric steering
hash, fo_steer.h) and sends what the worker processes put in their outboxes. Each worker process
(flowos.worker_process) is a DPDK secondary: it looks the pool, the rings and the group up by name
and runs its shard of the flow engine on its inbox. The group (a memzone) stops them together."""
import copy
import dataclasses
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

from flowos import eal_args
from flowos.errors import FlowOSError
from flowos.shards import WORKER_COUNTS, Each, add_up

POOL = "fo_pool"
GROUP = "fo_group"
OUTBOX_SIZE = 1024     # packets a worker process may have sent on a port before the relay sends them
START_TIMEOUT = 60     # seconds a worker process may take to attach and build its shard
EXIT_TIMEOUT = 10      # seconds a worker process may take to end once its last packet is sent


def inbox_name(worker):
    return f"fo_inbox{worker}"


def outbox_name(worker, port_id):
    return f"fo_out{worker}_{port_id}"


@dataclass
class Plan:
    """What a worker process needs of the primary's run: the finished config (validated once, by
    the primary) and the names and numbers the primary chose."""
    config: object
    file_prefix: str
    port_ids: dict        # port name -> DPDK port id
    keep_budget: int      # all shards' together
    steer_pattern: int
    folder: str           # the primary's runtime folder: the plan, the reports

    @property
    def workers(self):
        return self.config.run.workers

    def report_path(self, worker):
        return os.path.join(self.folder, f"fo_worker{worker}.json")

    def log_path(self, worker):
        return os.path.join(tempfile.gettempdir(), f"{self.file_prefix}-worker{worker}.log")


def write_plan(plan):
    """The plan, pickled where worker processes read it: sys.path and the working folder first,
    so that the config's processor classes import in the child as they did here. The ports are
    the primary's alone (and what it read of their captures does not pickle)."""
    path = os.path.join(plan.folder, "fo_plan")
    config = copy.copy(plan.config)
    config.ports = []
    with open(path, "wb") as f:
        pickle.dump((list(sys.path), os.getcwd()), f)
        pickle.dump(dataclasses.replace(plan, config=config), f)
    return path


class WorkerProcesses(Each):
    """The primary's view of its workers: the relay (one C worker that receives and sends for all)
    and a process per worker. What a run asks of its workers (running, stop, join, counts) is
    answered for them all."""

    def __init__(self, relay, relay_engine, plan, cpus):
        super().__init__([relay])
        self.relay, self.relay_engine, self.plan, self.cpus = relay, relay_engine, plan, cpus
        self.procs = []
        self.reports = {}      # worker index -> its report, once it has ended
        self.lost = []         # (worker index, why) of those that ended without a report

    def __len__(self):
        return self.plan.workers

    def spawn(self):
        """Starts every worker process and waits until each runs its worker; raises FlowOSError
        (having ended them all) if one cannot."""
        plan_path = write_plan(self.plan)
        ready = []
        try:
            self._start(plan_path, ready)
        finally:
            os.unlink(plan_path)

    def _start(self, plan_path, ready):
        for w in range(self.plan.workers):
            read, write = os.pipe()
            # exec, not a fork of this process's EAL: subprocess forks and execs at once.
            proc = subprocess.Popen([sys.executable, "-m", "flowos.worker_process", plan_path, str(w), str(write)],
                                    pass_fds=(write,), close_fds=True)
            os.close(write)
            self.procs.append(proc)
            ready.append(read)
        try:
            for w, fd in enumerate(ready):
                line = _read_line(fd, START_TIMEOUT)
                if line != "ready":
                    why = line[len("error: "):] if line.startswith("error: ") else (
                        f"exit status {self.procs[w].poll()}" if line == "" else f"said {line!r}")
                    raise FlowOSError(f"worker process {w} could not start: {why} "
                                      f"(its DPDK log: {self.plan.log_path(w)})")
        except BaseException:
            self.kill()
            raise
        finally:
            for fd in ready:
                os.close(fd)

    def launch(self, lcore):
        self.relay.launch(lcore)

    @property
    def running(self):
        return self.relay.running

    def request_stop(self):
        self.relay.request_stop()     # the group's stop, in shared memory: every process sees it

    def address(self):
        return self.relay.address()

    def join(self):
        """Waits for the relay (it ends once every worker process has sent its last packet), then
        for the worker processes, and reads their reports."""
        self.relay.join()
        for w, proc in enumerate(self.procs):
            try:
                status = proc.wait(EXIT_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                status = "killed: it did not end"
            self._collect(w, status)

    def _collect(self, w, status):
        path = self.plan.report_path(w)
        if w in self.reports:
            return
        try:
            with open(path) as f:
                self.reports[w] = json.load(f)
            os.unlink(path)
        except (OSError, ValueError):
            self.lost.append((w, f"no report (exit status {status})"))

    def kill(self):
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()

    @property
    def stop_reason(self):
        return self.relay.stop_reason

    @property
    def short_sources(self):
        return self.relay.short_sources

    def tx_unsent(self):
        """Packets each TX device refused: the relay sends for every worker."""
        unsent = {}
        stats = [(tx, self.relay.route_stats(i)) for i, (_, tx) in enumerate(self.relay.routes)]
        stats += [(port, self.relay.outbox_stats(i)) for i, (_, port) in enumerate(self.relay.outboxes)]
        for port, s in stats:
            unsent[port.device] = unsent.get(port.device, 0) + s.tx_unsent
        return unsent

    def received(self, device):
        return sum(self.relay.route_stats(i).rx_packets for i, (rx, _) in enumerate(self.relay.routes)
                   if rx.device == device)

    def rows(self, engines=None, full=False):
        """Per worker process: its CPU, its pid and, once it has ended, its load and its shard's
        counters (all of them with full, else shards.WORKER_COUNTS)."""
        rows = []
        for w, (proc, cpu) in enumerate(zip(self.procs, self.cpus)):
            row = {"worker": w, "cpu": cpu, "pid": proc.pid}
            report = self.reports.get(w)
            if report is not None:
                shard = report["engine"]["stats"]
                row.update(report["load"], rx_packets=shard["packets"],
                           engine=shard if full else {k: shard[k] for k in WORKER_COUNTS})
            rows.append(row)
        return rows

    def engine_report(self):
        """The worker processes' engine reports as one (flowos.runner.engine_report's shape), with
        the relay's counters (what it found malformed, what it handed over) in the totals."""
        reports = [self.reports[w]["engine"] for w in sorted(self.reports)]
        if not reports:
            return None
        stats = add_up([r["stats"] for r in reports] + [self.relay_engine.stats()])
        return {"stats": stats, "flows": [_merge_flow([r["flows"][i] for r in reports])
                                          for i in range(len(reports[0]["flows"]))]}

    def close(self):
        self.kill()
        self.relay.close()


def _merge_flow(flows):
    out = add_up([{k: v for k, v in f.items() if k != "processors"} for f in flows])
    out["processors"] = [_merge_processor([f["processors"][j] for f in flows])
                         for j in range(len(flows[0]["processors"]))]
    return out


def _merge_processor(procs):
    out = add_up([{k: v for k, v in p.items() if k != "report"} for p in procs])
    reports = [p["report"] for p in procs if p["report"] is not None]
    out["report"] = add_up(reports) if reports else None
    return out


def _read_line(fd, timeout):
    """A line from a worker process's pipe: "" when it closed it (it ended) or said nothing in time."""
    import select
    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


def run_worker(plan, w, ready):
    """Worker process w's life: attach to the primary, build its shard and processors, run until
    the group ends, send its last packets, leave the group; returns its report. ready(text) tells
    the primary it runs (or why it cannot)."""
    from flowos import runner
    from flowos._python import cover_kept_views
    from flowos._runtime import Eal, Inbox, Mempool, Worker, WorkerGroup
    cfg = plan.config
    argv = eal_args.worker_process_argv(plan.file_prefix, w, cfg.eal.worker_cpus, log_level=cfg.eal.log_level)
    try:
        eal = Eal.start(argv, plan.log_path(w))
    except FlowOSError as e:
        ready(f"error: {e}")
        raise
    engine = worker = None
    try:
        pool = Mempool.lookup(eal, POOL)
        inboxes = [Inbox.lookup(eal, inbox_name(i)) for i in range(plan.workers)]
        outboxes = {pid: Inbox.lookup(eal, outbox_name(w, pid)) for pid in plan.port_ids.values()}
        group = WorkerGroup.lookup(eal, GROUP)
        worker = Worker.create(eal, cfg.run.burst, 0, cfg.run.source_idle_ms)

        def steer_and_send(engine):
            engine.set_shard(w, inboxes, plan.steer_pattern)
            for pid, outbox in outboxes.items():
                engine.set_tx_ring(pid, outbox)
        engine, tiers = runner.build_shard(cfg, pool, plan.port_ids, plan.workers, plan.keep_budget, worker,
                                           worker.address(), steer_and_send)
        engine.attach_inbox(worker, group, inboxes[w])
        worker.launch(eal.worker_lcores()[0])
    except FlowOSError as e:
        ready(f"error: {e}")
        _close(worker, engine, eal)
        raise
    ready("ready")
    worker.join()
    for tier in tiers:      # the loop has ended: a later fault (teardown) has nothing to stop
        tier.stop_worker_on_fault(0)
    engine.shutdown()       # every flow ends; what they held goes into the outboxes
    group.leave()           # the relay sends it and ends once every worker process has left
    report = runner.engine_report(engine)
    engine.teardown()
    runner.refresh_tier_reports(engine, report)
    polls, busy = worker.polls
    stats = engine.stats()
    result = {"pid": os.getpid(), "engine": report, "load": {"polls": polls, "busy_polls": busy},
              "mbufs_held_at_exit": stats["budget"]["kept"]}
    _close(worker, engine, eal)
    cover_kept_views()
    os.unlink(plan.log_path(w))
    return result


def _close(worker, engine, eal):
    if worker is not None:
        worker.close()
    if engine is not None:
        engine.close()
    eal.close()


def ready_writer(fd):
    def ready(text):
        os.write(fd, f"{text}\n".encode())
    return ready
