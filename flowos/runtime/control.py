"""Operator control: FlowOS's commands and their answers, on FlowOS's own control socket
(flowos.runtime.control_server, what flowos-ctl uses) and on DPDK's telemetry socket (for DPDK's tools).

DPDK 22.11's telemetry replies hold one dict whose values are strings (at most 127 bytes),
integers, or arrays of either: no nested dicts, at most 256 entries, and at most 16 KB of
JSON in all (what does not fit is dropped silently). So an answer is built as a nested tree,
flattened into "a/b/0/c" keys (flatten), and put back together by flowos-ctl (unflatten).
What does not fit is cut and flagged: a string cut to 127 bytes is listed under "cut", and an
answer with entries left out says "truncated": 1. A message's reply comes back split in chunks
of at most 127 bytes ("reply"), which flowos-ctl joins. Strings go out as printable ASCII, with
backslash escapes for the rest (see escape()), which flowos-ctl undoes.
"""
import json
import os
import re
from dataclasses import asdict

from flowos.errors import FlowOSError
from flowos.runtime.shards import add_up, worker_rows

COMMANDS = {
    "/flowos/stats": "FlowOS run: ports, pool, flow engine counters. Takes no parameters",
    "/flowos/flows": "FlowOS live flows with the most bytes. Parameter: how many (default 20, at most 20)",
    "/flowos/processors": "FlowOS processors: id, name, tier, flow, stage, calls, faults. Takes no parameters",
    "/flowos/message": "Sends a message to a FlowOS processor. Parameters: processor (id or name),text",
    "/flowos/reload": "Reloads FlowOS's flows (docs/reload.md). Parameter: JSON {path, migrate}",
    "/flowos/attach": "Attaches a processor or a flow definition (docs/reload.md). Parameter: JSON",
    "/flowos/detach": "Detaches a processor or a flow definition (docs/reload.md). Parameter: JSON",
}
SOCKET_NAME = "dpdk_telemetry.v2"
MAX_STRING = 127          # bytes: RTE_TEL_MAX_STRING_LEN less its NUL
MAX_ENTRIES = 255         # RTE_TEL_MAX_DICT_ENTRIES, less one for "truncated"
MAX_OUTPUT = 15000        # of the 16384 bytes a reply may take, with room for the command's own wrapping
MAX_FLOWS = 20            # 11 entries each: what fits in the 256 entries of a reply
MAX_REPLY = 12000         # bytes of a processor's reply sent back
TIMEOUT_MS = 2000         # for the worker to answer


def escape(text):
    """Printable ASCII only: 22.11's JSON writer escapes quotes, backslashes and control
    characters, but turns bytes >= 0x80 into invalid escapes. Backslash escapes (Python's
    unicode_escape: \\\\, \\n, \\xe9, \\u65e5) keep it reversible: flowos-ctl undoes them."""
    return text.encode("unicode_escape").decode("ascii")


def unescape(text):
    try:
        return text.encode("ascii", "backslashreplace").decode("unicode_escape")
    except UnicodeDecodeError:    # an escape cut in two at the end of a string
        return text


def chunks(text, limit=MAX_STRING):
    """text escaped, in pieces of at most `limit` bytes, none splitting an escape."""
    out, piece, size = [], [], 0
    for ch in text:
        e = escape(ch)
        if size + len(e) > limit:
            out.append("".join(piece))
            piece, size = [], 0
        piece.append(e)
        size += len(e)
    if piece:
        out.append("".join(piece))
    return out


def cut(text, limit=MAX_STRING):
    """text escaped, at most `limit` bytes (at an escape's boundary); and whether it was cut."""
    pieces = chunks(text, limit)
    return (pieces[0] if pieces else ""), len(pieces) > 1


class Chunks(list):
    """A string already escaped and split by chunks(): sent as an array of strings as it is."""


def _key(k):
    return re.sub(r"[^A-Za-z0-9_]", "_", str(k)) or "_"


def flatten(tree):
    """A nested dict as one telemetry dict: keys joined by "/", lists of dicts by index, lists of
    scalars as arrays; None left out; strings cut (and listed under "cut"); entries past the
    limits left out ("truncated": 1)."""
    flat, cuts = {}, []
    size = 2

    def put(path, value, raw=False):
        nonlocal size
        if isinstance(value, list):
            value = [v if raw else scalar(path, v) for v in value]
        else:
            value = scalar(path, value)
        cost = len(json.dumps({path: value})) - 1
        if len(flat) >= MAX_ENTRIES - 1 or size + cost > MAX_OUTPUT:
            flat["truncated"] = 1
            return False
        flat[path] = value
        size += cost
        return True

    def scalar(path, value):
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, int):
            return value
        if isinstance(value, float):
            return int(value)
        text, was_cut = cut(str(value))
        if was_cut and path not in cuts:
            cuts.append(path)
        return text

    def walk(path, value):
        if value is None:
            return True
        if isinstance(value, Chunks):
            return put(path, list(value), raw=True)
        if isinstance(value, dict):
            return all(walk(f"{path}/{_key(k)}" if path else _key(k), v) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            if all(not isinstance(v, (dict, list, tuple)) and v is not None for v in value):
                return put(path, list(value))
            return all(walk(f"{path}/{i}", v) for i, v in enumerate(value))
        return put(path, value)

    walk("", tree)
    if cuts:
        flat["cut"] = cuts[:32]
    return flat


def unflatten(flat):
    """flatten's inverse (but for what it cut): "a/0/b" keys back into nested dicts and lists."""
    root = {}
    for key, value in flat.items():
        parts = key.split("/")
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                break
        else:
            node[parts[-1]] = unescape(value) if isinstance(value, str) else \
                [unescape(v) if isinstance(v, str) else v for v in value] if isinstance(value, list) else value

    def lists(node):
        if not isinstance(node, dict):
            return node
        node = {k: lists(v) for k, v in node.items()}
        if node and all(k.isdigit() for k in node) and sorted(map(int, node)) == list(range(len(node))):
            return [node[str(i)] for i in range(len(node))]
        return node
    return lists(root)


class Commands:
    """Answers the telemetry commands for a running Bridge (on DPDK's telemetry thread, with the GIL)."""

    def __init__(self, bridge, control):
        self.bridge = bridge
        self.control = control     # flowos.boundary._control.Control, or None without a flow engine

    def handle(self, command, params, timeout_ms=None):
        """The flat answer to a command; timeout_ms: how long the worker may take (TIMEOUT_MS by default)."""
        timeout_ms = timeout_ms or TIMEOUT_MS
        with self.bridge.reloader.lock:    # a reload (SIGHUP's, on the main thread) is done or not begun
            return flatten(self._answer(command, params, timeout_ms))

    def _answer(self, command, params, timeout_ms):
        try:
            if command == "/flowos/stats":
                answer = self.stats()
            elif command == "/flowos/flows":
                answer = self.flows(params, timeout_ms)
            elif command == "/flowos/processors":
                answer = self.processors()
            elif command == "/flowos/message":
                answer = self.message(params, timeout_ms)
            elif command in ("/flowos/reload", "/flowos/attach", "/flowos/detach"):
                try:
                    answer = self.change(command.rsplit("/", 1)[1], params)
                except (FlowOSError, ValueError) as e:   # why, whole: a path and a key may take more than a string holds
                    answer = {"error": Chunks(chunks(str(e)))}
            else:
                answer = {"error": f"unknown command {command}"}
        except (FlowOSError, ValueError) as e:
            answer = {"error": str(e)}
        return answer

    def change(self, what, params):
        """A reload, attach or detach (flowos.runtime.reload): the new configuration's summary, or an
        error saying why nothing changed."""
        try:
            request = json.loads(params) if params.strip() else {}
        except ValueError:
            raise ValueError(f"expected a JSON object of parameters, got {params!r}") from None
        if not isinstance(request, dict):
            raise ValueError(f"expected a JSON object of parameters, got {params!r}")
        b = self.bridge
        migrate = bool(request.get("migrate", False))
        if what == "reload":
            path = request.get("path") or b.config_path
            if not path:
                raise FlowOSError("this run has no configuration file: name one (flowos-ctl reload FILE)")
            return {"reloaded": b.reloader.reload_file(path, migrate)}
        return {what + "ed": b.reloader.edit(what, request, migrate)}

    def stats(self):
        b = self.bridge
        # The engine's counters first: the worker counts a packet on its port before the engine
        # sees it, so ports read after them never show fewer packets than the engine saw.
        engine = b.engine_stats()
        out = {"file_prefix": b.file_prefix, "elapsed_ms": int(b.elapsed * 1000), "running": b.worker.running,
               "mbufs": {"in_use": b.pool.in_use, "size": b.pool.size},
               "ports": [dict(asdict(p), dropped=p.dropped) for p in b.port_stats()],
               "workers": worker_rows(b.worker, b.engine)}
        if engine is not None:
            out["engine"] = engine
            out["reloads"] = dict(b.reloader.counts, last_error=b.reloader.last_error)
        return out

    def _engine(self):
        """What names the run's definitions: its shards, or its worker processes (each process's
        definition space, which reloads change: flowos.runtime.worker_processes)."""
        if self.control is None:
            raise FlowOSError("this run has no flow engine (no flows: in its config, no --processor)")
        return self.bridge.engine if self.bridge.engine is not None else self.bridge.worker

    def flows(self, params, timeout_ms=TIMEOUT_MS):
        engine = self._engine()
        top = MAX_FLOWS
        if params.strip():
            try:
                top = int(params)
            except ValueError:
                raise ValueError(f"expected how many flows to list, got {params!r}") from None
            if not 1 <= top <= MAX_FLOWS:
                raise ValueError(f"at most {MAX_FLOWS} flows fit in a telemetry reply (asked for {top})")
        live, flows = self.control.flows(top, timeout_ms)
        for f in flows:
            f["flow"] = engine.definition_name(f.pop("def"), f.get("worker", 0))
        return {"live": live, "shown": len(flows), "order": "bytes", "flows": flows}

    def table(self):
        """Every processor: (definition index, index in it, id, stage, name, tier, whether its
        instances are in this process's shards: not a C built-in's, nor worker processes')."""
        from flowos.runtime.pipelines import class_path
        self._engine()
        in_process = self.bridge.engine is not None
        rows = []
        for i, definition in enumerate(self.bridge.config.flows):
            j = 0
            for stage, specs in enumerate(definition.stages):
                for spec in specs:
                    if spec.python is None:
                        rows.append((i, j, f"{i}.{j}", stage, spec.name, "c", False))
                    else:
                        rows.append((i, j, f"{i}.{j}", stage, class_path(spec.python),
                                     "cython" if spec.cython else "python", in_process))
                    j += 1
        return rows

    def processors(self):
        engine = self._engine()
        out = []
        for i, j, pid, stage, name, kind, in_process in self.table():
            row = {"id": pid, "name": name, "tier": kind, "flow": engine.definitions[i], "stage": stage}
            if in_process:    # every worker's instance, summed (worker processes: in their reports at the end)
                row.update(add_up([t.counts() for t in engine.instances(i, j)]))
            out.append(row)
        return {"processors": out}

    def resolve(self, target):
        """The processor an operator names: by id ("0.1"), full name, or class name (if only one has it)."""
        rows = self.table()
        found = [r for r in rows if target == r[2]] or [r for r in rows if target == r[4]] or \
                [r for r in rows if target == r[4].rpartition(":")[2]]
        if not found:
            raise FlowOSError(f"no processor {target!r} (see flowos-ctl processors)")
        if len(found) > 1:
            raise FlowOSError(f"{len(found)} processors are named {target!r}: name one by id "
                              f"({', '.join(r[2] for r in found)})")
        return found[0]

    def message(self, params, timeout_ms=TIMEOUT_MS):
        target, comma, text = params.partition(",")
        if not target or not comma:
            raise ValueError("expected /flowos/message,PROCESSOR,TEXT")
        i, j, pid, _, name, _, _ = self.resolve(target.strip())
        out = {"processor": pid, "name": name}
        answers = [self._reply(name, answer) for answer in self.control.message(i, j, text, timeout_ms)]
        if len(answers) == 1:
            return {**out, **answers[0]}
        # Several workers: each has its own instance of the processor, and answers for itself.
        ok = all(a["status"] == "ok" for a in answers)
        return {**out, "status": "ok" if ok else "error",
                "replies": [{"worker": w, **a} for w, a in enumerate(answers)]}

    @staticmethod
    def _reply(name, answer):
        """One instance's answer: its status, and its reply in chunks (or the error)."""
        if isinstance(answer, FlowOSError):
            return {"status": "error", "error": f"{name}: {answer}"}
        ret, reply = answer
        if ret < 0:
            return {"status": "error", "error": reply or os.strerror(-ret)}
        out = {"status": "ok", "reply": Chunks()}
        size = 0
        for piece in chunks(reply):
            if size + len(piece) > MAX_REPLY:
                break
            out["reply"].append(piece)
            size += len(piece)
        out["reply_bytes"] = ret
        if ret > len("".join(unescape(p) for p in out["reply"]).encode("utf-8")):
            out["reply_truncated"] = 1
        return out
