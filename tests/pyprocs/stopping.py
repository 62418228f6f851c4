"""Processors for tests/test_processor_faults.py: one that fails on a chosen call and logs every
call it gets (so a test sees whether it was called after its fault), and classes that cannot
work as processors and must be refused at load."""
import flowos


class CallFails(RuntimeError):
    pass


class FailOnCall(flowos.Processor):
    """Appends the number of each process() call to `out` (one line per call, written before the
    call does anything else) and raises CallFails in call `nth`."""

    def __init__(self, nth=1, out=None):
        super().__init__()
        self.nth, self.out, self.calls = int(nth), out, 0

    def process(self, batch):
        self.calls += 1
        with open(self.out, "a") as f:
            f.write(f"{self.calls}\n")
        if self.calls == self.nth:
            raise CallFails(f"call {self.calls} fails on purpose")


class NoProcess(flowos.Processor):
    """Forgot process(): every call would fault."""

    def flow_end(self, flow, reason):
        pass


class ProcessTakesNothing(flowos.Processor):
    def process(self):
        pass


class ProcessTakesTwo(flowos.Processor):
    def process(self, batch, extra):
        pass


class ProcessIsNotAMethod(flowos.Processor):
    process = 42


class ProcessWithDefaults(flowos.Processor):
    """Works: the batch is its one required argument, the others have defaults."""

    def process(self, batch, scale=1, *more, **options):
        pass
