"""EAL arguments: memory sized from the pool, memory mode choice, lcore mapping."""
from pathlib import Path

import pytest

from flowos.configuration import eal_args
from flowos.runtime import hugepages
from flowos.configuration.devices import parse_pci, parse_vdev
from flowos.errors import FlowOSError


def test_memory_grows_with_the_pool():
    small = eal_args.needed_memory_mb(8191, 2176)
    big = eal_args.needed_memory_mb(8 * 8191, 2176)
    assert eal_args.BASE_MEMORY_MB < small < big
    assert big - eal_args.BASE_MEMORY_MB >= 8 * 8191 * 2176 / 2**20  # at least the data rooms


def test_without_hugepages_an_mbuf_takes_a_small_page_of_its_own():
    # DPDK 22.11 puts no pool object across a page boundary: 2,368 bytes an mbuf, one per 4 KiB page.
    assert eal_args.mbuf_object_size(2176) == 2368
    assert eal_args.pool_memory_mb(262143, 2176, eal_args.SMALL_PAGE_SIZE) >= 262143 * 4096 / 2**20
    assert eal_args.pool_memory_mb(262143, 2176) < 262143 * 2400 / 2**20 + 8   # 2 MB pages: packed
    assert eal_args.mbuf_object_size(2304 - 192) == 2368   # 36 cache lines become 37: spread over channels


def test_lcore_map_keeps_python_off_the_worker_cpu():
    assert eal_args.lcore_map(cpus=[0, 1]) == ("0@(0),1@1", [1])
    assert eal_args.lcore_map([2], [0, 1, 2, 3]) == ("0@(0-1,3),1@2", [2])
    assert eal_args.lcore_map(cpus=[5]) == ("0@(5),1@5", [5])
    with pytest.raises(FlowOSError, match="worker CPU 7"):
        eal_args.lcore_map([7], [0, 1])


def test_lcore_map_pins_one_lcore_per_worker_in_order():
    """Lcores 1..N on the workers' CPUs as given; the main lcore floats over the rest, or over all
    of them when the workers take every CPU."""
    assert eal_args.lcore_map([2, 3, 5, 6, 7], range(8)) == ("0@(0-1,4),1@2,2@3,3@5,4@6,5@7", [2, 3, 5, 6, 7])
    assert eal_args.lcore_map([3, 1], [0, 1, 2, 3]) == ("0@(0,2),1@3,2@1", [3, 1])
    assert eal_args.lcore_map([0, 1], [0, 1]) == ("0@(0-1),1@0,2@1", [0, 1])
    assert eal_args.lcore_map([2, 3, 2], range(4)) == ("0@(0-1),1@2,2@3,3@2", [2, 3, 2])


@pytest.mark.parametrize("text, cpus", [
    ("2,3,5-7", [2, 3, 5, 6, 7]), ("7", [7]), ("3-3", [3]), (" 1 , 0 ", [1, 0]), ("4-5,1", [4, 5, 1]),
])
def test_cpu_lists_read_as_taskset_writes_them(text, cpus):
    assert eal_args.parse_cpus(text) == cpus


@pytest.mark.parametrize("text", ["", "a", "1,", "5-3", "-1", "1-", "1.5", "0-9000"])
def test_malformed_cpu_lists_are_refused(text):
    with pytest.raises(ValueError):
        eal_args.parse_cpus(text)


def test_cpu_list_writes_ranges():
    assert eal_args.cpu_list([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"


def test_argv_for_each_memory_mode():
    ports = [parse_vdev("net_null0"), parse_pci("0000:01:00.0")]
    huge = hugepages.MemoryMode("hugepages", 128, "/dev/hugepages", "")
    argv = eal_args.eal_argv(huge, "p1", "0@(0),1@1", ports)
    assert argv[argv.index("--huge-dir") + 1] == "/dev/hugepages" and "--no-huge" not in argv
    assert argv[argv.index("-a") + 1] == "0000:01:00.0" and "--no-pci" not in argv
    assert argv[argv.index("--vdev") + 1] == "net_null0"
    flat = eal_args.eal_argv(hugepages.MemoryMode("no-huge", 96, None, ""), "p2", "0@(0),1@1", ports[:1])
    assert "--no-huge" in flat and "--no-pci" in flat and flat[flat.index("-m") + 1] == "96"


@pytest.mark.parametrize("state, mode, reason", [
    (hugepages.HugepageState(256, 256, "/dev/hugepages"), "hugepages", "256 free"),
    (hugepages.HugepageState(256, 10, "/dev/hugepages"), "no-huge", "10 free 2 MB hugepages, 64 needed"),
    (hugepages.HugepageState(0, 0, None), "no-huge", "no hugetlbfs"),
])
def test_auto_mode_falls_back_and_says_why(state, mode, reason):
    chosen = hugepages.choose("auto", 128, [state])
    assert chosen.mode == mode and reason in chosen.reason


def test_hugepages_demanded_but_missing_is_an_error():
    with pytest.raises(FlowOSError, match="hugepages asked for, but no hugetlbfs"):
        hugepages.choose("hugepages", 128, [hugepages.HugepageState(0, 0, None)])


ROOT = Path(__file__).parent.parent

# The runs README.md and scripts/demo show (captures from tests/data for the README's in.pcap).
README_RUNS = [
    ["--vdev", "net_pcap0,rx_pcap=tests/data/udp_echo.pcap,tx_pcap=out.pcap"],
    ["--vdev", "net_pcap0"],
    ["--vdev", "net_null0", "--vdev", "net_null1", "--duration", "5"],
    ["-c", "examples/bridge.yaml", "--duration", "10"],
    ["-c", "examples/middlebox.yaml", "--duration", "10"],
    ["--vdev", "net_pcap0,rx_pcap=tests/data/mixed.pcap,tx_pcap=out.pcap"],
    ["--vdev", "net_pcap0,rx_pcap=tests/data/http_get.pcap,tx_pcap=out.pcap", "--processor", "redact:Redact",
     "--clock", "capture"],
]


@pytest.mark.parametrize("argv", README_RUNS, ids=lambda argv: " ".join(argv)[:60])
def test_the_hugepages_scripts_reserve_fit_the_runs_the_readme_shows(argv, monkeypatch):
    from flowos.apps import cli
    from flowos.runtime import runner
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "examples"))
    cfg = cli.make_config(cli.build_parser().parse_args(argv))
    needed = runner.memory_needed_mb(cfg, cfg.pool.mbufs or runner.pool_size(cfg), eal_args.HUGEPAGE_SIZE)
    state = hugepages.HugepageState(hugepages.DEFAULT_PAGES, hugepages.DEFAULT_PAGES, "/dev/hugepages")
    assert hugepages.choose("auto", needed, [state]).mode == "hugepages", needed


@pytest.mark.parametrize("args, problem", [
    (["--log-level", "lib.eal:debug", "--no-telemetry", "-n", "4", "-n4", "--huge-unlink=never"], None),
    (["--log-level=lib.eal:debug", "--bogus"], (1, "'--bogus' is not an option of DPDK's EAL")),
    (["--no-telemetry=1"], (0, "'--no-telemetry=1': --no-telemetry takes no value")),
    (["--no-pci", "--log-level"], (1, "'--log-level' needs a value")),
    (["-Z"], (0, "'-Z' is not an option of DPDK's EAL")),
    (["no-telemetry"], (0, "'no-telemetry' is not an option of DPDK's EAL (options start with - or --)")),
])
def test_user_eal_arguments_are_read_as_the_eal_reads_them(args, problem):
    assert eal_args.check_user_args(args) == problem
