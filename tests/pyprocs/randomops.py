"""A processor that runs a script of operations on every batch it is handed, the way a careless
or hostile processor would: verdict writes in and out of range, every way to resize the
verdicts, injects of any length and type, writes past the end, views and objects kept past the
call, stream reads anywhere, exceptions. tests/test_python_batch_props.py has hypothesis write
the scripts and checks that the box survives each one.

A script is a JSON list of [op, a, b, flag]: op names a method below, a and b are integers that
the op maps onto what it needs (an index, a length, a value), flag picks a variant. Index-like
integers stay mostly in range: a in 0..999 is a % len(batch), a < 0 stays negative (refused),
a >= 1000 is len(batch) + a - 1000 (past the end, refused).

The processor checks what the API promises from inside (batch.verdicts keeps its length, a
refused operation raises, an object kept from an earlier call raises RuntimeError) and writes
what broke it, with the faults its calls should have cost, to `out` at teardown."""
import array

import flowos

from pyprocs import save
from pyprocs.faults import LyingLength

ETHER_HEADER = 14
VERDICTS = 5          # pass, drop, hold, modified, redirect
FIELDS = ("length", "proto", "sport", "dport", "tcp_flags", "ttl", "dir", "payload_len", "src4", "dst4",
          "src", "dst")


class Refused(Exception):
    """What an op expected to be refused and was not."""


class Script(flowos.Processor):
    readonly = False

    def __init__(self, script, out, level="l2"):
        super().__init__()
        import json
        with open(script) as f:
            self.ops = [tuple(op) for op in json.load(f)]
        unknown = {op for op, *_ in self.ops} - {name[3:] for name in dir(self) if name.startswith("op_")}
        if unknown:
            raise ValueError(f"script: no op {sorted(unknown)}")
        self.level, self.out = level, out
        self.calls = self.expected_faults = 0
        self.failed_packets = 0             # the packets of calls that raised or returned wrong
        self.injected = []                  # the frames injected, as hex (the first 200)
        self.injects = 0
        self.violations = []
        self.kept = []                      # Packets, Flows, Streams, Batches of earlier calls
        self.kept_views = []                # memoryviews of packet bytes kept past their call
        self.verdict_views = []             # memoryviews of earlier calls' verdicts

    # -- the call: every op, then the verdicts or a returned result ---------------------------

    def process(self, batch):
        self.calls += 1
        self.batch, self.n, self.result = batch, len(batch), None
        self.new_views = []                 # views of this call's packet bytes: (view, kept)
        try:
            for op, a, b, flag in self.ops:
                try:
                    getattr(self, "op_" + op)(a, b, flag)
                except Escape:
                    raise
                except Refused as e:
                    self.violate(f"{op}({a}, {b}, {flag}): {e}")
                except Exception:   # noqa: BLE001 - refused, as it may be: the op goes on
                    pass
                if len(batch.verdicts) != self.n:
                    self.violate(f"{op}({a}, {b}, {flag}): batch.verdicts has {len(batch.verdicts)} items, "
                                 f"the batch {self.n} packets")
            failed = not self.result_ok(batch)
            self.expected_faults += failed
            self.failed_packets += self.n if failed else 0
            return self.result
        except Escape:
            self.expected_faults += 1
            self.failed_packets += self.n
            raise
        finally:
            for view, kept in self.new_views:
                if not kept:
                    view.release()
            self.expected_faults += any(kept and alive(view) for view, kept in self.new_views)
            self.batch = None

    def result_ok(self, batch):
        """Whether what process() returns (or leaves in batch.verdicts) is one verdict per packet."""
        r = self.result
        if r is None:
            return all(v < VERDICTS for v in batch.verdicts)
        try:
            return len(r) == self.n and len(list(r)) == self.n and all(0 <= v < VERDICTS for v in r)
        except TypeError:
            return False

    def violate(self, what):
        if len(self.violations) < 20:
            self.violations.append(f"call {self.calls}: {what}")

    def index(self, a):
        if a < 0:
            return a
        return a % self.n if a < 1000 else self.n + a - 1000

    def must_raise(self, what, call, *args):
        try:
            call(*args)
        except Exception:   # noqa: BLE001 - any exception is a refusal
            return
        raise Refused(f"{what} was not refused")

    def teardown(self):
        save(self.out, {"calls": self.calls, "expected_faults": self.expected_faults, "injects": self.injects,
                        "injected": self.injected, "violations": self.violations,
                        "failed_packets": self.failed_packets})
        self.kept = self.kept_views = self.verdict_views = []

    # -- verdicts ----------------------------------------------------------------------------

    def op_set(self, a, b, flag):
        self.batch.verdicts[self.index(a)] = b % 7          # 5 and 6 are out of range: a fault

    def op_set_slice(self, a, b, flag):
        i, j = sorted((a % (self.n + 1), b % (self.n + 1)))
        values = array.array("B", [b % VERDICTS] * (j - i + (1 if flag else 0)))
        if flag:                                            # one too many: a resize, refused
            self.must_raise("a slice assignment of another length", self.batch.verdicts.__setitem__,
                            slice(i, j), values)
        else:
            self.batch.verdicts[i:j] = values

    def op_resize(self, a, b, flag):
        v, kind = self.batch.verdicts, a % 9
        if kind == 0:
            self.must_raise("del verdicts[:]", v.__delitem__, slice(None))
        elif kind == 1:
            self.must_raise("verdicts.pop()", v.pop)
        elif kind == 2:
            self.must_raise("verdicts.append()", v.append, 0)
        elif kind == 3:
            self.must_raise("verdicts.extend()", v.extend, bytes(1 + b % 3))
        elif kind == 4:
            self.must_raise("verdicts.insert()", v.insert, 0, 0)
        elif kind == 5:
            self.must_raise("verdicts.remove()", v.remove, b % VERDICTS)
        elif kind == 6:
            self.must_raise("verdicts *= 0", v.__imul__, 0)
        elif kind == 7:
            self.must_raise("verdicts.frombytes()", v.frombytes, b"\0")
        else:
            self.must_raise("del verdicts[i]", v.__delitem__, self.index(b))

    def op_verdict_view(self, a, b, flag):
        """Writes through a memoryview of the verdicts; with flag keeps it (harmless: the next
        call gets another array), and writes through the views kept from earlier calls."""
        m = memoryview(self.batch.verdicts)
        if len(m) != self.n:
            raise Refused(f"a view of the verdicts has {len(m)} items")
        m[self.index(a)] = b % VERDICTS
        for old in self.verdict_views:
            if len(old):
                old[0] = 6
        if flag:
            self.verdict_views.append(m)
        else:
            m.release()

    def op_helpers(self, a, b, flag):
        i, kind = self.index(a), b % 3
        if kind == 0:
            self.batch.drop(i)
        elif kind == 1:
            self.batch.hold(i)
        else:
            self.batch.redirect(i, b % 70000)               # past 65535: refused; no such port: counted

    def op_return(self, a, b, flag):
        kind = a % 5
        if kind == 0:
            self.result = None
        elif kind == 1:
            self.result = [b % (VERDICTS + 2 if flag else VERDICTS)] * self.n
        elif kind == 2:
            self.result = [0] * max(self.n + (b % 3) - 1, 0)
        elif kind == 3:
            self.result = b
        else:
            self.result = LyingLength(self.n)

    # -- packets -----------------------------------------------------------------------------

    def op_inject(self, a, b, flag):
        i, length = self.index(a), b % 2300
        if b % 11 == 0:
            self.must_raise("inject(i, int)", self.batch.inject, i, length)
            return
        base = self.batch.packet(a % self.n).tobytes()
        frame = (base * (length // max(len(base), 1) + 1))[:length]
        if length < ETHER_HEADER:
            self.must_raise(f"inject of a {length}-byte frame", self.batch.inject, i, frame)
            return
        self.batch.inject(i, frame, flag)
        self.injects += 1
        if len(self.injected) < 200:
            self.injected.append(frame.hex())

    def op_write(self, a, b, flag):
        i, offset = self.index(a), b % 1600
        data = b"\x5a" * (1 + a % 4)
        if flag:
            self.must_raise("write(i, offset, int)", self.batch.write, i, offset, len(data))
            return
        p = self.batch.packet(i)
        if offset + len(data) > len(p.tobytes()):
            self.must_raise("a write past the packet's end", self.batch.write, i, offset, data)
        else:
            self.batch.write(i, offset, data)

    def op_ttl(self, a, b, flag):
        self.batch.set_ttl(self.index(a), b % 300)          # past 255: refused

    def op_packet(self, a, b, flag):
        p = self.batch.packet(self.index(a))
        data = p.tobytes()
        if len(p) < len(data):
            raise Refused(f"len(packet) {len(p)} < its {len(data)} bytes")
        j = b % (len(data) + 3) - 1                         # -1 and past the end too
        p[j]
        p[j:j + 5]
        p.find(b"\x00", b % 100)
        if flag:
            self.kept.append((self.calls, p))

    def op_view(self, a, b, flag):
        m = memoryview(self.batch.packet(self.index(a)))
        self.new_views.append((m, flag))
        m[b % max(len(m), 1)] if len(m) else None
        m[b % 7:b % 7 + 9].tobytes()
        if flag:
            self.kept_views.append(m)

    def op_fields(self, a, b, flag):
        name = FIELDS[a % len(FIELDS)]
        values = getattr(self.batch, name)
        width = 16 if name in ("src", "dst") else 1
        if len(values) != width * self.n:
            raise Refused(f"batch.{name} has {len(values)} items for {self.n} packets")
        if flag:
            del values[:]                                   # a copy: it may do what it likes
            values.extend(range(b % 5))

    def op_flows(self, a, b, flag):
        flows = self.batch.flows()
        if sum(len(f.packets) for f in flows) != self.n:
            raise Refused("the flows' packets are not the batch's")
        f = flows[a % len(flows)]
        f.src, f.dst, f.sport, f.dport, f.proto, f.id, f.counts
        f.state = None if b % 3 == 0 else [b, f.state]
        if flag:
            self.kept.append((self.calls, f))

    # -- streams -----------------------------------------------------------------------------

    def stream(self, a, b):
        flows = self.batch.flows()
        return flows[a % len(flows)].stream(b % 2)

    def op_stream_read(self, a, b, flag):
        s = self.stream(a, b)
        off = s.start + (a % 3000) - 3                      # a few before the start: refused
        n = b % 3000 - 2                                    # negative: refused
        data = s.read(off, n)
        if len(data) > max(n, 0):
            raise Refused(f"read({off}, {n}) gave {len(data)} bytes")
        s[off:off + abs(n)]
        s.readline(max(off, s.start))
        s.startswith(b"GET", off)
        s.packets()
        s.partial_at(b"\r\n\r\n")
        len(s), s.end
        if flag:
            self.kept.append((self.calls, s))

    def op_stream_find(self, a, b, flag):
        s = self.stream(a, b)
        pattern = bytes([a % 256]) * (b % 5000)             # past 4096: found nowhere
        s.find(pattern, s.start + a % 200, None if flag else s.start + b % 3000)
        s.find(b"HTTP", s.end + b % 5)

    def op_stream_view(self, a, b, flag):
        s = self.stream(a, b)
        m = s.view(s.start + a % 2000)
        self.new_views.append((m, flag))
        len(m) and m[0]
        if flag:
            self.kept_views.append(m)

    def op_stream_edit(self, a, b, flag):
        """Replaces, deletes or inserts a few bytes; inserts only into packets with room left
        (growing a packet past one mbuf is another issue's test)."""
        s = self.stream(a, b)
        off = s.start + a % 1500
        kind = b % 3
        if kind == 0:
            s.replace(off, b"\x7e" * (1 + b % 8))
        elif kind == 1:
            s.delete(off, 1 + b % 8)
        elif any(start <= off < start + length and length < 1200 for start, _, length in s.packets()):
            s.insert(off, b"\x7e" * (1 + b % 16))

    def op_stream_release(self, a, b, flag):
        s = self.stream(a, b)
        s.release(s.start + a % 3000)

    # -- what was kept, and raising ---------------------------------------------------------

    def op_old(self, a, b, flag):
        """Uses what earlier calls kept: objects must raise RuntimeError; a kept view reads stale
        bytes of mapped memory (a fault when it was kept, never a crash)."""
        for call, obj in self.kept[-5:]:
            if call == self.calls:
                continue
            use = {"Packet": lambda p: p.tobytes(), "Flow": lambda f: f.state,
                   "Stream": lambda s: s.read()}[type(obj).__name__]
            try:
                use(obj)
            except RuntimeError:
                continue
            raise Refused(f"a {type(obj).__name__} kept from an earlier call was usable")
        for m in self.kept_views[-5:]:
            if len(m):
                m[b % len(m)]
        if flag and self.kept_views:
            self.kept_views.pop(0).release()

    def op_raise(self, a, b, flag):
        if flag:
            raise Escape(f"op_raise({a}, {b})")
        raise ValueError("caught by the script")


def alive(view):
    """Whether a memoryview has not been released."""
    try:
        view.nbytes
    except ValueError:
        return False
    return True


class Escape(Exception):
    """Raised out of process() on purpose: one fault."""
