"""FlowOS as a bump in the wire between two Linux TCP stacks (flowos/testing/netns.py): what crosses it
arrives intact. Each test runs twice: through the zero-config bridge, and through a flow engine
pipeline of pass-through processors (the built-in counter and a Python processor counting bytes
per flow, tests/pyprocs/flowbytes.py). Expectations come from the endpoints (sha256 of what curl
got, iperf3's own report, the kernel's counters), never from FlowOS; FlowOS's statistics are
then checked against them."""
import hashlib
import json
import os
import random
from pathlib import Path

import pytest

from conftest import need_tools, port

pytestmark = pytest.mark.e2e

TESTS = Path(__file__).parent
MODES = ["bridge", "pipeline"]
TEXT_SIZE, BINARY_SIZE = 14 * 1024, 400 * 1000


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def site(tmp_path):
    """The files http.server serves: a text file (~14 KB) and a random binary (~400 KB)."""
    www = tmp_path / "www"
    www.mkdir()
    lines, size = [], 0
    while size < TEXT_SIZE:
        lines.append(f"{len(lines):05d} the quick brown fox jumps over the lazy middlebox\n")
        size += len(lines[-1])
    files = {"page.txt": "".join(lines).encode()[:TEXT_SIZE],
             "blob.bin": random.Random(20130816).randbytes(BINARY_SIZE)}
    for name, data in files.items():
        (www / name).write_bytes(data)
    return www, files


def start(wire, tmp_path, mode):
    """flowos-run between the namespaces: the plain bridge, or a catch-all flow whose pipeline
    is counter then pyprocs.flowbytes:FlowBytes (writing its per-flow counts to flowbytes.json)."""
    if mode == "bridge":
        return wire.start_flowos(tmp_path=tmp_path)
    config = {"flows": [{"name": "all", "pipeline": [
        "counter", {"pyprocs.flowbytes:FlowBytes": {"out": str(tmp_path / "flowbytes.json")}}]}]}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)}
    return wire.start_flowos(tmp_path=tmp_path, config=config, env=env)


def check_stopped_clean(box):
    """SIGINT ends the run: exit 0, the summary, no mbuf left out of the pool. Returns the Run."""
    run = box.stop()
    assert run.returncode == 0, run.stderr
    assert run.stats is not None, run.stderr
    assert run.stats["stop_reason"] == "signal (SIGINT)"
    assert run.stats["mbufs"]["in_use_at_exit"] == 0
    return run


def check_passed(run, mode, tmp_path, server_bytes):
    """Every packet one port received left by the other (or was counted as unsent), nothing was
    dropped by the engine, and at least `server_bytes` came from the server's side. In pipeline
    mode, the counter and the Python processor saw the same TCP flows with the same bytes."""
    client, server = port(run.stats, "net_af_packet0"), port(run.stats, "net_af_packet1")
    assert client["rx_packets"] == server["tx_packets"] + server["tx_unsent"] > 0
    assert server["rx_packets"] == client["tx_packets"] + client["tx_unsent"] > 0
    assert server["rx_bytes"] >= server_bytes
    for p in (client, server):
        assert p["rx_missed"] == p["rx_errors"] == p["rx_nombuf"] == 0, p
    if mode == "bridge":
        assert "engine" not in run.stats or not run.stats["engine"]
        return
    engine = run.stats["engine"]
    assert engine["stats"]["packets"] == run.stats["totals"]["rx_packets"]
    assert engine["stats"]["verdicts"]["drop"] == engine["stats"]["dropped"] == 0
    counter, flowbytes = [p["report"] for p in engine["flows"][0]["processors"]]
    python = json.loads((tmp_path / "flowbytes.json").read_text())["flows"]

    def tcp(flows):
        """Per 5-tuple, the sums over its flows (a connection's 5-tuple may make several flows,
        e.g. when one ended and a late packet started another)."""
        out = {}
        for f in flows:
            if f["proto"] == 6:
                key = (f["src"], f["sport"], f["dst"], f["dport"])
                was = out.get(key, ([0, 0], [0, 0]))
                out[key] = ([a + b for a, b in zip(was[0], f["packets"])], [a + b for a, b in zip(was[1], f["bytes"])])
        return out
    assert tcp(counter["flows"]) == tcp(python)
    assert sum(b[1] for _, b in tcp(python).values()) >= server_bytes
    assert flowbytes["faults"] == 0 and flowbytes["packets"] > 0


@pytest.mark.parametrize("mode", MODES)
def test_downloads_arrive_byte_identical(wire, tmp_path, site, mode):
    need_tools("curl")
    www, files = site
    box = start(wire, tmp_path, mode)
    http = wire.http_server(www)
    served = 0
    for name, data in files.items():
        got = wire.curl(http.url(name))
        assert got.returncode == 0, got.stderr
        assert got.info[0]["http_code"] == 200
        assert sha256(got.body) == sha256(data), name
        served += len(data)
    v6 = wire.curl(http.url("page.txt", ipv6=True))
    assert v6.returncode == 0 and sha256(v6.body) == sha256(files["page.txt"]), v6.stderr
    served += len(files["page.txt"])

    # One connection, kept alive, for several requests: curl reuses it (num_connects 0).
    names = ["page.txt", "blob.bin", "page.txt", "blob.bin"]
    kept = wire.curl(*(http.url(n) for n in names))
    assert kept.returncode == 0, kept.stderr
    assert [t["http_code"] for t in kept.info] == [200] * len(names)
    assert [t["num_connects"] for t in kept.info] == [1] + [0] * (len(names) - 1)
    assert sha256(kept.body) == sha256(b"".join(files[n] for n in names))
    served += len(kept.body)

    check_passed(check_stopped_clean(box), mode, tmp_path, served)


@pytest.mark.parametrize("mode", MODES)
def test_iperf3_through_flowos(wire, tmp_path, mode, record_property):
    need_tools("iperf3")
    box = start(wire, tmp_path, mode)
    report = wire.iperf3(seconds=3)
    received = report["end"]["sum_received"]
    mbit_s = received["bits_per_second"] / 1e6
    record_property("iperf3_mbit_s", round(mbit_s, 1))
    print(f"iperf3 through FlowOS ({mode}): {mbit_s:.0f} Mbit/s, "
          f"{report['end']['sum_sent'].get('retransmits', 0)} retransmits")
    assert mbit_s > 0 and received["bytes"] > 0

    run = check_stopped_clean(box)
    # The test's data went client -> server: all of it crossed the server-side port.
    assert port(run.stats, "net_af_packet1")["tx_bytes"] >= received["bytes"]
    check_passed(run, mode, tmp_path, 0)


def tcp_retransmits(namespace):
    """The namespace's TCP RetransSegs, from its /proc/net/snmp."""
    snmp = namespace.run("cat", "/proc/net/snmp").stdout.decode().splitlines()
    names, values = [line.split()[1:] for line in snmp if line.startswith("Tcp:")]
    return int(values[names.index("RetransSegs")])


@pytest.mark.parametrize("mode", MODES)
def test_downloads_survive_reordering_loss_and_duplicates(wire, tmp_path, site, mode):
    need_tools("curl")
    www, files = site
    box = start(wire, tmp_path, mode)
    http = wire.http_server(www)
    # On the server's veth, so on the downloads' data: a quarter of it out of order, 2 % lost,
    # 2 % sent twice; FlowOS sees the stream as the client will.
    how = wire.server.impair(reorder=0.25, loss=0.02, duplicate=0.02)
    names = ["blob.bin", "page.txt", "blob.bin", "blob.bin"]
    got = wire.curl(*(http.url(n) for n in names))
    assert got.returncode == 0, got.stderr
    assert [t["http_code"] for t in got.info] == [200] * len(names)
    assert sha256(got.body) == sha256(b"".join(files[n] for n in names))

    # The impairment did bite (~900 frames: P(no loss) < 1e-7): packets were lost and the
    # server's TCP sent them again; packets were duplicated and held back (where counted).
    bitten = wire.server.impairment_counts()
    print(f"impairment ({how}): {bitten}, server retransmits {tcp_retransmits(wire.server)}")
    assert bitten["dropped"] > 0 and tcp_retransmits(wire.server) > 0, bitten
    assert bitten["duplicated"] != 0 and bitten["held_back"] != 0, bitten
    wire.server.clear_impairment()
    check_passed(check_stopped_clean(box), mode, tmp_path, len(got.body))
