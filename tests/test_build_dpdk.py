"""DPDK from source (docs/deploy.md): scripts/build-dpdk builds a supported LTS into a prefix and
scripts/setup --dpdk builds FlowOS against it. Building DPDK takes minutes and a copy of its
source, so the suite checks what is refused before any of that starts; the builds themselves were
run by hand (docs/deploy.md says against which releases)."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(*argv):
    return subprocess.run(["bash", *map(str, argv)], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_only_the_supported_lts_series_are_built():
    done = run(ROOT / "scripts/build-dpdk", "--version", "21.11")
    assert done.returncode == 2
    assert "--version must be an LTS series FlowOS supports: 22.11, 23.11 or 24.11" in done.stderr


def test_an_unknown_argument_is_refused():
    done = run(ROOT / "scripts/build-dpdk", "--versoin", "23.11")
    assert done.returncode == 2 and "unknown argument --versoin" in done.stderr


def test_setup_against_a_prefix_without_dpdk_is_refused(tmp_path):
    done = run(ROOT / "scripts/setup", "--dpdk", tmp_path)
    assert done.returncode == 2
    assert f"no DPDK in {tmp_path}" in done.stderr and "scripts/build-dpdk builds one" in done.stderr
