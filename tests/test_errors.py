"""Bad input gives one clear line on stderr and a non-zero exit: no traceback, no DPDK log dump."""
import subprocess
import sys
import textwrap

import pytest

from conftest import DATA, run_flowos

BAD_INPUT, FAILED = 2, 1


def assert_one_line_error(run, code, *fragments):
    assert run.returncode == code, (run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith("flowos-run: error: ")
    for fragment in fragments:
        assert fragment in lines[0]
    assert "Traceback" not in run.stdout + run.stderr
    assert "EAL:" not in run.stdout and "Usage:" not in run.stdout


@pytest.mark.parametrize("args, code, fragments", [
    (["--vdev", "net_foo0"], BAD_INPUT, ["unknown driver 'net_foo'"]),
    (["--vdev", "net_pcap0,rx_pcap=/no/such.pcap"], BAD_INPUT, ["rx_pcap /no/such.pcap: no such file"]),
    (["-c", "/no/such.yaml"], BAD_INPUT, ["/no/such.yaml: cannot read"]),
    (["--vdev", "net_null0", "--memory-mb", "20"], BAD_INPUT, ["--memory-mb: 20 MB is too little"]),
    (["--vdev", "net_null0", "--duration", "soon"], BAD_INPUT, ["--duration"]),
    (["--vdev", "net_null0", "--mbufs", "2000000000"], BAD_INPUT, ["--mbufs", "more than the", "available"]),
    (["--vdev", "net_null0", "--eal-arg=--bogus"], BAD_INPUT, ["--eal-arg", "'--bogus' is not an option of DPDK's EAL"]),
    (["--vdev", "net_null0", "--worker-cpu", "4096"], BAD_INPUT, ["--worker-cpu", "worker CPU 4096"]),
], ids=["driver", "missing-pcap", "missing-config", "memory", "duration", "machine-memory", "eal-arg",
        "worker-cpu"])
def test_bad_input(tmp_path, args, code, fragments):
    assert_one_line_error(run_flowos(*args, tmp_path=tmp_path, stats=False), code, *fragments)


def test_garbage_capture(tmp_path):
    garbage = tmp_path / "garbage.pcap"
    garbage.write_bytes(b"this is not a capture\n" * 10)
    run = run_flowos("--vdev", f"net_pcap0,rx_pcap={garbage}", tmp_path=tmp_path, stats=False)
    assert_one_line_error(run, BAD_INPUT, "not a capture file")


def test_config_with_unknown_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("ports:\n  - {name: a, vdev: net_null0, speed: fast}\n")
    run = run_flowos("-c", str(path), tmp_path=tmp_path, stats=False)
    assert_one_line_error(run, BAD_INPUT, f"{path}: ports[0].speed: unknown key")


def test_damaged_capture_replays_what_precedes_the_damage(tmp_path):
    whole = (DATA / "udp_echo.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[:-7])  # the last record loses its tail
    out = tmp_path / "out.pcap"
    run = run_flowos("--vdev", f"net_pcap0,rx_pcap={cut},tx_pcap={out}", tmp_path=tmp_path)
    assert run.returncode == 0, run.stderr
    source = run.stats["sources"][0]
    assert source["packets"] == source["received"] == 599 and source["damaged"]
    assert "damaged record" in run.stdout


def test_eal_starts_once_per_process(tmp_path):
    script = textwrap.dedent(f"""
        from flowos.configuration import eal_args
        from flowos.runtime import hugepages
        from flowos.boundary._runtime import Eal
        from flowos.errors import FlowOSError
        memory = hugepages.MemoryMode("no-huge", 96, None, "")
        argv = eal_args.eal_argv(memory, "once{tmp_path.name}", "0@(0),1@0", [])
        eal = Eal.start(argv, "{tmp_path}/eal.log")
        try:
            Eal.start(argv, "{tmp_path}/eal2.log")
        except FlowOSError as e:
            print("refused:", e)
        eal.close()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "refused: the DPDK EAL is already initialised in this process" in done.stdout
