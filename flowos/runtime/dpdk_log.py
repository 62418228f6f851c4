"""Turns DPDK's start-up log into one line a user can act on."""
import re

# (what the log says, what the user is told); the first match wins.
KNOWN_FAILURES = (
    (re.compile(r"(unrecognized option '[^']+'|invalid option -- '.')"), "bad EAL argument: {m}"),
    (re.compile(r"failed to parse device \"([^\"]+)\""), "DPDK cannot parse device {0!r}"),
    (re.compile(r"Driver cannot attach the device \((\S+)\)"), "the driver cannot open device {0}"),
    (re.compile(r"[Cc]annot (?:init|get|reserve|allocate|create).*memory.*"), "not enough memory: {m}"),
    (re.compile(r"Cannot get hugepage information"), "no usable hugepages"),
    # Any other complaint of a DPDK component ("EAL: ...", "rte_pmd_pcap_probe(): ...").
    (re.compile(r"^[A-Za-z_0-9()]+: .*(?:[Cc]ouldn't|[Cc]annot|[Ff]ailed|[Ii]nvalid|[Ee]rror).*"), "{m}"),
)


# A driver's complaint about one device: "rte_pmd_init_internals(): net_af_packet1: could not ...".
DEVICE_COMPLAINT = re.compile(r"(?:[Cc]ould ?n[o']t|[Cc]annot|[Ff]ailed|[Ii]nvalid|[Ee]rror|[Nn]o such)")
# What a driver's complaint means, where the words alone do not say it (the first match wins).
DEVICE_HINTS = (
    # DPDK's net_af_packet joins PACKET_FANOUT group (pid ^ ifindex) & 0xffff; fanout groups are
    # shared by the whole network namespace, so another process's socket can hold the same id.
    (re.compile(r"could not set PACKET_FANOUT.*Invalid argument"),
     "another packet socket in this network namespace (another DPDK process's net_af_packet port?) "
     "holds the PACKET_FANOUT group id that DPDK derives from this process's pid and the interface index"),
)


def explain_failure(message, log_path, device=None):
    """message: what the caller knows; log_path: DPDK's log. The full log stays for the curious.
    With `device` (a vdev that did not probe), the driver's own complaint about it comes first."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return message
    if device is not None:
        # The first complaint naming the device is the driver's reason; the EAL's "failed to
        # initialize <device>" and "Bus (vdev) probe failed" that follow it only repeat it.
        for line in lines:
            if re.search(rf"\b{re.escape(device)}\b", line) and DEVICE_COMPLAINT.search(line) \
                    and "failed to initialize" not in line:
                hint = next((f"; {text}" for pattern, text in DEVICE_HINTS if pattern.search(line)), "")
                return f"{message}; its driver refused it: {line}{hint} (DPDK log: {log_path})"
        return f"{message} (DPDK log: {log_path})"   # another device's complaint is not its reason
    for pattern, text in KNOWN_FAILURES:
        for line in lines:
            m = pattern.search(line)
            if m:
                return f"{message}: {text.format(*m.groups(), m=m.group(0))} (DPDK log: {log_path})"
    return f"{message} (DPDK log: {log_path})"
