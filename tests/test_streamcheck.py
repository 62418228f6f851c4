"""Tests of tests/streamcheck.py, the independent model of payload-level streams: crafted
segments for each rule (order, duplicates, overlaps, FIN, RST, wrap-around, pickup, IPv6,
fragments), then the real captures, checked against what their README says they hold and
against a second reading (every segment put at its offset from the ISN; tcpdump's lengths)."""
import functools
import re
import shutil
import subprocess

import pytest
from scapy.all import ARP, UDP, Raw, Dot1AD, Dot1Q, Ether, ICMP, IP, IPv6, TCP, fragment

from conftest import DATA, packets
from flowcheck import Key, addr16, connections
from streamcheck import SEQ, streams, summary

C, S = "10.77.0.1", "10.77.0.2"
C6, S6 = "fd77::1", "fd77::2"
ISN_C, ISN_S = 1000, 5000


def seg(flags, seq, data=b"", src=C, dst=S, sport=40000, dport=80, l2=None):
    ip = IPv6(src=src, dst=dst) if ":" in src else IP(src=src, dst=dst)
    pkt = (l2 or Ether()) / ip / TCP(sport=sport, dport=dport, flags=flags, seq=seq % SEQ, ack=1)
    return pkt / data if data else pkt


def c2s(flags, seq, data=b"", **kw):
    return seg(flags, seq, data, **kw)


def s2c(flags, seq, data=b"", src=S, dst=C, **kw):
    return seg(flags, seq, data, src=src, dst=dst, sport=80, dport=40000, **kw)


def handshake(isn_c=ISN_C, isn_s=ISN_S):
    return [c2s("S", isn_c), s2c("SA", isn_s), c2s("A", isn_c + 1)]


def only(frames):
    """The one connection of these frames."""
    result = streams(frames)
    assert len(result) == 1, summary(result)
    return next(iter(result.values()))


def counts(d):
    return d.ooo, d.dup, d.overlap, d.conflict, d.pending


# --- TCP, crafted -----------------------------------------------------------------------------

def test_in_order_with_handshake_and_fin():
    x = ISN_C + 1
    s = only(handshake() + [c2s("PA", x, b"hello "), c2s("PA", x + 6, b"world"), s2c("PA", ISN_S + 1, b"ok"),
                            c2s("FA", x + 11), s2c("FA", ISN_S + 3), c2s("A", x + 12)])
    assert s.key == Key(4, 6, (addr16(C), 40000), (addr16(S), 80))
    assert s.opener == (addr16(C), 40000)
    assert (s[0].data, s[1].data) == (b"hello world", b"ok")
    assert (s[0].isn, s[1].isn) == (ISN_C, ISN_S)
    assert s[0].syn and s[0].fin and not s[0].rst and s[1].fin
    assert counts(s[0]) == counts(s[1]) == (0, 0, 0, 0, 0)


def test_out_of_order_is_held_until_the_gap_fills():
    x = ISN_C + 1
    s = only(handshake() + [c2s("A", x + 8, b"CCCC"), c2s("A", x + 4, b"BBBB"), c2s("A", x, b"AAAA"),
                            c2s("A", x + 12, b"DD")])
    assert s[0].data == b"AAAABBBBCCCCDD"
    assert counts(s[0]) == (2, 0, 0, 0, 0)


def test_a_gap_that_never_fills_leaves_data_pending():
    x = ISN_C + 1
    s = only(handshake() + [c2s("A", x, b"AAAA"), c2s("A", x + 8, b"CCCC"), c2s("A", x + 12, b"DD"),
                            c2s("A", x + 20, b"F")])
    assert s[0].data == b"AAAA"
    assert s[0].pending == 7
    assert s[0].held == [(8, b"CCCCDD"), (20, b"F")]
    assert s[0].ooo == 3


def test_a_duplicate_is_delivered_once_and_counted():
    x = ISN_C + 1
    s = only(handshake() + [c2s("A", x, b"AAAA"), c2s("A", x, b"AAAA"), c2s("A", x + 4, b"BB"),
                            c2s("A", x + 8, b"DD"), c2s("A", x + 8, b"DD"), c2s("A", x + 6, b"CC")])
    assert s[0].data == b"AAAABBCCDD"
    assert (s[0].ooo, s[0].dup, s[0].dup_bytes, s[0].overlap, s[0].conflict) == (1, 2, 6, 0, 0)


def test_a_retransmitted_syn_and_a_pure_ack_are_not_data():
    s = only([c2s("S", ISN_C), c2s("S", ISN_C), s2c("SA", ISN_S), c2s("A", ISN_C + 1), c2s("A", ISN_C + 1),
              c2s("PA", ISN_C + 1, b"x")])
    assert s[0].data == b"x" and s[0].isn == ISN_C
    assert s[0].dup == 1


def test_the_first_bytes_win_a_partial_overlap_with_delivered_data():
    x = ISN_C + 1
    s = only(handshake() + [c2s("A", x, b"abcdef"), c2s("A", x + 3, b"XYZghi")])
    assert s[0].data == b"abcdefghi"
    assert (s[0].overlap, s[0].conflict, s[0].dup) == (3, 3, 0)


def test_the_first_bytes_win_a_partial_overlap_with_held_data():
    x = ISN_C + 1
    s = only(handshake() + [c2s("A", x + 4, b"efgh"), c2s("A", x + 2, b"CDEFGHij"), c2s("A", x, b"ab")])
    assert s[0].data == b"abCDefghij"
    assert (s[0].ooo, s[0].overlap, s[0].conflict) == (2, 4, 4)


def test_a_differing_full_retransmission_is_a_duplicate_and_the_first_copy_stays():
    x = ISN_C + 1
    s = only(handshake() + [c2s("A", x, b"same"), c2s("A", x, b"SAME")])
    assert s[0].data == b"same"
    assert (s[0].dup, s[0].dup_bytes, s[0].conflict) == (1, 4, 4)


def test_retransmission_after_fin_and_data_past_the_fin():
    x = ISN_C + 1
    s = only(handshake() + [c2s("PA", x, b"data"), c2s("FA", x + 4), c2s("PA", x, b"data"), c2s("FA", x + 4),
                            c2s("PA", x + 5, b"late")])
    assert s[0].data == b"data" and s[0].fin
    assert s[0].dup == 3          # the data again, the FIN again, and bytes past the FIN (no new space)
    assert s[0].pending == 0


def test_a_fin_that_arrives_before_the_last_data():
    x = ISN_C + 1
    s = only(handshake() + [c2s("FA", x + 3, b"def"), c2s("A", x, b"abc")])
    assert s[0].data == b"abcdef" and s[0].fin
    assert s[0].ooo == 1


def test_fin_with_data_then_its_retransmission():
    x = ISN_C + 1
    s = only(handshake() + [c2s("FPA", x, b"bye"), c2s("FPA", x, b"bye")])
    assert s[0].data == b"bye"
    assert (s[0].dup, s[0].dup_bytes) == (1, 3)


@pytest.mark.parametrize("isn", [SEQ - 1, SEQ - 3, SEQ - 6, (1 << 31) - 2])
def test_sequence_numbers_wrap_around(isn):
    x = isn + 1                                       # seg() takes it modulo 2**32
    s = only(handshake(isn_c=isn) + [c2s("A", x + 5, b"FGHIJ"), c2s("A", x, b"ABCDE"), c2s("A", x + 10, b"KL"),
                                     c2s("A", x + 3, b"DE"), c2s("FA", x + 12)])
    assert s[0].isn == isn % SEQ
    assert s[0].data == b"ABCDEFGHIJKL" and s[0].fin
    assert (s[0].ooo, s[0].dup, s[0].pending) == (1, 1, 0)


def test_a_long_stream_crosses_2_to_the_32_from_a_mid_stream_pickup():
    start = SEQ - 3000
    chunks = [bytes([i]) * 1000 for i in range(6)]
    frames = [c2s("A", start + 1000 * i, chunk) for i, chunk in enumerate(chunks)]
    frames[2], frames[3] = frames[3], frames[2]
    s = only(frames)
    assert s[0].data == b"".join(chunks)
    assert s[0].ooo == 1 and s[0].isn is None and not s[0].syn


def test_a_connection_picked_up_mid_stream_starts_at_its_first_data_segment():
    s = only([c2s("A", 7000), s2c("A", 9000), c2s("PA", 7000, b"middle"), s2c("PA", 9000, b"reply"),
              c2s("PA", 6990, b"0123456789"), c2s("PA", 6996, b"6789midd"), c2s("PA", 7006, b"!")])
    assert s.opener == (addr16(C), 40000)
    assert (s[0].data, s[1].data) == (b"middle!", b"reply")
    assert (s[0].isn, s[1].isn) == (None, None)
    assert s[0].dup == 2 and s[0].ooo == 0        # data before the first segment seen is not the stream's


def test_the_opener_is_whoever_sent_the_first_packet():
    s = only([s2c("PA", 9000, b"server first"), c2s("PA", 7000, b"client")])
    assert s.opener == (addr16(S), 80)
    assert (s[0].data, s[1].data) == (b"server first", b"client")


def test_a_rst_ends_its_direction_only():
    x, y = ISN_C + 1, ISN_S + 1
    s = only(handshake() + [c2s("PA", x, b"abc"), c2s("A", x + 6, b"ghi"), c2s("RA", x + 3, b"rst-data"),
                            c2s("A", x + 3, b"def"), s2c("PA", y, b"still here")])
    assert s[0].data == b"abc" and s[0].rst
    assert s[0].pending == 3 and s[0].held == [(6, b"ghi")]
    assert s[1].data == b"still here" and not s[1].rst


def test_syn_with_data_starts_after_the_syn():
    s = only([c2s("S", ISN_C, b"fast open"), s2c("SA", ISN_S), c2s("PA", ISN_C + 10, b"!")])
    assert s[0].data == b"fast open!"


def test_ipv6_with_vlan_tags():
    qinq = Ether() / Dot1AD(vlan=10) / Dot1Q(vlan=20)
    s = only([c2s("S", ISN_C, src=C6, dst=S6, l2=qinq), s2c("SA", ISN_S, src=S6, dst=C6),
              c2s("A", ISN_C + 5, b"world", src=C6, dst=S6, l2=Ether() / Dot1Q(vlan=7)),
              c2s("A", ISN_C + 1, b"hell", src=C6, dst=S6), s2c("PA", ISN_S + 1, b"v6", src=S6, dst=C6, l2=qinq)])
    assert s.key == Key(6, 6, (addr16(C6), 40000), (addr16(S6), 80))
    assert (s[0].data, s[1].data) == (b"hellworld", b"v6")
    assert s[0].ooo == 1


def test_connections_and_non_ip_frames_are_apart():
    frames = [c2s("PA", 100, b"one"), Ether() / ARP(), c2s("PA", 100, b"two", sport=40001),
              Ether(type=0x88B5) / (b"x" * 40), c2s("PA", 103, b"ONE")]
    result = streams(frames)
    assert [s[0].data for s in result.values()] == [b"oneONE", b"two"]


# --- datagrams, crafted ------------------------------------------------------------------------

def test_udp_payloads_in_arrival_order_with_their_lengths():
    def u(src, dst, sport, dport, data):
        return Ether() / IP(src=src, dst=dst) / UDP(sport=sport, dport=dport) / data
    s = only([u(C, S, 5000, 53, b"q1"), u(S, C, 53, 5000, b"answer1"), u(C, S, 5000, 53, b""),
              u(C, S, 5000, 53, b"q3"), u(S, C, 53, 5000, b"a3")])
    assert s.key.proto == 17 and not s.tcp
    assert (s[0].data, s[0].lengths) == (b"q1q3", [2, 0, 2])
    assert (s[1].data, s[1].lengths) == (b"answer1a3", [7, 2])


def test_ipv4_fragments_are_reassembled_in_any_order_and_incomplete_ones_are_pending():
    big = bytes(range(256)) * 12
    frags = fragment(IP(src=C, dst=S, id=77) / UDP(sport=5000, dport=53) / big, fragsize=1000)
    assert len(frags) == 4
    lost = fragment(IP(src=C, dst=S, id=78) / UDP(sport=5000, dport=53) / big, fragsize=1000)
    frames = [Ether() / f for f in (frags[0], frags[3], frags[1], frags[2], lost[0], lost[1])]
    s = only(frames)
    assert (s[0].data, s[0].lengths) == (big, [len(big)])
    assert s[0].pending == 2000                      # 8 bytes of UDP header among them


def test_a_datagram_whose_later_fragment_came_first_is_its_first_fragments_connections():
    big = bytes(range(256)) * 12
    frags = [Ether() / f for f in fragment(IP(src=C, dst=S, id=77) / UDP(sport=5000, dport=53) / big, 1000)]
    result = streams([frags[2], frags[0], frags[3], frags[1]])
    portless = Key(4, 17, (addr16(C), 0), (addr16(S), 0))
    assert set(result) == set(connections([bytes(f) for f in frags[2:3] + frags[:2] + frags[3:]])[0])
    assert result[portless][0].data == b"" and result[portless][0].lengths == []
    (s,) = [s for k, s in result.items() if k != portless]
    assert s[0].data == big


def test_icmp_echo_payloads():
    s = only([Ether() / IP(src=C, dst=S) / ICMP(type=8, id=1, seq=1) / b"ping-data",
              Ether() / IP(src=S, dst=C) / ICMP(type=0, id=1, seq=1) / b"ping-data"])
    assert (s[0].data, s[1].data, s[0].lengths) == (b"ping-data", b"ping-data", [9])


# --- the real captures ------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def capture(name):
    return streams(DATA / name)


def tcp_on(name, port):
    return [s for k, s in capture(name).items() if k.proto == 6 and port in (k.lo[1], k.hi[1])]


def http_response(data):
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"\r\nContent-Length: (\d+)", head).group(1))
    return head, body, length


def assert_clean(s):
    """Nothing out of order, duplicated or pending in either direction (these captures have none)."""
    for d in (0, 1):
        assert counts(s[d]) == (0, 0, 0, 0, 0), summary({s.key: s})


@pytest.mark.parametrize("name", sorted(p.name for p in DATA.glob("*.pcap")))
def test_keys_and_openers_are_flowchecks(name):
    conns, _ = connections(packets(DATA / name))
    ip = {k: c.opener for k, c in conns.items() if k.family}
    assert {k: s.opener for k, s in capture(name).items()} == ip


def test_http_get_three_responses_of_the_documented_sizes():
    conns = tcp_on("http_get.pcap", 8080)
    assert len(conns) == 3
    bodies = {}
    for s in conns:
        assert s.opener[1] != 8080 and s[0].fin and s[1].fin and s[0].syn and s[1].syn
        assert_clean(s)
        assert s[0].data.startswith(b"GET /") and s[0].data.endswith(b"\r\n\r\n")
        path = s[0].data.split()[1]
        head, body, length = http_response(s[1].data)
        assert head.startswith(b"HTTP/1.0 200 OK") and len(body) == length
        bodies[path] = body
    assert {p: len(b) for p, b in bodies.items()} == {b"/index.html": 3266, b"/pattern.txt": 15018,
                                                      b"/big.bin": 300000}
    assert b"SECRET-TOKEN-1234" in bodies[b"/pattern.txt"]
    assert b"SECRET-TOKEN-1234" not in bodies[b"/index.html"]


def readme_connections():
    """tests/data/README.md's table: capture name -> the TCP connections it says the capture holds."""
    rows = re.findall(r"^\| (\w+\.pcap) \| (\d+) \|", (DATA / "README.md").read_text(), re.M)
    return {name: int(n) for name, n in rows}


def test_the_data_readme_says_how_many_tcp_connections_each_capture_holds():
    said = readme_connections()
    assert sorted(said) == sorted(p.name for p in DATA.glob("*.pcap")), "a capture the README does not describe"
    for name, n in said.items():
        assert sum(1 for k, s in capture(name).items() if k.proto == 6 and s.tcp) == n, name


def test_http_keepalive_three_responses():
    # python3 -m http.server answers HTTP/1.0 and closes, so curl's three requests went out on
    # three connections (as tests/data/README.md says), not one kept-alive one.
    conns = tcp_on("http_keepalive.pcap", 8080)
    assert len(conns) == 3
    for s in conns:
        assert_clean(s)
        assert s[1].data.count(b"HTTP/1.0 200 OK") == 1
        head, body, length = http_response(s[1].data)
        assert len(body) == length
    assert [s[0].data.split()[1] for s in conns] == [b"/index.html", b"/pattern.txt", b"/index.html"]


def test_http_ipv6_carries_the_same_text_as_over_ipv4():
    (s,) = tcp_on("http_ipv6.pcap", 8080)
    assert s.key.family == 6 and s.opener[0] == addr16(C6)
    assert_clean(s)
    body = http_response(s[1].data)[1]
    v4 = next(x for x in tcp_on("http_get.pcap", 8080) if x[0].data.startswith(b"GET /pattern.txt"))
    assert body == http_response(v4[1].data)[1]
    assert b"SECRET-TOKEN-1234" in body


def test_iperf_data_and_control_connections():
    control, data = sorted(tcp_on("iperf_tcp.pcap", 5201), key=lambda s: len(s[0].data))
    cookie = data[0].data[:37]
    assert control[0].data[:37] == cookie and cookie[-1] == 0      # iperf3's 36-character cookie
    # The capture ends mid-transfer (2032 packets, no FIN on either connection): 1.78 MB of the
    # 2 MB arrived, all of it in order.
    assert len(data[0].data) == 1_780_717 and data[1].data == b""
    assert not (data[0].fin or data[1].fin or control[0].fin)
    assert_clean(data)
    assert_clean(control)


def test_mixed_capture():
    result = capture("mixed.pcap")
    (http,) = tcp_on("mixed.pcap", 8080)
    head, body, length = http_response(http[1].data)
    assert len(body) == length == 3266
    iperf = sorted(tcp_on("mixed.pcap", 5201), key=lambda s: len(s[0].data))
    assert len(iperf[1][0].data) == 1_048_613 and iperf[1][0].fin          # 1 MiB after the 37-byte cookie
    (udp,) = [s for k, s in result.items() if k.proto == 17]
    assert len(udp[0].lengths) == len(udp[1].lengths) == 50


def split(d):
    out, at = [], 0
    for n in d.lengths:
        out.append(d.data[at:at + n])
        at += n
    return out


def test_udp_echo_answers_each_query_reversed():
    (s,) = capture("udp_echo.pcap").values()
    queries, answers = split(s[0]), split(s[1])
    assert len(queries) == len(answers) == 300
    assert all(8 <= len(q) <= 210 for q in queries)
    assert [a[::-1] for a in answers] == queries


def test_icmp_ping_small_and_fragmented():
    s = next(s for k, s in capture("icmp_ping.pcap").items() if k.proto == 1)
    assert s[0].lengths == s[1].lengths == [56] * 5 + [3000] * 3
    assert s[0].data == s[1].data and s[0].pending == s[1].pending == 0


# --- a second reading of the captures ---------------------------------------------------------

def placed(frames, key, opener):
    """A direction's stream read another way: every data segment written at its offset from the
    ISN (no ordering, no first-wins: right only where there are no gaps or conflicts)."""
    out = {}
    for raw in frames:
        pkt = Ether(raw)
        ip = pkt.getlayer(IP) or pkt.getlayer(IPv6)
        if ip is None or TCP not in pkt:
            continue
        tcp = pkt[TCP]
        end = (addr16(ip.src), tcp.sport)
        if {end, (addr16(ip.dst), tcp.dport)} != {key.lo, key.hi}:
            continue
        d = out.setdefault(end == opener, {"isn": None, "bytes": bytearray()})
        if tcp.flags.S:
            d["isn"] = tcp.seq
        data = tcp.payload.load if isinstance(tcp.payload, Raw) else b""      # not Ethernet padding
        if data:
            at = (tcp.seq - d["isn"] - 1) % SEQ
            d["bytes"][at:at + len(data)] = data
    return {0 if k else 1: bytes(v["bytes"]) for k, v in out.items()}


@pytest.mark.parametrize("name", ["http_get.pcap", "http_keepalive.pcap", "http_ipv6.pcap", "iperf_tcp.pcap",
                                  "mixed.pcap"])
def test_streams_match_segments_placed_at_their_offsets(name):
    frames = packets(DATA / name)
    for key, s in capture(name).items():
        if s.tcp:
            other = placed(frames, key, s.opener)
            assert (s[0].data, s[1].data) == (other.get(0, b""), other.get(1, b"")), key


@pytest.mark.skipif(shutil.which("tcpdump") is None, reason="needs tcpdump")
@pytest.mark.parametrize("name", ["http_get.pcap", "http_ipv6.pcap", "iperf_tcp.pcap", "mixed.pcap"])
def test_stream_lengths_match_tcpdumps_segment_lengths(name):
    """tcpdump's own parser: the sum of its TCP segment lengths per direction (no retransmissions
    in these captures, so it is the stream's length)."""
    text = subprocess.run(["tcpdump", "-nn", "-r", str(DATA / name), "tcp"], capture_output=True, text=True,
                          check=True).stdout
    total = {}
    for m in re.finditer(r" IP6? (\S+)\.(\d+) > (\S+)\.(\d+): Flags .*, length (\d+)", text):
        src = (addr16(m.group(1)), int(m.group(2)))
        total[src, (addr16(m.group(3)), int(m.group(4)))] = total.get((src, (addr16(m.group(3)),
                                                                              int(m.group(4)))), 0) + int(m.group(5))
    for key, s in capture(name).items():
        if s.tcp:
            other = key.hi if s.opener == key.lo else key.lo
            assert len(s[0].data) == total.get((s.opener, other), 0)
            assert len(s[1].data) == total.get((other, s.opener), 0)
