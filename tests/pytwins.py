"""The example's Cython processors (examples/cython_processor/cyprocs.pyx) written as Python
processors, for tests/test_cython_processors.py to check that Python, Cython and the C built-ins
give the same outputs. FlowBytes writes its report (the C `counter`'s format) to `out` at
teardown."""
import json

import flowos

END_REASONS = ("fin", "rst", "idle", "shutdown", "reload")


class FlowBytes(flowos.Processor):
    """Packets and bytes per flow and direction; records each flow once it has ended."""
    level = "l2"
    readonly = True

    def __init__(self, out=None):
        super().__init__()
        self.out = out
        self.flows = []

    def process(self, batch):
        dirs, lengths = batch.dir, batch.length
        for flow in batch.flows():
            counts = flow.state or [0, 0, 0, 0]       # packets by direction, then bytes
            for i in flow.packets:
                counts[dirs[i]] += 1
                counts[2 + dirs[i]] += lengths[i]
            flow.state = counts

    def flow_end(self, flow, reason):
        counts = flow.state or [0, 0, 0, 0]
        self.flows.append({"def": 0, "proto": flow.proto, "src": flow.src or "-", "dst": flow.dst or "-",
                           "sport": flow.sport, "dport": flow.dport, "packets": counts[:2], "bytes": counts[2:],
                           "end": reason})

    def teardown(self):
        if self.out:
            with open(self.out, "w") as f:
                json.dump({"unrecorded": 0, "flows": self.flows}, f)


class SetTTL(flowos.Processor):
    """Sets the IPv4 TTL / IPv6 hop limit to `set`, or lowers it by `decrement` (not below 1)."""
    level = "l3"
    readonly = False

    def __init__(self, set=0, decrement=1):
        super().__init__()
        self.set, self.decrement = int(set), int(decrement)

    def process(self, batch):
        ttl = batch.ttl
        for i in range(len(batch)):
            try:
                batch.set_ttl(i, self.set or max(ttl[i] - self.decrement, 1))
            except ValueError:      # not IP
                pass
