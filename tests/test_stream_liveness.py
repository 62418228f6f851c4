"""Held stream bytes are never held for ever, and resent copies do not multiply packets
(ext/src/fo_stream_hold.c, fo_tcp_norm.c; docs/streams.md, "Held bytes are never held for ever"). Crafted
traces replay the exact sequences, one packet a burst, on the capture's clock."""
import os
from pathlib import Path

import pytest
from scapy.all import IP, TCP, Ether, Raw

from conftest import packets
from flowcheck import checksums_ok, engine_stats, one_port, run_config, write_pcap
from streamcheck import streams

TESTS = Path(__file__).parent
CLIENT, SERVER, OTHER = ("10.78.0.1", 40000), ("10.78.0.2", 8080), ("10.78.0.3", 5555)
T0 = 1_700_000_000.0


@pytest.fixture(autouse=True)
def pyprocs_importable(monkeypatch):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p))


def tcp(src, dst, seq, ack=0, flags="A", data=b"", ts=None, options=()):
    opts = list(options) + ([("Timestamp", (ts, 1))] if ts is not None else [])
    return (Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], seq=seq, ack=ack, flags=flags,
                                                       options=opts) / Raw(data))


def handshake(mss=None, ts=None):
    opts = [("MSS", mss)] if mss else []
    return [tcp(CLIENT, SERVER, 1, flags="S", options=opts, ts=ts), tcp(SERVER, CLIENT, 9, 2, "SA", options=opts, ts=ts),
            tcp(CLIENT, SERVER, 2, 10, ts=ts)]


def marker(n):
    """A packet of another connection: where it lands in the output dates what is around it."""
    return tcp(OTHER, SERVER, 100 + n, flags="S")


def run(tmp_path, frames, times, pipeline, limits=None):
    capture = write_pcap(tmp_path / "in.pcap", frames, times)
    out = tmp_path / "out.pcap"
    flow = {"name": "all", "pipeline": pipeline, **({"limits": limits} if limits else {})}
    done = run_config(tmp_path, one_port(capture, out, [flow], {"clock": "capture"}, run={"burst": 1}))
    assert done.returncode == 0, done.stderr
    assert done.stats["mbufs"]["in_use_at_exit"] == 0
    return done, [Ether(f) for f in packets(out)]


def rewriters(*pairs):
    return [{"pyprocs.streams:Rewriter": {"old": o, "new": n}} for o, n in pairs]


def position(out, what):
    """Index of the first server->client packet whose payload ends with `what`, or of the marker n."""
    for i, p in enumerate(out):
        if isinstance(what, int) and p[TCP].sport == OTHER[1] and p[TCP].seq == 100 + what:
            return i
        if isinstance(what, bytes) and p[TCP].sport == SERVER[1] and bytes(p[TCP].payload).endswith(what):
            return i
    raise AssertionError(f"{what!r} not in the output")


HEAD = b"the quick brown fox jumps\n" * 8   # "fox" grows the segment: the direction is rewritten
GROWN = HEAD.replace(b"fox", b"wolverine")


def test_held_bytes_whose_sender_waits_for_them_go_on(tmp_path):
    """The sequence that stalled rewritten downloads under loss: a segment ends with a possible
    start of the pattern ("the la"), so the processor holds those bytes (the front leaves); the
    segment after it is lost before FlowOS; the client acknowledges the front; the sender times
    out and resends the held bytes, FlowOS drops the copy (they leave once), and the sender, its
    window shrunk to them, sends nothing new until they are acknowledged. Its resends are no new
    bytes: 500 ms (stream_hold_ms's default) after the last new ones, the held bytes go on."""
    rest = len(HEAD) + 10
    frames = handshake(ts=50) + [
        tcp(SERVER, CLIENT, 10, 2, "PA", HEAD + b"the la", ts=100),
        tcp(CLIENT, SERVER, 2, 10 + len(GROWN), ts=101),               # the front, as the client numbers it
        tcp(SERVER, CLIENT, rest, 2, "PA", b"the la", ts=300),         # its sender's timeout: resent
        tcp(SERVER, CLIENT, rest, 2, "PA", b"the la", ts=500),         # ... and again, backing off
        marker(1), marker(2),
        tcp(SERVER, CLIENT, rest + 6, 2, "PA", b"zy dog\n", ts=700)]   # at last, what was lost
    times = [T0, T0 + .001, T0 + .002, T0 + .01, T0 + .011, T0 + .2, T0 + .45, T0 + .52, T0 + .53, T0 + .6]
    done, out = run(tmp_path, frames, times, rewriters(("fox", "wolverine"), ("the lazy ", "X")))
    st = engine_stats(done)["streams"]
    assert st["holds_idle"] == 1 and st["release_split"] == 1 and st["duplicates"] == 2
    assert position(out, 1) < position(out, b"the la") < position(out, 2)
    (s,) = [s for s in streams([bytes(p) for p in out]).values() if s.tcp and s[1].data]
    # Let go before its end came, the pattern was not whole: it passes as it came.
    assert s[1].data == GROWN + b"the lazy dog\n" and s[1].ooo == 0 and s[1].overlap == 0
    assert all(checksums_ok(bytes(p)) for p in out)


def test_bytes_held_while_new_ones_keep_coming_are_the_processors_to_release(tmp_path):
    """The rule counts from the last new bytes, not from the first held: a stream whose held end
    is completed again and again, 0.3 s apart (1.5 s in all), is never let go early."""
    text = [b"a the la", b"zy dog the la", b"zy cat the la", b"zy cow the la", b"zy end\n"]
    frames, seq = handshake(), 10
    for part in text:
        frames.append(tcp(SERVER, CLIENT, seq, 2, "PA", part))
        seq += len(part)
    times = [T0, T0 + .001, T0 + .002] + [T0 + .01 + .3 * i for i in range(len(text))]
    done, out = run(tmp_path, frames, times, rewriters(("the lazy ", "X")))
    assert engine_stats(done)["streams"]["holds_idle"] == 0
    (s,) = [s for s in streams([bytes(p) for p in out]).values() if s.tcp and s[1].data]
    assert s[1].data == b"".join(text).replace(b"the lazy ", b"X")


@pytest.mark.parametrize("hold_ms", [100, 1000])
def test_held_bytes_go_on_once_the_flow_is_quiet(tmp_path, hold_ms):
    """A response on a kept-alive connection ends with a possible start of the pattern: nothing
    follows it, no FIN ends the flow, and (here) the sender does not resend. The held bytes go on
    once the flow has brought no new bytes for stream_hold_ms: before a packet of another
    connection 0.15 s later with 100 ms, 1.2 s later with 1000 ms."""
    frames = handshake() + [tcp(SERVER, CLIENT, 10, 2, "PA", HEAD + b"the la"), marker(1), marker(2), marker(3),
                            marker(4)]
    times = [T0, T0 + .001, T0 + .002, T0 + .01, T0 + .15, T0 + .16, T0 + 1.2, T0 + 1.21]
    done, out = run(tmp_path, frames, times, rewriters(("the lazy ", "X")),
                    limits={"stream_hold_ms": hold_ms})
    st = engine_stats(done)["streams"]
    assert st["holds_idle"] == 1
    held = position(out, b"the la")
    if hold_ms == 100:
        assert position(out, 1) < held < position(out, 2)
    else:
        assert position(out, 2) < held < position(out, 4)
    (s,) = [s for s in streams([bytes(p) for p in out]).values() if s.tcp and s[1].data]
    assert s[1].data == HEAD + b"the la"


def test_a_retransmission_resends_a_few_kept_copies_not_all(tmp_path):
    """A segment that grew past the MSS left as several copies, kept until acknowledged; each of
    the sender's retransmissions of it used to send every copy again (here 9: 5 retransmissions
    made 45 packets). Now at most 4 per retransmission, counted (copies_resent), and once the
    receiver acknowledges those the next retransmission brings the next ones."""
    body = b"a fox! " * 70                                    # 490 bytes, 70 foxes
    new = "wolverine" * 6                                     # each +51: 4060 bytes, 9 copies of at most 500
    grown = body.replace(b"fox", new.encode())
    mss = 500
    copies = -(-len(grown) // mss)
    resend = tcp(SERVER, CLIENT, 10, 2, "PA", body)
    frames = handshake(mss=mss) + [tcp(SERVER, CLIENT, 10, 2, "PA", body)] + [resend] * 3 + [
        tcp(CLIENT, SERVER, 2, 10 + 4 * mss), resend, resend]
    times = [T0 + i * .01 for i in range(len(frames))]
    done, out = run(tmp_path, frames, times, rewriters(("fox", new)))
    st = engine_stats(done)["streams"]
    data = [p for p in out if p[TCP].sport == SERVER[1] and len(p[TCP].payload)]
    assert copies == 9 and st["split"] == 1 and st["retransmits"] == 5
    assert st["copies_resent"] == 5 * 4 and len(data) == copies + 5 * 4
    # After the ACK of the first 4 copies, the next retransmission sends copies 5 to 8.
    assert [p[TCP].seq - 10 for p in data[copies + 12:copies + 16]] == [k * mss for k in range(4, 8)]
    (s,) = [s for s in streams([bytes(p) for p in out]).values() if s.tcp and s[1].data]
    assert s[1].data == grown
    assert all(checksums_ok(bytes(p)) for p in out)
