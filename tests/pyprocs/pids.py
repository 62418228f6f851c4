"""A pass-through processor that says which process saw each flow, for the worker-process tests
(tests/test_worker_processes.py): each instance writes its own file, `out` + "." + its pid."""
import os

import flowos

from pyprocs import save


class FlowPids(flowos.Processor):
    """Read-only, every packet: flow.state is [packets, bytes] per direction. Each ended flow is
    recorded with its 5-tuple, why it ended, its counts and the pid of the process it ran in."""
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
                           "proto": flow.proto, "reason": reason, "pid": os.getpid(),
                           "packets": [counts[0][0], counts[1][0]], "bytes": [counts[0][1], counts[1][1]]})

    def teardown(self):
        if self.out is not None:
            save(f"{self.out}.{os.getpid()}", {"flows": self.ended})


class ExitOn(flowos.Processor):
    """Ends its process (os._exit(3), no clean-up) when it sees a packet from or to TCP/UDP port `port`:
    a worker process that dies mid-run."""
    level = "l4"
    readonly = True

    def __init__(self, port):
        super().__init__()
        self.port = int(port)

    def process(self, batch):
        sport, dport = batch.sport, batch.dport
        if any(self.port in (sport[i], dport[i]) for i in range(len(batch))):
            os._exit(3)


class Everything(FlowPids):
    """FlowPids that declares its state spans flows: one instance only."""
    single_instance = True


class LoopsOn(flowos.Processor):
    """Loops for ever in Python when it sees a packet from or to TCP/UDP port `port`: a worker
    process stuck in a call."""
    level = "l4"
    readonly = True

    def __init__(self, port):
        super().__init__()
        self.port = int(port)

    def process(self, batch):
        sport, dport = batch.sport, batch.dport
        if any(self.port in (sport[i], dport[i]) for i in range(len(batch))):
            while True:
                pass
