"""Tests of examples/blocklist.py with FlowOS's pytest plugin (flowos.testing, installed with
FlowOS): `pytest examples/test_blocklist.py`. The fixtures flowos_pipeline and flowos_wire need
no import; see docs/testing.md, "Testing your own processors"."""
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from flowos.configuration.devices import SAMPLE_CAPTURE

BLOCKLIST = "blocklist:Blocklist"
CLIENT, SERVER = "10.0.0.1", "10.0.0.2"


def handshake(sport, dport):
    """A TCP handshake's first two packets: the client's SYN and the server's SYN-ACK."""
    there = Ether() / IP(src=CLIENT, dst=SERVER) / TCP(sport=sport, dport=dport, flags="S")
    back = Ether() / IP(src=SERVER, dst=CLIENT) / TCP(sport=dport, dport=sport, flags="SA")
    return [there, back]


def test_a_blocked_port_is_dropped_both_ways(flowos_pipeline):
    dns = Ether() / IP(src=CLIENT, dst=SERVER) / UDP(sport=5353, dport=53)
    packets = handshake(40000, 23) + handshake(40001, 80) + [dns]
    result = flowos_pipeline(packets, pipeline=[{BLOCKLIST: {"ports": [23]}}])
    assert result.flow(dport=23).verdict == "dropped"       # the SYN and the SYN-ACK
    assert result.flow(dport=80).verdict == "forwarded"
    assert result.flow(proto="udp").verdict == "forwarded"
    assert [p[TCP].dport for p in result.packets if TCP in p] == [80, 40001]
    assert result.engine["dropped"] == 2
    assert result.processor(BLOCKLIST)["report"]["faults"] == 0


def test_over_a_capture(flowos_pipeline):
    """The capture FlowOS ships: HTTP on port 8080, ARP, ICMPv6. Only the HTTP connections go."""
    result = flowos_pipeline(SAMPLE_CAPTURE, pipeline=[{BLOCKLIST: {"ports": [8080]}}])
    http = [flow for flow in result.flows if flow.proto == 6 and flow.dport == 8080]
    assert http and all(flow.verdict == "dropped" for flow in http)
    others = [flow for flow in result.flows if flow not in http]
    assert others and all(flow.verdict == "forwarded" for flow in others)
    assert result.engine["dropped"] == sum(len(flow.sent) for flow in http)


def test_bad_ports_are_refused_at_load(flowos_pipeline):
    result = flowos_pipeline(handshake(40000, 23), pipeline=[{BLOCKLIST: {"ports": [0]}}], check=False)
    assert result.returncode == 2           # a configuration error: nothing ran
    assert "ports must be a list of 1..65535" in result.stderr


def test_real_tcp_through_the_blocklist(flowos_wire, tmp_path):
    """curl between two network namespaces, FlowOS between them: port 8000 is served, port 8080
    blocked (as root; skipped otherwise)."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "a.txt").write_text("hello through FlowOS\n")
    box = flowos_wire.start_flowos(tmp_path=tmp_path, config={"flows": [
        {"name": "all", "pipeline": [{BLOCKLIST: {"ports": [8080]}}]}]})
    served = flowos_wire.http_server(www, port=8000)
    blocked = flowos_wire.http_server(www, port=8080)
    assert flowos_wire.curl(served.url("a.txt")).body == b"hello through FlowOS\n"
    refused = flowos_wire.curl(blocked.url("a.txt"), timeout=2)
    assert refused.returncode == 28 and refused.body == b""      # 28: timed out, the SYN never answered
    run = box.stop()
    assert run.returncode == 0, run.stderr
    assert run.stats["mbufs"]["in_use_at_exit"] == 0
