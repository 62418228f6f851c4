"""flow_log: one line of JSON for each flow that ends, the flow records of a box: who talked to
whom, how much each way, and why it ended. For jq, a log shipper, or a spreadsheet.

    flows:
      - name: all
        pipeline:
          - {flow_log: {path: /var/log/flowos/flows.jsonl}}

A line: {"src": "10.0.0.1", "dst": "10.0.0.2", "sport": 40000, "dport": 80, "proto": 6,
"packets": [from the opener, to it], "bytes": [from the opener, to it], "reason": "fin",
"ended": <Unix time>} (docs/processors.md, "A flow's attributes", says what each is). Several
workers, threads or processes, append to the same file: each line is one write() to a file
opened with O_APPEND, so lines never interleave. It reads nothing per packet: process() returns
at once, and the flows' counts are the engine's.
"""
import json
import os
import time

import flowos


class FlowLog(flowos.Processor):
    level = "l2"          # every flow, IP or not
    readonly = True

    def __init__(self, path):
        super().__init__()
        self.path = os.path.abspath(str(path))
        folder = os.path.dirname(self.path)
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise ValueError(f"path {path}: cannot write in {folder}")
        self.fd = None
        self.logged = 0

    def setup(self, context):
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def process(self, batch):
        pass

    def flow_end(self, flow, reason):
        (packets_out, bytes_out), (packets_back, bytes_back) = flow.counts
        record = {"src": flow.src, "dst": flow.dst, "sport": flow.sport, "dport": flow.dport, "proto": flow.proto,
                  "packets": [packets_out, packets_back], "bytes": [bytes_out, bytes_back], "reason": reason,
                  "ended": round(time.time(), 6)}
        os.write(self.fd, (json.dumps(record) + "\n").encode())
        self.logged += 1

    def on_message(self, message):
        return f"{self.logged} flows logged to {self.path}"

    def teardown(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
