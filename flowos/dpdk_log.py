"""Turns DPDK's start-up log into one line a user can act on."""
import re

# (what the log says, what the user is told); the first match wins.
KNOWN_FAILURES = (
    (re.compile(r"failed to parse device \"([^\"]+)\""), "DPDK cannot parse device {0!r}"),
    (re.compile(r"Driver cannot attach the device \((\S+)\)"), "the driver cannot open device {0}"),
    (re.compile(r"[Cc]annot (?:init|get|reserve|allocate|create).*memory.*"), "not enough memory: {m}"),
    (re.compile(r"Cannot get hugepage information"), "no usable hugepages"),
    (re.compile(r"(?:rte_pmd_\w+_probe|\w+: ).*(?:Couldn't|couldn't|cannot|Cannot|failed|Failed).*"), "{m}"),
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
