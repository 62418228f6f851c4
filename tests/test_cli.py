"""Command-line parsing into a configuration (no DPDK started here)."""
import pytest

from flowos.apps import cli
from flowos.configuration import devices
from flowos.errors import ConfigError, FlowOSError

from conftest import DATA


def make(*argv):
    return cli.make_config(cli.build_parser().parse_args(list(argv)))


def test_vdevs_become_ports_bridged_in_pairs():
    cfg = make("--vdev", "net_null0", "--vdev", "net_null1")
    assert [p.device for p in cfg.ports] == ["net_null0", "net_null1"]
    assert cfg.forward == [("net_null0", "net_null1"), ("net_null1", "net_null0")]


def test_bare_pcap_port_replays_the_bundled_sample(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = make("--vdev", "net_pcap0")
    port = cfg.ports[0]
    assert port.capture_source == str(devices.SAMPLE_CAPTURE)
    assert port.arg("tx_pcap") == str(tmp_path / "flowos-out.pcap")
    assert any("bundled sample" in note for note in cfg.notes)


def test_command_line_overrides_the_config_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("run: {burst: 16, duration: 9}\nports: [{name: a, vdev: net_null0}]\n")
    cfg = make("-c", str(path), "--burst", "64", "--packets", "10", "--vdev", "net_null1", "--forward", "a <-> net_null1")
    assert (cfg.run.burst, cfg.run.duration, cfg.run.packets) == (64, 9, 10)
    assert cfg.forward == [("a", "net_null1"), ("net_null1", "a")]


def test_clock_flag_sets_the_engine_clock(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"ports: [{{name: a, vdev: 'net_pcap0,rx_pcap={DATA}/udp_echo.pcap'}}]\nflows: [{{name: all}}]\n")
    assert make("-c", str(path), "--clock", "capture").engine.clock == "capture"


def test_capture_clock_needs_capture_sources(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("ports: [{name: a, vdev: net_null0}]\nflows: [{name: all}]\n")
    with pytest.raises(ConfigError, match="capture time needs every receiving port to replay a capture"):
        make("-c", str(path), "--clock", "capture")


def test_pci_address_gets_its_domain():
    port = devices.parse_pci("01:00.0")
    assert port.device == "0000:01:00.0" and port.kind == "pci"


@pytest.mark.parametrize("argv, expected", [
    (["--vdev", "net_null0", "--duration", "-3"], "argument --duration: expected a value > 0"),
    (["--vdev", "net_null0", "--packets", "many"], "argument --packets: expected a int"),
    (["--vdev", "net_null0", "--memory", "plenty"], "argument --memory: invalid choice"),
    (["--vdev", "net_null0", "--burst", "1000"], "command line: --burst: expected an integer in 1..256"),
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--vdev", "net_foo0"], "unknown driver 'net_foo'"),
    (["--vdev", "eth0"], "names start with net_"),
    (["--vdev", f"net_pcap0,rx_pcap={DATA}/udp_echo.pcap,rx_pcap={DATA}/udp_echo.pcap"], "one rx_pcap"),
    (["--vdev", "net_pcap0,tx_pcap=/no/such/dir/out.pcap"], "cannot write in /no/such/dir"),
    (["--vdev", "net_af_packet0"], "needs iface="),
    (["--vdev", "net_af_packet0,iface=nosuchif0"], "no network interface 'nosuchif0'"),
    ([], "no ports"),
    (["--vdev", "net_null0", "--duration", "nan"], "argument --duration: expected a finite value"),
    (["--vdev", "net_null0", "--processor", "counter,max_flows"], "--processor: 'max_flows' in 'counter,max_flows': "
                                                                  "expected key=value"),
    (["--vdev", "net_null0", "--processor", "counter,colour=red"], "unknown parameter of counter"),
    (["--vdev", "net_null0", "--processor", "counter,max_flows=1,max_flows=2"], "'max_flows' is given twice"),
    (["--vdev", "net_null0", "--processor", "{counter: [unclosed"], "--processor: '{counter: [unclosed' is not valid YAML"),
])
def test_bad_flags_are_one_clear_error(argv, expected):
    with pytest.raises(FlowOSError) as info:
        make(*argv)
    assert expected in str(info.value)
    assert isinstance(info.value, ConfigError)


@pytest.mark.parametrize("flag, name, params, on_error", [
    ("counter,max_flows=1000", "counter", {"max_flows": 1000}, None),
    ("pyprocs.faults:Strict", "pyprocs.faults:Strict", {}, None),
    ("pyprocs.faults:Strict, threshold=50, on_error=drop", "pyprocs.faults:Strict", {"threshold": 50}, "drop"),
    ("{pyprocs.faults:Strict: {threshold: 7}}", "pyprocs.faults:Strict", {"threshold": 7}, None),
])
def test_processor_flag_takes_parameters(flag, name, params, on_error):
    cfg = make("--vdev", "net_null0", "--processor", flag)
    (spec,), = cfg.flows[0].stages
    assert (spec.name, spec.params, spec.on_error) == (name, params, on_error)


def test_processor_flag_in_yaml_makes_a_stage_of_several():
    cfg = make("--vdev", "net_null0", "--processor", "[counter, {hold: {packets: 4}}]", "--processor", "ttl,set=9")
    assert [[spec.name for spec in stage] for stage in cfg.flows[0].stages] == [["counter", "hold"], ["ttl"]]
    assert cfg.flows[0].stages[1][0].params["set"] == 9
