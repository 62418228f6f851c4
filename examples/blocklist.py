"""A firewall processor: drops every connection to a listed TCP or UDP port, both directions, and
lets the rest through. Its tests are examples/test_blocklist.py (docs/testing.md, "Testing your
own processors"). Run:

    PYTHONPATH=examples flowos-run --vdev net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap \\
        --processor '{blocklist:Blocklist: {ports: [23, 8080]}}'

`flowos-ctl message blocklist:Blocklist dropped` answers how many packets it dropped.
"""
import flowos

PORT_PROTOS = (6, 17)       # TCP, UDP


class Blocklist(flowos.Processor):
    level = "l4"            # TCP and UDP headers: packets without them skip it
    readonly = True         # it drops, it does not change bytes

    def __init__(self, ports=(23,)):
        super().__init__()
        self.ports = frozenset(int(p) for p in ports)
        if not self.ports or not all(0 < p < 65536 for p in self.ports):
            raise ValueError(f"ports must be a list of 1..65535, got {ports!r}")
        self.dropped = 0

    def process(self, batch):
        for flow in batch.flows():
            # The flow's opener connected to dport: a blocked connection's replies go too.
            if flow.proto in PORT_PROTOS and flow.dport in self.ports:
                for i in flow.packets:
                    batch.drop(i)
                self.dropped += len(flow.packets)

    def on_message(self, message):
        return {"dropped": self.dropped}
