"""Builds the libFuzzer targets in tests/fuzz/ (clang, -fsanitize=fuzzer,address,undefined),
makes their seed corpora from the captures in tests/data/, runs them for a while and replays
inputs. scripts/fuzz is its command line; tests/test_fuzz.py uses it from pytest.

A target is tests/fuzz/fuzz_<name>.c; it links fuzz_common.c (the EAL, the pool, an engine),
fuzz_traffic.c (traffic from the input) and every fast-path source, except decode, which needs
only fo_decode.c. Objects are kept in build/fuzz/ and rebuilt when a source or header changed.
"""
import argparse
import fcntl
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
FUZZ = ROOT / "tests" / "fuzz"
DATA = ROOT / "tests" / "data"
BUILD = ROOT / "build" / "fuzz"
REGRESSIONS = FUZZ / "regressions"
TARGETS = ["decode", "classify", "flow_index", "flow_table", "tcp_norm", "stream_edit", "shards", "pipeline"]
# The Debian packages that give clang its libFuzzer and sanitizer runtimes (bookworm: clang 14).
APT_PACKAGES = ["clang", "libclang-rt-14-dev"]
SANITIZE = "-fsanitize=address,undefined"
CFLAGS = ["-g", "-O1", "-std=gnu11", "-fno-omit-frame-pointer", "-fno-sanitize-recover=all",
          "-Wno-unused-parameter", "-Wno-unused-command-line-argument"]
# ASan's leak check is off: DPDK's heap is its own, and mbufs are checked by the targets themselves.
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:symbolize=1",
           UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1")


class FuzzError(Exception):
    pass


def clang():
    """The clang to build with, or None."""
    for name in ("clang", "clang-14"):
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def install_clang():
    """apt-get installs clang and its sanitizer runtimes (as root), if clang is missing."""
    if clang() is not None:
        return
    if os.geteuid() != 0:
        raise FuzzError(f"clang is missing: apt-get install {' '.join(APT_PACKAGES)} (as root)")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *APT_PACKAGES], check=True, env=env)


def pkg_config(*args):
    done = subprocess.run(["pkg-config", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise FuzzError(f"pkg-config {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.split()


def sources(target):
    if target == "decode":
        return [FUZZ / "fuzz_decode.c", ROOT / "ext" / "src" / "fo_decode.c"]
    fast_path = sorted((ROOT / "ext" / "src").glob("*.c")) + sorted((ROOT / "ext" / "src" / "processors").glob("*.c"))
    return [FUZZ / f"fuzz_{target}.c", FUZZ / "fuzz_common.c", FUZZ / "fuzz_traffic.c", *fast_path]


def newest_header():
    headers = [*(ROOT / "ext").rglob("*.h"), *FUZZ.glob("*.h")]
    return max(p.stat().st_mtime for p in headers)


def compile_object(cc, src, cflags, headers_mtime):
    obj = BUILD / "obj" / (src.relative_to(ROOT).as_posix().replace("/", "__") + ".o")
    if obj.exists() and obj.stat().st_mtime >= max(src.stat().st_mtime, headers_mtime):
        return obj
    obj.parent.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([cc, "-c", *cflags, str(src), "-o", str(obj)], capture_output=True, text=True)
    if done.returncode != 0:
        raise FuzzError(f"{src.name} does not compile:\n{done.stderr[-4000:]}")
    return obj


def build(target):
    """Builds build/fuzz/fuzz_<target> if a source changed; returns its path. One build at a time."""
    if target not in TARGETS:
        raise FuzzError(f"no fuzz target {target!r}: one of {', '.join(TARGETS)}")
    cc = clang()
    if cc is None:
        raise FuzzError("clang is missing (scripts/fuzz installs it)")
    BUILD.mkdir(parents=True, exist_ok=True)
    with open(BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        cflags = [*CFLAGS, "-fsanitize=fuzzer-no-link", SANITIZE, "-I", str(ROOT / "ext" / "include"),
                  *pkg_config("--cflags", "libdpdk")]
        headers_mtime = newest_header()
        objs = [compile_object(cc, src, cflags, headers_mtime) for src in sources(target)]
        exe = BUILD / f"fuzz_{target}"
        if not exe.exists() or exe.stat().st_mtime < max(o.stat().st_mtime for o in objs):
            done = subprocess.run([cc, "-fsanitize=fuzzer", SANITIZE, *map(str, objs), "-o", str(exe),
                                   *pkg_config("--libs", "libdpdk"), "-lpcap"], capture_output=True, text=True)
            if done.returncode != 0:
                raise FuzzError(f"fuzz_{target} does not link:\n{done.stderr[-4000:]}")
        return exe


# ---------------------------------------------------------------------------------------------
# Seeds: the captures' frames, in each target's input format (see the targets' comments)


def capture_frames(path):
    """The frames of a classic pcap file."""
    raw = path.read_bytes()
    magic = raw[:4]
    endian = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<",
              b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if endian is None:
        raise FuzzError(f"{path}: not a pcap file")
    frames, at = [], 24
    while at + 16 <= len(raw):
        incl = struct.unpack(endian + "IIII", raw[at:at + 16])[2]
        frames.append(raw[at + 16:at + 16 + incl])
        at += 16 + incl
    return frames


def frame_records(frames):
    """fuzz_traffic.h records: each frame (type 0), a burst (type 2) after every 8."""
    out = b""
    for i, f in enumerate(frames):
        out += bytes([0]) + struct.pack(">H", len(f)) + f
        if i % 8 == 7:
            out += bytes([2])
    return out


def edit_record(op, at, delete, pattern, replacement=b""):
    """fuzz_stream_edit.c's record 4: one edit."""
    return (bytes([4, op]) + struct.pack(">H", at) + bytes([delete, len(pattern)]) + pattern
            + bytes([len(replacement)]) + replacement)


def seeds_for(target, frames_by_capture):
    rng = random.Random(11)
    if target == "decode":
        return [f for frames in frames_by_capture for f in frames[:64]]
    if target == "classify":
        match_all = bytes([0]) + bytes(34)          # one definition, every field a wildcard
        return [match_all + b"".join(struct.pack(">H", len(f)) + bytes([0]) + f for f in frames[i:i + 16])
                for frames in frames_by_capture for i in range(0, min(len(frames), 64), 16)]
    if target == "flow_index":
        return [bytes([rng.randrange(64)]) + bytes(rng.randrange(256) for _ in range(600)) for _ in range(8)]
    chunks = [frames[i:i + 48] for frames in frames_by_capture for i in range(0, min(len(frames), 144), 48)]
    if target == "tcp_norm":
        return [bytes([policy]) + frame_records(c) for c in chunks for policy in (1, 16)]
    if target == "stream_edit":
        edits = (edit_record(1, 0, 0, b"HTTP", b"XTTPS") + edit_record(2, 3, 2, b"") +
                 edit_record(3, 10, 0, b"inserted") + edit_record(4, 40, 0, b""))
        return [edits + frame_records(c) for c in chunks]
    if target == "pipeline":   # each processor's manner first: < 128 passes everything
        manners = (bytes([0, 0, 0]), bytes([200, 0, 0]), bytes([0, 170, 0]), bytes([0, 0, 190]),
                   bytes([150, 170, 190]))
        return [manners[i % len(manners)] + frame_records(c) for i, c in enumerate(chunks)]
    return [frame_records(c) for c in chunks]


def write_seeds(target):
    """build/fuzz/seeds/<target>/: the seed corpus made from tests/data/*.pcap. Returns the folder.
    Only what changed is written (atomically), so a fuzzer reading the folder meanwhile is safe."""
    out = BUILD / "seeds" / target
    out.mkdir(parents=True, exist_ok=True)
    frames_by_capture = [capture_frames(p) for p in sorted(DATA.glob("*.pcap"))]
    seeds = {f"seed{i:04d}": seed for i, seed in enumerate(seeds_for(target, frames_by_capture))}
    with open(BUILD / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name, seed in seeds.items():
            path = out / name
            if not path.exists() or path.read_bytes() != seed:
                tmp = out / f".{name}.tmp"
                tmp.write_bytes(seed)
                os.replace(tmp, path)
        for path in out.iterdir():
            if path.name not in seeds:
                path.unlink()
    return out


# ---------------------------------------------------------------------------------------------
# Running


def sweep_runtime_dirs():
    """Removes the EAL runtime folders (/var/run/dpdk/fuzz<pid>) of target processes that ended."""
    base = Path("/var/run/dpdk") if os.geteuid() == 0 else Path(os.environ.get("XDG_RUNTIME_DIR", "/tmp")) / "dpdk"
    for d in base.glob("fuzz*"):
        pid = d.name[4:]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(d, ignore_errors=True)


def regressions(target):
    """The regression inputs of a target: tests/fuzz/regressions/<target>/*, each a crash once."""
    folder = REGRESSIONS / target
    return sorted(p for p in folder.glob("*") if p.is_file() and p.name != "README.md")


def replay(exe, inputs, timeout=120):
    """Runs each input once; returns the finished process (returncode 0: none crashed)."""
    try:
        return subprocess.run([str(exe), "-runs=1", *map(str, inputs)], capture_output=True, text=True,
                              env=ENV, timeout=timeout, errors="replace")
    finally:
        sweep_runtime_dirs()


def findings(folder):
    """What libFuzzer wrote there that is a defect: crash-, leak-, timeout- and oom- inputs (not
    slow-unit-, which on a loaded machine says little)."""
    return [p for p in folder.iterdir() if p.name.split("-")[0] in ("crash", "leak", "timeout", "oom")]


def fuzz(target, seconds, jobs=1):
    """Fuzzes a target for `seconds` from its seeds, its regressions and the corpus kept in
    build/fuzz/corpus/<target>. Returns (finished process, crash files written)."""
    exe = build(target)
    seeds = write_seeds(target)
    corpus = BUILD / "corpus" / target
    crashes = BUILD / "crashes" / target
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    before = set(findings(crashes))
    dirs = [corpus, seeds] + [d for d in (REGRESSIONS / target,) if d.is_dir()]
    try:
        done = subprocess.run([str(exe), f"-max_total_time={seconds}", "-max_len=65536", "-timeout=30",
                               "-report_slow_units=60",
                               "-rss_limit_mb=4096", "-print_final_stats=1", f"-artifact_prefix={crashes}/",
                               *([f"-jobs={jobs}", f"-workers={jobs}"] if jobs > 1 else []), *map(str, dirs)],
                              capture_output=True, text=True, env=ENV, errors="replace", cwd=BUILD,
                              timeout=seconds + 300)
    finally:
        sweep_runtime_dirs()
    return done, sorted(set(findings(crashes)) - before)


def main(argv=None):
    p = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("targets", nargs="*", metavar="target", help=f"of {', '.join(TARGETS)} (default: all)")
    p.add_argument("--seconds", type=int, default=60, help="per target (default 60)")
    p.add_argument("--jobs", type=int, default=1, help="libFuzzer processes per target (default 1)")
    p.add_argument("--replay", action="store_true",
                   help="only replay each target's regression inputs (tests/fuzz/regressions/<target>/)")
    args = p.parse_args(argv)
    targets = args.targets or TARGETS
    failed = False
    try:
        install_clang()
        for target in targets:
            if args.replay:
                inputs = regressions(target)
                done = replay(build(target), inputs) if inputs else None
                ok = done is None or done.returncode == 0
                print(f"{target}: {len(inputs)} regression inputs replayed: {'ok' if ok else 'CRASH'}")
                if not ok:
                    print(done.stderr[-6000:])
                failed |= not ok
                continue
            print(f"{target}: fuzzing for {args.seconds} s ...", flush=True)
            done, crashes = fuzz(target, args.seconds, args.jobs)
            stats = [line for line in done.stderr.splitlines() if line.startswith("stat::")]
            print(f"{target}: exit {done.returncode}; " + ", ".join(s.split("stat::")[1] for s in stats[:3]))
            for crash in crashes:
                print(f"{target}: found {crash} -- add it to {REGRESSIONS.relative_to(ROOT)}/{target}/")
            if done.returncode != 0 or crashes:
                print(done.stderr[-6000:])
                failed = True
    except FuzzError as e:
        print(f"fuzz: {e}", file=sys.stderr)
        return 2
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
