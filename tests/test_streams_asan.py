"""The flow engine with streams (normaliser, stream view, edits, renumbering) built from the
source tree under AddressSanitizer and UBSan (tests/asan/stream_harness.c), fed random TCP and
every capture, with a C reader that holds and releases and a C editor that changes lengths: no
invalid access, no undefined behaviour, every mbuf back in its pool."""
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from conftest import CAPTURES, packets, unique_prefix
from test_streams import handshake, random_tcp, tcp, CLIENT, SERVER

ROOT = Path(__file__).resolve().parent.parent


def pkg_config(*args):
    done = subprocess.run(["pkg-config", *args], capture_output=True, text=True)
    return done.stdout.split() if done.returncode == 0 else None


def test_streams_under_asan(tmp_path):
    cc = shutil.which("cc")
    cflags, libs = pkg_config("--cflags", "libdpdk"), pkg_config("--libs", "libdpdk")
    if cc is None or cflags is None or libs is None:
        pytest.skip("needs cc and libdpdk known to pkg-config")
    sources = sorted((ROOT / "ext" / "src").glob("*.c")) + sorted((ROOT / "ext" / "src" / "processors").glob("*.c"))
    exe = tmp_path / "harness"
    build = subprocess.run(
        [cc, "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1",
         "-std=gnu11", "-I", str(ROOT / "ext" / "include"), *cflags, *map(str, sources),
         str(ROOT / "tests" / "asan" / "stream_harness.c"), "-o", str(exe), *libs, "-lpcap"],
        capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-4000:]

    body = b"the quick brown fox jumps over the lazy middlebox\n" * 200
    ordered = handshake(5, 2**32 - 3000) + [tcp(SERVER, CLIENT, 2**32 - 2999 + i, 6, "PA", body[i:i + 1400])
                                           for i in range(0, len(body), 1400)]
    corpus = ordered + ordered[5:9] + random_tcp(7, 3000) + [p for c in CAPTURES for p in packets(c)]
    with open(tmp_path / "corpus", "wb") as f:
        for frame in corpus:
            raw = bytes(frame)
            f.write(struct.pack("<I", len(raw)) + raw)
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99",
               UBSAN_OPTIONS="print_stacktrace=1")
    run = subprocess.run([str(exe), "--no-huge", "-m", "512", "--no-pci", "--no-shconf", "--no-telemetry",
                          "--file-prefix", unique_prefix(), "-l", "0", "--vdev", "net_null0", "--log-level", "error",
                          "--", str(tmp_path / "corpus")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert "Sanitizer" not in run.stderr and "runtime error" not in run.stderr, run.stderr[-4000:]
    assert run.returncode == 0, run.stderr[-4000:]
    frames, finds, edits, reordered, duplicates, retransmits, rewritten, split, packets_in, tx = map(int, run.stdout.split())
    assert frames == packets_in == len(corpus)
    assert finds > 0 and edits > 0 and rewritten > 0 and retransmits > 0
