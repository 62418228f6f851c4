"""Processors that record what FlowOS shows them, for the tests to compare with scapy."""
import gc
import weakref

import flowos

from pyprocs import save

FIELDS = ("length", "proto", "sport", "dport", "tcp_flags", "ttl", "dir", "payload_len", "src4", "dst4")
ADDRESSES = ("src", "dst")   # 16 bytes per packet


class Recorder(flowos.Processor):
    """Records every call: its flows (5-tuple and packet indices), each packet's bytes and the
    vector accessors' values, and the buffer format of each vector."""

    def __init__(self, out=None, level="l2"):
        super().__init__()
        self.out, self.level = out, level
        self.calls, self.formats = [], {}

    def process(self, batch):
        vectors = {name: getattr(batch, name) for name in FIELDS}
        addresses = {name: getattr(batch, name) for name in ADDRESSES}
        for name, v in vectors.items():
            m = memoryview(v)
            self.formats[name] = [m.format, m.itemsize, m.ndim, m.shape[0], len(batch)]
        self.calls.append({
            "size": len(batch),
            "flows": [{"src": f.src, "dst": f.dst, "sport": f.sport, "dport": f.dport, "proto": f.proto,
                       "packets": list(f.packets)} for f in batch.flows()],
            "packets": [{"raw": batch.packet(i).tobytes().hex(), **{n: v[i] for n, v in vectors.items()},
                         **{n: a[16 * i:16 * i + 16].tobytes().hex() for n, a in addresses.items()}}
                        for i in range(len(batch))],
        })

    def teardown(self):
        save(self.out, {"calls": self.calls, "formats": self.formats})


class Counts:
    """A flow's state: packets per direction. Weakly tracked, to see that FlowOS frees it."""
    live = weakref.WeakSet()

    def __init__(self):
        self.packets = [0, 0]
        Counts.live.add(self)


class StateCounter(flowos.Processor):
    """Counts each flow's packets by direction in flow.state, across calls; flow_end records the
    flow, its counts and why it ended. At teardown: how many states are still alive."""

    def __init__(self, out=None):
        super().__init__()
        self.out = out
        self.ended, self.calls, self.reused = [], 0, 0

    def process(self, batch):
        self.calls += 1
        dirs = batch.dir
        for flow in batch.flows():
            state = flow.state
            if state is None:
                state = flow.state = Counts()
            elif not isinstance(state, Counts):
                raise TypeError(f"flow.state came back as {state!r}")
            else:
                self.reused += 1
            for i in flow.packets:
                state.packets[dirs[i]] += 1

    def flow_end(self, flow, reason):
        state = flow.state
        self.ended.append({"src": flow.src, "dst": flow.dst, "sport": flow.sport, "dport": flow.dport,
                           "proto": flow.proto, "reason": reason,
                           "packets": state.packets if isinstance(state, Counts) else repr(state)})

    def teardown(self):
        gc.collect()
        save(self.out, {"ended": self.ended, "calls": self.calls, "reused": self.reused,
                        "live_states": len(Counts.live)})


class StartedCounter(StateCounter):
    """StateCounter whose states are made in flow_start, which also records each flow's 5-tuple
    as it started; process() finds the state there on the flow's first call."""

    def __init__(self, out=None):
        super().__init__(out)
        self.started = []

    def flow_start(self, flow):
        self.started.append([flow.src, flow.sport, flow.dst, flow.dport, flow.proto])
        flow.state = Counts()

    def process(self, batch):
        for flow in batch.flows():
            if not isinstance(flow.state, Counts):
                raise TypeError(f"flow_start did not leave its state: {flow.state!r}")
        super().process(batch)

    def teardown(self):
        gc.collect()
        save(self.out, {"ended": self.ended, "started": self.started, "calls": self.calls,
                        "live_states": len(Counts.live)})


class Params(flowos.Processor):
    """Records the parameters it was built with (at setup, in the run's instance) and the port
    ids setup(context) was given."""

    def __init__(self, out=None, **params):
        super().__init__()
        self.out, self.params = out, params

    def setup(self, context):
        save(self.out, {"params": self.params, "ports": dict(context.ports)})

    def process(self, batch):
        pass
