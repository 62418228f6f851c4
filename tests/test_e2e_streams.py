"""Streams with real TCP stacks on both sides (flowos/testing/netns.py): payload-level processors see each
direction in order, once; patterns split across segments are found; length-changing rewrites in
either direction keep the connection working, request after request on one kept-alive
connection (the proof that sequence and acknowledgement numbers are mapped right both ways);
all of it under reordering, loss and duplication too. What the endpoints got is the judge."""
import hashlib
import json
import os
import sys
from pathlib import Path

import pytest

from conftest import EXACT_REWRITE_LIMITS, need_tools
from flowcheck import check_accounting

pytestmark = pytest.mark.e2e

TESTS = Path(__file__).parent
TOKEN = b"SECRET-TOKEN-1234"
ECHO_PORT = 8081


def sha256(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def site(tmp_path):
    """page.html (~3 KB, fits in a server's first flight), page.txt (~12 KB: TOKEN 40 times, each
    across a multiple of 288 bytes, where a 300-byte MSS with TCP timestamps cuts the body),
    blob.bin (~400 KB, random)."""
    import random
    www = tmp_path / "www"
    www.mkdir()
    rnd = random.Random(5)
    lines = [f"{i:05d} the quick brown fox jumps over the lazy middlebox\n" for i in range(56)]
    html = ("<html><body>\n" + "".join(lines) + "</body></html>\n").encode()
    text = b""
    for k in range(1, 41):
        text += b"x" * (k * 288 - 8 - len(text)) + TOKEN
    files = {"page.html": html, "page.txt": text, "blob.bin": rnd.randbytes(400_000)}
    for name, data in files.items():
        (www / name).write_bytes(data)
    return www, files


def start(wire, tmp_path, pipeline, limits=None):
    config = {"flows": [{"name": "all", "pipeline": pipeline, **({"limits": limits} if limits else {})}]}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)}
    return wire.start_flowos(tmp_path=tmp_path, config=config, env=env)


def stop_clean(box):
    run = box.stop()
    assert run.returncode == 0, run.stderr
    assert run.stats["mbufs"]["in_use_at_exit"] == 0
    check_accounting(run.stats["engine"]["stats"])
    return run


def stream_stats(run):
    return run.stats["engine"]["stats"]["streams"]


def processor(run, i=0):
    return run.stats["engine"]["flows"][0]["processors"][i]["report"]


def test_processors_see_an_in_order_stream_under_reordering_loss_and_duplicates(wire, tmp_path, site):
    """Recorder checks, call by call, that each window starts where the last ended; what it
    saw of each connection is the HTTP exchange, bytes exactly as curl got them."""
    need_tools("curl")
    www, files = site
    rec = tmp_path / "streams.json"
    box = start(wire, tmp_path, [{"pyprocs.streams:Recorder": {"path": str(rec)}}])
    http = wire.http_server(www)
    wire.server.impair(reorder=0.25, loss=0.02, duplicate=0.02)
    names = ["blob.bin", "page.txt", "blob.bin"]
    got = wire.curl(*(http.url(n) for n in names))
    assert got.returncode == 0, got.stderr
    assert sha256(got.body) == sha256(b"".join(files[n] for n in names))
    wire.server.clear_impairment()
    run = stop_clean(box)
    seen = json.loads(rec.read_text())
    tcp = [v for k, v in seen.items() if k.startswith("6 ") and k.endswith(f" {http.port}")]
    assert len(tcp) == 1
    to_client, to_server, problems = bytes.fromhex(tcp[0][1]), bytes.fromhex(tcp[0][0]), tcp[0][2]
    assert problems == []
    assert to_server.count(b"GET /") == len(names)
    # The responses' bodies, in order, are exactly what curl got.
    bodies, at = b"", 0
    for _ in names:
        head_end = to_client.index(b"\r\n\r\n", at) + 4
        size = int(to_client[at:head_end].lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        bodies += to_client[head_end:head_end + size]
        at = head_end + size
    assert bodies == got.body and at == len(to_client)
    st = stream_stats(run)
    assert st["reordered"] + st["retransmits"] + st["duplicates"] > 0, st
    print("streams under impairment:", st)


def test_a_token_split_across_segments_is_found(wire, tmp_path, site):
    """The client advertises an MSS of 300 (advmss), so the server's segments are small and many
    of the 40 tokens straddle two."""
    need_tools("curl")
    www, files = site
    found = tmp_path / "found.json"
    box = start(wire, tmp_path, [{"pyprocs.streams:Finder": {"path": str(found), "pattern": TOKEN.decode()}}])
    wire.client.run("ip", "route", "replace", f"{wire.server.addr}/32", "dev", wire.client.iface, "advmss", "300")
    got = wire.curl(wire.http_server(www).url("page.txt"))
    assert got.returncode == 0 and got.body == files["page.txt"], got.stderr
    stop_clean(box)
    result = json.loads(found.read_text())
    (hits,) = result["found"].values()
    assert len(hits) == 40 and result["spanning"] >= 20, result


@pytest.mark.parametrize("new", ["wolverine-sized-animal", "f"], ids=["longer", "shorter"])
def test_a_response_rewrite_with_content_length_keeps_the_connection_working(wire, tmp_path, site, new):
    need_tools("curl")
    www, files = site
    box = start(wire, tmp_path, [{"pyprocs.http:BodyRewriter": {"old": "fox", "new": new}}])
    http = wire.http_server(www)
    names = ["page.html", "blob.bin", "page.html", "page.html"]
    got = wire.curl(*(http.url(n) for n in names))
    assert got.returncode == 0, got.stderr
    assert [t["num_connects"] for t in got.info] == [1, 0, 0, 0]
    rewritten = files["page.html"].replace(b"fox", new.encode())
    expect = [rewritten, files["blob.bin"], rewritten, rewritten]
    assert [t["size_download"] for t in got.info] == [len(e) for e in expect]
    assert got.body == b"".join(expect)
    run = stop_clean(box)
    assert stream_stats(run)["rewritten"] > 0


def test_request_rewrites_longer_and_shorter_on_one_kept_alive_connection(wire, tmp_path):
    """Two rewriters on the client's requests (each alone in its stage: they write): one makes
    a request line longer, the other shorter. The echo server answers with what it received."""
    need_tools("curl")
    grow, grown = "GET /grow ", "GET /grown-to-a-much-much-longer-path-than-it-was ",
    shrink, shrunk = "GET /shrink-this-rather-long-path-please ", "GET /s "
    box = start(wire, tmp_path, [{"pyprocs.streams:Rewriter": {"old": grow, "new": grown, "dir": 0}},
                                 {"pyprocs.streams:Rewriter": {"old": shrink, "new": shrunk, "dir": 0}}])
    echo = wire.server.popen(sys.executable, str(TESTS / "echo_http.py"), ECHO_PORT)
    wire.server.wait_listening(ECHO_PORT, echo)
    base = f"http://{wire.server.addr}:{ECHO_PORT}"
    paths = ["/grow", "/shrink-this-rather-long-path-please", "/plain", "/grow", "/shrink-this-rather-long-path-please"]
    got = wire.curl(*(base + p for p in paths))
    assert got.returncode == 0, got.stderr
    assert [t["num_connects"] for t in got.info] == [1] + [0] * (len(paths) - 1)
    lines = [line for line in got.body.decode().splitlines() if line.startswith("GET ")]
    assert lines == [grown.strip() + " HTTP/1.1", shrunk.strip() + " HTTP/1.1", "GET /plain HTTP/1.1",
                     grown.strip() + " HTTP/1.1", shrunk.strip() + " HTTP/1.1"]
    run = stop_clean(box)
    assert stream_stats(run)["rewritten"] > 0


def test_rewrites_survive_reordering_loss_and_duplicates(wire, tmp_path):
    """Two streaming rewriters on the responses, one growing ("fox" -> "wolverine", +6), one
    shrinking ("the lazy " -> "lzy", -6): each line keeps its length, so Content-Length stays
    right while every segment is renumbered. Data is reordered, lost and duplicated before
    FlowOS, and lost after it (on the client's ingress), as are some of the client's ACKs, so
    the server resends data FlowOS already sent on: it must leave as it first left (FlowOS's
    kept copies). Holds are let go only after EXACT_REWRITE_LIMITS' stream_hold_ms."""
    need_tools("curl")
    www = tmp_path / "www"
    www.mkdir()
    text = "".join(f"{i:06d} the quick brown fox jumps over the lazy middlebox\n" for i in range(4000)).encode()
    (www / "long.txt").write_bytes(text)
    box = start(wire, tmp_path, [{"pyprocs.streams:Rewriter": {"old": "fox", "new": "wolverine"}},
                                 {"pyprocs.streams:Rewriter": {"old": "the lazy ", "new": "lzy"}}],
                limits=EXACT_REWRITE_LIMITS)
    http = wire.http_server(www)
    wire.server.impair(reorder=0.25, loss=0.03, duplicate=0.03)
    wire.client.impair(loss=0.1)
    wire.client.nft(f"table netdev after_box {{\n chain ingress {{\n  type filter hook ingress device "
                    f"{wire.client.iface} priority 0;\n  numgen random mod 100 < 3 drop\n }}\n}}\n")
    got = wire.curl(*(http.url("long.txt") for _ in range(3)))
    wire.server.clear_impairment()
    wire.client.clear_impairment()
    wire.client.run("nft", "delete", "table", "netdev", "after_box")
    assert got.returncode == 0, got.stderr
    assert [t["num_connects"] for t in got.info] == [1, 0, 0]
    assert got.body == text.replace(b"fox", b"wolverine").replace(b"the lazy ", b"lzy") * 3
    run = stop_clean(box)
    st = stream_stats(run)
    print("rewrites under impairment:", st)
    assert st["rewritten"] > 0 and st["retransmits"] > 0, st


def test_rewritten_downloads_do_not_stall_under_loss_and_reordering_on_both_sides(wire, tmp_path):
    """The stall of issue 11 (docs/streams.md, "Held bytes are never held for ever"): nearly every
    segment ends with "f", a possible start of "fox", which the rewriter holds; when the segment
    after it is lost before FlowOS, the server times out and resends only the held byte, which
    FlowOS dropped as a duplicate: before the fix about half of these downloads stalled until
    curl's max-time. Now held bytes go on once the flow brings no new bytes for stream_hold_ms
    (100 ms here), so each download completes. A "fox" whose "f" was let go that way passes
    unchanged (at most one per let-go hold); every other one is rewritten, and every byte comes.
    The body grows, so curl reads to the connection's close (Connection: close)."""
    need_tools("curl")
    www = tmp_path / "www"
    www.mkdir()
    text = b"".join(b"f" * 200 + b" fox %05d\n" % i for i in range(3000))   # ~620 KB
    (www / "f.txt").write_bytes(text)
    config = {"flows": [{"name": "all", "pipeline": [{"pyprocs.streams:Rewriter": {"old": "fox", "new": "wolverine"}}],
                         "limits": {"stream_hold_ms": 100}}]}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH")) if p)}
    box = wire.start_flowos(tmp_path=tmp_path, config=config, env=env)
    http = wire.http_server(www)
    for side in (wire.server, wire.client):
        side.impair(reorder=0.25, loss=0.02, duplicate=0.01)
    got = [wire.curl(http.url("f.txt"), timeout=20, args=("-H", "Connection: close", "--ignore-content-length"))
           for _ in range(6)]
    wire.server.clear_impairment()
    wire.client.clear_impairment()
    run = stop_clean(box)
    st = stream_stats(run)
    print("rewritten downloads under loss:", [(g.returncode, len(g.body)) for g in got], st)
    assert [g.returncode for g in got] == [0] * 6, [g.stderr for g in got]
    expect = text.replace(b"fox", b"wolverine")
    for g in got:
        assert g.body.replace(b"fox", b"wolverine") == expect
    assert sum(g.body.count(b"fox") for g in got) <= st["holds_idle"]
    assert st["rewritten"] > 0 and st["retransmits"] > 0


def test_a_body_ending_with_a_start_of_the_word_is_delivered_on_a_kept_alive_connection(wire, tmp_path):
    """examples/redact.py holds a possible start of its word (partial_at): a response body that
    ends with "SECRET-TOK" has those bytes held, nothing follows them on the kept-alive
    connection, and the server's resends of them are no new bytes. Before held bytes had a rule
    the first transfer never ended (curl's max-time); now they go on once the flow has brought no
    new bytes for stream_hold_ms (default 500 ms), and both transfers share one connection."""
    need_tools("curl")
    www = tmp_path / "www"
    www.mkdir()
    body = b"the quick brown fox\n" * 100 + b"SECRET-TOK"
    (www / "a.txt").write_bytes(body)
    (www / "b.txt").write_bytes(b"second\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in (TESTS.parent / "examples", TESTS))}
    box = wire.start_flowos(tmp_path=tmp_path, config={"flows": [{"name": "all", "pipeline": ["redact:Redact"]}]},
                            env=env)
    http = wire.http_server(www)
    got = wire.curl(http.url("a.txt"), http.url("b.txt"), timeout=8)
    assert got.returncode == 0, (got.stderr, got.info)
    assert [t["num_connects"] for t in got.info] == [1, 0], got.info
    assert got.body == body + b"second\n"
    assert stream_stats(stop_clean(box))["holds_idle"] >= 1


def test_iperf3_through_a_stream_processor(wire, tmp_path):
    need_tools("iperf3")
    found = tmp_path / "found.json"
    box = start(wire, tmp_path, [{"pyprocs.streams:Finder": {"path": str(found), "pattern": "never-in-iperf-data"}}])
    report = wire.iperf3(seconds=3)
    mbit_s = report["end"]["sum_received"]["bits_per_second"] / 1e6
    print(f"iperf3 through a Python stream processor: {mbit_s:.0f} Mbit/s")
    assert mbit_s > 0
    run = stop_clean(box)
    st = stream_stats(run)
    # What the engine dropped were duplicates of data it held, or segments past its reorder limit.
    assert run.stats["engine"]["stats"]["dropped"] == st["duplicates"] + st["reorder_overflow"]
