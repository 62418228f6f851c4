"""Load on net_null ports, in both memory modes: nothing lost unaccounted, no mbuf leaked."""
import os

import pytest

from flowos.runtime import hugepages

from conftest import port, run_flowos


def check_conservation(stats):
    """Every packet a port received left through its peer or was counted as dropped there."""
    a, b = port(stats, "net_null0"), port(stats, "net_null1")
    assert a["rx_packets"] > 0 and b["rx_packets"] > 0
    assert a["rx_packets"] == b["tx_packets"] + b["tx_unsent"]
    assert b["rx_packets"] == a["tx_packets"] + a["tx_unsent"]
    assert stats["totals"]["rx_packets"] == stats["totals"]["tx_packets"] + stats["totals"]["dropped"]
    assert stats["mbufs"]["in_use_at_exit"] == 0


def test_net_null_load_no_huge(tmp_path):
    run = run_flowos("--vdev", "net_null0", "--vdev", "net_null1", "--duration", "3", tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    check_conservation(run.stats)
    assert run.stats["memory_mode"] == "no-huge"
    assert run.stats["stop_reason"] == "duration"
    assert 3.0 <= run.stats["elapsed_s"] < 4.5


def test_packet_limit_on_endless_sources(tmp_path):
    run = run_flowos("--vdev", "net_null0", "--vdev", "net_null1", "--packets", "100000", "--burst", "64",
                     tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stats["totals"]["rx_packets"] == 100000
    check_conservation(run.stats)


@pytest.fixture
def reserved_hugepages():
    if os.geteuid() != 0:
        pytest.skip("reserving hugepages needs root")
    # Enough free pages for two runs at once, whatever other processes hold.
    state = hugepages.probe()
    try:
        return hugepages.reserve(max(256, state.total + 128 - state.free))
    except Exception as e:  # a machine without hugepage support
        pytest.skip(f"cannot reserve hugepages here: {e}")


@pytest.mark.hugepages
def test_net_null_load_on_hugepages(tmp_path, reserved_hugepages):
    run = run_flowos("--vdev", "net_null0", "--vdev", "net_null1", "--duration", "2",
                     tmp_path=tmp_path, memory="hugepages")
    assert run.returncode == 0, run.stderr
    assert run.stats["memory_mode"] == "hugepages"
    assert "memory hugepages" in run.stdout
    check_conservation(run.stats)


@pytest.mark.hugepages
def test_auto_mode_picks_hugepages_when_there_are_enough(tmp_path, reserved_hugepages):
    run = run_flowos("--vdev", "net_null0", "--duration", "0.5", tmp_path=tmp_path, memory="auto")
    assert run.returncode == 0, run.stderr
    assert run.stats["memory_mode"] == "hugepages", run.stats["memory_reason"]


def test_auto_mode_falls_back_when_hugepages_are_short(tmp_path):
    # Asking for more memory than there is in free hugepages forces the fallback.
    more_than_free = max(hugepages.probe().free_mb + 64, 256)
    run = run_flowos("--vdev", "net_null0", "--duration", "0.5", "--memory-mb", str(more_than_free),
                     "--mbufs", "2047", tmp_path=tmp_path, memory="auto")
    assert run.returncode == 0, run.stderr
    assert run.stats["memory_mode"] == "no-huge"
    assert "memory no-huge" in run.stdout and "hugepages" in run.stats["memory_reason"]
