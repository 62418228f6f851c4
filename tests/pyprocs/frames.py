"""A processor that reads long frames every way the Packet view offers, for tests/test_frames.py."""
import flowos

from pyprocs import save


class WholeFrames(flowos.Processor):
    """Read-only: per packet, its length, its last byte, a byte from its middle, where its last
    16 bytes are found, and how much of it the buffer protocol and tobytes() give."""
    readonly = True

    def __init__(self, out=None):
        super().__init__()
        self.out, self.seen = out, []

    def process(self, batch):
        for i in range(len(batch)):
            p = batch.packet(i)
            n = len(p)
            whole = p.tobytes()
            self.seen.append({"len": n, "last": p[-1], "middle": p[n // 2], "slice": p[n - 4:].hex(),
                              "find": p.find(whole[-16:]), "view": len(memoryview(p)), "bytes": len(whole),
                              "whole": whole[-16:].hex(), "past_end": _raises(p, n)})

    def teardown(self):
        save(self.out, {"seen": self.seen})


def _raises(p, i):
    try:
        p[i]
    except IndexError:
        return True
    return False
