"""One processor per verdict, each as small as it can be."""
import flowos
from flowos.processor import DROP, PASS

from pyprocs import save


class PassAll(flowos.Processor):
    """Sets no verdict: every packet passes as it is."""

    def process(self, batch):
        pass


class PassPayload(PassAll):
    """PassAll at the payload level: packets with no payload (pure ACKs, ARP) skip it."""
    level = "payload"


class DropAll(flowos.Processor):
    """Drops every packet, one batch.drop(i) at a time."""

    def process(self, batch):
        for i in range(len(batch)):
            batch.drop(i)


class DropProto(flowos.Processor):
    """Drops the packets of one IP protocol, read from the vector accessor batch.proto."""

    def __init__(self, proto=17):
        super().__init__()
        self.proto = int(proto)

    def process(self, batch):
        for i, p in enumerate(batch.proto):
            if p == self.proto:
                batch.drop(i)


class ReturnList(flowos.Processor):
    """Returns its verdicts as a list: drop for one IP protocol, pass for the rest."""

    def __init__(self, proto=17, kind="list"):
        super().__init__()
        self.proto, self.kind = int(proto), kind

    def process(self, batch):
        verdicts = [DROP if p == self.proto else PASS for p in batch.proto]
        return tuple(verdicts) if self.kind == "tuple" else verdicts


class HoldUntil(flowos.Processor):
    """Holds each flow's packets until its window holds `packets` of them, then passes them all.
    A held packet (and all after it) comes back in the next call's window, so the window of a
    flow grows until it is released. Records the size of every window it released."""

    def __init__(self, packets=5, out=None):
        super().__init__()
        self.n, self.out = int(packets), out
        self.released, self.held_calls = [], 0

    def process(self, batch):
        for flow in batch.flows():
            window = flow.packets
            if len(window) < self.n:
                batch.hold(window[0])
                self.held_calls += 1
            else:
                self.released.append(len(window))

    def teardown(self):
        save(self.out, {"released": self.released, "held_calls": self.held_calls})


class SetTTL(flowos.Processor):
    """Sets every IP packet's TTL / hop limit (an l3 processor: others skip it)."""
    level = "l3"
    readonly = False

    def __init__(self, ttl=33):
        super().__init__()
        self.ttl = int(ttl)

    def process(self, batch):
        protos, ttls = batch.proto, batch.ttl
        for i in range(len(batch)):
            # Not IP (no protocol, no TTL): docs/flows.md says such frames skip an l3 processor,
            # but the decoder gives ARP an l3 level (see test_an_l3_processor_is_not_handed_arp).
            if protos[i] or ttls[i]:
                batch.set_ttl(i, self.ttl)


def l4_payload_offset(raw):
    """Where the TCP/UDP payload of an untagged IPv4/IPv6 frame (no IPv6 extension headers,
    not a fragment) starts, or None. Read here from the bytes, not from FlowOS."""
    ether_type = raw[12:14]
    if ether_type == b"\x08\x00":
        l4, proto = 14 + (raw[14] & 0xF) * 4, raw[23]
        if int.from_bytes(raw[20:22], "big") & 0x3FFF:
            return None
    elif ether_type == b"\x86\xdd":
        l4, proto = 14 + 40, raw[20]
    else:
        return None
    if proto == 6:
        return l4 + (raw[l4 + 12] >> 4) * 4
    if proto == 17:
        return l4 + 8
    return None


class WritePayload(flowos.Processor):
    """Overwrites the first bytes of every TCP/UDP payload that has room with `data`."""
    level = "payload"
    readonly = False

    def __init__(self, data="FLOW"):
        super().__init__()
        self.data = data.encode()

    def process(self, batch):
        lengths = batch.payload_len
        for i in range(len(batch)):
            if lengths[i] >= len(self.data):
                at = l4_payload_offset(batch.packet(i).tobytes())
                if at is not None:
                    batch.write(i, at, self.data)


class RedirectProto(flowos.Processor):
    """Sends the packets of one IP protocol out of another port (named; its id from setup())."""

    def __init__(self, to="b", proto=17):
        super().__init__()
        self.port_name, self.proto = to, int(proto)
        self.port = None

    def setup(self, context):
        self.port = context.ports[self.port_name]

    def process(self, batch):
        for i, p in enumerate(batch.proto):
            if p == self.proto:
                batch.redirect(i, self.port)


class InjectAfter(flowos.Processor):
    """After every packet of direction `dir`, injects a copy whose Ethernet source is `mac`."""

    def __init__(self, dir=0, mac="02:00:00:00:00:ee"):
        super().__init__()
        self.dir, self.mac = int(dir), bytes.fromhex(mac.replace(":", ""))

    def process(self, batch):
        dirs = batch.dir
        for i in range(len(batch)):
            if dirs[i] == self.dir:
                raw = batch.packet(i).tobytes()
                batch.inject(i, raw[:6] + self.mac + raw[12:])


class DropEveryOther(flowos.Processor):
    """Drops each flow's 2nd, 4th, ... packet: some of the flow's packets leave, unchanged."""

    def process(self, batch):
        for flow in batch.flows():
            seen = flow.state or 0
            for n, i in enumerate(flow.packets, seen):
                if n % 2:
                    batch.drop(i)
            flow.state = seen + len(flow.packets)


class InjectOnce(flowos.Processor):
    """Injects one UDP frame from 10.9.9.1:9 to 10.9.9.2:9 after the first packet it sees: a
    connection that no packet fed to FlowOS belongs to."""

    def __init__(self):
        super().__init__()
        self.done = False

    def process(self, batch):
        if not self.done and len(batch):
            from scapy.layers.inet import IP, UDP
            from scapy.layers.l2 import Ether
            batch.inject(0, bytes(Ether() / IP(src="10.9.9.1", dst="10.9.9.2") / UDP(sport=9, dport=9)))
            self.done = True
