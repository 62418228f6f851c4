"""Workers as processes (docs/architecture.md, "Worker processes"): with several workers and a
Python processor, each worker runs in a process of its own, with its own interpreter, so that
Python processors run on every core instead of waiting on one interpreter's lock.

flowos-run's process is the DPDK primary: it owns the ports, the mbuf pool and the control
sockets. Each worker process (flowos.runtime.worker_process) is a DPDK secondary: it looks the pool, the
rings and the group up by name and runs its shard of the flow engine. It polls its own queues of
the ports whose driver lets a secondary receive and send (devices.SECONDARY_QUEUE_DRIVERS), as a worker thread
would, handing packets of other workers' flows to their inboxes. The primary runs the relay, one C
worker without processors, for the other ports (net_pcap, net_af_packet): it receives from their
queues, hands each packet to the inbox of the worker process that owns its flow (the symmetric
steering hash, fo_steer.h) and sends what the worker processes put in their outboxes for them.
The group (a memzone) stops them together."""
import copy
import dataclasses
import errno
import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass

from flowos.configuration import devices
from flowos.runtime import output
from flowos.errors import ConfigError, FlowOSError
from flowos.runtime.shards import WORKER_COUNTS, Each, add_up, group_stop_reason

POOL = "fo_pool"
GROUP = "fo_group"
OUTBOX_SIZE = 1024     # packets a worker process may have sent on a port before the relay sends them
START_TIMEOUT = 60     # seconds a worker process may take to attach and build its shard
JOIN_POLL = 0.01       # seconds between a worker process's looks at its loop, which runs until the run ends
EXIT_TIMEOUT = 10      # seconds a worker process may take to end once its last packet is sent
# run.on_worker_death: restart. A worker that dies RESTART_LIMIT times within RESTART_WINDOW seconds
# is given up on: the run stops, as with on_worker_death: stop.
RESTART_LIMIT = 3
RESTART_WINDOW = 60.0


def polls_own_queues(config, spec, info):
    """Whether each worker process polls its own queues of the port `spec` (its device's `info`)
    rather than the relay: run.worker_process_queues `own`, a driver in SECONDARY_QUEUE_DRIVERS,
    and a TX queue for each worker process and one for the relay."""
    return (config.run.worker_process_queues == "own" and spec.driver in devices.SECONDARY_QUEUE_DRIVERS
            and info["max_tx_queues"] > config.run.workers)


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
    devices: dict         # port name -> device name
    own_ports: frozenset  # the ports whose queues the worker processes poll themselves (polls_own_queues)
    routes: list          # per worker: its routes on those, (rx port, tx port, rx queue, tx queue)

    @property
    def workers(self):
        return self.config.run.workers

    def report_path(self, worker):
        return os.path.join(self.folder, f"fo_worker{worker}.json")

    def log_path(self, worker):
        return os.path.join(tempfile.gettempdir(), f"{self.file_prefix}-worker{worker}.log")


def write_plan(plan, name="fo_plan"):
    """The plan, pickled where worker processes read it: sys.path and the working folder first,
    so that the config's processor classes import in the child as they did here. The ports are
    the primary's alone (and what it read of their captures does not pickle)."""
    path = os.path.join(plan.folder, name)
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

    def __init__(self, relay, relay_engine, plan, cpus, group, inboxes, outboxes=(), stuck_after=None):
        super().__init__([relay])
        self.relay, self.relay_engine, self.plan, self.cpus = relay, relay_engine, plan, cpus
        self.group, self.inboxes = group, inboxes
        self.outboxes = outboxes       # per worker: its outboxes (one per port)
        # run.on_worker_death: restart. Per worker: each death it was restarted after (what was lost),
        # and those being restarted (their new process started, not yet running its worker).
        self.restarts = {w: [] for w in range(plan.workers)}
        self.restarting = {}           # worker index -> {"plan": path, "go": sent, "since": when}
        self.stopping = False
        self.procs = []
        self.output_threads = []   # each process's stdout and stderr, passed on (_popen)
        # Each process's pipe (Said): "ready", then "left" once it has sent its last packet.
        self.said = []
        self.reports = {}      # worker index -> its report, once it has ended
        self.ended = {}        # worker index -> how a process that died before its report ended
        self.inbox_freed = {}  # worker index -> packets freed from a dead process's inbox
        # Where each process's fo_worker and engine shard are in the shared memory, for counters
        # while it runs; a process's go once it has left (it frees them only after the primary's ack).
        self.shared = {}
        # Each running process's control mailbox (its address), asked under its lock (ProcessControl).
        self.controls = {}
        self.control_locks = [threading.Lock() for _ in range(plan.workers)]
        self.has_left = set()          # processes that said they left the group
        # Liveness: each process's loop iterations (its fo_worker's polls, in the shared memory) and
        # when they last moved; one whose loop has not moved for stuck_after seconds is stuck.
        self.progress = {}
        self.stuck = {}                # worker index -> what it was stuck in, once it was ended for it
        self.stuck_after = stuck_after
        # Per worker: its shard's definitions by their index in its definition space (every generation
        # it may run, docs/reload.md): (name, its processors' names), for flowos-ctl flows and a
        # stuck or dead process's call. A reload puts the new ones where that process staged them.
        self.spaces = {w: space(plan.config.flows, 0) for w in range(plan.workers)}
        self.lock = threading.Lock()   # the control server's thread reads them; check() withdraws them
        # Held by a reload (flowos.runtime.process_reload) from its first request to its end, and by a
        # restart and the end (kill): no process is replaced while a reload asks them.
        self.reload_lock = threading.RLock()

    def __len__(self):
        return self.plan.workers

    @property
    def definitions(self):
        """The running configuration's definition names (every process's current generation)."""
        return [flow.name for flow in self.plan.config.flows]

    def definition_name(self, definition, worker=0):
        """Worker process's definition (any generation's) by the index a flow's key has."""
        return self.spaces[worker].get(definition, (f"#{definition}",))[0]

    def processor_name(self, worker, definition, processor):
        """Worker process's processor by the indexes its current call gives (any generation's)."""
        names = self.spaces[worker].get(definition, (None, []))[1]
        return names[processor] if processor < len(names) else f"processor {processor} of definition #{definition}"

    def not_reloadable(self):
        """Why the worker processes cannot be asked to reload now, or None."""
        if self.stopping or self.ended:
            return "the run is stopping"
        for w in range(self.plan.workers):
            if w in self.restarting or self.controls.get(w) is None or self.procs[w].poll() is not None:
                return f"worker process {w} is not running (being restarted, or ended): reload again once it runs"
        return None

    def tell(self, w, line):
        """A line on worker process w's stdin (what it serves: flowos.runtime.process_reload)."""
        try:
            os.write(self.procs[w].stdin.fileno(), f"{line}\n".encode())
        except (OSError, ValueError):
            pass     # it has ended: its answer says so

    def switched(self, w, flows, base):
        """Worker process w runs flows now, its definitions from `base` in its definition space."""
        self.spaces[w].update(space(flows, base))

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
            proc, read = self._popen(plan_path, w)
            self.procs.append(proc)
            self.said.append(Said(read))
        try:
            for w, said in enumerate(self.said):
                line = said.first(START_TIMEOUT)
                if line.startswith("ready "):
                    self._share(w, line)
                    continue
                if line.startswith("config error: "):     # one line, as flowos-run says a configuration's
                    raise ConfigError(None, None, line[len("config error: "):])
                if line != "ready":
                    why = line[len("error: "):] if line.startswith("error: ") else (
                        f"exit status {self.procs[w].poll()}" if line == "" else f"said {line!r}")
                    raise FlowOSError(f"worker process {w} could not start: {why} "
                                      f"(its DPDK log: {self.plan.log_path(w)})")
        except BaseException:
            self.kill()
            raise

    def _popen(self, plan_path, w, *extra):
        """Starts worker process w; returns it and the pipe it says "ready" (and the rest) on. Its
        stdout and stderr are passed on into this process's, whole lines (flowos.runtime.output)."""
        read, write = os.pipe()
        # exec, not a fork of this process's EAL: subprocess forks and execs at once.
        # -P: not the current directory first on sys.path, where a source tree's flowos/ (no
        # built extensions) would shadow the installed one (flowos-run started in a checkout).
        proc = subprocess.Popen([sys.executable, "-P", "-m", "flowos.runtime.worker_process", plan_path, str(w), str(write),
                                 *extra], pass_fds=(write,), close_fds=True, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        os.close(write)
        for pipe, stream in ((proc.stdout, "stdout"), (proc.stderr, "stderr")):
            thread = threading.Thread(target=output.pass_on, args=(pipe, stream), name=f"worker{w}-{stream}",
                                      daemon=True)
            thread.start()
            self.output_threads.append(thread)
        return proc, read

    def launch(self, lcore):
        self.relay.launch(lcore)

    @property
    def running(self):
        """The relay runs (it ends once every worker process has left). A worker process that died
        meanwhile is noticed here (check)."""
        self.check()
        return self.relay.running

    def check(self):
        """Worker processes that ended before sending their report (a crash, os._exit, a kill):
        each is restarted (run.on_worker_death: restart, up to RESTART_LIMIT in RESTART_WINDOW s,
        while the run is not stopping), or else recorded as ended, and the run stops: what it is
        handed is freed (counted: inbox_freed) as it comes so that the relay never waits on its
        inbox, and it leaves the group if it had not, so that the relay can end. Its flows, and
        the mbufs it held, are lost: the report says so.

        Only the main thread checks (it polls `running`); the control threads, which ask `running`
        for flowos-ctl stats, do not: two threads that both saw a process dead restarted it twice,
        and a process started from a control thread was killed when that thread ended (the kernel
        sends PR_SET_PDEATHSIG when the thread that forked it ends, not the process)."""
        if threading.current_thread() is threading.main_thread():
            self._check()

    def _check(self):
        if not self.said:      # killed (a failed start, or the end): nothing more to learn from them
            return
        self._withdraw_left()
        self._end_stuck()
        for w, proc in enumerate(self.procs):
            if w in self.reports:
                continue
            if w in self.ended:
                self.inbox_freed[w] += self.inboxes[w].drain()
                continue
            status = proc.poll()
            if status is None:
                if w in self.restarting:
                    self._follow_restart(w)
                continue
            if os.path.exists(self.plan.report_path(w)):
                continue
            with self.lock:
                live = self.shared.pop(w, None)
            self.controls.pop(w, None)    # a request under way times out: nobody frees its mailbox
            reason = self.stuck.pop(w, None) or describe_status(status)
            left = w in self.has_left or "left" in self.said[w].read()
            if w in self.restarting:    # a replacement counts itself out of no receivers: restart it as well
                self._end_restart(w)
            if not left and self._may_restart(w):
                with self.reload_lock:    # after a reload under way: the new process builds what it left
                    self._restart(w, reason, live)
                continue
            self.ended[w] = reason
            self.inbox_freed[w] = self.inbox_freed.get(w, 0) + self.inboxes[w].drain()
            self.request_stop()
            self.group.stop_receiving(w)     # it may have died polling its own queues
            if not left:
                self.group.leave()

    def _may_restart(self, w):
        if self.plan.config.run.on_worker_death != "restart" or self.stopping:
            return False
        now = time.monotonic()
        recent = [r for r in self.restarts[w] if now - r["at"] < RESTART_WINDOW]
        if len(recent) >= RESTART_LIMIT:
            print(f"flowos-run: worker process {w} died {len(recent) + 1} times in {RESTART_WINDOW:.0f} s: "
                  "not restarted again, the run stops", file=sys.stderr, flush=True)
            return False
        return True

    def _restart(self, w, reason, live):
        """Worker w's process died (or was killed, stuck): a new one, with fresh processor
        instances, takes its place, on the same lcore id (the pool's caches are per lcore id), with
        the same inbox and outboxes. Nothing else uses the dead process's ends of its rings now:
        their heads go back to their tails (a dequeue or enqueue it died inside). Until the new
        process runs, what the relay hands it is freed and counted (inbox_freed)."""
        from flowos.boundary._engine import current_call_at, stats_at
        record = {"pid": self.procs[w].pid, "reason": reason, "at": time.monotonic(), "processor": None,
                  "flows_lost": 0, "mbufs_held": 0, "stats": None}
        if live is not None:     # its shard is in the shared memory still: nobody frees it
            engine = live[1]
            stats = stats_at(engine)
            call = current_call_at(engine)
            if call is not None:
                record["processor"] = self.processor_name(w, call[0], call[1])
            # Its counters until it died count in the totals; its flows are active no more.
            record.update(flows_lost=stats["flows_active"], mbufs_held=stats["budget"]["held"],
                          stats=dict(stats, flows_active=0, budget={k: 0 for k in stats["budget"]}),
                          tx_unsent=self._live_tx_unsent(w, live[0]))
        record["inbox_reclaimed"] = self.inboxes[w].reset_abandoned_end(True)
        for outbox in self.outboxes[w] if self.outboxes else ():
            outbox.reset_abandoned_end(False)
        self.inbox_freed[w] = self.inbox_freed.get(w, 0) + self.inboxes[w].drain()
        self.restarts[w].append(record)
        self.progress.pop(w, None)
        self.spaces[w] = space(self.plan.config.flows, 0)     # the new process builds the running configuration
        n = len(self.restarts[w])
        where = f" in {record['processor']}" if record["processor"] else ""
        print(f"flowos-run: worker process {w} (pid {record['pid']}) ended{where}: {reason}; restarting it "
              f"(restart {n}): its {record['flows_lost']} flows and the {record['mbufs_held']} mbufs it held "
              "are lost", file=sys.stderr, flush=True)
        plan_path = write_plan(self.plan, f"fo_plan{w}")
        proc, read = self._popen(plan_path, w, "restart")
        self.said[w].close()
        if self.procs[w].stdin is not None:
            self.procs[w].stdin.close()
        self.procs[w], self.said[w] = proc, Said(read)
        self.restarting[w] = {"plan": plan_path, "go": False, "since": time.monotonic()}

    def _follow_restart(self, w):
        """A restarting process: what comes to its inbox is freed until it has built its shard;
        then it is told to go (nothing else takes from its inbox after that) and its counters are
        read as the others' are; it is restarting until its worker runs. One that takes too long is
        ended (check() then restarts it again, within the limit)."""
        state = self.restarting[w]
        if not state["go"]:
            self.inbox_freed[w] += self.inboxes[w].drain()
        lines = self.said[w].read()
        if not state["go"]:
            built = next((line for line in lines if line.startswith("built ")), None)
            if built is not None:
                self.inbox_freed[w] += self.inboxes[w].drain()
                state["go"] = True
                self._share(w, built)
                try:
                    self.procs[w].stdin.write(b"go\n")
                    self.procs[w].stdin.flush()
                except OSError:
                    pass     # it died: check() says so
        if "ready" in lines:
            self._end_restart(w)
        elif time.monotonic() - state["since"] > START_TIMEOUT:
            self.stuck[w] = f"killed: not running {START_TIMEOUT} s after its restart"
            self.procs[w].kill()

    def _end_restart(self, w):
        state = self.restarting.pop(w)
        try:
            os.unlink(state["plan"])
        except OSError:
            pass

    def _end_stuck(self):
        """A worker process whose loop has made no progress for stuck_after seconds (a processor
        call that does not return) is stuck: it is ended (SIGKILL), and the run goes on to stop as
        for one that died (check), its report saying which call it was stuck in."""
        if self.stuck_after is None:
            return
        from flowos.boundary._engine import current_call_at
        from flowos.boundary._runtime import polls_at
        now = time.monotonic()
        with self.lock:
            live = dict(self.shared)
        for w, (worker, engine) in live.items():
            polls = polls_at(worker)[0]
            last = self.progress.get(w)
            if last is None or last[0] != polls:
                self.progress[w] = (polls, now)
                continue
            if now - last[1] < self.stuck_after or w in self.stuck:
                continue
            call = current_call_at(engine)
            where = "outside any processor call"
            if call is not None:
                d, p, what, seconds, _ = call
                where = f"in {self.processor_name(w, d, p)}'s {what}, a call of {seconds:.1f} s"
            self.stuck[w] = f"killed: no progress for {now - last[1]:.1f} s, {where}"
            self.procs[w].kill()    # its shard stays readable (nobody frees it) for check() to count what was lost

    def _share(self, w, line):
        """What process w said it shares ("ready W E C", "built W E C"): its fo_worker and engine
        shard, read for its counters, and its control mailbox, which flowos-ctl asks."""
        worker, engine, control = (int(a) for a in line.split()[1:4])
        with self.lock:
            self.shared[w] = (worker, engine)
        with self.control_locks[w]:
            self.controls[w] = control

    def _withdraw_left(self):
        """Processes that say they have left stop being read and asked; then they may free what was
        read (a request under way to its mailbox ends first: it was closed when its loop ended)."""
        for w in list(self.shared):
            if w not in self.restarting and "left" in self.said[w].read():
                self.has_left.add(w)
                with self.lock:
                    del self.shared[w]
                with self.control_locks[w]:
                    self.controls.pop(w, None)
                try:
                    self.procs[w].stdin.write(b"read no more\n")
                    self.procs[w].stdin.flush()
                except OSError:
                    pass    # it has died: check() says so

    def live_engine_stats(self):
        """The engine's totals while the run goes on: each running process's shard, each ended one's
        report, the relay's."""
        from flowos.boundary._engine import stats_at
        with self.lock:
            stats = [stats_at(engine) for _, engine in self.shared.values()]
        stats += [r["engine"]["stats"] for r in list(self.reports.values())]
        return add_up(stats + self._dead_stats() + [self.relay_engine.stats()])

    def _dead_stats(self):
        """The shard counters of the processes that were restarted, until they died."""
        return [r["stats"] for records in list(self.restarts.values()) for r in list(records) if r["stats"]]

    def mbufs_lost(self):
        """What went with the processes that were restarted: the mbufs their flows held, and at most
        a burst each had in hand (taken from its inbox, not yet in its outboxes)."""
        records = [r for records in self.restarts.values() for r in records]
        return {"restarts": len(records), "held": sum(r["mbufs_held"] for r in records),
                "in_hand_at_most": len(records) * self.plan.config.run.burst}

    @property
    def failure(self):
        """Why the run stopped, if a worker process died or a processor's fault stopped it (on_error: stop)."""
        if self.ended:
            w = min(self.ended)
            return f"worker process {w} ended ({self.ended[w]})"
        faulted = [r["fault_stop"] for _, r in sorted(self.reports.items()) if r.get("fault_stop")]
        return f"processor fault ({faulted[0]})" if faulted else None

    def request_stop(self):
        self.stopping = True
        self.relay.request_stop()     # the group's stop, in shared memory: every process sees it

    def address(self):
        return self.relay.address()

    def wait_stopped(self):
        """After the run was told to stop: True once the relay has ended. Bounded: a worker process
        that does not end its loop is stuck, and ended (check)."""
        while self.running:
            time.sleep(0.01)
        return True

    def join(self):
        """Waits for the relay (it ends once every worker process has sent its last packet), then
        for the worker processes, and reads their reports."""
        while self.running:
            time.sleep(0.01)
        self.relay.join()
        deadline = time.monotonic() + EXIT_TIMEOUT
        for w, proc in enumerate(self.procs):
            while proc.poll() is None and time.monotonic() < deadline:
                self._withdraw_left()      # each waits for the primary to stop reading it
                time.sleep(0.005)
            status = proc.poll()
            if status is None:
                proc.kill()
                proc.wait()
                said = ", ".join(self.said[w].read()) or "nothing"
                status = (f"killed: it did not end within {EXIT_TIMEOUT} s of the run's end (it had said: {said}; "
                          f"{'still restarting' if w in self.restarting else 'running'}, "
                          f"{'told' if w in self.has_left else 'not told'} it could end)")
            self._collect(w, status)
        deadline = time.monotonic() + EXIT_TIMEOUT
        for thread in self.output_threads:   # their last lines before the run's summary
            thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def _collect(self, w, status):
        path = self.plan.report_path(w)
        if w in self.reports or w in self.ended:
            return
        try:
            with open(path) as f:
                self.reports[w] = json.load(f)
            os.unlink(path)
        except (OSError, ValueError):
            self.ended[w] = f"{describe_status(status) if isinstance(status, int) else status}, without its report"

    def kill(self):
        with self.reload_lock:     # a reload under way ends first: it reads their pipes
            self._kill()

    def _kill(self):
        for w in list(self.restarting):
            self._end_restart(w)
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        for said in self.said:
            said.close()
        self.said = []
        for proc in self.procs:
            if proc.stdin is not None:
                proc.stdin.close()

    @property
    def stop_reason(self):
        """The relay's reason (if it receives) with the worker processes' that poll their own queues."""
        reasons = [r.get("stop_reason") for r in self.reports.values()]
        return group_stop_reason(reasons + ([self.relay.stop_reason] if self.relay.routes else []))

    @property
    def short_sources(self):
        return self.relay.short_sources

    def tx_unsent(self):
        """Packets each TX device refused (by device name): the relay's sends, and those of the worker
        processes on their own queues (running, ended, and restarted ones until they died)."""
        unsent = [self.relay.tx_unsent()]
        for i, (_, port) in enumerate(self.relay.outboxes):
            unsent.append({port.device: self.relay.outbox_stats(i).tx_unsent})
        with self.lock:
            live = dict(self.shared)
        unsent += [self._live_tx_unsent(w, worker) for w, (worker, _) in live.items()]
        unsent += [r["tx_unsent"] for r in list(self.reports.values())]
        unsent += [r.get("tx_unsent", {}) for records in list(self.restarts.values()) for r in list(records)]
        return add_up(unsent)

    def _live_tx_unsent(self, w, worker):
        """What the TX devices refused on worker process w's own routes, read from the shared memory."""
        from flowos.boundary._runtime import route_stats_at
        unsent = {}
        for i, (_, dst, _, _) in enumerate(self.plan.routes[w]):
            device = self.plan.devices[dst]
            unsent[device] = unsent.get(device, 0) + route_stats_at(worker, i).tx_unsent
        return unsent

    def rows(self, engines=None, full=False):
        """Per worker process: its CPU, its pid and, once it has ended, its load and its shard's
        counters (all of them with full, else shards.WORKER_COUNTS)."""
        rows = []
        for w, (proc, cpu) in enumerate(zip(self.procs, self.cpus)):
            row = {"worker": w, "cpu": cpu, "pid": proc.pid, "restarts": len(self.restarts[w])}
            if self.plan.routes[w]:     # the port queues it polls itself, "port:queue"
                row["own_queues"] = [f"{src}:{queue}" for src, _, queue, _ in self.plan.routes[w]]
            if self.restarts[w]:
                row["restarted"] = [{k: v for k, v in r.items() if k not in ("at", "stats")} for r in self.restarts[w]]
            if w in self.ended:
                row.update(ended=self.ended[w], inbox_freed=self.inbox_freed.get(w, 0))
            report = self.reports.get(w)
            if report is None:
                report = self._live_report(w)
            if report is not None:
                shard = report["engine"]["stats"]
                row.update(report["load"], rx_packets=shard["packets"],
                           engine=shard if full else {k: shard[k] for k in WORKER_COUNTS})
                if self.plan.routes[w]:
                    row["own_queues_rx"] = report["own_queues_rx"]
            rows.append(row)
        return rows

    def _live_report(self, w):
        """A running process's load and shard counters, read from the shared memory (None once it has left)."""
        from flowos.boundary._engine import stats_at
        from flowos.boundary._runtime import polls_at, route_stats_at
        with self.lock:
            if w not in self.shared:
                return None
            worker, engine = self.shared[w]
            polls, busy = polls_at(worker)
            rx = sum(route_stats_at(worker, i).rx_packets for i in range(len(self.plan.routes[w])))
            return {"load": {"polls": polls, "busy_polls": busy}, "engine": {"stats": stats_at(engine)},
                    "own_queues_rx": rx}

    def engine_report(self):
        """The worker processes' engine reports as one (flowos.runtime.pipelines.engine_report's shape), with
        the relay's counters (what it found malformed, what it handed over) in the totals."""
        reports = [self.reports[w]["engine"] for w in sorted(self.reports)]
        if not reports:
            return None
        stats = add_up([r["stats"] for r in reports] + self._dead_stats() + [self.relay_engine.stats()])
        # By name: after a reload that some processes took and others did not (reload partly
        # done), their definitions differ.
        return {"stats": stats, "flows": [_merge_flow(flows) for flows in
                                          _grouped([f for r in reports for f in r["flows"]], lambda f: f["name"])]}

    def close(self):
        self.kill()
        self.relay.close()
        for w in self.ended:     # a process that died did not remove its DPDK log; the report says how it ended
            try:
                os.unlink(self.plan.log_path(w))
            except OSError:
                pass


def space(flows, base):
    """flows' definitions by their index in a definition space, from base: (name, processor names)."""
    return {base + i: (flow.name, [spec.name for stage in flow.stages for spec in stage])
            for i, flow in enumerate(flows)}


class NotRunning(FlowOSError):
    """A worker process being restarted, or ended: it has no mailbox to ask."""


class ProcessControl:
    """Worker process w's control mailbox, asked from the primary (shards.Controls asks them all,
    as it asks worker threads' shards): under its lock, which the primary takes before it lets the
    process free the mailbox (WorkerProcesses._withdraw_left)."""

    def __init__(self, procs, w):
        self.procs, self.w = procs, w
        self.stopped = False

    def _ask(self, request):
        from flowos.boundary._control import Control, ControlError
        with self.procs.control_locks[self.w]:
            if self.stopped:
                raise ControlError(errno.ESHUTDOWN)
            address = self.procs.controls.get(self.w)
            if address is None:
                raise NotRunning(f"worker process {self.w} is not running (being restarted, or ended)")
            return request(Control.at(address))

    def flows(self, top, timeout_ms):
        """A process being restarted or ended has no live flows (they went with the dead one)."""
        try:
            return self._ask(lambda control: control.flows(top, timeout_ms))
        except NotRunning:
            return 0, []

    def message(self, definition, processor, text, timeout_ms):
        return self._ask(lambda control: control.message(definition, processor, text, timeout_ms))

    def stop(self):
        self.stopped = True

    def close(self):
        self.stopped = True


def _grouped(items, key):
    """items in groups of equal key(item), in the order each key first comes."""
    groups = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return list(groups.values())


def _merge_flow(flows):
    """One definition's reports from several processes; its processors matched by place and name."""
    out = add_up([{k: v for k, v in f.items() if k != "processors"} for f in flows])
    placed = [(j, p) for f in flows for j, p in enumerate(f["processors"])]
    out["processors"] = [_merge_processor([p for _, p in procs])
                         for procs in _grouped(placed, lambda jp: (jp[0], jp[1]["name"]))]
    return out


def _merge_processor(procs):
    out = add_up([{k: v for k, v in p.items() if k != "report"} for p in procs])
    reports = [p["report"] for p in procs if p["report"] is not None]
    out["report"] = add_up(reports) if reports else None
    return out


def describe_status(status):
    """A Popen returncode, as words."""
    if status < 0:
        import signal
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


class Said:
    """What a worker process says on its pipe ("ready ...", "built ...", "left", "error: ...",
    "config error: ...", a reload's answers): every whole line so far, read as it comes. Each
    reader looks for its line among them all, so none takes another's (a restarted process's
    "ready" and "left" may come in one read). A worker process reads what the primary asks on its stdin with one too (new_lines,
    next_line: each line once, in order)."""

    def __init__(self, fd):
        self.fd = fd
        self.lines = []
        self.partial = ""
        self.closed = False    # the process closed its end (it ended), or close() was called
        self.taken = 0         # lines new_lines() returned already
        # The main thread (check) and a reload's thread (flowos.runtime.process_reload) both read it.
        self.lock = threading.Lock()

    def read(self, timeout=0.0):
        """Reads what has come, waiting up to timeout seconds for the first of it; returns every
        whole line said so far."""
        import select
        with self.lock:
            deadline = time.monotonic() + timeout
            while not self.closed and select.select([self.fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                chunk = os.read(self.fd, 4096)
                if not chunk:
                    self.closed = True
                    break
                *whole, self.partial = (self.partial + chunk.decode(errors="replace")).split("\n")
                self.lines += [line.strip() for line in whole]
                deadline = 0.0     # what came with it, no more waiting
            return list(self.lines)

    def take(self, prefix):
        """What follows prefix on the first line said that starts with it, that line removed (a
        reload's answer: read once, not kept for the life of the run); None if none came yet."""
        self.read()
        with self.lock:
            at = next((i for i, line in enumerate(self.lines) if line.startswith(prefix)), None)
            return None if at is None else self.lines.pop(at)[len(prefix):]

    def new_lines(self, timeout):
        """The lines that came since the last call, waiting up to timeout seconds for one (the one
        reader of a pipe of commands: a worker process's stdin)."""
        lines = self.read(timeout)
        if self.closed and len(lines) == self.taken:
            time.sleep(timeout)    # nothing more will come: no spinning meanwhile
        new, self.taken = lines[self.taken:], len(lines)
        return new

    def next_line(self):
        """The next line not yet taken, waiting for it; "" once the writer closed its end."""
        while True:
            if self.closed and self.taken == len(self.lines):
                return ""
            new = self.new_lines(1.0)
            if new:
                self.taken -= len(new) - 1
                return new[0]
            if self.closed:
                return ""

    def close(self):
        with self.lock:
            if self.fd is not None:
                os.close(self.fd)
            self.fd, self.closed = None, True

    def first(self, timeout):
        """The first line, waiting up to timeout seconds: "" if the process ended, or said nothing
        in time."""
        deadline = time.monotonic() + timeout
        while not self.lines and not self.closed and time.monotonic() < deadline:
            self.read(deadline - time.monotonic())
        return self.lines[0] if self.lines else ""
