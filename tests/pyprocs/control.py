"""Processors steered by operator messages (flowos-ctl message), for tests/test_control.py."""
import time

import flowos


class PortDropper(flowos.Processor):
    """Counts packets; drops those from or to a port that a message names.

    Messages: "count" (a dict), "reset" (zeroes the counts), "drop-port N", "pass-all",
    "long N" (a reply of N characters), "unicode" (a reply with quotes, backslashes and non-ASCII),
    "stall S" (its next process() sleeps S seconds: a worker slow to answer). Anything else raises
    (a fault).
    """
    level = "l4"

    def __init__(self):
        super().__init__()
        self.packets = self.dropped = 0
        self.drop_port = None
        self.messages = []
        self.stall = 0.0
        self.stalled = 0

    def process(self, batch):
        if self.stall:
            time.sleep(self.stall)
            self.stall = 0.0
            self.stalled += 1
        self.packets += len(batch)
        if self.drop_port is None:
            return
        sport, dport = batch.sport, batch.dport
        for i in range(len(batch)):
            if sport[i] == self.drop_port or dport[i] == self.drop_port:
                batch.drop(i)
                self.dropped += 1

    def on_message(self, message):
        self.messages.append(message)
        command, _, arg = message.partition(" ")
        if command == "count":
            return {"packets": self.packets, "dropped": self.dropped, "drop_port": self.drop_port,
                    "stalled": self.stalled}
        if command == "reset":
            before, self.packets, self.dropped = self.packets, 0, 0
            return f"reset after {before} packets"
        if command == "drop-port":
            self.drop_port = int(arg)
            return f"dropping port {self.drop_port}"
        if command == "pass-all":
            self.drop_port = None
            return None
        if command == "long":
            return "".join(chr(ord("a") + i % 26) for i in range(int(arg)))
        if command == "stall":
            self.stall = float(arg)
            return f"stalling {arg} s"
        if command == "unicode":
            return 'quote " backslash \\ tab \t é ü 日本 ✓'
        raise ValueError(f"unknown message {message!r}")


class Silent(flowos.Processor):
    """Takes no messages (no on_message of its own)."""

    def process(self, batch):
        pass
