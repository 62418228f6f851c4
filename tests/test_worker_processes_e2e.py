"""Worker processes between two Linux TCP stacks (tests/netns.py): a Python stream rewriter on two
worker processes, behind the relay polling both queue pairs of each net_af_packet port. What the
client downloads is the judge, byte for byte; then the per-process rows: each process rewrote the
connection it owns (tests/test_workers_e2e.py's ClientPorts picks the client ports so)."""
import os

import pytest

from conftest import need_tools
from test_workers_e2e import rewrite_impaired_downloads, shard_rows, wires  # noqa: F401 (a fixture)
from test_worker_processes import needs_hugepages  # noqa: F401 (an autouse fixture)

pytestmark = pytest.mark.e2e
TESTS = os.path.dirname(os.path.abspath(__file__))


def test_python_rewriter_on_two_worker_processes_is_byte_exact(wires, tmp_path):
    """Two Rewriter stages on the responses, one growing ("fox" -> "wolverine", +6), one shrinking
    ("the lazy " -> "lzy", -6): every segment renumbered. Data reordered, lost and duplicated
    before FlowOS and lost after it (what it had seen: retransmitted), as are some of the client's ACKs. Two kept-alive connections, one owned by
    each worker process, each fetch the text twice."""
    need_tools("curl")
    stages = [{"pyprocs.streams:Rewriter": {"old": "fox", "new": "wolverine"}},
              {"pyprocs.streams:Rewriter": {"old": "the lazy ", "new": "lzy"}}]
    run = rewrite_impaired_downloads(wires(2), tmp_path, stages, TESTS, memory="hugepages",
                                     config={"engine": {"capacity": 4096}, "pool": {"mbufs": 16383}})
    assert run.stats["engine"]["stats"]["streams"]["retransmits"] > 0
    rows = run.stats["workers"]
    assert len({row["pid"] for row in rows}) == 2
    assert all(row["streams"]["rewritten"] > 0 for row in shard_rows(run, 2)), rows
