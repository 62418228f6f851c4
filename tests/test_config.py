"""Config files: every error names the file, the key and what was expected."""
import pytest

from flowos import config
from flowos.errors import ConfigError

from conftest import DATA


def write(tmp_path, text, name="flowos.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        config.finish(config.load(path))
    return str(info.value), path


def test_full_config_loads(tmp_path):
    path = write(tmp_path, f"""
eal: {{memory: no-huge, memory_mb: 256, worker_cpu: 0, args: [--log-level=lib.eal:debug]}}
pool: {{mbufs: 4095, cache: 128}}
ports:
  - {{name: lan, vdev: "net_pcap0,rx_pcap={DATA}/udp_echo.pcap,tx_pcap=out.pcap", rx_descriptors: 512}}
  - {{name: wan, vdev: net_null0, promiscuous: false}}
forward: ["lan <-> wan"]
run: {{burst: 64, duration: 2.5, packets: 100}}
""")
    cfg = config.finish(config.load(path))
    assert [p.name for p in cfg.ports] == ["lan", "wan"]
    assert cfg.forward == [("lan", "wan"), ("wan", "lan")]
    assert cfg.port("lan").rx_descriptors == 512 and cfg.port("wan").promiscuous is False
    assert cfg.port("lan").arg("tx_pcap") == str(tmp_path / "out.pcap")  # relative to the file
    assert cfg.port("lan").capture.packets == 600
    assert (cfg.eal.memory, cfg.eal.memory_mb, cfg.pool.mbufs, cfg.run.burst) == ("no-huge", 256, 4095, 64)


def test_relative_capture_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "in.pcap").write_bytes((DATA / "icmp_ping.pcap").read_bytes())
    cfg = config.finish(config.load(write(tmp_path, "ports: [{name: a, vdev: 'net_pcap0,rx_pcap=in.pcap'}]")))
    assert cfg.port("a").capture_source == str(tmp_path / "in.pcap")


@pytest.mark.parametrize("text, key, expected", [
    ("ports: [{name: a, vdev: net_null0, colour: red}]", "ports[0].colour", "unknown key"),
    ("ports: [{vdev: net_null0}]", "ports[0].name", "required"),
    ("ports: [{name: a}]", "ports[0]", "exactly one of vdev or pci"),
    ("ports: [{name: a, vdev: net_null0, pci: '00:01.0'}]", "ports[0]", "exactly one of vdev or pci"),
    ("ports: [{name: a, vdev: net_null0, rx_descriptors: lots}]", "ports[0].rx_descriptors", "expected an integer"),
    ("ports: [{name: a, pci: 'not-an-address'}]", "ports[0].pci", "DOMAIN:BUS:DEVICE.FUNCTION"),
    ("ports: [{name: a, vdev: 'net_pcap0,rx_pcap=/no/such.pcap'}]", "ports[0]", "no such file"),
    ("ports: [{name: a, vdev: net_null0}, {name: a, vdev: net_null1}]", "ports", "name 'a' is used by two ports"),
    ("ports: [{name: a, vdev: net_null0}]\nforward: ['a -> b']", "forward", "no port named 'b'"),
    ("ports: [{name: a, vdev: net_null0}]\nforward: ['a => a']", "forward[0]", "expected \"a -> b\""),
    ("ports: [{name: a, vdev: net_null0}, {name: b, vdev: net_null1}]\nforward: ['a -> b', 'a -> a']",
     "forward", "forwards to two places"),
    ("ports: [{name: a, vdev: net_null0}, {name: b, vdev: net_null1}, {name: c, vdev: net_null2}]",
     "forward", "cannot pair up"),
    ("eal: {memory: lots}\nports: [{name: a, vdev: net_null0}]", "eal.memory", "expected one of auto, hugepages, no-huge"),
    ("run: {burst: 0}", "run.burst", "expected an integer in 1..256"),
    ("run: {duration: -1}", "run.duration", "expected a finite number > 0"),
    ("pool: {mbufs: true}", "pool.mbufs", "expected an integer"),
    ("filters: []", "filters", "unknown section"),
    ("ports: {name: a}", "ports", "expected a list"),
    ("- just\n- a list", "(top level)", "expected a mapping"),
    ("ports: []", "ports", "no ports"),
    ("flows: [{name: w, limits: {stream_hold_ms: 0}}]", "flows[0].limits.stream_hold_ms",
     "expected an integer from 1 to 3600000, got 0"),
    ("flows: [{name: w, limits: {stream_hold_ms: soon}}]", "flows[0].limits.stream_hold_ms",
     "expected an integer from 1 to 3600000, got 'soon'"),
    ("flows: [{name: w, limits: {stream_hold: 5}}]", "flows[0].limits.stream_hold",
     "unknown key (expected one of: hold_packets, hold_bytes, hold_overflow, reorder_packets, stream_hold_ms)"),
])
def test_errors_name_file_key_and_expectation(tmp_path, text, key, expected):
    message, path = load_error(tmp_path, text)
    assert message.startswith(f"{path}: {key}: "), message
    assert expected in message
    assert "\n" not in message


def test_yaml_syntax_error_gives_the_line(tmp_path):
    message, path = load_error(tmp_path, "ports:\n  - name: a\n    vdev: [unclosed\n")
    assert message.startswith(f"{path}: not valid YAML at line "), message


def test_unreadable_file(tmp_path):
    with pytest.raises(ConfigError, match=r"missing\.yaml: cannot read: No such file or directory"):
        config.load(tmp_path / "missing.yaml")


def test_empty_file_is_an_empty_config(tmp_path):
    cfg = config.load(write(tmp_path, ""))
    assert cfg.ports == [] and cfg.run.burst is None    # chosen by finish()


PYTHON_PROCESSOR = "pyprocs.verdicts:PassAll"   # a Python processor that passes every packet


@pytest.mark.parametrize("pipeline, burst, expected", [
    (None, None, 32),                              # a bridge
    (["counter"], None, 32),                       # C built-ins only
    ([PYTHON_PROCESSOR], None, 256),               # a Python processor: one call per up to 256
    (["counter", PYTHON_PROCESSOR], None, 256),
    ([PYTHON_PROCESSOR], 16, 16),                  # run.burst, when given, wins
])
def test_default_burst_follows_the_pipeline(tmp_path, pipeline, burst, expected):
    text = "ports: [{name: a, vdev: net_null0}]\n"
    if pipeline:
        text += f"flows: [{{name: all, pipeline: {pipeline}}}]\n"
    if burst:
        text += f"run: {{burst: {burst}}}\n"
    cfg = config.finish(config.load(write(tmp_path, text)))
    assert cfg.run.burst == expected
    said = [note for note in cfg.notes if "receive bursts" in note]
    assert said == ([f"receive bursts of up to 256 packets: {PYTHON_PROCESSOR} is called once per burst "
                     "(--burst sets it)"] if burst is None and expected == 256 else [])


def test_default_forwarding_pairs_ports(tmp_path):
    cfg = config.finish(config.load(write(tmp_path, """
ports: [{name: a, vdev: net_null0}, {name: b, vdev: net_null1}, {name: c, vdev: net_null2}, {name: d, vdev: net_null3}]
""")))
    assert cfg.forward == [("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")]


def test_one_port_sends_back_out_of_itself(tmp_path):
    cfg = config.finish(config.load(write(tmp_path, "ports: [{name: a, vdev: net_null0}]")))
    assert cfg.forward == [("a", "a")]
