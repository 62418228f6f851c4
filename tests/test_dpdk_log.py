"""flowos.runtime.dpdk_log: DPDK's start-up log turned into one line a user can act on."""
from flowos.runtime.dpdk_log import explain_failure

FANOUT_LOG = """EAL: Detected CPU lcores: 2
rte_pmd_init_internals(): net_af_packet1: could not set PACKET_FANOUT on AF_PACKET socket for veth1:Invalid argument
vdev_probe(): failed to initialize net_af_packet1 device
EAL: Bus (vdev) probe failed.
"""


def test_a_refused_device_is_explained_by_its_drivers_complaint(tmp_path):
    log = tmp_path / "dpdk.log"
    log.write_text(FANOUT_LOG)
    line = explain_failure("no port for device 'net_af_packet1': No such device", log, device="net_af_packet1")
    assert line.startswith("no port for device 'net_af_packet1': No such device; its driver refused it: "
                           "rte_pmd_init_internals(): net_af_packet1: could not set PACKET_FANOUT")
    assert "holds the PACKET_FANOUT group id" in line
    assert line.endswith(f"(DPDK log: {log})")


def test_only_the_named_devices_complaint_counts(tmp_path):
    log = tmp_path / "dpdk.log"
    log.write_text(FANOUT_LOG)
    line = explain_failure("no port for device 'net_af_packet0': No such device", log, device="net_af_packet0")
    assert "PACKET_FANOUT" not in line   # net_af_packet1's complaint is not net_af_packet0's
    assert line.endswith(f"(DPDK log: {log})")
