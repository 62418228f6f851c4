"""Payload streams and TCP normalisation (ext/src/fo_tcp_norm.c, fo_stream.c, the Stream API of
flowos/boundary/_python.pyx), checked against tests/streamcheck.py, an independent reassembly with scapy.
Crafted captures bring what the real ones lack: reordering, duplicates, overlaps with different
bytes, sequence wrap-around, a connection picked up mid-stream, patterns split across packets."""
import ipaddress
import json
import os
from collections import Counter
from pathlib import Path

import pytest
from scapy.all import IP, TCP, Ether, Raw

from conftest import CAPTURES, DATA, packets
from flowcheck import check_accounting, checksums_ok, engine_stats, one_port, run_config, write_pcap
from streamcheck import streams

TESTS = Path(__file__).parent
CLIENT, SERVER = ("10.77.0.1", 40000), ("10.77.0.2", 8080)


@pytest.fixture(autouse=True)
def pyprocs_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p))


def model_name(s):
    """The name tests/pyprocs/streams.py gives a flow, for a streamcheck connection."""
    def ip(a):
        return str(ipaddress.ip_address(a[:4] if s.key.family == 4 else a))
    other = s.key.hi if s.opener == s.key.lo else s.key.lo
    return f"{s.key.proto} {ip(s.opener[0])} {s.opener[1]} {ip(other[0])} {other[1]}"


def run_streams(tmp_path, capture, pipeline, streams_opt="auto", check=True, burst=None):
    out = tmp_path / "out.pcap"
    flows = [{"name": "all", "pipeline": pipeline, "streams": streams_opt}]
    extra = {"run": {"burst": burst}} if burst else {}
    run = run_config(tmp_path, one_port(capture, out, flows, {"clock": "capture"}, **extra))
    if check:
        assert run.returncode == 0, run.stderr
        assert run.stats["mbufs"]["in_use_at_exit"] == 0
        check_accounting(engine_stats(run))
    return run, (packets(out) if out.exists() else [])


def recorded(tmp_path, capture, burst=None):
    rec = tmp_path / "streams.json"
    run, out = run_streams(tmp_path, capture, [{"pyprocs.streams:Recorder": {"path": str(rec)}}], burst=burst)
    return run, out, json.loads(rec.read_text())


def assert_same_streams(seen, model):
    for s in model.values():
        if not (s[0].data or s[1].data):
            continue
        name = model_name(s)
        assert name in seen, f"{name} not seen; seen: {sorted(seen)}"
        d0, d1, problems = seen[name]
        assert problems == []
        assert bytes.fromhex(d0) == s[0].data, name
        assert bytes.fromhex(d1) == s[1].data, name


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda p: p.stem)
def test_streams_of_real_captures_match_an_independent_reassembly(tmp_path, capture):
    run, out, seen = recorded(tmp_path, capture)
    assert_same_streams(seen, streams(capture))
    # Nothing rewritten: every packet leaves as it came, but for the duplicates normalisation
    # drops (a copy of data still in the flow's queue leaves once): http_impaired has some.
    left, came = Counter(out), Counter(packets(capture))
    assert not left - came
    assert sum((came - left).values()) == engine_stats(run)["streams"]["duplicates"]


def tcp(src, dst, seq, ack=0, flags="A", data=b"", **kw):
    return (Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], seq=seq % 2**32,
            ack=ack % 2**32, flags=flags, **kw) / Raw(data))


def handshake(isn_c, isn_s, mss=None):
    opts = [("MSS", mss)] if mss else []
    return [tcp(CLIENT, SERVER, isn_c, flags="S", options=opts),
            tcp(SERVER, CLIENT, isn_s, isn_c + 1, flags="SA", options=opts),
            tcp(CLIENT, SERVER, isn_c + 1, isn_s + 1)]


def data_segments(src, dst, isn, ack, payload, size):
    return [tcp(src, dst, isn + 1 + i, ack, "PA", payload[i:i + size]) for i in range(0, len(payload), size)]


@pytest.mark.parametrize("isn", [1000, 2**32 - 700], ids=["plain", "wraps"])
def test_reordered_duplicated_overlapping_segments_reach_processors_in_order_once(tmp_path, isn):
    body = bytes(range(256)) * 8
    isn_s = 5000
    segs = data_segments(CLIENT, SERVER, isn, isn_s + 1, body, 200)
    # Reorder (3 before 1 and 2, twice: the copy comes while 3 waits), send 4 and 8 again after
    # they left, overlap 6 with different bytes (the first bytes to arrive win).
    changed = bytes(segs[6][Raw].load[:100]).translate(bytes(range(255, -1, -1)))
    overlap = tcp(CLIENT, SERVER, isn + 1 + 6 * 200 - 50, isn_s + 1, "PA",
                  bytes(segs[5][Raw].load[150:]) + changed)
    frames = handshake(isn, isn_s) + [segs[0], segs[3], segs[3], segs[1], segs[2], segs[4], segs[4], segs[5], overlap,
                                      *segs[6:9], segs[8], *segs[9:]]
    capture = write_pcap(tmp_path / "in.pcap", frames)
    run, out, seen = recorded(tmp_path, capture, burst=1)   # one packet a burst: 8's copy comes after 8 left
    model = streams(capture)
    assert_same_streams(seen, model)
    (conn,) = [s for s in model.values() if s.tcp]
    first_wins = body[:1200] + changed + body[1300:]
    assert conn[0].data == first_wins
    stats = engine_stats(run)["streams"]
    assert stats["reordered"] == 1 and stats["duplicates"] == 1 and stats["overlap_bytes"] == 50 + 100
    assert stats["retransmits"] == 2
    # What left: the same stream, in sequence order, with no overlap; only retransmissions repeat.
    (left,) = [s for s in streams(out).values() if s.tcp]
    assert left[0].data == first_wins
    assert left[0].ooo == left[0].overlap == left[0].conflict == 0
    assert left[0].dup == 2
    assert all(checksums_ok(f) for f in out)


def test_a_connection_picked_up_mid_stream_starts_at_its_first_data(tmp_path):
    body = b"0123456789" * 100
    segs = data_segments(CLIENT, SERVER, 777, 1, body, 100)
    capture = write_pcap(tmp_path / "in.pcap", segs[3:])
    run, out, seen = recorded(tmp_path, capture)
    assert_same_streams(seen, streams(capture))
    assert len(out) == len(segs) - 3


def test_a_held_gap_is_skipped_when_the_receiver_acknowledges_past_it(tmp_path):
    """The receiver had bytes FlowOS never saw: they will not be sent again, so nothing waits."""
    body = b"x" * 1000
    segs = data_segments(CLIENT, SERVER, 100, 1, body, 100)
    frames = [segs[0], segs[3], segs[4], tcp(SERVER, CLIENT, 1, 100 + 1 + 300), segs[5]]
    capture = write_pcap(tmp_path / "in.pcap", frames)
    run, out, seen = recorded(tmp_path, capture)
    assert engine_stats(run)["streams"]["gaps_skipped"] == 1
    d0 = bytes.fromhex(seen[f"6 {CLIENT[0]} {CLIENT[1]} {SERVER[0]} {SERVER[1]}"][0])
    assert d0 == body[:100] + body[300:600]


def test_a_pattern_split_across_segments_is_found(tmp_path):
    text = b"hello " * 30 + b"SECRET-TOKEN-1234" + b" bye" * 30
    at = text.index(b"SECRET")
    frames = handshake(1, 9)
    frames += [tcp(SERVER, CLIENT, 10, 2, "PA", text[:at + 7]), tcp(SERVER, CLIENT, 10 + at + 7, 2, "PA", text[at + 7:])]
    capture = write_pcap(tmp_path / "in.pcap", frames)
    found = tmp_path / "found.json"
    run, out = run_streams(tmp_path, capture, [{"pyprocs.streams:Finder": {"path": str(found),
                                                                           "pattern": "SECRET-TOKEN-1234"}}])
    got = json.loads(found.read_text())
    assert list(got["found"].values()) == [[at]] and got["spanning"] == 1
    assert len(out) == len(frames)


@pytest.mark.parametrize("stages", [
    pytest.param([("the lazy ", "X")], id="one-stage"),
    pytest.param([("fox", "wolverine"), ("the lazy ", "X")], id="after-an-edit")])
def test_a_release_inside_a_packet_lets_the_bytes_before_it_go(tmp_path, stages):
    """A processor holding a possible start of its pattern ("the la" at a segment's end) holds
    those bytes, not the whole segment: the bytes before them leave at once, as a segment of
    their own (a sender whose window has shrunk to that segment would otherwise never send the
    rest). Bursts of one packet: a packet of another connection arriving between the two
    segments leaves after the front. With an earlier stage's edit in the segment, the numbering
    still has no gap or overlap."""
    head, tail = b"the quick brown fox jumps\n" * 8, b"zy dog\n"
    other = tcp(("10.77.0.3", 5555), SERVER, 100, flags="S")
    frames = handshake(1, 9) + [tcp(SERVER, CLIENT, 10, 2, "PA", head + b"the la"), other,
                                tcp(SERVER, CLIENT, 10 + len(head) + 6, 2, "PA", tail)]
    capture = write_pcap(tmp_path / "in.pcap", frames)
    run, out = run_streams(tmp_path, capture, [{"pyprocs.streams:Rewriter": {"old": o, "new": n}} for o, n in stages],
                           burst=1)
    assert engine_stats(run)["streams"]["release_split"] == 1
    expect = head + b"the lazy dog\n"
    for o, n in stages:
        expect = expect.replace(o.encode(), n.encode())
    frames_out = [Ether(f) for f in out]
    first_data = next(i for i, p in enumerate(frames_out) if TCP in p and len(p[TCP].payload))
    assert bytes(frames_out[first_data][TCP].payload) == expect[:expect.index(b"X")]
    assert first_data < next(i for i, p in enumerate(frames_out) if TCP in p and p[TCP].sport == 5555)
    (s,) = [s for s in streams(out).values() if s.tcp and (s[0].data or s[1].data)]
    assert s[1].data == expect and s[1].pending == 0 and s[1].ooo == 0
    assert all(checksums_ok(f) for f in out)


def test_the_token_in_the_real_http_capture_is_found_once(tmp_path):
    capture = next(c for c in CAPTURES if c.stem == "http_get")
    found = tmp_path / "found.json"
    run_streams(tmp_path, capture, [{"pyprocs.streams:Finder": {"path": str(found), "pattern": "SECRET-TOKEN-1234"}}])
    model = streams(capture)
    expect = {model_name(s): [s[1].data.index(b"SECRET-TOKEN-1234")] for s in model.values()
              if b"SECRET-TOKEN-1234" in s[1].data}
    assert json.loads(found.read_text())["found"] == expect


@pytest.mark.parametrize("new", ["[gone]", "SECRET-TOKEN-1234-AND-A-MUCH-LONGER-REPLACEMENT" * 40],
                         ids=["shorter", "longer-than-a-segment"])
def test_length_changing_rewrites_renumber_the_connection(tmp_path, new):
    """The server->client stream that leaves is the original with the token replaced, numbered
    without gaps or overlaps, segments within the MSS. (A replayed capture's acknowledgements
    answer the original bytes, so their mapping is proven with live TCP: tests/test_e2e_streams.py.)"""
    capture = next(c for c in CAPTURES if c.stem == "http_get")
    old = "SECRET-TOKEN-1234"
    run, out = run_streams(tmp_path, capture, [{"pyprocs.streams:Rewriter": {"old": old, "new": new}}], check=False)
    assert run.returncode == 0, run.stderr
    assert run.stats["mbufs"]["in_use_at_exit"] == 0
    before, after = streams(capture), streams(out)
    assert all(checksums_ok(f) for f in out)
    for key, s in before.items():
        if not s.tcp:
            continue
        a = after[key]
        assert a[0].data == s[0].data
        assert a[1].data == s[1].data.replace(old.encode(), new.encode())
        assert a[0].pending == a[1].pending == 0 and a[0].ooo == a[1].ooo == 0
        sizes = [len(Ether(f)[TCP].payload) for f in out if TCP in Ether(f)]
        assert max(sizes) <= 1448 + 12


def test_the_stream_api_reads_searches_edits_and_releases(tmp_path):
    """A request in three segments: the first call reads it (and holds it); the second sees all
    three, edits across them (insert, a delete spanning two packets, replace, append) and
    releases; what leaves is the edited stream, renumbered."""
    parts = [b"GET /a HTTP/1.1\r\nHo", b"st: x\r\n\r\n", b"tail"]
    frames = handshake(100, 900)
    seq = 101
    for p in parts:
        frames.append(tcp(CLIENT, SERVER, seq, 901, "PA", p))
        seq += len(p)
    capture = write_pcap(tmp_path / "in.pcap", frames)
    path = tmp_path / "probe.json"
    run, out = run_streams(tmp_path, capture, [{"pyprocs.streams:Probe": {"path": str(path)}}], burst=4)
    got = json.loads(path.read_text())
    first, second = got["calls"]
    assert (first["start"], first["end"], first["packets"]) == (0, 19, [[0, 19]])
    assert first["line"] == "GET /a HTTP/1.1\r\n" and first["header_end"] == -1 and first["get"]
    assert first["slice"] == "GET" and first["view"] == parts[0].decode() and first["partial"] == 19
    whole = b"".join(parts).decode()
    assert (second["start"], second["end"], second["packets"]) == (0, 32, [[0, 19], [19, 9], [28, 4]])
    assert first["read_released"] == "no error"   # offset 0 is held
    assert second["all"] == whole and second["header_end"] == 24 and second["read_released"] == "no error"
    assert second["partial"] == 28          # "tail" may start "tail-end"
    assert second["edited"] == "PUT XYZ/a HTTP/1.1\r\n\r\ntail!"
    assert got["stale"] == "RuntimeError"   # a Stream kept past process() raises
    (left,) = [s for s in streams(out).values() if s.tcp]
    assert left[0].data == second["edited"].encode() and left[0].ooo == left[0].overlap == 0
    assert all(checksums_ok(f) for f in out)


def random_tcp(seed, count):
    """Frames of a few TCP connections whose segments jump around the sequence space (also
    across 2^32), repeat and overlap, with SYN/FIN/RST at random and payloads that contain the
    words the test rewriters change."""
    import random
    rnd = random.Random(seed)
    frames = []
    conns = [((f"10.9.0.{i}", 1000 + i), ("10.9.1.1", 80), rnd.randrange(2**32), rnd.randrange(2**32)) for i in range(4)]
    for _ in range(count):
        c, s, isn_c, isn_s = rnd.choice(conns)
        fwd = rnd.random() < 0.6
        src, dst, isn, peer = (c, s, isn_c, isn_s) if fwd else (s, c, isn_s, isn_c)
        seq = isn + rnd.choice([rnd.randrange(0, 20000), rnd.randrange(2**32)])
        data = bytes(rnd.choice(b"ab foxlzy\r\n") for _ in range(rnd.choice([0, 1, 5, 100, 1400])))
        if rnd.random() < 0.2:
            data = (b"the quick brown fox jumps over the lazy middlebox " * 30)[:len(data)]
        flags = rnd.choice(["A", "PA", "PA", "S", "SA", "FA", "R", "A"])
        frames.append(tcp(src, dst, seq, peer + rnd.randrange(20000), flags, data))
    return frames


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_tcp_through_a_rewriting_stream_pipeline_neither_crashes_nor_leaks(tmp_path, seed):
    """Garbage that still parses: a few connections whose segments jump around the sequence
    space (also across 2^32), repeat, overlap, carry SYN/FIN/RST at random, with payloads that
    contain the rewritten word; through a reader and a length-changing rewriter. The run ends
    cleanly, every mbuf returns to its pool, and every packet's bytes that leave are well formed."""
    frames = random_tcp(seed, 1500)
    capture = write_pcap(tmp_path / "in.pcap", frames)
    rec = tmp_path / "streams.json"
    run, out = run_streams(tmp_path, capture, [{"pyprocs.streams:Recorder": {"path": str(rec)}},
                                              {"pyprocs.streams:Rewriter": {"old": "fox", "new": "wolverine"}}])
    st = engine_stats(run)
    assert st["packets"] == len(frames)
    assert all(checksums_ok(f) for f in out)
    for f in out:
        p = Ether(f)
        assert p[IP].len == len(p[IP]) and len(p[TCP].payload) <= 1460


def test_the_redact_example_on_the_command_line(tmp_path, monkeypatch):
    """examples/redact.py with --processor (the README's and scripts/demo's way)."""
    from conftest import run_flowos
    monkeypatch.setenv("PYTHONPATH", str(TESTS.parent / "examples"))
    capture = next(c for c in CAPTURES if c.stem == "http_get")
    out = tmp_path / "out.pcap"
    run = run_flowos("--vdev", f"net_pcap0,rx_pcap={capture},tx_pcap={out}", "--processor", "redact:Redact",
                     "--clock", "capture", tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert "redact: 1 x 'SECRET-TOKEN-1234' -> '[redacted]'" in run.stderr
    before, after = streams(capture), streams(out)
    for k, s in before.items():
        if s.tcp:
            assert after[k][1].data == s[1].data.replace(b"SECRET-TOKEN-1234", b"[redacted]")


def test_a_capture_reordered_duplicated_and_lost_before_the_box_leaves_in_order_and_rewritten(tmp_path):
    """http_impaired.pcap (tests/data/README.md): a real download whose segments were reordered,
    duplicated and lost between the two ends, as the box saw them. FlowOS counts what the
    independent model counts, and the stream leaves in order, once, with a length-changing
    rewrite made at every token."""
    capture = DATA / "http_impaired.pcap"
    model = streams(capture)
    (conn,) = [s for s in model.values() if s.tcp]
    assert conn[1].ooo > 0 and conn[1].dup > 0
    old, new = b"SECRET-TOKEN-1234", b"[gone]"
    run, out = run_streams(tmp_path, capture, [{"pyprocs.streams:Rewriter": {"old": old.decode(), "new": new.decode()}}])
    st = engine_stats(run)["streams"]
    assert (st["reordered"], st["duplicates"]) == (conn[0].ooo + conn[1].ooo, conn[0].dup + conn[1].dup)
    (left,) = [s for s in streams(out).values() if s.tcp]
    assert left[0].data == conn[0].data and left[1].data == conn[1].data.replace(old, new)
    assert conn[1].data.count(old) > 0
    assert left[1].ooo == left[1].dup == left[1].pending == 0
    assert all(checksums_ok(f) for f in out)
