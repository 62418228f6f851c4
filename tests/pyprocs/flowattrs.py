"""Records each flow's attributes as a processor sees them (docs/processors.md, "A flow's
attributes"), for tests/test_flow_attributes.py."""
import flowos

from pyprocs import save


class FlowAttributes(flowos.Processor):
    def __init__(self, out):
        super().__init__()
        self.out = out
        self.rows = []

    def process(self, batch):
        dirs = batch.dir
        for f in batch.flows():
            self.rows.append({"src": f.src, "dst": f.dst, "sport": f.sport, "dport": f.dport, "proto": f.proto,
                              "id": f.id, "counts": f.counts, "state": f.state, "dirs": [dirs[i] for i in f.packets]})
            f.state = len(self.rows)

    def teardown(self):
        save(self.out, self.rows)
