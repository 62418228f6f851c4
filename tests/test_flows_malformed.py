"""Malformed packets through the flow engine: truncated and garbled headers (built with scapy,
real packets cut at many lengths, random bytes from a fixed seed) mixed with well-formed
traffic, through decode and classify with a catch-all definition. The engine must not crash, must
count each malformed packet under the reason fo_decode.h gives it (flowcheck.decode_error restates
those rules), must pass them untouched or drop exactly them (engine.malformed), and must leave
the well-formed traffic's flows as they would be without them."""
import random
import struct
from collections import Counter

import pytest
from scapy.all import (ICMP, IP, SCTP, TCP, UDP, Dot1Q, Ether, IPv6, IPv6ExtHdrDestOpt,
                       IPv6ExtHdrHopByHop, Raw)

from conftest import packets
from flowcheck import (check_clean, check_per_flow_order, checksums_ok, connections, decode_error,
                       definition, engine_stats, one_port, report, report_key, run_config,
                       same_multiset, write_pcap)

REASONS = ("truncated_l2", "truncated_l3", "bad_l3", "truncated_l4", "bad_l4")
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
ETH_IP, ETH_IP6 = b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x08\x00", \
    b"\x02\x00\x00\x00\x00\x02\x02\x00\x00\x00\x00\x01\x86\xdd"


def chain(n):
    """n Destination Options headers."""
    headers = IPv6ExtHdrDestOpt()
    for _ in range(n - 1):
        headers = headers / IPv6ExtHdrDestOpt()
    return headers


def crafted():
    """(frame, the error fo_decode.h gives it): one or more of each kind."""
    ip = IP(src="10.5.0.1", dst="10.5.0.2")
    ip6 = IPv6(src="fd05::1", dst="fd05::2")
    tcp = bytes(ETH / ip / TCP(sport=1, dport=2))
    cases = [
        (b"\x01", "truncated_l2"),
        (bytes(ETH)[:13], "truncated_l2"),
        (bytes(ETH / Dot1Q(vlan=3))[:16], "truncated_l2"),                        # cut inside the tag
        (bytes(ETH / Dot1Q(type=0x8100) / Dot1Q(type=0x0800))[:20], "truncated_l2"),
        (ETH_IP + b"\x45\x00\x00", "truncated_l3"),                                 # 3 bytes of IPv4
        (bytes(ETH / IP(src="10.5.0.1", dst="10.5.0.2", ihl=15) / Raw(b"x" * 10))[:14 + 30], "truncated_l3"),
        (ETH_IP6 + bytes(ip6)[:39], "truncated_l3"),
        (bytes(ETH / IPv6(src="fd05::1", dst="fd05::2", nh=0, plen=1) / Raw(b"\x11")), "truncated_l3"),
        (bytes(ETH / IPv6(src="fd05::1", dst="fd05::2", plen=8) / IPv6ExtHdrHopByHop(len=1) / Raw(b"\0" * 8))[:14 + 48],
         "truncated_l3"),                                                           # 16-byte header, 8 there
        (tcp[:14] + b"\x65" + tcp[15:], "bad_l3"),                                   # version 6 in IPv4
        (tcp[:14] + b"\x44" + tcp[15:], "bad_l3"),                                   # IHL 4
        (tcp[:16] + struct.pack("!H", len(tcp) - 14 + 1) + tcp[18:], "bad_l3"),      # total length past the frame
        (tcp[:16] + struct.pack("!H", 19) + tcp[18:], "bad_l3"),                     # total length < IHL
        (ETH_IP6 + b"\x40" + bytes(ip6 / UDP())[1:], "bad_l3"),                     # version 4 in IPv6
        (bytes(ETH / IPv6(src="fd05::1", dst="fd05::2", plen=100) / UDP()), "bad_l3"),
        (bytes(ETH / ip6 / chain(9) / UDP()), "bad_l3"),                              # 9 extension headers
        (bytes(ETH / ip6 / chain(8) / UDP(sport=1, dport=2)), None),                  # 8 are allowed
        (bytes(ETH / IP(src="10.5.0.1", dst="10.5.0.2", proto=6) / Raw(b"\0" * 10)), "truncated_l4"),
        (bytes(ETH / IP(src="10.5.0.1", dst="10.5.0.2", proto=17) / Raw(b"\0" * 4)), "truncated_l4"),
        (bytes(ETH / IP(src="10.5.0.1", dst="10.5.0.2", proto=1) / Raw(b"\x08\0\0\0")), "truncated_l4"),
        (bytes(ETH / IP(src="10.5.0.1", dst="10.5.0.2", proto=132) / Raw(b"\0" * 8)), "truncated_l4"),
        (bytes(ETH / IPv6(src="fd05::1", dst="fd05::2", nh=58) / Raw(b"\x80\0\0")), "truncated_l4"),
        (bytes(ETH / ip / TCP(sport=1, dport=2, dataofs=15)), "truncated_l4"),       # options past the packet
        (bytes(ETH / ip / TCP(sport=1, dport=2, dataofs=4)), "bad_l4"),
        (bytes(ETH / ip / UDP(sport=1, dport=2, len=4)), "bad_l4"),
        (bytes(ETH / ip / UDP(sport=1, dport=2, len=200) / Raw(b"u" * 10)), "bad_l4"),
        (bytes(ETH / ip6 / UDP(sport=1, dport=2, len=7)), "bad_l4"),
        # Well formed, though odd: none of these is malformed.
        (bytes(ETH / ip / UDP(sport=1, dport=2, len=12) / Raw(b"u" * 10)), None),    # UDP shorter than IP payload
        (bytes(ETH / IP(src="10.5.0.1", dst="10.5.0.2", frag=100, proto=6) / Raw(b"\0" * 3)), None),  # later fragment
        (bytes(ETH / IP(src="10.5.0.1", dst="10.5.0.2", flags="MF", proto=17) / UDP(sport=1, dport=2, len=900)), None),
        (bytes(ETH / ip / ICMP()), None),
        (bytes(ETH / IP(src="10.5.0.1", dst="10.5.0.2", proto=99) / Raw(b"")), None),  # unknown transport, empty
        (bytes(ETH)[:12] + b"\x12\x34\0", None),                              # unknown ether type
        (bytes(ETH / ip / SCTP(sport=5, dport=6)), None),
    ]
    return cases


def cut_real_packets(capture_dir):
    """Real packets of four kinds, cut at every length from 1 to the whole."""
    picks = [packets(capture_dir / "http_get.pcap")[3], packets(capture_dir / "http_ipv6.pcap")[5],
             packets(capture_dir / "udp_echo.pcap")[0], packets(capture_dir / "icmp_ping.pcap")[10]]
    out = []
    for p in picks:
        step = 1 if len(p) <= 200 else 7
        out += [p[:n] for n in range(1, len(p), step)]
    return out


def random_frames(n=400, seed=20131):
    """Random bytes after an Ethernet header whose type is mostly IPv4, IPv6 or a VLAN tag; most
    IP headers are made plausible (version, lengths, a known transport) so that decoding goes
    deep before it fails."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ether_type = rng.choice([0x0800, 0x0800, 0x86DD, 0x86DD, 0x8100, 0x88A8, 0x0806])
        body = bytearray(rng.randbytes(rng.randrange(0, 120)))
        if ether_type == 0x0800 and len(body) >= 20 and rng.random() < 0.8:
            body[0] = 0x45 if rng.random() < 0.7 else rng.choice([0x46, 0x4F, 0x44, 0x55])
            body[2:4] = struct.pack("!H", len(body) if rng.random() < 0.7 else rng.randrange(0, 200))
            body[6:8] = b"\0\0" if rng.random() < 0.7 else body[6:8]
            body[9] = rng.choice([6, 17, 1, 132, 58, 47])
        if ether_type == 0x86DD and len(body) >= 40 and rng.random() < 0.8:
            body[0] = 0x60 | (body[0] & 0x0F)
            body[4:6] = struct.pack("!H", len(body) - 40 if rng.random() < 0.7 else rng.randrange(0, 100))
            body[6] = rng.choice([6, 17, 58, 0, 43, 44, 60, 51, 132])
        out.append(bytes(ETH)[:12] + struct.pack("!H", ether_type) + bytes(body))
    return out


def corpus(capture_dir):
    """Well-formed traffic (two real connections) with the malformed frames spread through it."""
    good = packets(capture_dir / "udp_echo.pcap")[:60] + packets(capture_dir / "http_keepalive.pcap")[:40]
    bad = [f for f, _ in crafted()] + cut_real_packets(capture_dir) + random_frames()
    rng = random.Random(7)
    rng.shuffle(bad)
    at = set(rng.sample(range(len(good) + len(bad)), len(good)))
    good_it, bad_it = iter(good), iter(bad)
    return [next(good_it) if i in at else next(bad_it) for i in range(len(good) + len(bad))]


def expected_errors(frames):
    return Counter(e for e in map(decode_error, frames) if e)


def test_crafted_cases_are_what_they_say():
    """The oracle agrees with how each crafted frame was built (a check of the test itself)."""
    for frame, error in crafted():
        assert decode_error(frame) == error, (frame.hex(), error)


def test_corpus_covers_every_reason(capture_dir):
    frames = corpus(capture_dir)
    errors = expected_errors(frames)
    assert set(errors) == set(REASONS), errors
    assert all(len(f) > 0 for f in frames)


def run_corpus(tmp_path, frames, policy, flows=None):
    capture, out = write_pcap(tmp_path / "corpus.pcap", frames), tmp_path / "out.pcap"
    cfg = one_port(capture, out, flows or [{"name": "all", "pipeline": ["counter"]}],
                   {"clock": "capture", "malformed": policy})
    run = run_config(tmp_path, cfg)
    check_clean(run)
    port = run.stats["ports"][0]
    assert port["rx_packets"] == len(frames)
    assert port["rx_packets"] == port["tx_packets"] + engine_stats(run)["dropped"]
    return run, packets(out)


@pytest.mark.parametrize("policy", ["pass", "drop"])
def test_malformed_packets_are_counted_by_reason(tmp_path, capture_dir, policy):
    frames = corpus(capture_dir)
    errors = expected_errors(frames)
    bad = [f for f in frames if decode_error(f)]
    good = [f for f in frames if not decode_error(f)]
    run, frames_out = run_corpus(tmp_path, frames, policy)
    stats = engine_stats(run)
    assert stats["packets"] == len(frames)
    assert stats["malformed"] == {r: errors.get(r, 0) for r in REASONS}
    if policy == "pass":
        assert stats["malformed_dropped"] == 0 and stats["dropped"] == 0
        assert same_multiset(frames_out, frames)
    else:
        assert stats["malformed_dropped"] == stats["dropped"] == len(bad)
        assert same_multiset(frames_out, good)
    # The well-formed traffic is in its flows as if the malformed frames were not there.
    check_per_flow_order(good, [f for f in frames_out if not decode_error(f)])
    d = definition(run, "all")
    assert (d["packets"], d["bytes"]) == (len(good), sum(map(len, good)))
    conns, _ = connections(good)
    records = {report_key(r): (r["packets"], r["bytes"]) for r in report(run, "all")["flows"]}
    assert records == {k: (c.packets, c.bytes) for k, c in conns.items()}


def test_malformed_packets_never_reach_a_processor(tmp_path, capture_dir):
    """ttl (a writer at l3) and acl in front of a counter: malformed frames pass byte for byte,
    none is modified or dropped by a processor; the well-formed ones all are modified."""
    frames = corpus(capture_dir)
    flows = [{"name": "all", "pipeline": ["ttl", "counter"]}]
    run, frames_out = run_corpus(tmp_path, frames, "pass", flows)
    bad = Counter(f for f in frames if decode_error(f))
    assert Counter(f for f in frames_out if f in bad) == bad
    good_ip = [f for f in frames if not decode_error(f) and f[12:14] in (b"\x08\x00", b"\x86\xdd")]
    assert engine_stats(run)["verdicts"]["modified"] == engine_stats(run)["checksums_fixed"] == len(good_ip)


@pytest.mark.parametrize("cut", [1, 5, 13])
def test_only_short_frames(tmp_path, cut, capture_dir):
    """A capture of nothing but frames shorter than an Ethernet header."""
    frames = [p[:cut] for p in packets(capture_dir / "udp_echo.pcap")[:50]]
    run, frames_out = run_corpus(tmp_path, frames, "pass")
    assert engine_stats(run)["malformed"]["truncated_l2"] == 50
    assert engine_stats(run)["flows_created"] == 0
    assert frames_out == frames


def test_random_bytes_with_every_ether_type(tmp_path):
    """Random frames of every length from 1 to 300 with random ether types: counted by reason,
    passed on, nothing lost, no mbuf left."""
    rng = random.Random(4242)
    frames = [rng.randbytes(n) for n in range(1, 301)]
    run, frames_out = run_corpus(tmp_path, frames, "pass")
    stats = engine_stats(run)
    errors = expected_errors(frames)
    assert stats["malformed"] == {r: errors.get(r, 0) for r in REASONS}
    assert same_multiset(frames_out, frames)


# --- frames longer than one mbuf -------------------------------------------------------------

@pytest.mark.parametrize("data_room", [
    pytest.param(None, id="default-pool"),
    pytest.param(10240, id="jumbo-pool")])
def test_frames_longer_than_one_mbuf_are_not_malformed(tmp_path, data_room):
    e = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    frames = [bytes(e / IP(src="10.6.0.1", dst="10.6.0.2") / UDP(sport=1, dport=2) / Raw(b"j" * n))
              for n in (1000, 3000, 8000)]
    frames.append(bytes(e / IPv6(src="fd06::1", dst="fd06::2") / UDP(sport=3, dport=4) / Raw(b"j" * 4000)))
    capture, out = write_pcap(tmp_path / "jumbo.pcap", frames), tmp_path / "out.pcap"
    cfg = one_port(capture, out, [{"name": "all", "pipeline": ["ttl", "counter"]}], {"clock": "capture"})
    if data_room:
        cfg["pool"] = {"data_room": data_room}
    run = run_config(tmp_path, cfg)
    check_clean(run)
    stats = engine_stats(run)
    assert sum(stats["malformed"].values()) == 0
    assert stats["checksums_fixed"] == len(frames)
    frames_out = packets(out)
    assert sorted(map(len, frames_out)) == sorted(map(len, frames))
    assert all(f[22 if f[12:14] == b"\x08\x00" else 21] == 63 for f in frames_out)   # TTL/hop limit 64 - 1
    assert all(map(checksums_ok, frames_out))
    records = {(r["sport"], r["dport"]): (r["packets"], r["bytes"]) for r in report(run, "all", 1)["flows"]}
    assert records == {(1, 2): ([3, 0], [sum(map(len, frames[:3])), 0]), (3, 4): ([1, 0], [len(frames[3]), 0])}
