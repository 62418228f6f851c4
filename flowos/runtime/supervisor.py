"""The supervisor: flowos-run runs its data plane (DPDK, the workers, the processors) in a child
process and watches it from the process the user started, which never starts DPDK. Whatever a
processor does (loop holding the GIL, crash the process, call os._exit), the box ends within a
bounded time of being told to stop, --stats-json is written (from the child's last statistics
when it could not write them itself, saying what was lost), the processor under way is named,
and what the child's EAL leaves on the machine is removed. docs/operations.md describes it.

The child tells its parent over a pipe what it started and, every SNAPSHOT_EVERY seconds, the
dashboard's statistics (flowos.runtime.stats.Snapshot); its flow engines also write the processor
callback under way to a page the parent shared with it before the fork (flowos.boundary._engine.record_calls),
where the parent reads it after the child died: indexes only, named from the parent's own config.
"""
import ctypes
import mmap
import os
import pickle
import re
import select
import shutil
import signal
import struct
import sys
import tempfile
import time

from flowos.runtime import hugepages, watchdog
from flowos.runtime.control_server import runtime_base
from flowos.runtime.stats import RunReport, SourceReport
from flowos.facts import CALLBACKS

EXIT_FAILED = 1
EXIT_CRASHED = 3       # the data plane died (a signal, or an exit without its statistics), or was killed
KILL_MARGIN = 5.0      # seconds past the watchdog's own bound (budget + STOP_GRACE + INTERRUPT_WAIT) to end
START_GRACE = 30.0     # more seconds for a child told to stop before it started (EAL start-up, setup())
SNAPSHOT_EVERY = 0.5   # seconds between the statistics the child sends
POLL = 0.1             # seconds between the parent's looks at the child's call record and deadlines
EXIT_POLL = 0.005      # ... once the child's end of the pipe has closed: it is ending
PR_SET_PDEATHSIG = 1
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_LENGTH = struct.Struct("=I")


def default_prefix():
    """The DPDK file prefix of a run that names none: the pid of the flowos-run the user started."""
    return f"flowos-{os.getpid()}"


def stop_bound(budget_s):
    """Seconds a data plane told to stop gets before it is killed: the watchdog's own bound (a
    stuck call is named and left) and KILL_MARGIN for the summary, --stats-json and the teardown."""
    return budget_s + watchdog.STOP_GRACE + watchdog.INTERRUPT_WAIT + KILL_MARGIN


def remove_leftovers(prefix, huge_dir=None, log_path=None):
    """Removes what the EAL of a dead process with file prefix `prefix` (a primary, or a process of
    its own) left on the machine: its runtime folder, its hugepage files (<huge dir>/<prefix>map_<n>:
    with --huge-unlink there are none), the /dev/shm entries of the prefix, and its DPDK log.
    Call it only once that process has ended. Returns the paths it removed."""
    removed = []
    folder = os.path.join(runtime_base(), prefix)
    if os.path.isdir(folder):
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    hugepage_file = re.compile(re.escape(prefix) + r"map_\d+")
    shm_entry = re.compile(re.escape(prefix) + r"(map_\d+|[._].*)?")
    places = [(d, hugepage_file) for d in {huge_dir, hugepages.probe().mount, hugepages.DEFAULT_MOUNT} if d]
    for directory, mine in places + [("/dev/shm", shm_entry)]:
        try:
            names = [name for name in os.listdir(directory) if mine.fullmatch(name)]
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            try:
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
                removed.append(path)
            except OSError:
                pass
    log_path = log_path or os.path.join(tempfile.gettempdir(), f"{prefix}.log")
    try:
        os.unlink(log_path)
        removed.append(log_path)
    except OSError:
        pass
    return removed


# --- the child's side ----------------------------------------------------------------------------

class Channel:
    """What the child tells its parent: pickled (kind, value) messages, each after its length."""

    def __init__(self, fd):
        self.fd = fd
        self.last_snapshot = 0.0

    def send(self, kind, value=None):
        data = pickle.dumps((kind, value))
        data = _LENGTH.pack(len(data)) + data
        while data:
            data = data[os.write(self.fd, data):]

    def watch(self, view):
        """The run's view (dashboard or quiet), which also sends the parent what started and the
        statistics every SNAPSHOT_EVERY seconds."""
        return ReportingView(view, self)

    def reported(self, report):
        """The summary and --stats-json are written: the child may end as it will (watchdog.verdict:
        with its worker left running, without DPDK's teardown, which the parent then finishes)."""
        self.send("reported", report.worker_left_running)


class ReportingView:
    def __init__(self, view, channel):
        self.view, self.channel = view, channel
        self.interval = view.interval

    def started(self, bridge):
        mem = bridge.memory
        self.channel.send("started", {
            "memory": (mem.mode, mem.reason, mem.memory_mb), "huge_dir": mem.huge_dir,
            "log_path": bridge.log_path, "burst": bridge.config.run.burst,
            "sources": [SourceReport(name, bridge.config.port(name).capture_source, info.packets, info.bytes, 0,
                                     info.damaged, info.truncated) for name, info in bridge.sources.items()]})
        self.channel.send("snapshot", bridge.snapshot())
        self.channel.last_snapshot = time.monotonic()
        self.view.started(bridge)

    def update(self, snapshot):
        self.view.update(snapshot)
        now = time.monotonic()
        if now - self.channel.last_snapshot >= SNAPSHOT_EVERY:
            self.channel.last_snapshot = now
            self.channel.send("snapshot", snapshot)

    def stopped(self):
        self.view.stopped()


def _child(box, write_fd, record, parent):
    """In the child: runs box(channel), then exits with its status through the interpreter's own
    exit (processors' atexit handlers, logging's last flush), as flowos-run did in one process.
    An exception escapes as it would have (a traceback, status 1): the parent reports it."""
    # The data plane ends with its parent, whatever kills the parent.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(EXIT_FAILED)
    from flowos.boundary import _engine
    _engine.record_calls(record)
    channel = Channel(write_fd)
    status = box(channel)
    channel.send("finished", status)
    raise SystemExit(status)


# --- the parent's side ---------------------------------------------------------------------------

def supervise(cfg, stats_path, box):
    """Runs box(channel) in a child process (the data plane) and returns flowos-run's exit status:
    the child's own when it ended as it meant to, else EXIT_CRASHED once the parent has written
    --stats-json, said what happened and removed what the child's EAL left. cfg: the finished
    Config (its file prefix is fixed here, so that both processes know it)."""
    cfg.eal.file_prefix = cfg.eal.file_prefix or default_prefix()
    record = mmap.mmap(-1, mmap.PAGESIZE)     # shared with the child (MAP_SHARED): one slot per engine
    read_fd, write_fd = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    parent = os.getpid()
    # Neither process may die of a SIGINT or SIGTERM before its own handlers are in place.
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        _child(box, write_fd, record, parent)
    os.close(write_fd)
    watch = Watch(cfg, pid, read_fd, record)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
    try:
        watch.run()
    finally:
        watch.restore()
        os.close(read_fd)
    if watch.ended_as_meant():
        if watch.left_running:     # the child reported it; what its EAL left goes now
            remove_leftovers(cfg.eal.file_prefix, *watch.leftover_hints())
        return os.waitstatus_to_exitcode(watch.status)
    return watch.report_crash(stats_path)


class Watch:
    """The parent: forwards SIGINT/SIGTERM, reads the child's messages, kills it when it does not
    end in time, and after an abnormal end writes what it knows."""

    def __init__(self, cfg, pid, read_fd, record):
        self.cfg, self.pid, self.fd, self.record = cfg, pid, read_fd, record
        self.bound = stop_bound(cfg.run.call_budget_ms / 1000)
        self.buffer = b""
        self.info = self.snapshot = None
        self.snapshot_at = None
        self.reported = self.finished = self.left_running = self.eof = False
        self.started_at = None          # when the child was first seen running (a message, or a call)
        self.stop_reason = None         # why the child was told to stop, if it was
        self.pending = []               # signals to forward once the child has started
        self.deadline = None            # when it is killed, once told to stop
        self.killed = False
        self.status = None
        self.ended_at = None
        os.set_blocking(self.fd, False)
        self.saved = {s: signal.signal(s, self._on_signal) for s in STOP_SIGNALS}
        self.saved[signal.SIGHUP] = signal.signal(signal.SIGHUP, self._on_hangup)

    def _on_hangup(self, signum, frame):
        """SIGHUP reloads the run's configuration (docs/reload.md): the child's to do. Before the
        run has its handlers in place (it would die of it) it is held, once, and forwarded when
        the run has started: the file may have changed since the run read it."""
        self.check_started()
        if self.started_at is not None:
            self._forward(signum)
        elif signum not in self.pending:
            self.pending.append(signum)

    def _on_signal(self, signum, frame):
        self.check_started()
        self.stop(f"signal ({signal.Signals(signum).name})")
        if self.started_at is None:
            self.pending.append(signum)     # before the run installs its handlers it would die of it
        else:
            self._forward(signum)

    def _forward(self, signum):
        try:
            os.kill(self.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, reason):
        self.stop_reason = self.stop_reason or reason
        bound = self.bound if self.started_at is not None else self.bound + START_GRACE
        deadline = time.monotonic() + bound
        self.deadline = deadline if self.deadline is None else min(self.deadline, deadline)

    def restore(self):
        for s, handler in self.saved.items():
            signal.signal(s, handler)

    def run(self):
        """Until the child has ended. Its end closes the pipe (EOF), unless a process it started
        holds the pipe too: then waitpid, every POLL, says it."""
        while True:
            if self.eof:
                time.sleep(EXIT_POLL)
            elif select.select([self.fd], [], [], POLL)[0]:
                self.read()
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            self.look()
        self.status, self.ended_at = status, time.monotonic()
        self.read()

    def check_started(self):
        """Whether the run has started (it said so, or a processor call is under way): its signal
        handlers are in place, the signals held for it go."""
        if self.started_at is None and (self.info is not None or self.calls()):
            self.started_at = time.monotonic()
            for signum in self.pending:
                self._forward(signum)
            self.pending = []

    def look(self):
        """Started? Past --duration or the stop deadline?"""
        self.check_started()
        now = time.monotonic()
        duration = self.cfg.run.duration
        if duration is not None and self.started_at is not None and self.stop_reason is None \
                and now >= self.started_at + duration:
            self.stop("duration")       # the child stops itself; this only starts the clock on it
            self.deadline = self.started_at + duration + self.bound
        if self.deadline is not None and now >= self.deadline and not self.killed:
            self.killed = True
            os.kill(self.pid, signal.SIGKILL)

    def read(self):
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not data:
                self.eof = True
                break
            self.buffer += data
        while len(self.buffer) >= _LENGTH.size:
            (length,) = _LENGTH.unpack_from(self.buffer)
            if len(self.buffer) < _LENGTH.size + length:
                break
            kind, value = pickle.loads(self.buffer[_LENGTH.size:_LENGTH.size + length])
            self.buffer = self.buffer[_LENGTH.size + length:]
            if kind == "started":
                self.info = value
            elif kind == "snapshot":
                self.snapshot, self.snapshot_at = value, time.monotonic()
            elif kind == "reported":
                self.reported, self.left_running = True, value
            elif kind == "finished":
                self.finished = True

    def leftover_hints(self):
        """remove_leftovers' huge_dir and log_path, as the child said."""
        info = self.info or {}
        return info.get("huge_dir"), info.get("log_path")

    def ended_as_meant(self):
        """The child exited by itself after its summary (or its error), not killed, not crashed."""
        return not self.killed and os.WIFEXITED(self.status) and (self.reported or self.finished)

    def calls(self):
        """The processor callbacks under way in the child (its last, if it is dead): [(worker,
        definition, processor, callback)], from the record its engines write."""
        found = []
        for worker, (value,) in enumerate(struct.iter_unpack("=Q", self.record)):
            if value:
                value -= 1
                found.append((worker, (value >> 16) & 0xffff, value & 0xffff, value >> 32))
        return found

    def name_calls(self):
        """The calls under way, named from the config: the order the engine added them in."""
        flows = self.cfg.flows or []
        named = []
        for worker, d, p, what in self.calls():
            procs = [spec for stage in flows[d].stages for spec in stage] if d < len(flows) else []
            spec = procs[p] if p < len(procs) else None
            name = None if spec is None else (spec.name if spec.python is None else
                                              f"{spec.python.__module__}:{spec.python.__qualname__}")
            named.append({"worker": worker, "flow_definition": flows[d].name if d < len(flows) else None,
                          "processor": name, "call": CALLBACKS[what] if what < len(CALLBACKS) else str(what)})
        return named

    def ending(self):
        """How the child ended, in words and as the "ended" section of --stats-json."""
        calls = self.name_calls()
        first = calls[0] if calls else {"processor": None, "call": None, "flow_definition": None, "worker": None}
        sig = os.WTERMSIG(self.status) if os.WIFSIGNALED(self.status) else None
        ended = {"how": "killed" if self.killed else "crashed",
                 "signal": signal.Signals(sig).name if sig is not None else None,
                 "exit_status": os.WEXITSTATUS(self.status) if os.WIFEXITED(self.status) else None,
                 **first, "calls": calls}
        if self.killed:
            what = (f"did not end within {self.bound:.1f} s of being told to stop ({self.stop_reason}) "
                    "and was killed")
        elif sig is not None:
            what = f"was killed by {ended['signal']}"
        else:
            what = f"exited with status {ended['exit_status']} without finishing the run"
        if first["processor"] is not None:
            where = (f"while in processor {first['processor']}, {first['call']}() (flow definition "
                     f"{first['flow_definition']}, worker {first['worker']})")
            if len(calls) > 1:
                where += "; also under way: " + ", ".join(f"{c['processor']} {c['call']}() (worker {c['worker']})"
                                                          for c in calls[1:])
        else:
            where = "while in no processor call"
        return ended, f"the data plane (process {self.pid}) {what} {where}"

    def lost(self):
        """What the last snapshot cannot say, in words."""
        if self.snapshot is None:
            return "every statistic: the data plane ended before it sent any"
        parts = [f"the last {self.ended_at - self.snapshot_at:.1f} s of the run (the statistics are its last "
                 f"snapshot, at {self.snapshot.elapsed:.1f} s)"]
        if self.snapshot.engine is not None:
            flows = self.snapshot.engine.get("flows_active", 0)
            parts.append(f"the end of its {flows} active flow{'' if flows == 1 else 's'} "
                         "(no flow_end, no teardown) and the processors' own reports")
        parts.append(f"the {self.snapshot.pool_in_use} mbufs in use then (freed with the process)")
        return "; ".join(parts)

    def report(self, ended):
        """A RunReport from the last snapshot (empty if none came)."""
        info, snap = self.info or {}, self.snapshot
        mode, reason, memory_mb = info.get("memory", (None, None, None))
        ports = snap.ports if snap else []
        sources = []
        for s in info.get("sources", []):
            s.received = next((p.rx_packets for p in ports if p.name == s.port), 0)
            sources.append(s)
        engine = None
        if snap is not None and snap.engine is not None:
            engine = {"stats": snap.engine, "flows": snap.processors}
        return RunReport(mode, reason, memory_mb, self.cfg.eal.file_prefix, snap.elapsed if snap else 0.0,
                         self.stop_reason or ("killed" if self.killed else "crash"), ports,
                         snap.pool_size if snap else 0, snap.pool_in_use if snap else 0, sources, engine,
                         burst=info.get("burst", 0), workers=snap.workers if snap else [], ended=ended)

    def report_crash(self, stats_path):
        """After an abnormal end: the leftovers go, --stats-json is written, the paragraph said."""
        ended, text = self.ending()
        removed = remove_leftovers(self.cfg.eal.file_prefix, *self.leftover_hints())
        ended["lost"] = self.lost()
        ended["removed"] = removed
        ended["text"] = text
        if sys.stdout.isatty():
            sys.stdout.write("\x1b[?25h\n")     # the dashboard's cursor, hidden while it ran
        sys.stdout.flush()
        said = f"flowos-run: error: {text}. "
        if self.reported:
            said += "It had written its summary and statistics. "
        elif stats_path:
            self.report(ended).write_json(stats_path)
            said += f"{stats_path} has what it last sent; lost: {ended['lost']}. "
        else:
            said += f"Lost: {ended['lost']}. "
        said += (f"Removed what its DPDK left: {', '.join(removed)}." if removed else "Its DPDK left nothing behind.")
        print(said, file=sys.stderr, flush=True)
        return EXIT_CRASHED
