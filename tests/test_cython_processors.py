"""Cython processors (flowos.cprocessor.CProcessor), built the way a user builds them: with meson,
in a temporary folder, outside FlowOS and against the installed package (numpy's test_extending
does the same for numpy.random). The example (examples/cython_processor) runs from its YAML on
the real captures; the same logic written in Python (tests/pytwins.py), in Cython and as the C
built-ins gives the same outputs; the test processors of tests/cyprobe check the helpers against
scapy, that process() runs without the GIL, and the tier's verdicts, inject() and faults.
Expectations come from scapy and tests/flowcheck.py, never from FlowOS."""
import json
import os
import signal
import struct
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml
from scapy.all import IP, IPv6, Ether

from conftest import CAPTURES, packets, run_flowos
from cybuild import CYPROBE, meson_build
from flowcheck import (Keyer, check_clean, check_per_flow_order, checksums_ok, connections, engine_stats,
                       one_port, read_header, report, report_key, run_config, same_multiset, with_ttl,
                       write_pcap)
from test_watchdog import check_a_slow_message_handler, launch  # noqa: F401 (launch: the fixture)

TESTS = Path(__file__).parent
EXAMPLE = TESTS.parent / "examples" / "cython_processor"
CAPTURE_CLOCK = {"clock": "capture"}
NO_LEVEL = 0xFFFF
IDS = [c.stem for c in CAPTURES]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The example's module (cyprocs) and the test processors (cyprobe), each in its build folder."""
    root = tmp_path_factory.mktemp("cython")
    return {"cyprocs": meson_build(EXAMPLE, root / "example"), "cyprobe": meson_build(CYPROBE, root / "probe")}


@pytest.fixture(autouse=True)
def importable(built, monkeypatch):
    """flowos-run (a subprocess) imports cyprocs and cyprobe from their build folders, and the
    Python twins (pytwins) from this folder."""
    paths = [str(built["cyprocs"]), str(built["cyprobe"]), str(TESTS), os.environ.get("PYTHONPATH")]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in paths if p))


def catch_all(*stages):
    return [{"name": "all", "pipeline": list(stages)}]


def run_one_port(tmp_path, capture, flows, expect=0, **extra):
    out = tmp_path / "out.pcap"
    run = run_config(tmp_path, one_port(capture, out, flows, CAPTURE_CLOCK, **extra))
    if expect == 0:
        check_clean(run)
    else:
        assert run.returncode == expect, run.stderr
    return run, packets(capture), packets(out) if out.exists() else []


def model_counts(frames):
    return {k: (c.packets, c.bytes) for k, c in connections(frames)[0].items()}


def counts_by_key(rep):
    return {report_key(r): (r["packets"], r["bytes"]) for r in rep["flows"]}


# --- built outside FlowOS ----------------------------------------------------------------------

def test_a_users_module_links_neither_the_fast_path_nor_dpdk(built):
    """The extension needs no FlowOS or DPDK symbol of its own: the helpers go through the batch
    (b.meta_offset), not through the fast path's fo_pkt_meta_offset, and inject() is reached
    through flowos.cprocessor's C API."""
    for name in ("cyprocs", "cyprobe"):
        so = next(built[name].glob(f"{name}.*.so"))
        undefined = subprocess.run(["nm", "-D", "--undefined-only", str(so)], capture_output=True, text=True,
                                   check=True).stdout.split()
        assert not [s for s in undefined if s.startswith(("fo_", "rte_"))], undefined
        needed = subprocess.run(["readelf", "-d", str(so)], capture_output=True, text=True, check=True).stdout
        assert "librte_" not in needed


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_the_example_config_counts_and_rewrites_ttls(tmp_path, capture):
    """examples/cython_processor/pipeline.yaml, on each capture: FlowBytes's counts are scapy's,
    connection by connection; every IP packet leaves with TTL 32 and valid checksums."""
    example = yaml.safe_load((EXAMPLE / "pipeline.yaml").read_text())
    assert example["flows"][0]["pipeline"] == ["cyprocs:FlowBytes", {"cyprocs:SetTTL": {"set": 32}}]
    run, frames_in, frames_out = run_one_port(tmp_path, capture, example["flows"])
    tier = report(run, "all", 0)
    assert tier["name"] == "cyprocs:FlowBytes" and tier["faults"] == 0
    assert tier["packets"] == len(frames_in)
    assert counts_by_key(tier["report"]) == model_counts(frames_in)
    expected = [with_ttl(f, 32) for f in frames_in]
    assert same_multiset(frames_out, expected)
    check_per_flow_order(expected, frames_out)
    assert all(checksums_ok(f) for f in frames_out)
    ip = sum(1 for f in frames_in if f[12:14] in (b"\x08\x00", b"\x86\xdd"))
    assert engine_stats(run)["verdicts"]["modified"] == engine_stats(run)["checksums_fixed"] == ip


# --- Python, Cython and C: the same outputs ---------------------------------------------------

TIERS = {
    "c": ["counter", {"ttl": {"decrement": 3}}],
    "cython": ["cyprocs:FlowBytes", {"cyprocs:SetTTL": {"decrement": 3}}],
    "python": [{"pytwins:FlowBytes": {"out": "python-counts.json"}}, {"pytwins:SetTTL": {"decrement": 3}}],
}


@pytest.mark.parametrize("capture", CAPTURES, ids=IDS)
def test_python_cython_and_c_give_identical_outputs(tmp_path, capture):
    """A per-flow counter then a TTL decrement, as C built-ins, as Cython processors and as Python
    processors: byte-identical output captures and the same per-flow counts and end reasons,
    flow for flow in the same order; and those are scapy's. All three receive in bursts of 256
    (what the Python pipeline gets by default): the order flows interleave in depends on it."""
    outputs, counts = {}, {}
    for tier, pipeline in TIERS.items():
        where = tmp_path / tier
        where.mkdir()
        run, frames_in, outputs[tier] = run_one_port(where, capture, catch_all(*pipeline), run={"burst": 256})
        if tier == "c":
            counts[tier] = report(run, "all", 0)
        elif tier == "cython":
            counts[tier] = report(run, "all", 0)["report"]
        else:
            counts[tier] = json.loads((where / "python-counts.json").read_text())
    assert outputs["c"] == outputs["cython"] == outputs["python"]
    assert counts["c"] == counts["cython"] == counts["python"]
    assert counts_by_key(counts["c"]) == model_counts(frames_in)
    assert same_multiset(outputs["c"], [with_ttl(f, decrement=3) for f in frames_in])


# --- the helpers, the GIL ----------------------------------------------------------------------

def expected_row(raw, seq, direction):
    """What the cprocessor helpers should say about an untagged frame, from scapy and the
    decoder's documented offsets (fo_decode.h)."""
    h = read_header(raw)
    row = {"seq": seq, "dir": direction, "proto": h.proto, "sport": h.sport, "dport": h.dport, "tcp_flags": 0,
           "ttl": 0, "length": len(raw), "l2": 0, "l3": 14, "l4": NO_LEVEL, "payload": NO_LEVEL, "payload_len": 0}
    pkt = Ether(raw)
    if IP in pkt:
        ip = pkt[IP]
        row["ttl"], end, later, l4 = ip.ttl, 14 + ip.len, bool(ip.frag), 14 + ip.ihl * 4
    elif IPv6 in pkt:
        row["ttl"], end, later, l4 = pkt[IPv6].hlim, 14 + 40 + pkt[IPv6].plen, False, 14 + 40
        nh = pkt[IPv6].nh
        while nh in (0, 43, 44, 60):     # extension headers (MLD reports carry hop-by-hop)
            later = nh == 44 and struct.unpack("!H", raw[l4 + 2:l4 + 4])[0] & 0xFFF8 != 0
            nh, l4 = raw[l4], l4 + (8 if nh == 44 else (raw[l4 + 1] + 1) * 8)
            if later:
                break
    else:
        return row
    if later:
        row["payload"] = l4
    else:
        row["l4"] = l4
        row["payload"] = l4 + ((raw[l4 + 12] >> 4) * 4 if h.proto == 6 else 8 if h.proto in (1, 17, 58) else 0)
        if h.proto == 6:
            row["tcp_flags"] = raw[l4 + 13]
    row["payload_len"] = max(end - row["payload"], 0)
    return row


def expected_rows(frames):
    """expected_row() for every frame, with its sequence number and direction in its connection."""
    keyer, seen, rows = Keyer(), {}, []
    for raw in frames:
        key, end = keyer.key(raw)
        opener, n = seen.setdefault(key, [end, 0])
        rows.append(expected_row(raw, n, 0 if end == opener or key.lo == key.hi else 1))
        seen[key][1] += 1
    return rows


def as_multiset(rows):
    return Counter(tuple(sorted(r.items())) for r in rows)


@pytest.mark.parametrize("capture", ["mixed.pcap", "http_get.pcap", "http_ipv6.pcap", "icmp_ping.pcap"])
def test_helpers_match_scapy_and_process_runs_without_the_gil(tmp_path, capture_dir, capture):
    """Every helper's value for every packet (sequence number, direction, protocol, ports, TCP
    flags, TTL, length, level offsets, payload length) is scapy's; and process() never held the
    GIL, also with a Python processor in the next stage (whose worker thread state exists)."""
    for pipeline in (["cyprobe:Probe"], ["cyprobe:Probe", {"pytwins:FlowBytes": {}}]):
        run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / capture, catch_all(*pipeline))
        rows = report(run, "all", 0)["report"]["rows"]
        assert [r.pop("gil") for r in rows] == [0] * len(frames_in)
        assert as_multiset(rows) == as_multiset(expected_rows(frames_in))
        assert same_multiset(frames_out, frames_in)
        check_per_flow_order(frames_in, frames_out)


# --- verdicts, inject, faults --------------------------------------------------------------------

def test_inject_puts_a_copy_right_after_each_request(tmp_path, capture_dir):
    """Injector copies every UDP request (dport 5353) right after it; the counter of the next
    stage sees the copies, in the opener's direction."""
    capture = capture_dir / "udp_echo.pcap"
    run, frames_in, frames_out = run_one_port(tmp_path, capture, catch_all("cyprobe:Injector", "counter"))
    request = lambda f: read_header(f).dport == 5353   # noqa: E731
    expected = [g for f in frames_in for g in ([f, f] if request(f) else [f])]
    assert sum(map(request, frames_in)) == 300
    assert frames_out == expected       # one flow: the capture's order, each copy after its request
    assert engine_stats(run)["injected"] == 300
    assert report(run, "all", 0)["report"] == {"failed": 0}
    (rec,) = report(run, "all", 1)["flows"]
    assert rec["packets"] == [600, 300]


@pytest.mark.parametrize("length", [0, 13])
def test_inject_refuses_a_frame_shorter_than_an_ethernet_header(tmp_path, capture_dir, length):
    """inject() of 0 or 13 bytes returns -EINVAL and sends nothing (it sent a frame that short)."""
    capture = capture_dir / "udp_echo.pcap"
    run, frames_in, frames_out = run_one_port(tmp_path, capture,
                                              catch_all({"cyprobe:Injector": {"length": length}}))
    assert frames_out == frames_in
    assert engine_stats(run)["injected"] == 0
    assert report(run, "all", 0)["report"] == {"failed": 300}


def test_redirect_to_a_port_from_setup_context(tmp_path, capture_dir):
    """Redirector (port b, an id from setup()'s context) sends UDP out of b, the rest stays on a."""
    capture = capture_dir / "mixed.pcap"
    empty = write_pcap(tmp_path / "empty.pcap", [])
    cfg = {"ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={capture},tx_pcap=out_a.pcap"},
                     {"name": "b", "vdev": f"net_pcap1,rx_pcap={empty},tx_pcap=out_b.pcap"}],
           "forward": ["a -> a", "b -> b"], "engine": CAPTURE_CLOCK,
           "flows": catch_all({"cyprobe:Redirector": {"to": "b"}})}
    run = run_config(tmp_path, cfg)
    check_clean(run)
    frames_in = packets(capture)
    udp = [f for f in frames_in if read_header(f).proto == 17]
    assert udp and packets(tmp_path / "out_b.pcap") == udp
    rest, out_a = [f for f in frames_in if read_header(f).proto != 17], packets(tmp_path / "out_a.pcap")
    assert same_multiset(out_a, rest)
    check_per_flow_order(rest, out_a)
    assert engine_stats(run)["verdicts"]["redirect"] == len(udp)


@pytest.mark.parametrize("policy", ["pass", "drop"])
def test_a_fault_applies_on_error_to_the_call(tmp_path, capture_dir, policy):
    """Faulty marks every packet dropped and reports a fault in every call: on_error pass lets
    every packet through as it was, drop drops them all; the first fault's text is reported."""
    run, frames_in, frames_out = run_one_port(tmp_path, capture_dir / "udp_echo.pcap",
                                              catch_all({"cyprobe:Faulty": {"on_error": policy}}), expect=1)
    tier = report(run, "all", 0)
    assert tier["on_error"] == policy and tier["faults"] == tier["calls"] > 0
    assert tier["first_faults"] == ["a fault, on purpose"]
    assert frames_out == (frames_in if policy == "pass" else [])


def test_a_fault_with_on_error_stop_ends_the_run(tmp_path, capture_dir):
    """on_error: stop on a capture replayed forever: the run stops at the first fault (the
    processor is not called again, the worker receives nothing more), exit 1, naming the processor."""
    capture = capture_dir / "udp_echo.pcap"
    cfg = {"ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={capture},infinite_rx=1,tx_pcap=/dev/null"}],
           "forward": ["a -> a"], "run": {"duration": 30},
           "flows": catch_all({"cyprobe:Faulty": {"on_error": "stop"}})}
    run = run_config(tmp_path, cfg)
    assert run.returncode == 1, run.stderr
    assert run.stats["stop_reason"] == "processor fault (cyprobe:Faulty)"
    tier = report(run, "all", 0)
    assert tier["calls"] == tier["faults"] == 1, f"called again after its fault: {tier}"
    assert run.stats["totals"]["rx_packets"] <= run.stats["burst"], run.stats["totals"]
    assert run.stats["elapsed_s"] < 10
    assert run.stats["mbufs"]["in_use_at_exit"] == 0
    assert "cyprobe:Faulty" in run.stderr and "on_error: stop" in " ".join(run.stderr.split())


# --- loading ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry, says", [
    ({"cyprocs:SetTTL": {"set": 300}}, "set must be an integer in 0..255"),
    ({"cyprocs:FlowBytes": {"nope": 1}}, "unexpected keyword argument 'nope'"),
    ({"cyprocs:NoSuchClass": {}}, "is not a flowos.Processor subclass (nor a flowos.cprocessor.CProcessor one)"),
])
def test_bad_parameters_and_paths_are_rejected_at_load(tmp_path, capture_dir, entry, says):
    out = tmp_path / "out.pcap"
    run = run_config(tmp_path, one_port(capture_dir / "udp_echo.pcap", out, catch_all(entry)))
    assert run.returncode == 2, run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert "flows[0].pipeline[0]" in line and says in line, line
    assert not out.exists()


def test_a_cython_writer_stands_alone_in_its_stage(tmp_path, capture_dir):
    out = tmp_path / "out.pcap"
    run = run_config(tmp_path, one_port(capture_dir / "udp_echo.pcap", out, catch_all(["cyprocs:SetTTL", "counter"])))
    assert run.returncode == 2 and "a writer stands alone in its stage" in run.stderr


def test_the_processor_flag_takes_a_cython_processor(tmp_path, capture_dir):
    """flowos-run --processor cyprocs:FlowBytes (no config file): one catch-all flow."""
    capture = capture_dir / "http_get.pcap"
    run = run_flowos("--vdev", f"net_pcap0,rx_pcap={capture},tx_pcap=out.pcap", "--clock", "capture",
                     "--processor", "cyprocs:FlowBytes", tmp_path=tmp_path)
    check_clean(run)
    tier = report(run, "all", 0)
    assert tier["name"] == "cyprocs:FlowBytes"
    assert counts_by_key(tier["report"]) == model_counts(packets(capture))
    assert packets(tmp_path / "out.pcap") == packets(capture)


def test_stream_edits_from_cython_match_the_python_twin(tmp_path):
    """cyprobe.StreamRedactor (stream_find/stream_splice/stream_release, no GIL) and the Python
    Rewriter of tests/pyprocs/streams.py replace the token by a shorter string: the connections
    that leave carry the same streams, the original's with the token replaced."""
    from streamcheck import streams
    capture = next(c for c in CAPTURES if c.stem == "http_get")
    outs = {}
    for name, entry in (("cython", {"cyprobe:StreamRedactor": {"old": "SECRET-TOKEN-1234", "new": "[gone]"}}),
                        ("python", {"pyprocs.streams:Rewriter": {"old": "SECRET-TOKEN-1234", "new": "[gone]"}})):
        (tmp_path / name).mkdir()
        run, _, out = run_one_port(tmp_path / name, capture, catch_all(entry))
        outs[name] = streams(out)
        if name == "cython":
            rep = report(run, "all")["report"]
            assert rep == {"replaced": 1, "failed": 0}
    expect = {k: (s[0].data, s[1].data.replace(b"SECRET-TOKEN-1234", b"[gone]"))
              for k, s in streams(capture).items() if s.tcp}
    for name, got in outs.items():
        assert {k: (s[0].data, s[1].data) for k, s in got.items() if s.tcp} == expect, name


def test_a_run_stuck_in_a_cython_call_still_ends_when_told(tmp_path, capture_dir):
    """A Cython call that never returns (no GIL, in C) is named by the watchdog while it runs (the
    engine says which process() the worker is in) and cannot keep the run from ending: it is left
    running, the report written naming it, exit 1. (It was "in no Python processor call".)"""
    cfg = {"flows": catch_all("cyprobe:Sleeper"), "forward": ["a -> a"], "run": {"call_budget_ms": 200},
           "ports": [{"name": "a", "vdev": f"net_pcap0,rx_pcap={capture_dir}/udp_echo.pcap,infinite_rx=1,tx_pcap=/dev/null"}]}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    run = run_flowos("-c", str(tmp_path / "run.yaml"), "--duration", "1", tmp_path=tmp_path, timeout=60)
    assert run.returncode == 1, run.stderr
    assert "flowos: watchdog: processor cyprobe:Sleeper in process() for" in run.stderr
    assert "the worker did not stop when told: processor cyprobe:Sleeper in process() for" in run.stderr
    stuck = run.stats["watchdog"]["stuck"]
    assert run.stats["stop_reason"] == "duration" and stuck["processor"] == "cyprobe:Sleeper"
    assert stuck["call"] == "process" and stuck["seconds"] > 0.2
    assert run.stats["engine"]["flows"][0]["processors"][0] == {"name": "cyprobe:Sleeper", "report": None}
    assert run.stats["ports"][0]["rx_packets"] > 0


def test_a_slow_cython_message_handler_does_not_stop_forwarding(launch):
    """A Cython on_message gets the Python one's budget (one message path, flowos/message_desk.py):
    past it, forwarding resumes and the operator is told. (It ran on the worker with no deadline:
    nothing was forwarded while it slept.)"""
    check_a_slow_message_handler(launch("cyprobe:SlowMessages", budget_ms=500), "cyprobe:SlowMessages")


def test_a_run_stuck_in_a_cython_flow_end_is_named_and_ends_when_told(launch):
    """A Cython flow_end that never returns (the replay's second SYN ends the first connection) is
    named while it runs (the engine records flow_start/flow_end calls as it does process()), and
    SIGTERM still ends the run, naming it, exit 1. (It was "the worker, in no processor call".)"""
    run = launch("cyprobe:EndsSlowly", budget_ms=200, capture="http_get.pcap")
    line = run.err.wait_for("flowos: watchdog: processor cyprobe:EndsSlowly in flow_end() for")
    assert "past its budget of 200 ms (still running)" in line
    run.proc.send_signal(signal.SIGTERM)
    run.wait()
    stderr = run.err.rest()
    assert run.proc.returncode == 1, stderr
    assert "the worker did not stop when told: processor cyprobe:EndsSlowly in flow_end() for" in stderr
    report = run.report()
    assert report["stop_reason"] == "signal (SIGTERM)"
    stuck = report["watchdog"]["stuck"]
    assert stuck["processor"] == "cyprobe:EndsSlowly" and stuck["call"] == "flow_end" and stuck["seconds"] > 0.2
