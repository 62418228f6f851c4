"""Processors that fail in each way a processor can: FlowOS must count the fault, show its
traceback once, apply on_error, and never lose or leak a packet."""
import time

import flowos

from pyprocs import save


class Boom(RuntimeError):
    pass


class Raise(flowos.Processor):
    """Raises Boom in the hook named by `where` (process, setup, flow_end or teardown); in
    teardown it first writes to `out` that teardown ran."""

    def __init__(self, where="process", out=None):
        super().__init__()
        if where not in ("process", "setup", "flow_end", "teardown"):
            raise ValueError(f"where: no hook {where!r}")
        self.where, self.out = where, out

    def setup(self, context):
        if self.where == "setup":
            raise Boom("pyprocs setup failed on purpose")

    def process(self, batch):
        if self.where == "process":
            raise Boom("pyprocs process failed on purpose")

    def flow_end(self, flow, reason):
        if self.where == "flow_end":
            raise Boom("pyprocs flow_end failed on purpose")

    def teardown(self):
        save(self.out, {"teardown": True})
        if self.where == "teardown":
            raise Boom("pyprocs teardown failed on purpose")


class RaiseStop(Raise):
    """Raise in process, with on_error = stop as its class's policy."""
    on_error = "stop"


class WrongReturn(flowos.Processor):
    """Returns what process() must not: a non-sequence, too few or too many verdicts, or a
    verdict out of range (in the returned list, or written into batch.verdicts)."""

    def __init__(self, kind="int"):
        super().__init__()
        self.kind = kind

    def process(self, batch):
        n = len(batch)
        if self.kind == "int":
            return 42
        if self.kind == "short":
            return [0] * (n - 1)
        if self.kind == "long":
            return [0] * (n + 1)
        if self.kind == "range-list":
            return [0] * (n - 1) + [9]
        if self.kind == "range-array":
            batch.verdicts[n - 1] = 7
            return None
        if self.kind == "negative":
            return [-1] * n
        # Per-packet helpers given the index one past the batch: each must raise IndexError.
        if self.kind == "index-set_ttl":
            batch.set_ttl(n, 1)
        if self.kind == "index-inject":
            batch.inject(n, b"\0" * 60)
        if self.kind == "index-redirect":
            batch.redirect(n, 0)
        if self.kind == "index-write":
            batch.write(n, 0, b"x")
        raise ValueError(self.kind)


class Strict(flowos.Processor):
    """Takes one parameter, `threshold`, an integer in 1..100, and rejects anything else."""

    def __init__(self, threshold=10):
        super().__init__()
        if isinstance(threshold, bool) or not isinstance(threshold, int) or not 1 <= threshold <= 100:
            raise ValueError(f"threshold must be an integer in 1..100, got {threshold!r}")
        self.threshold = threshold

    def process(self, batch):
        pass


class NotAProcessor:
    """Has a process() method, but does not subclass flowos.Processor."""

    def process(self, batch):
        pass


not_a_class = 42


class Slow(flowos.Processor):
    """Sleeps `ms` milliseconds in every call (the GIL released meanwhile, as time.sleep does)."""

    def __init__(self, ms=50):
        super().__init__()
        self.seconds = ms / 1000

    def process(self, batch):
        time.sleep(self.seconds)


class KeepPacket(flowos.Processor):
    """Keeps a Packet view, a Flow and the Batch of each call and tries them in the next call:
    each use must raise RuntimeError. Records what each try did."""

    def __init__(self, out=None):
        super().__init__()
        self.out = out
        self.kept = None
        self.tries = {}

    def _try(self, name, use):
        try:
            use()
            outcome = "no error"
        except RuntimeError:
            outcome = "RuntimeError"
        except Exception as e:   # noqa: BLE001 - recorded for the test to see
            outcome = type(e).__name__
        self.tries.setdefault(name, {}).setdefault(outcome, 0)
        self.tries[name][outcome] += 1

    def process(self, batch):
        if self.kept is not None:
            packet, flow, old = self.kept
            self._try("packet.len", lambda: len(packet))
            self._try("packet.tobytes", lambda: packet.tobytes())
            self._try("packet[0]", lambda: packet[0])
            self._try("memoryview(packet)", lambda: memoryview(packet))
            self._try("batch.packet", lambda: old.packet(0))
            self._try("batch.flows", lambda: old.flows())
            self._try("batch.proto", lambda: old.proto)
            self._try("batch.drop", lambda: old.drop(0))
            self._try("flow.state", lambda: flow.state)
            self._try("flow.sport", lambda: flow.sport)
            self._try("flow.src", lambda: flow.src)
        self.kept = (batch.packet(0), batch.flows()[0], batch)

    def teardown(self):
        self.kept = None
        save(self.out, self.tries)


class KeepMemoryview(flowos.Processor):
    """Keeps a memoryview of a packet's bytes past process() (never reads it afterwards)."""

    def __init__(self):
        super().__init__()
        self.views = []

    def process(self, batch):
        self.views.append(memoryview(batch.packet(0)))


class ReleaseMemoryview(flowos.Processor):
    """Reads packets through memoryviews and releases them before returning: no fault."""

    def process(self, batch):
        for i in range(len(batch)):
            with memoryview(batch.packet(i)) as m:
                if m[12] == 0xFF and m.nbytes == 0:   # read it; never true
                    batch.drop(i)


class Writer(flowos.Processor):
    """A processor that says it changes packets (readonly = False), and changes nothing."""
    readonly = False

    def process(self, batch):
        pass


class Misuse(flowos.Processor):
    """Does one thing to the batch that the API refuses (`kind`), in every call: each must raise
    in process(), a fault under on_error, and leave the batch's arrays as they were. Before the
    fixes, the verdict resizes crashed the box or went uncounted, and the injects and writes
    sent short or zeroed frames."""

    def __init__(self, kind="del-verdicts"):
        super().__init__()
        self.kind = kind

    def process(self, batch):
        v = batch.verdicts
        if self.kind == "del-verdicts":
            del v[:]
        elif self.kind == "pop-verdicts":
            v.pop()
        elif self.kind == "shrink-verdicts":
            v[:] = v[:-1]
        elif self.kind == "grow-verdicts":
            v.append(0)
        elif self.kind == "repeat-verdicts":
            v *= 0
        elif self.kind == "lying-return":
            return LyingLength(len(batch))
        elif self.kind == "inject-empty":
            batch.inject(0, b"")
        elif self.kind == "inject-short":
            batch.inject(0, b"\xff" * 13)
        elif self.kind == "inject-int":
            batch.inject(0, 60)
        elif self.kind == "write-int":
            batch.write(0, 0, 6)
        else:
            raise ValueError(self.kind)


class LyingLength:
    """Says it holds n verdicts, yields one fewer."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __iter__(self):
        return iter([0] * (self.n - 1))


class KeepViewTillExit(flowos.Processor):
    """Keeps a memoryview of a packet's bytes and one of a stream's past the run, and reads them
    when the interpreter exits (after the EAL gave its memory back); writes what it read to `out`."""
    level = "payload"

    def __init__(self, out=None):
        super().__init__()
        self.out = out
        self.views = []

    def setup(self, context):
        import atexit
        atexit.register(self.read_late)

    def process(self, batch):
        if not self.views:
            self.views = [memoryview(batch.packet(0)), batch.flows()[0].stream(0).view()]

    def read_late(self):
        save(self.out, {"read": [bytes(v).hex() for v in self.views]})


class StreamMisuse(flowos.Processor):
    """Passes an int where a stream method takes bytes (`kind`: replace, insert, find,
    startswith), on the longer stream of each call's first flow: each must raise TypeError, not
    write or look for that many zero bytes."""
    level = "payload"
    readonly = False

    def __init__(self, kind="replace"):
        super().__init__()
        self.kind = kind

    def process(self, batch):
        s = max(batch.flows()[0].streams(), key=len)
        if self.kind == "replace":
            s.replace(s.start, 1)
        elif self.kind == "insert":
            s.insert(s.start, 1)
        elif self.kind == "find":
            s.find(1)
        elif self.kind == "startswith":
            s.startswith(1)
        else:
            raise ValueError(self.kind)
