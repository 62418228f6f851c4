"""Worker processes between two Linux TCP stacks (tests/netns.py): a Python stream rewriter on two
worker processes, behind the relay polling both queue pairs of each net_af_packet port. What the
client downloads is the judge, byte for byte; then the per-process rows: each process rewrote the
connection it owns (tests/test_workers_e2e.py's ClientPorts picks the client ports so)."""
import os

import pytest

from conftest import need_tools
from test_workers_e2e import ClientPorts, shard_rows, stop_clean, wires  # noqa: F401 (a fixture)
from test_worker_processes import needs_hugepages  # noqa: F401 (an autouse fixture)

pytestmark = pytest.mark.e2e
TESTS = os.path.dirname(os.path.abspath(__file__))


def test_python_rewriter_on_two_worker_processes_is_byte_exact(wires, tmp_path):
    """Two Rewriter stages on the responses, one growing ("fox" -> "wolverine", +6), one shrinking
    ("the lazy " -> "lzy", -6): every segment renumbered. Data reordered, lost and duplicated
    before FlowOS and lost after it (what it had seen: retransmitted), as are some of the client's ACKs. Two kept-alive connections, one owned by
    each worker process, each fetch the text twice."""
    need_tools("curl")
    wire = wires(2)
    www = tmp_path / "www"
    www.mkdir()
    text = "".join(f"{i:06d} the quick brown fox jumps over the lazy middlebox\n" for i in range(3000)).encode()
    (www / "long.txt").write_bytes(text)
    stages = [{"pyprocs.streams:Rewriter": {"old": "fox", "new": "wolverine"}},
              {"pyprocs.streams:Rewriter": {"old": "the lazy ", "new": "lzy"}}]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (TESTS, os.environ.get("PYTHONPATH")) if p)}
    box = wire.start_flowos("--workers", 2, tmp_path=tmp_path, env=env, memory="hugepages",
                            config={"flows": [{"name": "all", "pipeline": stages}], "engine": {"capacity": 4096},
                                    "pool": {"mbufs": 16383}})
    http = wire.http_server(www)
    wire.server.impair(reorder=0.25, loss=0.03, duplicate=0.03)
    wire.client.impair(loss=0.1)
    wire.client.nft(f"table netdev after_box {{\n chain ingress {{\n  type filter hook ingress device "
                    f"{wire.client.iface} priority 0;\n  numgen random mod 100 < 3 drop\n }}\n}}\n")
    ports, fetches = ClientPorts(2), 2
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
    run = stop_clean(box)
    assert run.stats["engine"]["stats"]["streams"]["retransmits"] > 0
    rows = run.stats["workers"]
    assert len({row["pid"] for row in rows}) == 2
    assert all(row["streams"]["rewritten"] > 0 for row in shard_rows(run, 2)), rows
