"""Builds a C harness with FlowOS sources under AddressSanitizer and UBSan, and runs it on an EAL
of its own (tests/asan/)."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import remove_runtime_folder, unique_prefix

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99", UBSAN_OPTIONS="print_stacktrace=1")


def pkg_config(*args):
    done = subprocess.run(["pkg-config", *args], capture_output=True, text=True)
    return done.stdout.split() if done.returncode == 0 else None


def build(tmp_path, harness, sources=()):
    """tests/asan/<harness>.c linked with `sources` (paths); skips without cc or libdpdk."""
    cc = shutil.which("cc")
    cflags, libs = pkg_config("--cflags", "libdpdk"), pkg_config("--libs", "libdpdk")
    if cc is None or cflags is None or libs is None:
        pytest.skip("needs cc and libdpdk known to pkg-config")
    exe = tmp_path / harness
    done = subprocess.run(
        [cc, "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1",
         "-std=gnu11", "-I", str(ROOT / "ext" / "include"), *cflags, *map(str, sources),
         str(ROOT / "tests" / "asan" / f"{harness}.c"), "-o", str(exe), *libs, "-lpcap"],
        capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return exe


def run(exe, *args, memory_mb=512, timeout=600):
    """Runs a harness (no hugepages, one lcore); asserts the sanitizers said nothing."""
    prefix = unique_prefix()
    try:
        done = subprocess.run([str(exe), "--no-huge", "-m", str(memory_mb), "--no-pci", "--no-shconf", "--no-telemetry",
                               "--file-prefix", prefix, "-l", "0", "--log-level", "error", *args],
                              capture_output=True, text=True, env=ENV, timeout=timeout)
    finally:
        remove_runtime_folder(prefix)    # rte_eal_cleanup leaves it
    assert "Sanitizer" not in done.stderr and "runtime error" not in done.stderr, done.stderr[-4000:]
    return done
