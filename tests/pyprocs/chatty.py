"""A processor that talks the ways a processor can: print() to stdout and stderr and
self.log, in setup() and in its first call, which then faults once. Every line is numbered
in the order it was written, and long (written in several pieces by print), so a test can
tell that each landed whole, in its file, in order."""
import sys

import flowos

PAD = "." * 200


class Chatty(flowos.Processor):
    on_error = "pass"

    def __init__(self, lines=30):
        super().__init__()
        self.lines = int(lines)
        self.said = 0
        self.calls = 0

    def say(self, where):
        self.said += 1
        if where == "log":
            self.log.info("chatty %d log %s", self.said, PAD)
        else:
            print("chatty", self.said, where, PAD, file=sys.stdout if where == "stdout" else sys.stderr)

    def setup(self, context):
        for where in ("stdout", "stderr", "log"):
            self.say(where)

    def process(self, batch):
        self.calls += 1
        if self.calls > 1:
            return
        for _ in range(self.lines):
            for where in ("stdout", "stderr", "log"):
                self.say(where)
        raise RuntimeError("chatty faults once, on purpose, after its lines")
