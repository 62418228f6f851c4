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


def explain_failure(message, log_path):
    """message: what the caller knows; log_path: DPDK's log. The full log stays for the curious."""
    try:
        with open(log_path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
    except OSError:
        return message
    for pattern, text in KNOWN_FAILURES:
        for line in lines:
            m = pattern.search(line)
            if m:
                return f"{message}: {text.format(*m.groups(), m=m.group(0))} (DPDK log: {log_path})"
    return f"{message} (DPDK log: {log_path})"
