"""A stream processor: redacts a word in every TCP stream, also where the word is split across
packets, with a replacement of any length (FlowOS renumbers the connection). Run:

    PYTHONPATH=examples flowos-run --vdev net_pcap0,rx_pcap=tests/data/http_get.pcap,tx_pcap=out.pcap \\
        --processor redact:Redact

or in a flow's pipeline: {redact:Redact: {word: secret, replacement: "[redacted]"}}.
"""
import sys

import flowos


class Redact(flowos.Processor):
    level = "payload"       # works on streams: TCP in order, each byte once
    readonly = False        # it edits

    def __init__(self, word="SECRET-TOKEN-1234", replacement="[redacted]"):
        super().__init__()
        if not word:
            raise ValueError("word must not be empty")
        self.word, self.replacement = word.encode(), replacement.encode()
        self.redacted = 0

    def process(self, batch):
        for flow in batch.flows():
            searched = flow.state or [0, 0]      # per direction: the stream offset searched up to
            for s in flow.streams():
                at = max(searched[s.dir], s.start)
                while (hit := s.find(self.word, at)) >= 0:
                    s.delete(hit, len(self.word))
                    s.insert(hit, self.replacement)
                    self.redacted += 1
                    at = hit + len(self.replacement)
                searched[s.dir] = at
                s.release(s.partial_at(self.word))   # hold back only what could start the word
            flow.state = searched

    def on_message(self, message):
        return f"{self.redacted} redacted"

    def teardown(self):
        print(f"redact: {self.redacted} x {self.word.decode()!r} -> {self.replacement.decode()!r}", file=sys.stderr)
