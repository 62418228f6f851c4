"""2 MB hugepages: find them, reserve them, and choose the memory mode DPDK runs in.

FlowOS runs on hugepages when enough are free on a mounted hugetlbfs (about 1.5x faster here),
and otherwise falls back to --no-huge and says why.
"""
import argparse
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from flowos.errors import FlowOSError

PAGE_MB = 2
SYSFS = Path("/sys/kernel/mm/hugepages/hugepages-2048kB")
DEFAULT_MOUNT = "/dev/hugepages"
MODES = ("auto", "hugepages", "no-huge")
# What scripts/hugepages reserves by default (768 MB): enough for every run the README and
# scripts/demo show, the largest a Python processor's (its flow table for the default 1,048,576
# flows takes 528 MB; tests/test_eal_args.py checks each run's need against this).
DEFAULT_PAGES = 384


@dataclass(frozen=True)
class HugepageState:
    total: int
    free: int
    mount: str | None  # a hugetlbfs mount with 2 MB pages, or None

    @property
    def free_mb(self):
        return self.free * PAGE_MB


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


def _hugetlbfs_mount(mounts_file="/proc/mounts"):
    default_2m = _default_page_is_2m()
    try:
        lines = Path(mounts_file).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 4 or fields[2] != "hugetlbfs":
            continue
        options = fields[3].split(",")
        if "pagesize=2M" in options or (default_2m and not any(o.startswith("pagesize=") for o in options)):
            return fields[1]
    return None


def _default_page_is_2m():
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("Hugepagesize:"):
                return line.split()[1] == "2048"
    except OSError:
        pass
    return False


def probe():
    return HugepageState(_read_int(SYSFS / "nr_hugepages"), _read_int(SYSFS / "free_hugepages"), _hugetlbfs_mount())


def reserve(pages, mount=DEFAULT_MOUNT):
    """Makes at least `pages` 2 MB hugepages exist and hugetlbfs mounted. Needs root."""
    state = probe()
    if state.total < pages:
        try:
            (SYSFS / "nr_hugepages").write_text(str(pages))
        except OSError as e:
            raise FlowOSError(f"cannot reserve {pages} hugepages: {e.strerror} (needs root)") from None
        state = probe()
        if state.total < pages:
            raise FlowOSError(f"asked the kernel for {pages} hugepages, got {state.total} (memory too fragmented?)")
    if state.mount is None:
        os.makedirs(mount, exist_ok=True)
        done = subprocess.run(["mount", "-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", mount],
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise FlowOSError(f"cannot mount hugetlbfs on {mount}: {done.stderr.strip() or 'mount failed'}")
        state = probe()
    return state


def choose(requested, memory_mb, state=None, no_huge_mb=None):
    """The memory mode to run in: `requested` is auto, hugepages or no-huge. memory_mb: what the
    run needs on hugepages; no_huge_mb: what it needs without (more: see eal_args.pool_memory_mb)."""
    if requested not in MODES:
        raise FlowOSError(f"memory mode must be one of {', '.join(MODES)}, not {requested!r}")
    no_huge_mb = no_huge_mb or memory_mb
    if requested == "no-huge":
        return MemoryMode("no-huge", no_huge_mb, None, "asked for")
    state = state or probe()
    memory_mb += memory_mb % PAGE_MB
    if state.mount is None:
        shortfall = "no hugetlbfs with 2 MB pages is mounted"
    elif state.free_mb < memory_mb:
        shortfall = f"{state.free} free 2 MB hugepages, {memory_mb // PAGE_MB} needed"
    else:
        return MemoryMode("hugepages", memory_mb, state.mount,
                          f"{state.free} free 2 MB hugepages on {state.mount}")
    if requested == "hugepages":
        raise FlowOSError(f"hugepages asked for, but {shortfall} (run scripts/hugepages as root)")
    return MemoryMode("no-huge", no_huge_mb, None, f"{shortfall}; scripts/hugepages reserves them")


def main(argv=None):
    parser = argparse.ArgumentParser(prog="flowos-hugepages",
                                     description="Reserve 2 MB hugepages and mount hugetlbfs for FlowOS.")
    parser.add_argument("--pages", type=int, default=DEFAULT_PAGES,
                        help=f"hugepages to reserve (default {DEFAULT_PAGES} = {DEFAULT_PAGES * PAGE_MB} MB)")
    parser.add_argument("--mount", default=DEFAULT_MOUNT, help=f"where to mount hugetlbfs (default {DEFAULT_MOUNT})")
    parser.add_argument("--status", action="store_true", help="only show what there is")
    args = parser.parse_args(argv)
    try:
        state = probe() if args.status else reserve(args.pages, args.mount)
    except FlowOSError as e:
        print(f"hugepages: {e}", file=sys.stderr)
        return 1
    print(f"hugepages: {state.total} reserved, {state.free} free, "
          f"hugetlbfs {'on ' + state.mount if state.mount else 'not mounted'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
