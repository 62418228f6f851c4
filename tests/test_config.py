"""Config files: every error names the file, the key and what was expected."""
import re

import pytest

from flowos.configuration import config, eal_args
from flowos.errors import ConfigError
from flowos.runtime import machine

from conftest import DATA


def write(tmp_path, text, name="flowos.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        machine.check(config.finish(config.load(path)))     # as flowos-run checks it
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
    cfg = machine.check(config.finish(config.load(path)))
    assert [p.name for p in cfg.ports] == ["lan", "wan"]
    assert cfg.forward == [("lan", "wan"), ("wan", "lan")]
    assert cfg.port("lan").rx_descriptors == 512 and cfg.port("wan").promiscuous is False
    assert cfg.port("lan").arg("tx_pcap") == str(tmp_path / "out.pcap")  # relative to the file
    assert cfg.port("lan").capture.packets == 600
    assert (cfg.eal.memory, cfg.eal.memory_mb, cfg.pool.mbufs, cfg.run.burst) == ("no-huge", 256, 4095, 64)


def test_relative_capture_paths_resolve_against_the_config_folder(tmp_path):
    (tmp_path / "in.pcap").write_bytes((DATA / "icmp_ping.pcap").read_bytes())
    path = write(tmp_path, "ports: [{name: a, vdev: 'net_pcap0,rx_pcap=in.pcap'}]")
    cfg = machine.check(config.finish(config.load(path)))
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


PORT = "ports: [{name: a, vdev: net_null0}]\n"
EIGHT = range(8)    # the CPUs the workers may take, as the machine's affinity would give them


@pytest.mark.parametrize("text, cpus, workers, worker_cpus", [
    ("", EIGHT, 1, [7]),                                        # one worker on the last CPU, as before
    ("", [5], 1, [5]),
    ("run: {workers: 3}", EIGHT, 3, [5, 6, 7]),                 # the last CPUs; the main lcore on the rest
    ("run: {workers: 8}", EIGHT, 8, list(EIGHT)),               # every CPU: the main lcore shares
    ("run: {workers: auto}", EIGHT, 7, [1, 2, 3, 4, 5, 6, 7]),  # one per CPU, less one for the main lcore
    ("run: {workers: auto}", [0, 1], 1, [1]),
    ("run: {workers: auto}", [4], 1, [4]),                      # at least one
    ("eal: {worker_cpus: [2, 3, 6]}", EIGHT, 3, [2, 3, 6]),     # CPUs given: one worker each
    ("eal: {worker_cpus: [6, 2]}", EIGHT, 2, [6, 2]),           # in the order given
    ("eal: {worker_cpus: [2, 3]}\nrun: {workers: 2}", EIGHT, 2, [2, 3]),
    ("eal: {worker_cpus: [2, 3]}\nrun: {workers: auto}", EIGHT, 2, [2, 3]),
    ("eal: {worker_cpu: 4}", EIGHT, 1, [4]),                    # the one-worker form
    ("eal: {worker_cpu: 4}\nrun: {workers: 1}", EIGHT, 1, [4]),
])
def test_workers_and_their_cpus_are_resolved_once(tmp_path, text, cpus, workers, worker_cpus):
    cfg = config.finish(config.load(write(tmp_path, PORT + text)), cpus=cpus)
    assert (cfg.run.workers, cfg.eal.worker_cpus, cfg.eal.worker_cpu) == (workers, worker_cpus, None)
    assert config.lcores(cfg) == workers + 1
    config.resolve_workers(cfg, cpus)      # settled: resolving again changes nothing
    assert (cfg.run.workers, cfg.eal.worker_cpus) == (workers, worker_cpus)


def test_auto_and_a_shared_main_lcore_are_said(tmp_path):
    auto = config.finish(config.load(write(tmp_path, PORT + "run: {workers: auto}")), cpus=EIGHT)
    assert auto.notes == ["run.workers auto: 7 worker(s) on CPU(s) 1-7, the main lcore on 0"]
    shared = config.finish(config.load(write(tmp_path, PORT + "run: {workers: 2}")), cpus=[0, 1])
    assert shared.notes == ["the main lcore shares CPU(s) 0-1 with the workers: this process may run on no other"]
    assert config.finish(config.load(write(tmp_path, PORT)), cpus=EIGHT).notes == []


@pytest.mark.parametrize("text, key, expected", [
    ("eal: {worker_cpu: 1, worker_cpus: [2]}", "eal.worker_cpus",
     "give eal.worker_cpu (one worker) or eal.worker_cpus, not both"),
    ("eal: {worker_cpus: [2, 3]}\nrun: {workers: 3}", "run.workers",
     "3 workers, but eal.worker_cpus gives 2 CPU(s) (2-3): one CPU per worker"),
    ("eal: {worker_cpu: 2}\nrun: {workers: 2}", "run.workers", "2 workers, but eal.worker_cpu gives 1 CPU(s) (2)"),
    ("eal: {worker_cpus: [3, 8]}", "eal.worker_cpus", "worker CPU 8 is not one this process may run on (0-7)"),
    ("eal: {worker_cpu: 8}", "eal.worker_cpu", "worker CPU 8 is not one this process may run on (0-7)"),
    ("eal: {worker_cpus: []}", "eal.worker_cpus", "expected a list of 1 to 127 CPU ids"),
    ("eal: {worker_cpus: [1, -2]}", "eal.worker_cpus", "expected a list of 1 to 127 CPU ids"),
    ("eal: {worker_cpus: 3}", "eal.worker_cpus", "expected a list of 1 to 127 CPU ids"),
    ("run: {workers: 0}", "run.workers", "expected an integer in 1..127 or auto, got 0"),
    ("run: {workers: 128}", "run.workers", "expected an integer in 1..127 or auto, got 128"),
    ("run: {workers: all}", "run.workers", "expected an integer in 1..127 or auto, got 'all'"),
    ("run: {workers: true}", "run.workers", "expected an integer in 1..127 or auto, got True"),
])
def test_bad_workers_name_the_key(tmp_path, text, key, expected):
    path = write(tmp_path, PORT + text)
    with pytest.raises(ConfigError) as info:
        config.finish(config.load(path), cpus=EIGHT)
    assert str(info.value).startswith(f"{path}: {key}: {expected}"), str(info.value)


def test_more_workers_than_cpus_share_them_in_turn(tmp_path):
    """Four workers on two CPUs (as the multi-worker tests run on a 2-CPU machine): each CPU gets
    two, said in a note; a CPU listed twice is shared the same way."""
    four = config.finish(config.load(write(tmp_path, PORT + "run: {workers: 4}")), cpus=[0, 1])
    assert (four.run.workers, four.eal.worker_cpus) == (4, [0, 1, 0, 1])
    assert any(note.startswith("workers share CPU(s) 0-1") for note in four.notes)
    twice = config.finish(config.load(write(tmp_path, PORT + "eal: {worker_cpus: [1, 2, 1]}")), cpus=EIGHT)
    assert (twice.run.workers, twice.eal.worker_cpus) == (3, [1, 2, 1])
    assert any(note.startswith("workers share CPU(s) 1:") for note in twice.notes)


def test_each_worker_gets_queues_a_cache_and_bursts(tmp_path):
    """Every port gets one RX and one TX queue per worker, each lcore a mempool cache, each worker
    its bursts: what the pool must hold grows with the workers, and a pool that fits one worker's
    rings is too small for two."""
    ports = "ports: [{name: a, vdev: net_null0, rx_descriptors: 512, tx_descriptors: 256}]\n"
    one = config.finish(config.load(write(tmp_path, ports + "pool: {cache: 100}")), cpus=EIGHT)
    four = config.finish(config.load(write(tmp_path, ports + "pool: {cache: 100}\nrun: {workers: 4}")), cpus=EIGHT)
    assert (config.ring_mbufs(one), config.ring_mbufs(four)) == (768, 4 * 768)
    assert config.ring_mbufs(four, rx_only=True) == 4 * 512
    assert config.forwarding_mbufs(one) == 768 + 2 * 100 + 2 * 32
    assert config.forwarding_mbufs(four) == 4 * 768 + 5 * 100 + 4 * 2 * 32
    small_pool = ports + "pool: {mbufs: 1000, cache: 100}\n"
    config.finish(config.load(write(tmp_path, small_pool)), cpus=EIGHT)    # 512 + 200 + 32 fit
    with pytest.raises(ConfigError, match=r"pool.mbufs: 1000 mbufs are too few: the ports' receive rings hold 1024, "
                                          r"the 3 lcores' caches 300 and the workers' bursts 64, so at least 1388"):
        config.finish(config.load(write(tmp_path, small_pool + "run: {workers: 2}")), cpus=EIGHT)


def test_a_worker_cpu_flag_replaces_the_files_worker_cpus(tmp_path):
    """--worker-cpu and --worker-cpus set the workers' CPUs, as eal.worker_cpu(s) do: the command
    line wins over the file whichever form each uses."""
    from flowos.apps import cli
    cpu = eal_args.usable_cpus()[-1]
    path = write(tmp_path, PORT + f"eal: {{worker_cpus: [{cpu}]}}\n")
    cfg = cli.make_config(cli.build_parser().parse_args(["-c", str(path), "--worker-cpu", str(cpu)]))
    assert (cfg.run.workers, cfg.eal.worker_cpus) == (1, [cpu])
    path = write(tmp_path, PORT + f"eal: {{worker_cpu: {cpu}}}\n")
    cfg = cli.make_config(cli.build_parser().parse_args(["-c", str(path), "--worker-cpus", str(cpu)]))
    assert (cfg.run.workers, cfg.eal.worker_cpus) == (1, [cpu])
    with pytest.raises(ConfigError, match=rf"^command line: --workers: 2 workers, but eal.worker_cpu gives 1 CPU\(s\) "
                                          rf"\({cpu}\): one CPU per worker$"):
        cli.make_config(cli.build_parser().parse_args(["-c", str(path), "--workers", "2"]))


def test_a_port_a_flow_names_must_exist(tmp_path):
    """Port names in flow definitions (a match's in_port, a built-in's port, an acl rule's
    in_port) are checked once, with the configuration; the runtime maps them to port ids."""
    for flows, where in [("[{name: a, match: {in_port: nosuch}}]", "flows[0].match.in_port"),
                         ("[{name: a, pipeline: [{mirror: {port: nosuch}}]}]", "flows[0].pipeline[0].port"),
                         ("[{name: a, pipeline: [{acl: {rules: [{action: deny, in_port: nosuch}]}}]}]",
                          "flows[0].pipeline[0]")]:
        path = tmp_path / "flowos.yaml"
        path.write_text(f"ports: [{{name: a, vdev: net_null0}}]\nforward: ['a -> a']\nflows: {flows}\n")
        with pytest.raises(ConfigError, match=rf"{re.escape(where)}: no port named 'nosuch' \(ports: a\)"):
            config.finish(config.load(path), cpus=[0, 1])
