"""A pass-through processor that counts each flow's packets and bytes per direction, for the
end-to-end tests (tests/test_e2e_forwarding.py) to compare with what the endpoints saw."""
import flowos

from pyprocs import save


class FlowBytes(flowos.Processor):
    """Read-only, every packet: flow.state is [packets, bytes] per direction. Each ended flow is
    recorded with its 5-tuple, why it ended and its counts; teardown writes them to `out`."""
    level = "l2"
    readonly = True

    def __init__(self, out=None):
        super().__init__()
        self.out = out
        self.ended = []

    def process(self, batch):
        dirs, lengths = batch.dir, batch.length
        for flow in batch.flows():
            counts = flow.state
            if counts is None:
                counts = flow.state = [[0, 0], [0, 0]]
            for i in flow.packets:
                d = counts[dirs[i]]
                d[0] += 1
                d[1] += lengths[i]

    def flow_end(self, flow, reason):
        counts = flow.state or [[0, 0], [0, 0]]
        self.ended.append({"src": flow.src, "dst": flow.dst, "sport": flow.sport, "dport": flow.dport,
                           "proto": flow.proto, "reason": reason,
                           "packets": [counts[0][0], counts[1][0]], "bytes": [counts[0][1], counts[1][1]]})

    def teardown(self):
        save(self.out, {"flows": self.ended})
