"""Processors that take too long, for tests/test_watchdog.py."""
import time

import flowos


class SleepsForever(flowos.Processor):
    """Its first call never returns (as far as any test waits): a processor stuck in a C-level sleep."""

    def process(self, batch):
        time.sleep(3600)


class SlowMessages(flowos.Processor):
    """Passes everything; the message "sleep N" takes N seconds to answer."""

    def process(self, batch):
        pass

    def on_message(self, message):
        command, _, arg = message.partition(" ")
        if command == "sleep":
            time.sleep(float(arg))
            return f"slept {arg} s"
        return "ok"


class LoopsForever(flowos.Processor):
    """Its first call loops in Python for ever: the watchdog's interrupt can stop it."""

    def process(self, batch):
        while True:
            pass
