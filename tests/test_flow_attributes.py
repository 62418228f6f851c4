"""What docs/processors.md says of a flow's attributes, checked on crafted frames replayed one
per burst: IP flows (ICMP, UDP, ICMPv6) and a non-IP one (ARP), whose addresses are None."""
import json
from pathlib import Path

from scapy.all import ARP, ICMP, IP, UDP, Ether, ICMPv6EchoRequest, IPv6, Raw, wrpcap

from flowcheck import one_port, run_config

A, B = "02:00:00:00:00:01", "02:00:00:00:00:02"
FRAMES = [Ether(src=A, dst="ff:ff:ff:ff:ff:ff") / ARP(psrc="10.0.0.1", pdst="10.0.0.2"),
          Ether(src=B, dst=A) / ARP(op=2, psrc="10.0.0.2", pdst="10.0.0.1"),
          Ether(src=A, dst=B) / IP(src="10.0.0.1", dst="10.0.0.2") / ICMP(id=7),
          Ether(src=B, dst=A) / IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(type=0, id=7),
          Ether(src=B, dst=A) / IP(src="10.0.0.2", dst="10.0.0.1") / UDP(sport=5353, dport=999) / Raw(b"hi"),
          Ether(src=A, dst=B) / IPv6(src="fd00::1", dst="fd00::2") / ICMPv6EchoRequest()]


def test_flow_attributes_and_directions(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))
    capture, out, seen = tmp_path / "in.pcap", tmp_path / "out.pcap", tmp_path / "seen.json"
    wrpcap(str(capture), FRAMES)
    flows = [{"name": "all", "pipeline": [{"pyprocs.flowattrs:FlowAttributes": {"out": str(seen)}}]}]
    run = run_config(tmp_path, one_port(capture, out, flows, run={"burst": 1}))
    assert run.returncode == 0, run.stderr
    rows = json.loads(seen.read_text())
    arp, reply, ping, pong, udp, ping6 = rows
    # Not IP: no addresses; one flow per EtherType, its sport; every packet in direction 0.
    assert (arp["src"], arp["dst"], arp["sport"], arp["dport"], arp["proto"]) == (None, None, 0x0806, 0, 0)
    assert reply["id"] == arp["id"] and reply["dirs"] == [0] and reply["counts"] == [[2, 84], [0, 0]]
    assert arp["state"] is None and reply["state"] == 1           # kept from one call to the next
    # ICMP: no ports, so one flow per pair of hosts; the reply goes the other way (dir 1).
    assert (ping["src"], ping["dst"], ping["sport"], ping["dport"], ping["proto"]) == ("10.0.0.1", "10.0.0.2", 0, 0, 1)
    assert pong["id"] == ping["id"] != arp["id"] and (ping["dirs"], pong["dirs"]) == ([0], [1])
    assert pong["counts"] == [[1, 42], [1, 42]]                   # this batch's packet counted
    # The opener is whoever spoke first: here the UDP server's side.
    assert (udp["src"], udp["sport"], udp["dport"], udp["proto"]) == ("10.0.0.2", 5353, 999, 17)
    assert (ping6["src"], ping6["dst"], ping6["sport"], ping6["proto"]) == ("fd00::1", "fd00::2", 0, 58)
