"""flowos.testing, the installed test kit and pytest plugin (docs/testing.md, "Testing your own
processors"): the example's tests run as a user runs them, a test written with it fails when the
processor is wrong, and each verdict it reports comes from a real run."""
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import ARP, Ether

from flowos.testing import PipelineFailed, netns, run_pipeline

from conftest import DATA

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
CLIENT, SERVER = "10.0.0.1", "10.0.0.2"


def pytest_run(tmp_path, *args):
    """A separate `python -m pytest` in tmp_path, as a user runs it: the plugin comes from the
    installed package's entry point. Returns (exit code, output, {test name: outcome})."""
    report = tmp_path / "report.xml"
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-rs",
                           f"--junitxml={report}", f"--basetemp={tmp_path / 'base'}", *map(str, args)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    outcomes = {}
    for case in ET.parse(report).iter("testcase"):
        kinds = [child.tag for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("name")] = kinds[0] if kinds else "passed"
    return done.returncode, done.stdout + done.stderr, outcomes


def test_the_example_tests_pass_as_a_user_runs_them(tmp_path):
    code, output, outcomes = pytest_run(tmp_path, EXAMPLES / "test_blocklist.py")
    e2e = "passed" if netns.can_create_namespaces() is None else "skipped"
    assert outcomes == {"test_a_blocked_port_is_dropped_both_ways": "passed", "test_over_a_capture": "passed",
                        "test_bad_ports_are_refused_at_load": "passed",
                        "test_real_tcp_through_the_blocklist": e2e}, output
    assert code == 0, output


def test_a_wrong_processor_fails_its_test(tmp_path):
    """A processor next to its test (imported by flowos-run from the test's folder) that lets
    through what its test says it drops: the test fails, naming the verdict."""
    (tmp_path / "leaky.py").write_text(
        "import flowos\n\n"
        "class Leaky(flowos.Processor):\n"
        "    def process(self, batch):\n"
        "        pass\n")
    (tmp_path / "test_leaky.py").write_text(
        "from scapy.layers.inet import IP, TCP\n"
        "from scapy.layers.l2 import Ether\n\n"
        "def test_drops_telnet(flowos_pipeline):\n"
        "    syn = Ether() / IP(src='10.0.0.1', dst='10.0.0.2') / TCP(dport=23, flags='S')\n"
        "    result = flowos_pipeline([syn], pipeline=['leaky:Leaky'])\n"
        "    assert result.flow(dport=23).verdict == 'dropped'\n")
    code, output, outcomes = pytest_run(tmp_path, tmp_path / "test_leaky.py")
    assert outcomes == {"test_drops_telnet": "failure"}, output
    assert code == 1 and "assert 'forwarded' == 'dropped'" in output


def test_the_wire_fixture_skips_without_root():
    """As an unprivileged user (nobody), flowos_wire skips the test and says why."""
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    if os.geteuid() != 0:
        pytest.skip("runs the test as nobody: needs root to switch")
    if subprocess.run([*as_nobody, sys.executable, "-c", "import flowos.testing"], capture_output=True).returncode:
        pytest.skip(f"nobody cannot run {sys.executable} and import flowos.testing")
    with tempfile.TemporaryDirectory() as folder:    # tmp_path is root's own
        os.chmod(folder, 0o777)
        Path(folder, "test_wire.py").write_text("def test_wire(flowos_wire):\n    raise AssertionError('ran')\n")
        done = subprocess.run([*as_nobody, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist",
                               "-rs", f"--basetemp={folder}/base", "test_wire.py"],
                              capture_output=True, text=True, cwd=folder, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout and "network namespaces need root" in done.stdout


def tcp(sport, dport, flags="A", back=False):
    src, dst = (SERVER, CLIENT) if back else (CLIENT, SERVER)
    return Ether() / IP(src=src, dst=dst, ttl=64) / TCP(sport=sport, dport=dport, flags=flags)


def test_each_verdict_from_a_real_run(tmp_path):
    """forwarded, dropped, partly dropped, modified and new, as the frames that came out show them."""
    udp = [Ether() / IP(src=CLIENT, dst=SERVER) / UDP(sport=5000 + i, dport=53) for i in range(3)]
    long = [tcp(40000, 80, "S"), tcp(80, 40000, "SA", back=True), tcp(40000, 80), tcp(40000, 80, "PA")]
    arp = Ether(dst="ff:ff:ff:ff:ff:ff") / ARP(psrc=CLIENT, pdst=SERVER)
    result = run_pipeline(udp + long + [arp], workdir=tmp_path, flows=[
        {"name": "udp", "match": {"proto": "udp"}, "pipeline": ["pyprocs.verdicts:DropAll"]},
        {"name": "tcp", "match": {"proto": "tcp"}, "pipeline": ["pyprocs.verdicts:DropEveryOther"]},
        {"name": "rest", "pipeline": ["pyprocs.verdicts:InjectOnce"]}])
    assert {str(f): f.verdict for f in result.flows} == {
        "udp 10.0.0.1:5000 -> 10.0.0.2:53": "dropped", "udp 10.0.0.1:5001 -> 10.0.0.2:53": "dropped",
        "udp 10.0.0.1:5002 -> 10.0.0.2:53": "dropped", "tcp 10.0.0.1:40000 -> 10.0.0.2:80": "partly dropped",
        "ether 0x0806": "forwarded", "udp 10.9.9.1:9 -> 10.9.9.2:9": "new"}
    assert result.flow(dport=80).received == [bytes(long[0]), bytes(long[2])]
    assert result.engine["dropped"] == 5 and result.engine["injected"] == 1
    assert result.processor("pyprocs.verdicts:DropAll")["packets"] == 3

    ttl = run_pipeline(long, pipeline=[{"ttl": {"set": 7}}])     # a temporary folder of its own
    assert ttl.verdicts == {"tcp 10.0.0.1:40000 -> 10.0.0.2:80": "modified"}
    assert [p[IP].ttl for p in ttl.packets] == [7] * 4


def test_a_capture_in_gives_its_flows(tmp_path):
    """A capture's path, no pipeline (the plain bridge): every flow forwarded as it came."""
    result = run_pipeline(DATA / "http_get.pcap", workdir=tmp_path)
    assert result.flows and all(flow.verdict == "forwarded" for flow in result.flows)
    assert result.frames == [bytes(p) for p in result.packets]
    assert len(result.frames) == result.stats["totals"]["rx_packets"]


def test_a_failed_run_raises_with_its_error(tmp_path):
    with pytest.raises(PipelineFailed, match=r"exited 2:\n.*no processor 'nosuch'"):
        run_pipeline([tcp(1, 2)], pipeline=["nosuch"], workdir=tmp_path)


def test_flow_and_processor_lookups_name_what_there_is(tmp_path):
    result = run_pipeline([tcp(40000, 80), tcp(40001, 81)], pipeline=["counter"], workdir=tmp_path)
    with pytest.raises(LookupError, match=r"2 flows match \{'proto': 6\}; the flows: tcp 10.0.0.1:40000 -> "):
        result.flow(proto="tcp")
    assert result.flow(dport=81).sport == 40001
    with pytest.raises(LookupError, match="0 processors named 'acl'"):
        result.processor("acl")
