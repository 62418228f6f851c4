"""Hugepages of 2 MB and 1 GB: find them, reserve them, and choose the memory mode DPDK runs in.

FlowOS runs on hugepages when enough are free on a mounted hugetlbfs (about 1.5x faster here),
2 MB ones first, else 1 GB ones, and otherwise falls back to --no-huge and says why.
"""
import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from flowos.errors import FlowOSError

PAGE_MB = 2
# The page sizes FlowOS uses, in MB, by the names the tools take (--size).
SIZES_MB = {"2M": 2, "1G": 1024}
SYSFS_ROOT = Path("/sys/kernel/mm/hugepages")
SYSFS = SYSFS_ROOT / "hugepages-2048kB"
DEFAULT_MOUNT = "/dev/hugepages"
DEFAULT_MOUNTS = {"2M": DEFAULT_MOUNT, "1G": "/dev/hugepages1G"}
# What scripts/hugepages reserves by default (768 MB): enough for every run the README and
# scripts/demo show, the largest a Python processor's (its flow table for the default 1,048,576
# flows takes 528 MB; tests/test_eal_args.py checks each run's need against this). Of 1 GB pages, one.
DEFAULT_PAGES = 384
DEFAULT_PAGES_BY_SIZE = {"2M": DEFAULT_PAGES, "1G": 1}


@dataclass(frozen=True)
class HugepageState:
    total: int
    free: int
    mount: str | None  # a hugetlbfs mount with pages of this size, or None
    page_mb: int = PAGE_MB

    @property
    def free_mb(self):
        return self.free * self.page_mb

    @property
    def size(self):
        return "1 GB" if self.page_mb == 1024 else f"{self.page_mb} MB"


@dataclass(frozen=True)
class MemoryMode:
    mode: str          # "hugepages" or "no-huge"
    memory_mb: int
    huge_dir: str | None
    reason: str        # why this mode, for the user


def _read_int(path):
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return 0


def sysfs(size):
    """The kernel's folder for pages of `size` ("2M", "1G")."""
    return SYSFS_ROOT / f"hugepages-{SIZES_MB[size] * 1024}kB"


def supported_sizes():
    """The sizes of SIZES_MB this kernel and CPU have (1 GB: the CPU's pdpe1gb flag), in order."""
    return [size for size in SIZES_MB if sysfs(size).is_dir()]


def _mount_page_mb(option, default_mb):
    """A hugetlbfs mount's pagesize= option (2M, 1024M, 1G) in MB; default_mb without one."""
    if option is None:
        return default_mb
    number, unit = option[:-1], option[-1:].upper()
    scale = {"K": 1 / 1024, "M": 1, "G": 1024}.get(unit)
    return int(float(number) * scale) if number.isdigit() and scale else None


def _hugetlbfs_mount(page_mb=PAGE_MB, mounts_file="/proc/mounts"):
    """Where hugetlbfs with pages of page_mb is mounted, or None."""
    default_mb = _default_page_mb()
    try:
        lines = Path(mounts_file).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[2] != "hugetlbfs":
            continue
        option = next((o.split("=", 1)[1] for o in fields[3].split(",") if o.startswith("pagesize=")), None)
        if _mount_page_mb(option, default_mb) == page_mb:
            return fields[1]
    return None


def _default_page_mb():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("Hugepagesize:"):
                return int(line.split()[1]) // 1024
    except (OSError, ValueError):
        pass
    return None


def probe(size="2M"):
    folder, page_mb = sysfs(size), SIZES_MB[size]
    return HugepageState(_read_int(folder / "nr_hugepages"), _read_int(folder / "free_hugepages"),
                         _hugetlbfs_mount(page_mb), page_mb)


def probe_all():
    """The state of every page size this machine has, 2 MB first."""
    return [probe(size) for size in supported_sizes()]


def reserve(pages, mount=DEFAULT_MOUNT, size="2M"):
    """Makes at least `pages` hugepages of `size` exist and hugetlbfs mounted for them. Needs root."""
    if size not in supported_sizes():
        raise FlowOSError(f"this machine has no {size} hugepages (no {sysfs(size)}"
                          + (": the CPU lacks pdpe1gb, or the kernel hugetlb support)" if size == "1G" else ")"))
    state = probe(size)
    if state.total < pages:
        try:
            (sysfs(size) / "nr_hugepages").write_text(str(pages))
        except OSError as e:
            raise FlowOSError(f"cannot reserve {pages} {state.size} hugepages: {e.strerror} (needs root)") from None
        state = probe(size)
        if state.total < pages:
            hint = ("memory too fragmented: reserve 1 GB pages at boot, hugepagesz=1G hugepages=N"
                    if size == "1G" else "memory too fragmented?")
            raise FlowOSError(f"asked the kernel for {pages} {state.size} hugepages, got {state.total} ({hint})")
    if state.mount is None:
        os.makedirs(mount, exist_ok=True)
        done = subprocess.run(["mount", "-t", "hugetlbfs", "-o", f"pagesize={size}", "nodev", mount],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise FlowOSError(f"cannot mount hugetlbfs on {mount}: {done.stderr.strip() or 'mount failed'}")
        state = probe(size)
    return state


def choose(requested, memory_mb, states=None, no_huge_mb=None):
    """The memory mode to run in: `requested` is auto, hugepages or no-huge (the configuration's
    MEMORY_MODES, which it checked). memory_mb: what the run needs on hugepages; no_huge_mb: what
    it needs without (more: see eal_args.pool_memory_mb).
    states: the hugepages there are, 2 MB first (probe_all()); the first size with enough free
    pages on a mounted hugetlbfs is used."""
    no_huge_mb = no_huge_mb or memory_mb
    if requested == "no-huge":
        return MemoryMode("no-huge", no_huge_mb, None, "asked for")
    states = probe_all() if states is None else states
    shortfalls = []
    for state in states:
        needed_mb = -(-memory_mb // state.page_mb) * state.page_mb
        if state.mount is None:
            shortfalls.append(f"no hugetlbfs with {state.size} pages is mounted")
        elif state.free_mb < needed_mb:
            shortfalls.append(f"{state.free} free {state.size} hugepages, {needed_mb // state.page_mb} needed")
        else:
            return MemoryMode("hugepages", needed_mb, state.mount, f"{state.free} free {state.size} hugepages on {state.mount}")
    # A machine without 1 GB pages mounted is the usual case: only a mount of them is worth a word.
    shortfall = "; ".join(shortfalls[:1] + [s for s in shortfalls[1:] if not s.startswith("no hugetlbfs")]) \
        or "no hugepages"
    if requested == "hugepages":
        raise FlowOSError(f"hugepages asked for, but {shortfall} (run scripts/hugepages as root)")
    return MemoryMode("no-huge", no_huge_mb, None, f"{shortfall}; scripts/hugepages reserves them")


def describe(state, size):
    return (f"hugepages {size}: {state.total} reserved, {state.free} free, "
            f"hugetlbfs {'on ' + state.mount if state.mount else 'not mounted'}")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="flowos-hugepages",
                                     description="Reserve hugepages (2 MB or 1 GB) and mount hugetlbfs for FlowOS.")
    parser.add_argument("--size", choices=tuple(SIZES_MB), default="2M",
                        help="page size (default 2M; 1G pages are best reserved at boot: docs/deploy.md)")
    parser.add_argument("--pages", type=int,
                        help=f"hugepages to reserve (default {DEFAULT_PAGES} of 2M = {DEFAULT_PAGES * PAGE_MB} MB, 1 of 1G)")
    parser.add_argument("--mount", help="where to mount hugetlbfs (default /dev/hugepages, /dev/hugepages1G for 1G)")
    parser.add_argument("--status", action="store_true", help="only show what there is, for every page size")
    args = parser.parse_args(argv)
    if args.status:
        for size in SIZES_MB:
            print(describe(probe(size), size) if size in supported_sizes() else f"hugepages {size}: not supported here")
        return 0
    try:
        state = reserve(args.pages if args.pages is not None else DEFAULT_PAGES_BY_SIZE[args.size],
                        args.mount or DEFAULT_MOUNTS[args.size], args.size)
    except FlowOSError as e:
        print(f"hugepages: {e}", file=sys.stderr)
        return 1
    print(describe(state, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
