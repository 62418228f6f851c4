"""FlowOS with several workers (--workers N) between two Linux TCP stacks (flowos/testing/netns.py): each
port has N queue pairs (net_af_packet's qpairs: the kernel's fanout hash spreads what arrives) or
a single queue (each port polled by one worker, the spreading mode), every worker runs its own
shard of the flow engine, and a packet that arrives at a worker that does not own its flow is
handed to the owner (fo_steer.h). What the endpoints got is the judge, as in
tests/test_e2e_forwarding.py and tests/test_e2e_streams.py for one worker; then the engine's
summed counters and per-worker rows, and the counter's per-flow records: a connection whose two
directions reached two shards would be two flows there, each with packets one way only (the
check fails so when fo_steer_fold hashes one port only).

Each connection's client port is chosen so that its owner is known (owner(), the symmetric hash
that tests/test_steer.py holds to a bit-by-bit Toeplitz hash): the connections are spread over
every worker, whatever the kernel's ephemeral ports would have been."""
import collections
import hashlib
import ipaddress
import os
import random

import pytest

from conftest import EXACT_REWRITE_LIMITS, need_tools
from cybuild import CYPROBE, meson_build
from flowcheck import check_accounting
from flowos.boundary._runtime import steer_hash
from flowos.runtime.runner import STEER_PATTERN
from flowos.testing import netns

pytestmark = pytest.mark.e2e

STEER_BUCKETS = 64          # FO_STEER_BUCKETS
FIRST_CLIENT_PORT = 20000   # below the ephemeral range: no port the kernel picks collides


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def owner(src, sport, dst, dport, workers):
    """The worker that owns a TCP or UDP flow: the Toeplitz hash of the XOR of its addresses' and
    ports' 16-bit words (fo_steer_fold), its bucket, the bucket's worker (fo_steer_worker)."""
    data = ipaddress.ip_address(src).packed + ipaddress.ip_address(dst).packed
    data += sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    fold = 0
    for i in range(0, len(data), 2):
        fold ^= data[i] << 8 | data[i + 1]
    return steer_hash(STEER_PATTERN, fold) % STEER_BUCKETS % workers


class ClientPorts:
    """Client ports for connections to (server, dport), each never used before in the wire, whose
    flows worker `w` owns."""

    def __init__(self, workers):
        self.workers, self.next = workers, FIRST_CLIENT_PORT

    def owned_by(self, w, client, server, dport):
        while owner(client, self.next, server, dport, self.workers) != w:
            self.next += 1
        self.next += 1
        return self.next - 1


@pytest.fixture
def wires():
    """Makes netns.Wires whose ports have `queues` queue pairs; removes them afterwards."""
    reason = netns.can_create_namespaces()
    if reason:
        pytest.skip(reason)
    made = []

    def make(queues):
        # Each queue pair has its own rings: the same frames per port as one worker's 4096.
        made.append(netns.Wire(port_args=f"framecnt={4096 // queues},qpairs={queues}").create())
        return made[-1]
    yield make
    for w in made:
        w.close()


@pytest.fixture(scope="module")
def cyprobe(tmp_path_factory):
    """The build folder of tests/cyprobe (its StreamRedactor is the stream rewriter here)."""
    return meson_build(CYPROBE, tmp_path_factory.mktemp("cyprobe"))


def stop_clean(box):
    """SIGINT: exit 0, every mbuf back, every packet accounted for in the shards' summed counters,
    every packet received processed once (by the shard of its flow). Returns the Run."""
    run = box.stop()
    assert run.returncode == 0, run.stderr
    assert run.stats["stop_reason"] == "signal (SIGINT)"
    assert run.stats["mbufs"]["in_use_at_exit"] == 0
    eng = run.stats["engine"]["stats"]
    check_accounting(eng)
    assert eng["held"] == 0
    assert eng["packets"] == run.stats["totals"]["rx_packets"]
    assert run.stats["totals"]["tx_packets"] == eng["tx_packets"]
    return run


def shard_rows(run, workers):
    """Each worker's shard counters (--stats-json's per-worker rows); they add up to the totals."""
    rows = [row["engine"] for row in run.stats["workers"]]
    assert len(rows) == workers
    eng = run.stats["engine"]["stats"]
    for key in ("packets", "flows_created", "tx_packets", "dropped"):
        assert sum(row[key] for row in rows) == eng[key], key
    return rows


def tcp_records(run):
    """The counter's records of TCP flows, by (client, client port, server, server port)."""
    report = run.stats["engine"]["flows"][0]["processors"][0]["report"]
    assert report["unrecorded"] == 0
    assert len(report["flows"]) == run.stats["engine"]["stats"]["flows_created"]
    records = collections.defaultdict(list)
    for f in report["flows"]:
        if f["proto"] == 6:
            records[(f["src"], f["sport"], f["dst"], f["dport"])].append(f)
    return records


@pytest.mark.parametrize("workers, queues", [(2, 2), (4, 4), (2, 1)], ids=["2", "4", "2-single-queue"])
def test_downloads_and_iperf3_through_several_workers_keep_each_connection_one_flow(wires, tmp_path, workers, queues):
    """curl's downloads arrive byte-identical over connections owned by every worker, over IPv4
    and IPv6; iperf3 runs through; then each TCP connection is ONE flow of the counter's, with
    packets both ways: its two directions met in one shard. With single-queue ports, worker 0
    receives what the client sends and worker 1 what the server sends (the spreading mode)."""
    need_tools("curl", "iperf3")
    wire = wires(queues)
    www = tmp_path / "www"
    www.mkdir()
    files = {"page.txt": "".join(f"{i:05d} the quick brown fox jumps over the lazy middlebox\n"
                                 for i in range(300)).encode(),
             "blob.bin": random.Random(13).randbytes(300_000)}
    for name, data in files.items():
        (www / name).write_bytes(data)
    box = wire.start_flowos("--workers", workers, tmp_path=tmp_path,
                            config={"flows": [{"name": "all", "pipeline": ["counter"]}]})
    http = wire.http_server(www)
    ports = ClientPorts(workers)
    connections = {}      # (client, client port, server, server port) -> (owner, bytes the server sent at least)
    for w in range(workers):
        for ipv6 in (False, True):
            client, server = (wire.client.addr6, wire.server.addr6) if ipv6 else (wire.client.addr, wire.server.addr)
            cport = ports.owned_by(w, client, server, http.port)
            names = ["page.txt", "blob.bin"] if w % 2 == ipv6 else ["page.txt"]
            got = wire.curl(*(http.url(n, ipv6=ipv6) for n in names), args=("--local-port", cport))
            assert got.returncode == 0, got.stderr
            assert [t["http_code"] for t in got.info] == [200] * len(names)
            assert [t["num_connects"] for t in got.info] == [1] + [0] * (len(names) - 1)
            assert sha256(got.body) == sha256(b"".join(files[n] for n in names)), (w, ipv6)
            connections[(client, cport, server, http.port)] = (w, len(got.body))
    report = wire.iperf3(seconds=2)
    assert report["end"]["sum_received"]["bytes"] > 0
    run = stop_clean(box)

    records = tcp_records(run)
    split = {k: [(f["packets"], f["end"]) for f in records[k]] for k in connections if len(records[k]) != 1}
    assert not split, f"curl's connections in several flows (packets each way, end): {split}"
    one_way = {k: records[k][0]["packets"] for k in connections if 0 in records[k][0]["packets"]}
    assert not one_way, f"curl's connections with packets one way only: {one_way}"
    for key, (_, served) in connections.items():
        assert records[key][0]["bytes"][1] >= served, key
    # iperf3's connections (its control connection and its test's): at the end of the test the
    # server closes its socket with data still arriving and answers it with RSTs; each RST ends
    # the flow at once (docs/flows.md, Lifecycle) and the next late segment starts another, as
    # with one worker. The connection's own flow is the one with the most packets, both ways.
    iperf = collections.defaultdict(list)
    for key, flows in records.items():
        if key not in connections:
            assert netns.IPERF_PORT in (key[1], key[3]), key
            iperf[key[1] if key[3] == netns.IPERF_PORT else key[3]] += flows
    assert len(iperf) >= 2, records.keys()
    mains = [max(flows, key=lambda f: sum(f["packets"])) for flows in iperf.values()]
    assert all(0 not in main["packets"] for main in mains), iperf
    assert max(main["bytes"][0] for main in mains) >= report["end"]["sum_received"]["bytes"]
    # Every worker did work: each created at least the flows of the connections it owns.
    owned = collections.Counter(w for w, _ in connections.values())
    assert sorted(owned) == list(range(workers))
    for w, row in enumerate(shard_rows(run, workers)):
        assert row["packets"] > 0 and row["flows_created"] >= owned[w], (w, row)


REWRITE_FETCHES = 2


def rewrite_impaired_downloads(wire, tmp_path, stages, path, **start):
    """Two kept-alive connections through 2 workers, one owned by each (ClientPorts), each fetching
    a text twice through `stages` (rewriting "fox" -> "wolverine" and "the lazy " -> "lzy", so
    every line keeps its length while every segment is renumbered), with data reordered, lost and
    duplicated before the box and lost after it, as are some of the client's ACKs. Checks both
    downloads byte for byte (holds let go only after EXACT_REWRITE_LIMITS' stream_hold_ms);
    returns the stopped run. path: where the stages' module is."""
    www = tmp_path / "www"
    www.mkdir()
    text = "".join(f"{i:06d} the quick brown fox jumps over the lazy middlebox\n" for i in range(3000)).encode()
    (www / "long.txt").write_bytes(text)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (path, os.environ.get("PYTHONPATH")) if p)}
    box = wire.start_flowos("--workers", 2, tmp_path=tmp_path, env=env,
                            config={"flows": [{"name": "all", "pipeline": stages, "limits": EXACT_REWRITE_LIMITS}],
                                    **start.pop("config", {})}, **start)
    http = wire.http_server(www)
    wire.server.impair(reorder=0.25, loss=0.03, duplicate=0.03)
    wire.client.impair(loss=0.1)
    wire.client.nft(f"table netdev after_box {{\n chain ingress {{\n  type filter hook ingress device "
                    f"{wire.client.iface} priority 0;\n  numgen random mod 100 < 3 drop\n }}\n}}\n")
    ports, fetches = ClientPorts(2), REWRITE_FETCHES
    got = [wire.curl(*(http.url("long.txt") for _ in range(fetches)),
                     args=("--local-port", ports.owned_by(w, wire.client.addr, wire.server.addr, http.port)))
           for w in range(2)]
    wire.server.clear_impairment()
    wire.client.clear_impairment()
    wire.client.run("nft", "delete", "table", "netdev", "after_box")
    expect = text.replace(b"fox", b"wolverine").replace(b"the lazy ", b"lzy") * fetches
    for g in got:
        assert g.returncode == 0, g.stderr
        assert [t["num_connects"] for t in g.info] == [1] + [0] * (fetches - 1)
        assert g.body == expect
    return stop_clean(box)


@pytest.mark.parametrize("queues", [2, 1], ids=["qpairs2", "single-queue"])
def test_rewrites_on_two_workers_survive_reordering_loss_and_duplicates(wires, tmp_path, cyprobe, queues):
    """tests/test_e2e_streams.py's test of the same name, on two workers with a Cython rewriter
    (test_worker_processes_e2e.py: a Python one on worker processes), through
    rewrite_impaired_downloads: two StreamRedactor stages on the responses, one growing, one
    shrinking, under reordering, loss and duplicates. Each word is replaced once, by one of the
    two instances of each stage, and each worker rewrote the connection it owns. With
    single-queue ports, each port is polled by one worker (a direction each): every connection
    has one of its directions handed to its owner."""
    need_tools("curl")
    stages = [{"cyprobe:StreamRedactor": {"old": "fox", "new": "wolverine"}},
              {"cyprobe:StreamRedactor": {"old": "the lazy ", "new": "lzy"}}]
    run = rewrite_impaired_downloads(wires(queues), tmp_path, stages, str(cyprobe))
    fetches = REWRITE_FETCHES
    st = run.stats["engine"]["stats"]["streams"]
    print("rewrites on two workers under impairment:", st)
    assert st["rewritten"] > 0 and st["retransmits"] > 0, st
    # Each word was replaced once, by one of the two instances of each stage: none twice, none
    # missed (the reports are the instances' sums).
    per_stage = [p["report"]["report"] for p in run.stats["engine"]["flows"][0]["processors"]]
    assert per_stage == [{"replaced": 3000 * fetches * 2, "failed": 0}] * 2
    # Both workers rewrote: each owns one of the connections.
    assert all(row["streams"]["rewritten"] > 0 for row in shard_rows(run, 2)), run.stats["workers"]
    if queues == 1:
        assert all(row["handed_off"] > 0 for row in shard_rows(run, 2)), run.stats["workers"]
