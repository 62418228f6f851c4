"""What a processor can see of the objects FlowOS reuses from call to call (the Batch, its
verdict array, its field arrays): reuse must be invisible. Compared by id() only, which keeps no
reference: an object alive in two calls with the same id is the same object."""
import weakref

import flowos

from pyprocs import save


class Reuse(flowos.Processor):
    """Counts the calls whose Batch, batch.verdicts and batch.dport are the previous call's
    objects. keep=True: also keeps the previous call's verdict and dport arrays (with a snapshot
    of the dport values) and a weak reference to its sport array, and counts, in the next call,
    those that still hold their own values and are not handed out again."""
    level = "l4"

    def __init__(self, out, keep=False):
        super().__init__()
        self.out, self.keep = out, keep
        self.previous = None
        self.kept = self.weak = None
        self.seen = {"calls": 0, "same_batch": 0, "same_verdicts": 0, "same_dport": 0,
                     "kept_dport_unchanged": 0, "kept_not_handed_out": 0, "weak_checked": 0, "weak_unchanged": 0}

    def process(self, batch):
        seen = self.seen
        seen["calls"] += 1
        if self.weak is not None:
            self.check_weak()
        ids = (id(batch), id(batch.verdicts), id(batch.dport))
        if self.previous is not None:
            for key, now, before in zip(("same_batch", "same_verdicts", "same_dport"), ids, self.previous):
                seen[key] += now == before
        self.previous = ids
        if not self.keep:
            return
        if self.kept is not None:
            verdicts, dport, values = self.kept
            seen["kept_dport_unchanged"] += dport.tolist() == values
            seen["kept_not_handed_out"] += dport is not batch.dport and verdicts is not batch.verdicts
        dport = batch.dport
        self.kept = (batch.verdicts, dport, dport.tolist())
        sport = batch.sport
        self.weak = (weakref.ref(sport), sport.tolist())
        del sport
        self.check_weak()   # a second read of sport in the same call

    def check_weak(self):
        ref, values = self.weak
        self.seen["weak_checked"] += 1
        batch_sport = ref()
        self.seen["weak_unchanged"] += batch_sport is None or batch_sport.tolist() == values

    def teardown(self):
        save(self.out, self.seen)
