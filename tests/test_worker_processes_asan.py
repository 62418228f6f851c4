"""The data path of worker processes under AddressSanitizer and UBSan (tests/asan/relay_harness.c):
the relay, two workers' engine shards sending into outboxes, the shared group; rings of 16 packets
so that the relay waits on full inboxes (draining the outboxes meanwhile) and the workers on full
outboxes. Every packet comes out, each connection's in order, and the pool is full at the end."""
import asanbuild
from conftest import packets
from flowcheck import check_per_flow_order, same_multiset, write_pcap
from test_workers import many_connections

ROOT = asanbuild.ROOT


def test_relay_and_outboxes_under_asan(tmp_path):
    sources = sorted((ROOT / "ext" / "src").glob("*.c")) + sorted((ROOT / "ext" / "src" / "processors").glob("*.c"))
    exe = asanbuild.build(tmp_path, "relay_harness", sources)
    frames = many_connections(150)
    capture, out = write_pcap(tmp_path / "in.pcap", frames), tmp_path / "out.pcap"
    run = asanbuild.run(exe, "--vdev", f"net_pcap0,rx_pcap={capture},tx_pcap={out}", "--", str(len(frames)))
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    words = run.stdout.split()
    counts = dict(zip(words[::2], map(int, words[1::2])))
    assert counts["relayed"] == counts["handed"] == counts["worker0"] + counts["worker1"] == len(frames)
    assert counts["worker0"] > 0 and counts["worker1"] > 0
    assert counts["waits"] > 0, "the relay never found an inbox full: the wait is not exercised"
    written = packets(out)
    assert same_multiset(written, frames)
    check_per_flow_order(frames, written)


def test_ring_ends_a_dead_process_left_are_repaired_under_asan(tmp_path):
    """fo_ring_reset_abandoned_end gives back the slots a process killed inside an enqueue or a
    dequeue had claimed (tests/asan/ring_repair_harness.c): the dead producer's stale slots never
    come out, the dead consumer's come out again, and the ring is whole after."""
    sources = sorted((ROOT / "ext" / "src").glob("*.c")) + sorted((ROOT / "ext" / "src" / "processors").glob("*.c"))
    exe = asanbuild.build(tmp_path, "ring_repair_harness", sources)
    run = asanbuild.run(exe)
    assert run.returncode == 0, run.stdout + run.stderr[-4000:]
    assert run.stdout.split() == ["producer", "3", "consumer", "3"]
