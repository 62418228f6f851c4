"""flowos.runtime.machine: what the configuration needs of this machine's DPDK, checked once after
the configuration is read (config.finish) and before anything is built, each error the
configuration's (ConfigError: the source, the key; flowos-run exits 2). The drivers' arguments
are tested in test_config_errors.py and test_pmd_info.py, a capture libpcap cannot read in
test_check.py, link types and a data room given too small in test_frames.py; here, what no test
reached: a capture's frame net_pcap cannot replay, a frame no mbuf holds; and the configuration's
own check of a Cython processor's state_size, made without the compiled module."""
import pytest

from flowos.configuration import config, flows as flow_defs
from flowos.errors import ConfigError
from flowos.processor import MAX_STATE_SIZE
from flowos.runtime import machine
from test_frames import frame, write_capture


def finished(tmp_path, text):
    path = tmp_path / "box.yaml"
    path.write_text(text)
    return path, config.finish(config.load(path))


def test_a_frame_longer_than_net_pcap_replays_is_refused(tmp_path):
    capture = write_capture(tmp_path / "huge.pcap", [frame(60), frame(1514, 1) + bytes(70000 - 1514)])
    path, cfg = finished(tmp_path, f"ports: [{{name: a, vdev: 'net_pcap0,rx_pcap={capture}'}}]\n")
    assert cfg.port("a").capture is None       # the configuration reads no capture
    with pytest.raises(ConfigError) as info:
        machine.check(cfg)
    assert str(info.value) == (f"{path}: ports[0]: vdev net_pcap0: rx_pcap {capture}: packet 2 is 70000 bytes; "
                               "net_pcap replays frames of at most 65535 bytes")


def test_a_capture_replayed_whole_whose_frame_no_mbuf_holds_is_refused(tmp_path):
    capture = write_capture(tmp_path / "long.pcap", [frame(65500)])
    path, cfg = finished(tmp_path, f"ports: [{{name: a, vdev: 'net_pcap0,rx_pcap={capture},infinite_rx=1'}}]\n")
    with pytest.raises(ConfigError) as info:
        machine.check(cfg)
    assert str(info.value) == (f"{path}: ports[0]: net_pcap0 puts each frame into one mbuf, which holds at most "
                               "65407 bytes; its frames are up to 65500")


def test_the_machine_check_reads_the_capture_and_sizes_the_data_room(tmp_path):
    capture = write_capture(tmp_path / "jumbo.pcap", [frame(9000), frame(60, 1)])
    _, cfg = finished(tmp_path, f"ports: [{{name: a, vdev: 'net_pcap0,rx_pcap={capture},infinite_rx=1'}}]\n")
    assert cfg.pool.data_room is None          # sized by the machine check, from the capture
    machine.check(cfg)
    assert cfg.port("a").capture.packets == 2 and cfg.pool.data_room == 9000 + 128


def test_a_cython_processor_asking_for_too_much_state_is_refused_as_the_configuration_is_read():
    with pytest.raises(flow_defs.Invalid) as info:
        flow_defs.parse_flows([{"name": "all", "pipeline": ["pyprocs.cstate:TooLargeState"]}])
    assert info.value.key == "flows[0].pipeline[0]"
    assert info.value.problem == (f"pyprocs.cstate:TooLargeState: state_size must be an integer in "
                                  f"0..{MAX_STATE_SIZE}, not {MAX_STATE_SIZE + 1}")
    (flow,) = flow_defs.parse_flows([{"name": "all", "pipeline": ["pyprocs.cstate:LargeState"]}])
    assert flow.stages[0][0].cython and flow.cython_state_bytes == MAX_STATE_SIZE
