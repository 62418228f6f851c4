"""Processors for the worker-process tests (tests/test_worker_processes.py): one that says which
process saw each flow (each instance writes its own file, `out` + "." + its pid), and ones that
end or hang their process when they see a given port."""
import os

import flowos

from pyprocs import save
from pyprocs.flowbytes import FlowBytes


class FlowPids(FlowBytes):
    """FlowBytes whose records also carry the pid of the process each flow ran in."""

    def flow_end(self, flow, reason):
        super().flow_end(flow, reason)
        self.ended[-1]["pid"] = os.getpid()

    def teardown(self):
        if self.out is not None:
            save(f"{self.out}.{os.getpid()}", {"flows": self.ended})


class Everything(FlowPids):
    """FlowPids that declares its state spans flows: one instance only."""
    single_instance = True


class OnPort(flowos.Processor):
    """Does what `hit` does when it sees a packet from or to TCP/UDP port `port`."""
    level = "l4"
    readonly = True

    def __init__(self, port):
        super().__init__()
        self.port = int(port)

    def process(self, batch):
        sport, dport = batch.sport, batch.dport
        if any(self.port in (sport[i], dport[i]) for i in range(len(batch))):
            self.hit()


class ExitOn(OnPort):
    """Ends its process (os._exit(3), no clean-up): a worker process that dies mid-run."""

    def hit(self):
        os._exit(3)


class LoopsOn(OnPort):
    """Loops for ever in Python: a worker process stuck in a call."""

    def hit(self):
        while True:
            pass


class Once:
    """Does what `hit` does the first time only, of all its instances in every process: `marker` is
    a file, made before the first hit (a restarted process sees it and goes on)."""

    def __init__(self, port, marker):
        super().__init__(port)
        self.marker = marker

    def hit(self):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
        super().hit()


class ExitOnce(Once, ExitOn):
    """ExitOn, once: a worker process that dies, then runs again once restarted."""


class LoopsOnce(Once, LoopsOn):
    """LoopsOn, once: a worker process stuck, then running again once restarted."""
