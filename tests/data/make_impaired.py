"""Makes tests/data/http_impaired.pcap: a real TCP download with segments reordered, lost and
duplicated between the two ends, captured where FlowOS sits (see tests/data/README.md).

    sudo .venv/bin/python tests/data/make_impaired.py          # writes tests/data/http_impaired.pcap

A flowos/testing/netns.py wire: curl in the client namespace fetches a 64 KB file twice over one
connection from python3 -m http.server (HTTP/1.1) in the server namespace, through flowos-run
(a plain bridge) in the box namespace. Both ends impair what they send (impair(): netem, or the
htb+nft fallback on kernels without netem): 25 % reordered, 3 % lost, 3 % duplicated. tcpdump
in the box records what reaches FlowOS on each veth end (-Q in: the client's packets on one, the
server's on the other), and the two are merged in time order: the stream as the box sees it. The run is repeated until
the server's data was reordered, duplicated and lost before the box (random, so a few tries)."""
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from scapy.utils import RawPcapReader    # noqa: E402

from flowos.testing import netns       # noqa: E402
from streamcheck import streams       # noqa: E402

OUT = TESTS / "data" / "http_impaired.pcap"
TOKEN = b"SECRET-TOKEN-1234"


def site(folder):
    rng = random.Random(12)
    lines = [f"line {i:05d} {rng.getrandbits(64):016x} ".encode() + (TOKEN if i % 97 == 0 else b"-" * 17) + b"\n"
             for i in range(1600)]
    (folder / "file.txt").write_bytes(b"".join(lines)[:65536])


def record(tmp):
    with netns.Wire() as wire:
        box = wire.start_flowos(tmp_path=tmp)
        http = wire.http_server(tmp)
        halves = [tmp / f"{end}.pcap" for end in (wire.left, wire.right)]
        dumps = [subprocess.Popen(wire.box.argv("tcpdump", "-i", end, "-Q", "in", "-s", "0", "-U", "-w", str(half),
                                                "tcp", "port", str(http.port)), stderr=subprocess.PIPE)
                 for end, half in zip((wire.left, wire.right), halves)]
        time.sleep(1.0)
        for end in (wire.client, wire.server):
            end.impair(reorder=0.25, loss=0.03, duplicate=0.03)
        got = wire.curl(http.url("file.txt"), http.url("file.txt"))
        time.sleep(1.0)
        bitten = {"client": wire.client.impairment_counts(), "server": wire.server.impairment_counts()}
        for dump in dumps:
            dump.send_signal(signal.SIGINT)
            dump.wait(timeout=10)
        box.stop()
        assert got.returncode == 0 and got.body == (tmp / "file.txt").read_bytes() * 2, got.stderr
    raw = tmp / "raw.pcap"
    merge(halves, raw)
    return raw, bitten


def merge(halves, out):
    """The packets of both captures in time order (each keeps its order), as one capture."""
    records = []
    for half in halves:
        reader = RawPcapReader(str(half))
        records += [((meta.sec, meta.usec), i, data) for i, (data, meta) in enumerate(reader)]
        reader.close()
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))       # Ethernet
        for (sec, usec), _, data in sorted(records, key=lambda r: (r[0], r[1])):
            f.write(struct.pack("<IIII", sec, usec, len(data), len(data)) + data)


def impaired(path):
    (s,) = [s for s in streams(path).values() if s.tcp]
    counts = {"ooo": s[0].ooo + s[1].ooo, "dup": s[0].dup + s[1].dup}
    return counts, s


def main():
    for attempt in range(10):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            site(tmp)
            raw, bitten = record(tmp)
            counts, s = impaired(raw)
            print(f"attempt {attempt}: {counts}, server->client {len(s[1].data)} bytes; impairment {bitten}")
            if counts["ooo"] > 0 and counts["dup"] > 0 and bitten["server"]["dropped"] > 0:
                shutil.copy(raw, OUT)
                print(f"wrote {OUT}")
                return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
