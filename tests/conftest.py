"""Shared helpers: run flowos-run in a subprocess (each with its own EAL and file prefix) and
read captures independently of FlowOS, with scapy. The helpers themselves are FlowOS's installed
test kit (flowos.testing, docs/testing.md), which users test their own processors with; this file
names them as the suite always has, and adds the suite's own checks."""
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from flowos.testing import netns
from flowos.testing.pcap import read_pcap as packets  # noqa: F401 (the suite's name for it)
from flowos.testing.runs import (FLOWOS_RUN, hugepage_files, kill_flowos, made_prefixes,  # noqa: F401
                                 remove_runtime_folder, run_flowos, runtime_folder, start_flowos, unique_prefix)

DATA = Path(__file__).parent / "data"
CAPTURES = sorted(DATA.glob("*.pcap"))


@pytest.fixture(scope="session", autouse=True)
def runtime_folders_are_removed():
    """Fails the suite (in this worker) when a DPDK runtime folder or a hugepage file of one of
    its prefixes remains."""
    yield
    left = {prefix: test for prefix, test in made_prefixes.items() if runtime_folder(prefix).exists()}
    assert not left, "DPDK runtime folders left behind: " + "; ".join(
        f"{runtime_folder(p)} ({t})" for p, t in sorted(left.items()))
    files = {prefix: test for prefix, test in made_prefixes.items() if hugepage_files(prefix)}
    assert not files, "hugepage files left behind: " + "; ".join(
        f"{hugepage_files(p)} ({t})" for p, t in sorted(files.items()))


def ip(*args):
    """iproute2's `ip`, checked; its output."""
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True, timeout=30).stdout


@pytest.fixture
def namespace():
    """A network namespace of the test's own, removed with what was made in it afterwards; the
    test skips where namespaces cannot be made (not root, no iproute2)."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        pytest.skip("network namespaces need root and iproute2")
    ns = f"fo{unique_prefix()}"
    ip("netns", "add", ns)
    try:
        yield ns
    finally:
        ip("netns", "del", ns)


def port(stats, name):
    return next(p for p in stats["ports"] if p["name"] == name)


# For tests that check every pattern rewritten under loss and reordering: a possible start of a
# pattern that a processor still holds once the flow has brought no new bytes for stream_hold_ms
# is let go unchanged (docs/streams.md), and under this much loss a sender's retransmission
# timeout backs off past the default 500 ms (seen in CI: a "the lazy " let go, the body 6 bytes
# past its Content-Length, curl's next response or its timeout failing). Well below curl's
# --max-time, so a hold that truly waits on the sender still ends.
EXACT_REWRITE_LIMITS = {"stream_hold_ms": 10_000}


@pytest.fixture
def capture_dir():
    return DATA


@pytest.fixture
def wire(flowos_wire):
    """The suite's name for flowos.testing's flowos_wire fixture: a netns.Wire, client and server
    namespaces joined through FlowOS's box namespace; skips where namespaces cannot be made."""
    return flowos_wire


def need_tools(*tools):
    """Skips the test, naming them, when any of `tools` is not installed."""
    missing = netns.missing_tools(*tools)
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (scripts/setup installs them)")
