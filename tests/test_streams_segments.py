"""Stream edits that grow packets past one mbuf, edits behind IPv6 extension headers, and edits
FlowOS refuses (ext/src/fo_stream.c, fo_fix_checksums in fo_pipeline.c, Stream in _python.pyx),
end to end through flowos-run and net_pcap; the bytes and checksums checked with scapy."""
import json
from pathlib import Path

import pytest
from scapy.all import (ICMP, IP, TCP, UDP, Ether, IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, IPv6ExtHdrRouting,
                       IPv6ExtHdrSegmentRouting, Raw, defragment, fragment)
from scapy.layers.ipsec import AH

from conftest import packets
from flowcheck import checksums_ok, engine_stats, one_port, run_config, write_pcap
from streamcheck import streams

TESTS = Path(__file__).parent
TOKEN = b"SECRET-TOKEN-1234"
REPLACEMENT = (b"[redacted]" * 66)[:658]
CLIENT, SERVER = ("10.77.0.1", 40000), ("10.77.0.2", 8080)


@pytest.fixture(autouse=True)
def importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", f"{TESTS}:{TESTS.parent / 'examples'}")


def connection(ip, payloads, mss=1460):
    """A TCP connection from CLIENT to SERVER over `ip` (a function of (src, dst) giving the IP
    layers) that carries payloads, each in one segment, and its acknowledgement."""
    def seg(src, dst, seq, ack, flags, data=b"", **kw):
        return Ether() / ip(src[0], dst[0]) / TCP(sport=src[1], dport=dst[1], seq=seq, ack=ack, flags=flags, **kw) / Raw(data)
    frames = [seg(CLIENT, SERVER, 1000, 0, "S", options=[("MSS", mss)]),
              seg(SERVER, CLIENT, 5000, 1001, "SA", options=[("MSS", mss)]),
              seg(CLIENT, SERVER, 1001, 5001, "A")]
    seq = 1001
    for p in payloads:
        frames.append(seg(CLIENT, SERVER, seq, 5001, "PA", p))
        seq += len(p)
    return frames + [seg(SERVER, CLIENT, 5001, seq, "A")]


def ipv4(src, dst):
    return IP(src=src, dst=dst)


def ipv6_ext(src, dst):
    return IPv6(src="fd00::" + src.split(".")[-1], dst="fd00::" + dst.split(".")[-1]) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()


def redact(tmp_path, frames, replacement=REPLACEMENT):
    capture, out = write_pcap(tmp_path / "in.pcap", frames), tmp_path / "out.pcap"
    pipeline = [{"redact:Redact": {"word": TOKEN.decode(), "replacement": replacement.decode()}}]
    run = run_config(tmp_path, one_port(capture, out, [{"name": "all", "pipeline": pipeline, "streams": "on"}]))
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stats["mbufs"]["in_use_at_exit"] == 0
    return run, capture, packets(out)


@pytest.mark.parametrize("ip", [ipv4, ipv6_ext], ids=["ipv4", "ipv6_ext_headers"])
def test_redact_grows_a_full_segment_past_one_mbuf(tmp_path, ip):
    """examples/redact.py with a 658-byte replacement on a full 1460-byte segment that holds the
    token twice, the second its last bytes: the packet grows past one mbuf (2.7 KB) and the second
    edit ends at the end of the chain. It crashed (SIGSEGV in __rte_pktmbuf_read); over IPv6 with
    extension headers the TCP checksum was left wrong. Now the stream is the model's, every
    checksum is right, and no segment is over the MSS."""
    data = b"x" * 100 + TOKEN + b"y" * (1460 - 100 - 2 * len(TOKEN)) + TOKEN
    run, capture, out = redact(tmp_path, connection(ip, [data, b"z" * 300 + TOKEN + b"!"]))
    got = streams(out)
    assert [s[0].data for s in got.values()] == [s[0].data.replace(TOKEN, REPLACEMENT) for s in streams(capture).values()]
    assert all(checksums_ok(f) for f in out)
    assert all(len(Ether(f)[TCP].payload) <= 1460 for f in out)
    assert engine_stats(run)["streams"]["edits_refused"] == 0


def test_a_length_change_behind_ipv6_extension_headers_repairs_the_tcp_checksum(tmp_path):
    """A shorter replacement in a TCP stream over IPv6 with hop-by-hop and destination options
    headers: the payload length was fixed but the TCP checksum left as it was (the packet left
    broken). Now the pseudo-header takes the upper layer's length and protocol."""
    data = b"a" * 50 + TOKEN + b"b" * 50
    run, capture, out = redact(tmp_path, connection(ipv6_ext, [data, data]), replacement=b"[gone]")
    assert [s[0].data for s in streams(out).values()] == [data.replace(TOKEN, b"[gone]") * 2]
    assert any(IPv6ExtHdrDestOpt in Ether(f) and Raw in Ether(f) for f in out)
    assert all(checksums_ok(f) for f in out)


def test_a_refused_edit_leaves_the_other_flows_edits(tmp_path):
    """In one batch, a UDP flow whose datagram is fragmented (its length cannot change), a TCP
    flow and an ICMP echo: Stream.can_change_length says so for each, the delete on the fragment
    is refused (False, counted in edits_refused, nothing changed, no fault) and the others'
    deletes are made, their checksums repaired (ICMP's too). Before, the delete raised and the
    fault policy dropped the other flows' edits."""
    frags = fragment(IP(src="10.77.0.3", dst=SERVER[0]) / UDP(sport=5353, dport=53) / Raw(b"u" * 2000), fragsize=1200)
    echo = Ether() / IP(src="10.77.0.4", dst=SERVER[0]) / ICMP(id=7, seq=1) / Raw(b"ping data")
    frames = [Ether() / f for f in frags] + [echo] + connection(ipv4, [b"hello, world"])
    capture, out = write_pcap(tmp_path / "in.pcap", frames), tmp_path / "out.pcap"
    rec = tmp_path / "seen.json"
    flows = [{"name": "all", "pipeline": [{"pyprocs.streams:Shortener": {"path": str(rec)}}], "streams": "on"}]
    run = run_config(tmp_path, one_port(capture, out, flows))
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(rec.read_text())
    assert seen[f"17 10.77.0.3 5353 {SERVER[0]} 53"] == [[False, False]]
    assert seen[f"6 {CLIENT[0]} {CLIENT[1]} {SERVER[0]} {SERVER[1]}"] == [[True, True]]
    assert seen[f"1 10.77.0.4 0 {SERVER[0]} 0"] == [[True, True]]
    assert engine_stats(run)["streams"]["edits_refused"] == 1
    assert "faults" not in run.stderr and "failed" not in run.stderr
    sent = packets(out)
    assert [s[0].data for s in streams(sent).values()] == [b"u" * 2000, b"ing data", b"ello, world"]
    assert all(checksums_ok(f) for f in sent)


def test_an_overwrite_in_a_fragment_is_refused(tmp_path):
    """A same-length edit of a fragmented UDP datagram would leave its UDP checksum (in the
    first fragment, over the whole datagram) wrong: it is refused and counted, the datagram
    leaves as it came; the same edit of a whole datagram is made and its checksum repaired.
    Before, the overwrite was made and the reassembled datagram's checksum was wrong."""
    frags = fragment(IP(src="10.77.0.3", dst=SERVER[0]) / UDP(sport=5353, dport=53) / Raw(b"u" * 2000), fragsize=1200)
    whole = Ether() / IP(src="10.77.0.5", dst=SERVER[0]) / UDP(sport=5354, dport=53) / Raw(b"w" * 100)
    capture, out = write_pcap(tmp_path / "in.pcap", [Ether() / f for f in frags] + [whole]), tmp_path / "out.pcap"
    rec = tmp_path / "seen.json"
    flows = [{"name": "all", "pipeline": [{"pyprocs.streams:Shortener": {"path": str(rec), "overwrite": True}}]}]
    run = run_config(tmp_path, one_port(capture, out, flows))
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(rec.read_text())
    assert seen[f"17 10.77.0.3 5353 {SERVER[0]} 53"] == [[False, False]]
    assert seen[f"17 10.77.0.5 5354 {SERVER[0]} 53"] == [[True, True]]
    assert engine_stats(run)["streams"]["edits_refused"] == 1
    sent = packets(out)
    assert sent[:len(frags)] == [bytes(Ether() / f) for f in frags]
    (datagram,) = defragment([Ether(raw)[IP] for raw in sent[:len(frags)]])
    datagram = IP(bytes(datagram))
    assert bytes(datagram[UDP].payload) == b"u" * 2000
    sent_sum, datagram[UDP].chksum = datagram[UDP].chksum, None
    assert IP(bytes(datagram))[UDP].chksum == sent_sum
    assert bytes(Ether(sent[-1])[UDP].payload) == b"#" + b"w" * 99 and checksums_ok(sent[-1])


def test_edits_behind_ipv6_routing_headers(tmp_path):
    """Behind a segment routing header with segments left, the UDP checksum covers the final
    destination (the header's first address): an edit is made and the checksum is right. Behind
    a type 0 routing header (deprecated, RFC 5095) FlowOS cannot know it: can_change_length is
    False and the edit is refused, the packet left as it came."""
    def datagram(routing, sport):
        return (Ether() / IPv6(src="fd00::1", dst="fd00::5") / routing
                / UDP(sport=sport, dport=53) / Raw(b"routed bytes"))
    srh = datagram(IPv6ExtHdrSegmentRouting(addresses=["fd00::9", "fd00::5"], segleft=1), 5001)
    rh0 = datagram(IPv6ExtHdrRouting(addresses=["fd00::9"], segleft=1), 5002)
    # Behind an authentication header (its length counts 4-byte words, the others' 8): scapy does
    # not dissect past it, so its checksum is checked against a datagram built without it.
    ah = datagram(IPv6ExtHdrDestOpt(nh=51) / AH(nh=43, payloadlen=4, spi=1, icv=b"\0" * 12)
                  / IPv6ExtHdrSegmentRouting(addresses=["fd00::9", "fd00::5"], segleft=1), 5003)
    capture, out = write_pcap(tmp_path / "in.pcap", [srh, rh0, ah]), tmp_path / "out.pcap"
    rec = tmp_path / "seen.json"
    flows = [{"name": "all", "pipeline": [{"pyprocs.streams:Shortener": {"path": str(rec)}}]}]
    run = run_config(tmp_path, one_port(capture, out, flows))
    assert run.returncode == 0, run.stderr[-3000:]
    seen = json.loads(rec.read_text())
    assert seen["17 fd00::1 5001 fd00::5 53"] == [[True, True]]
    assert seen["17 fd00::1 5002 fd00::5 53"] == [[False, False]]
    assert seen["17 fd00::1 5003 fd00::5 53"] == [[True, True]]
    assert engine_stats(run)["streams"]["edits_refused"] == 1
    sent = {Ether(f)[UDP].sport: f for f in packets(out) if UDP in Ether(f)}
    (behind_ah,) = [f for f in packets(out) if UDP not in Ether(f)]
    assert bytes(Ether(sent[5001])[UDP].payload) == b"outed bytes" and checksums_ok(sent[5001])
    assert sent[5002] == bytes(rh0)
    want = bytes(IPv6(src="fd00::1", dst="fd00::9") / UDP(sport=5003, dport=53) / Raw(b"outed bytes"))[40:]
    assert behind_ah.endswith(want)
