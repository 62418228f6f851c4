"""The flow engine with streams (normaliser, stream view, edits, renumbering) built from the
source tree under AddressSanitizer and UBSan (tests/asan/stream_harness.c), fed random TCP and
every capture, with a C reader that holds and releases and a C editor that changes lengths: no
invalid access, no undefined behaviour, every mbuf back in its pool."""
import struct

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
    assert run.returncode == 0, run.stderr[-4000:]
    (frames, finds, edits, reordered, duplicates, retransmits, rewritten, split, packets_in, tx,
     holds_idle) = map(int, run.stdout.split())
    assert frames == packets_in == len(corpus)
    assert finds > 0 and edits > 0 and rewritten > 0 and retransmits > 0
    assert holds_idle > 0   # stream_hold_ms 1: the engine let held bytes go (fo_stream_hold.c)
