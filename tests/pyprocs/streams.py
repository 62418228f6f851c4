"""Payload-level processors over the stream API, for the stream tests (tests/test_streams.py)."""
import json

import flowos


def flow_name(flow):
    return f"{flow.proto} {flow.src} {flow.sport} {flow.dst} {flow.dport}"


def spans_packets(stream, off, length):
    """Whether [off, off + length) of the stream lies in more than one packet."""
    starts = [o for o, _, _ in stream.packets()]
    return any(off < o < off + length for o in starts)


class Recorder(flowos.Processor):
    """Writes every flow's two streams, as it saw them, to a JSON file at teardown; checks that
    each call's window starts where the last one ended."""
    level = "payload"

    def __init__(self, path):
        super().__init__()
        self.path = str(path)
        self.seen = {}

    def process(self, batch):
        for flow in batch.flows():
            rec = self.seen.setdefault(flow_name(flow), [bytearray(), bytearray(), []])
            for s in flow.streams():
                if s.start != len(rec[s.dir]):
                    rec[2].append(f"dir {s.dir}: window starts at {s.start}, {len(rec[s.dir])} seen")
                rec[s.dir] += s.read()

    def teardown(self):
        out = {k: [v[0].hex(), v[1].hex(), v[2]] for k, v in self.seen.items()}
        with open(self.path, "w") as f:
            json.dump(out, f)


class Finder(flowos.Processor):
    """Records the stream offsets of a pattern (read-only): holds back a possible start of it at
    the window's end, so that a pattern split across packets is found once its end arrives."""
    level = "payload"

    def __init__(self, path, pattern, dir=1):
        super().__init__()
        self.path, self.pattern, self.dir = str(path), pattern.encode(), int(dir)
        self.found = {}
        self.spanning = 0   # matches that started in one packet and ended in another

    def process(self, batch):
        for flow in batch.flows():
            s = flow.stream(self.dir)
            at = s.start if flow.state is None else max(flow.state, s.start)
            while (hit := s.find(self.pattern, at)) >= 0:
                self.found.setdefault(flow_name(flow), []).append(hit)
                self.spanning += spans_packets(s, hit, len(self.pattern))
                at = hit + 1
            flow.state = at
            s.release(s.partial_at(self.pattern))

    def teardown(self):
        with open(self.path, "w") as f:
            json.dump({"found": self.found, "spanning": self.spanning}, f)


class Rewriter(flowos.Processor):
    """Replaces every `old` with `new` (any lengths) in one direction's stream; holds back a
    possible start of `old` at the window's end."""
    level = "payload"
    readonly = False

    def __init__(self, old, new, dir=1):
        super().__init__()
        self.old, self.new, self.dir = old.encode(), new.encode(), int(dir)
        self.replaced = 0

    def process(self, batch):
        for flow in batch.flows():
            s = flow.stream(self.dir)
            at = s.start if flow.state is None else max(flow.state, s.start)
            while (hit := s.find(self.old, at)) >= 0:
                s.delete(hit, len(self.old))
                s.insert(hit, self.new)
                self.replaced += 1
                at = hit + len(self.new)
            flow.state = at
            s.release(s.partial_at(self.old))

    def on_message(self, message):
        return str(self.replaced)


class Probe(flowos.Processor):
    """Exercises the Stream API on direction 0 and writes what it saw, call by call, to `path`:
    on the first call it only reads (and holds everything); on the second it edits across the
    packets it holds, then releases all."""
    level = "payload"
    readonly = False

    def __init__(self, path):
        super().__init__()
        self.path, self.calls, self.kept = str(path), [], None

    def process(self, batch):
        for flow in batch.flows():
            if flow.proto != 6:
                continue
            s = flow.stream(0)
            call = {"start": s.start, "end": s.end, "len": len(s), "packets": [[o, n] for o, _, n in s.packets()],
                    "all": s.read().decode(), "line": (s.readline() or b"").decode(),
                    "header_end": s.find(b"\r\n\r\n"), "get": s.startswith(b"GET "), "slice": s[s.start:s.start + 3].decode(),
                    "view": bytes(s.view(s.start)).decode(), "partial": s.partial_at(b"tail-end")}
            try:
                s.read(max(s.start - 1, 0), 1)
                call["read_released"] = "no error"
            except IndexError:
                call["read_released"] = "IndexError"
            self.kept = s
            if len(self.calls) == 0:
                s.release(s.start)          # hold it all for the next call
            else:
                s.insert(s.start + 4, b"XYZ")
                host = s.find(b"Host")
                s.delete(host, len(b"Host: x\r\n"))
                s.replace(s.start, b"PUT")
                s.insert(s.end, b"!")
                call["edited"] = s.read().decode()
            self.calls.append(call)

    def teardown(self):
        try:
            self.kept.start
            stale = "no error"
        except RuntimeError:
            stale = "RuntimeError"
        with open(self.path, "w") as f:
            json.dump({"calls": self.calls, "stale": stale}, f)


class Shortener(flowos.Processor):
    """Deletes the first byte of each flow's stream from its opener (or, with overwrite, writes
    `#` over it); records per flow what can_change_length said and what the edit returned."""
    level = "payload"

    def __init__(self, path, overwrite=False):
        super().__init__()
        self.path, self.overwrite = str(path), bool(overwrite)
        self.seen = {}

    def process(self, batch):
        for flow in batch.flows():
            s = flow.stream(0)
            if len(s) > 0:
                made = s.replace(s.start, b"#") if self.overwrite else s.delete(s.start, 1)
                self.seen.setdefault(flow_name(flow), []).append([s.can_change_length, made])
            s.release(s.end)

    def teardown(self):
        with open(self.path, "w") as f:
            json.dump(self.seen, f)
