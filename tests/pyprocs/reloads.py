"""Processors for tests/test_reload_e2e.py: what a running box's reloads do to flows' packets.

Each packet of the test's loop carries (flow number, sequence number) as the first 8 bytes of
its UDP payload.
"""
import os
import struct

import flowos

from pyprocs import save


class OrderCheck(flowos.Processor):
    """Checks that each flow's packets keep their order. Round a loop that one FIFO makes (a ring
    port forwarded into itself), a flow's packets come back in the same cyclic order lap after
    lap, once the capture that fed it is all in: each packet's successor in its flow is learnt
    (after `arm_after` packets, when the feed is surely over) and must never change. What is
    learnt and counted is the class's, every instance's together (a reload makes new instances,
    a migrated flow starts anew in one), written to `out` at each teardown (with per_process, to
    `out` + "." + its pid: each worker process counts its own flows)."""
    level = "l4"
    checked = violations = teardowns = 0
    ended = {}
    successor = {}             # (flow number, sequence number) -> the next one in that flow
    last = {}                  # flow number -> the last sequence number seen

    def __init__(self, out=None, arm_after=0, per_process=False):
        super().__init__()
        self.out, self.arm_after = out, arm_after
        if per_process and out is not None:
            self.out = f"{out}.{os.getpid()}"

    def process(self, batch):
        cls = OrderCheck
        for i in range(len(batch)):
            flow, seq = struct.unpack_from("!II", batch.packet(i).tobytes(), 42)
            cls.checked += 1
            prev = cls.last.get(flow)
            cls.last[flow] = seq
            if prev is None or cls.checked <= self.arm_after:
                continue
            learnt = cls.successor.setdefault((flow, prev), seq)
            if learnt != seq:
                cls.violations += 1

    def flow_end(self, flow, reason):
        OrderCheck.ended[reason] = OrderCheck.ended.get(reason, 0) + 1

    def teardown(self):
        OrderCheck.teardowns += 1
        save(self.out, {"checked": OrderCheck.checked, "violations": OrderCheck.violations,
                        "learnt": len(OrderCheck.successor), "teardowns": OrderCheck.teardowns,
                        "ended": OrderCheck.ended})


class Attached(flowos.Processor):
    """The paper's dynamically attached module: records the flows (source ports) it processed,
    its flow_end calls by reason and its teardown, in `out` at each flow_end and teardown."""
    level = "l4"

    def __init__(self, out=None):
        super().__init__()
        self.out = out
        self.flows, self.ended, self.torn_down = set(), {}, False

    def process(self, batch):
        for flow in batch.flows():
            self.flows.add(flow.sport)

    def flow_end(self, flow, reason):
        self.ended[reason] = self.ended.get(reason, 0) + 1
        self.save()

    def teardown(self):
        self.torn_down = True
        self.save()

    def save(self):
        save(self.out, {"flows": sorted(self.flows), "ended": self.ended, "torn_down": self.torn_down})


class SetupFailsOnce(flowos.Processor):
    """Its setup fails in the first instance of all processes that sets it up (`marker`, a file,
    made then), and succeeds in the others: a reload whose prepare fails in one worker process.
    Each process records its instances' setups and teardowns in `out` + "." + its pid."""
    level = "l4"
    readonly = True
    setups = teardowns = 0

    def __init__(self, marker=None, out=None):
        super().__init__()
        self.marker, self.out = marker, out

    def setup(self, context):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            SetupFailsOnce.setups += 1
            self.save()
            return
        raise RuntimeError("set up to fail once")

    def process(self, batch):
        pass

    def teardown(self):
        SetupFailsOnce.teardowns += 1
        self.save()

    def save(self):
        save(f"{self.out}.{os.getpid()}", {"setups": SetupFailsOnce.setups, "teardowns": SetupFailsOnce.teardowns})
