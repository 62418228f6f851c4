"""Builds a C harness with FlowOS sources under AddressSanitizer and UBSan, and runs it on an EAL
of its own (tests/asan/)."""
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from conftest import remove_runtime_folder, unique_prefix

ROOT = Path(__file__).resolve().parent.parent
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0:exitcode=99", UBSAN_OPTIONS="print_stacktrace=1")
FLAGS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-fno-omit-frame-pointer", "-g", "-O1", "-std=gnu11"]
# Objects compiled with the sanitizers, shared by every harness of every run: each named by a hash
# of what it is built from, so that one is never used for other sources.
OBJECTS = Path(tempfile.gettempdir()) / "flowos-asan-objects"


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
    compile_flags = [*FLAGS, "-I", str(ROOT / "ext" / "include"), *cflags]
    objects = [compiled(cc, Path(s), compile_flags) for s in [*sources, ROOT / "tests" / "asan" / f"{harness}.c"]]
    done = subprocess.run([cc, *FLAGS, *map(str, objects), "-o", str(exe), *libs, "-lpcap"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return exe


def compiled(cc, source, flags):
    """source's object, compiled now or by an earlier build from the same source, headers and flags."""
    key = hashlib.sha256("\0".join([cc, *flags, str(source)]).encode())
    for path in [source, *sorted((ROOT / "ext").rglob("*.h")), *sorted(source.parent.glob("*.h"))]:
        key.update(path.read_bytes())
    obj = OBJECTS / f"{source.stem}-{key.hexdigest()[:24]}.o"
    if obj.exists():
        return obj
    OBJECTS.mkdir(exist_ok=True)
    tmp = obj.with_suffix(f".{os.getpid()}.tmp")
    done = subprocess.run([cc, *flags, "-c", str(source), "-o", str(tmp)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    os.replace(tmp, obj)    # whole or not at all: pytest's other workers may build the same one
    return obj


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
