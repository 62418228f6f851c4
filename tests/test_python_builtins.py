"""Python built-ins (flowos/builtins, docs/processors.md "Python built-ins"): named by their
name alone; flow_log writes one JSON line per flow that ends, with the engine's counts."""
import json

import pytest
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether

from flowos import builtins as python_builtins
from flowos.configuration import flows as flow_defs
from flowos.errors import ConfigError
from flowos.testing import run_pipeline
from flowos.testing.flowkey import addr_str, read_header


def conversation():
    """Two flows: a TCP exchange (3 packets out, 2 back) and one UDP packet; sizes differ."""
    a, b = "10.1.0.1", "10.1.0.2"
    out = Ether() / IP(src=a, dst=b) / TCP(sport=40000, dport=80)
    back = Ether() / IP(src=b, dst=a) / TCP(sport=80, dport=40000)
    return [out / (b"x" * 10), back / (b"y" * 100), out / (b"z" * 20), back, out,
            Ether() / IP(src=a, dst="10.1.0.9") / UDP(sport=5353, dport=53) / (b"q" * 33)]


def test_the_builtins_are_found_by_name():
    assert "flow_log" in python_builtins.names()
    assert python_builtins.import_path("flow_log") == "flowos.builtins.flow_log:FlowLog"
    assert python_builtins.import_path("no_such") is None
    with pytest.raises(flow_defs.Invalid, match=r"no processor 'no_such' \(built-ins: counter, .*flow_log"):
        flow_defs.parse_flows([{"name": "all", "pipeline": ["no_such"]}])


def test_flow_log_refuses_a_path_it_cannot_write(tmp_path):
    """Its constructor refuses it, as the run makes its instance (ProcessorSpec.instantiate)."""
    (flow,) = flow_defs.parse_flows([{"name": "all", "pipeline": [{"flow_log": {"path": "/no/such/folder/f.jsonl"}}]}],
                                    "box.yaml")
    with pytest.raises(ConfigError, match=r"^box.yaml: flows\[0\].pipeline\[0\]: flowos.builtins.flow_log:FlowLog "
                                          "rejects its parameters: ValueError: .*cannot write in /no/such/folder"):
        flow.stages[0][0].instantiate()


def test_flow_log_writes_a_record_per_flow_with_the_engines_counts(tmp_path):
    log = tmp_path / "flows.jsonl"
    packets = conversation()
    result = run_pipeline(packets, pipeline=[{"flow_log": {"path": str(log)}}], workdir=tmp_path)
    records = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(records) == len(result.flows) == 2
    for flow in result.flows:
        sent = [read_header(raw) for raw in flow.sent]
        ways = [[len(flow.sent[i]) for i, h in enumerate(sent) if (addr_str(h.family, h.src) == flow.src) == out]
                for out in (True, False)]
        record = next(r for r in records if (r["sport"], r["dport"]) == (flow.sport, flow.dport))
        assert record | {"ended": 0} == {"src": flow.src, "dst": flow.dst, "sport": flow.sport, "dport": flow.dport,
                                         "proto": flow.proto, "packets": [len(w) for w in ways],
                                         "bytes": [sum(w) for w in ways], "reason": "shutdown", "ended": 0}
    assert {tuple(r["packets"]) for r in records} == {(3, 2), (1, 0)}
    assert result.processor("flowos.builtins.flow_log:FlowLog")["report"]["faults"] == 0
