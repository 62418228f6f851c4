"""Captures in and out of flowos-run: frames as bytes, in order."""
from scapy.utils import PcapWriter, RawPcapReader

DLT_EN10MB = 1
# Frames given without times are this far apart, from a fixed start: runs repeat exactly.
DEFAULT_START = 1_700_000_000
DEFAULT_GAP = 1e-3


def write_pcap(path, frames, times=None):
    """A capture of raw frames (bytes or scapy packets), with the given timestamps (seconds;
    default: 1 ms apart)."""
    with PcapWriter(str(path), linktype=DLT_EN10MB, sync=True) as w:
        w.write_header(None)
        for i, f in enumerate(frames):
            t = times[i] if times is not None else DEFAULT_START + i * DEFAULT_GAP
            w.write_packet(bytes(f), sec=int(t), usec=int(round((t - int(t)) * 1e6)))
    return path


def read_pcap(path):
    """The frames of a capture, as bytes, in order."""
    return [bytes(data) for data, _ in RawPcapReader(str(path))]
