"""The flow engine with streams (normaliser, stream view, edits, renumbering) built from the
source tree under AddressSanitizer and UBSan (tests/asan/stream_harness.c), fed random TCP and
every capture, with a C reader that holds and releases and a C editor that changes lengths: no
invalid access, no undefined behaviour, every mbuf back in its pool."""
import struct

import pytest
from scapy.all import Ether, Raw

import asanbuild
from conftest import CAPTURES, packets
from test_streams import handshake, random_tcp, tcp, CLIENT, SERVER

ROOT = asanbuild.ROOT


def test_streams_under_asan(tmp_path):
    sources = sorted((ROOT / "ext" / "src").glob("*.c")) + sorted((ROOT / "ext" / "src" / "processors").glob("*.c"))
    exe = asanbuild.build(tmp_path, "stream_harness", sources)

    body = b"the quick brown fox jumps over the lazy middlebox\n" * 200
    ordered = handshake(5, 2**32 - 3000) + [tcp(SERVER, CLIENT, 2**32 - 2999 + i, 6, "PA", body[i:i + 1400])
                                           for i in range(0, len(body), 1400)]
    corpus = ordered + ordered[5:9] + random_tcp(7, 3000) + [p for c in CAPTURES for p in packets(c)]
    with open(tmp_path / "corpus", "wb") as f:
        for frame in corpus:
            raw = bytes(frame)
            f.write(struct.pack("<I", len(raw)) + raw)
    run = asanbuild.run(exe, "--vdev", "net_null0", "--", str(tmp_path / "corpus"))
    # Exit 10: the engine did not record a flow_start, flow_end or process() of the reader as
    # the call under way (fo_engine_current_call, the watchdog's view, and the supervisor's
    # record of it); exit 11: nor its teardown, or the record was not cleared after it.
    assert run.returncode == 0, run.stderr[-4000:]
    (frames, finds, edits, reordered, duplicates, retransmits, rewritten, split, packets_in, tx,
     release_split, refused, wrong_fields, holds_idle) = map(int, run.stdout.split())
    assert frames == packets_in == len(corpus)
    assert finds > 0 and edits > 0 and rewritten > 0 and retransmits > 0
    assert holds_idle > 0   # stream_hold_ms 1: the engine let held bytes go (fo_stream_hold.c)


TOKEN, DROP = b"SECRET-TOKEN-1234", b"DROP-ME/"
REPLACEMENT = (b"[redacted]" * 66)[:658]


def redact_corpus():
    """Connections whose edits grow packets past one mbuf and end at their tails: a standard
    1460-byte segment with the token twice (the last bytes its second), 9000-byte segments with
    tokens every 700 bytes (to ~17 KB each, past the jumbo MSS: split again), a DROP word cut
    across segments, and the same over IPv6 with extension headers (hop-by-hop, destination
    options) before TCP."""
    from scapy.all import IPv6, IPv6ExtHdrDestOpt, IPv6ExtHdrHopByHop, TCP as T

    def v6(src, dst, seq, ack=0, flags="A", data=b"", **kw):
        side = {src: "fd00::1", dst: "fd00::2"} if dst == SERVER else {src: "fd00::2", dst: "fd00::1"}
        return (Ether() / IPv6(src=side[src], dst=side[dst]) / IPv6ExtHdrHopByHop() / IPv6ExtHdrDestOpt()
                / T(sport=src[1], dport=dst[1], seq=seq % 2**32, ack=ack % 2**32, flags=flags, **kw) / Raw(data))

    def connection(make, client, isn_c, isn_s, mss, payloads):
        opts = [("MSS", mss)]
        frames = [make(client, SERVER, isn_c, flags="S", options=opts),
                  make(SERVER, client, isn_s, isn_c + 1, flags="SA", options=opts),
                  make(client, SERVER, isn_c + 1, isn_s + 1)]
        seq = isn_c + 1
        for p in payloads:
            frames.append(make(client, SERVER, seq, isn_s + 1, "PA", p))
            seq += len(p)
        frames.append(make(SERVER, client, isn_s + 1, seq, "A"))
        return frames, b"".join(payloads)

    standard = b"x" * 100 + TOKEN + b"y" * (1460 - 100 - 2 * len(TOKEN)) + TOKEN    # the token ends the segment
    straddle = b"a" * 1450 + TOKEN[:10], TOKEN[10:] + b"b" * 600 + DROP[:3], DROP[3:] + b"c" * 40
    jumbo = b"".join((b"j" * (700 - len(TOKEN)) + TOKEN) for _ in range(12)) + b"k" * (9000 - 12 * 700)
    corpus, streams_in = [], []
    for port, make, mss, payloads in ((41000, tcp, 1460, [standard, standard, *straddle]),
                                      (41001, tcp, 8960, [jumbo, jumbo[:5000] + DROP + jumbo[5000:8990]]),
                                      (41002, v6, 1460, [standard, *straddle, standard])):
        frames, data = connection(make, (CLIENT[0], port), 2**32 - port, port * 7, mss, payloads)
        corpus += frames
        streams_in.append(data)
    return corpus, streams_in


@pytest.mark.parametrize("chain", [False, True], ids=["one_segment", "chained"])
def test_edits_across_segments_under_asan(tmp_path, chain):
    """Length-changing edits that grow packets past one mbuf (to ~3x and 17 KB) and end at their
    last byte, on packets that arrive whole or as chains of segments of varied sizes (headers cut
    across the first two): the bytes that leave are the model's (each token replaced, each DROP
    word deleted), every checksum is right (IPv6 with extension headers too), no sanitizer report,
    no mbuf lost. Before the fix this crashed in __rte_pktmbuf_read (a read of 0 bytes at the end
    of a chain)."""
    from scapy.utils import RawPcapReader
    from flowcheck import checksums_ok
    from streamcheck import streams

    sources = sorted((ROOT / "ext" / "src").glob("*.c")) + sorted((ROOT / "ext" / "src" / "processors").glob("*.c"))
    exe = asanbuild.build(tmp_path, "stream_harness", sources)
    corpus, streams_in = redact_corpus()
    with open(tmp_path / "corpus", "wb") as f:
        for frame in corpus:
            raw = bytes(frame)
            f.write(struct.pack("<I", len(raw)) + raw)
    out = tmp_path / "out.pcap"
    run = asanbuild.run(exe, "--vdev", f"net_pcap0,tx_pcap={out}", "--", str(tmp_path / "corpus"), "redact",
                        "chain" if chain else "one")
    assert run.returncode == 0, run.stderr[-4000:]
    frames, _, edits, *_, split, _, _, release_split, refused, wrong_fields, _ = map(int, run.stdout.split())
    assert frames == len(corpus) and refused == 0 and wrong_fields == 0
    assert split > 0 and release_split > 0    # grown segments split at the MSS, held ones cut by a release
    assert edits == sum(s.count(TOKEN) + s.count(DROP) for s in streams_in)
    sent = [bytes(data) for data, _ in RawPcapReader(str(out))]
    assert max(map(len, sent)) > 2048 and all(checksums_ok(raw) for raw in sent)
    got = [s[0].data for s in streams(sent).values()]
    assert got == [s.replace(TOKEN, REPLACEMENT).replace(DROP, b"") for s in streams_in]
