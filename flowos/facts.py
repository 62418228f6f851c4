"""What Python knows of the fast path, stated once: its limits, and the names of its enums in
their C order.

The C headers state the same facts; the build compiles the assertions c_assertions() writes
(flowos/meson.build), so that a header and this module cannot disagree: change both, or the
build names the one that differs."""
import sys

# --- limits ------------------------------------------------------------------------------------
MAX_DEFINITIONS = 1024   # flow definitions of a run, all generations of a reload together
MAX_PROCESSORS = 16      # per flow definition, across its stages
MAX_STAGES = 7           # per flow definition (fo_pkt_meta.first_stage has 3 bits)
DECODE_ERRORS = 6        # the decoder's reasons a packet is malformed, [0] being "none"
MAX_BURST = 256          # packets a worker receives at once

# --- enums: each value's name, in the order of the C enum ----------------------------------------
LEVELS = ("l2", "l3", "l4", "payload")                                    # where a processor starts reading
VERDICTS = ("pass", "drop", "hold", "modified", "redirect")               # what a processor says of a packet
END_REASONS = ("fin", "rst", "idle", "shutdown", "reload")                # why a flow ended
TIMEOUT_CLASSES = ("tcp_opening", "tcp_established", "tcp_closing", "udp", "icmp", "other")
CALLBACKS = ("process", "flow_start", "flow_end", "teardown")             # a processor's, as the watchdog names them

# Each limit's C name, and each enum's: the prefix of its values' names and its count's name.
C_LIMITS = {"MAX_DEFINITIONS": "FO_MAX_DEFS", "MAX_PROCESSORS": "FO_MAX_PROCS", "MAX_STAGES": "FO_MAX_STAGES",
            "DECODE_ERRORS": "FO_DECODE_ERROR_COUNT", "MAX_BURST": "FO_MAX_BURST"}
C_ENUMS = {"LEVELS": ("FO_LEVEL_", "FO_LEVEL_COUNT"), "VERDICTS": ("FO_", "FO_VERDICT_COUNT"),
           "END_REASONS": ("FO_END_", "FO_END_REASON_COUNT"),
           "TIMEOUT_CLASSES": ("FO_TIMEOUT_", "FO_TIMEOUT_CLASS_COUNT"), "CALLBACKS": ("FO_CALL_", "FO_CALL_COUNT")}
HEADERS = ("flowos/fo_common.h", "flowos/fo_decode.h", "flowos/fo_engine.h", "flowos/fo_flow.h", "flowos/fo_pipeline_conf.h",
           "flowos/fo_processor.h")


def c_assertions():
    """A C file that compiles only where each fact here is the headers' too."""
    facts = globals()
    checks = [(c, facts[name], name) for name, c in C_LIMITS.items()]
    for name, (prefix, count) in C_ENUMS.items():
        checks += [(prefix + value.upper(), i, f"{name}[{i}]") for i, value in enumerate(facts[name])]
        checks.append((count, len(facts[name]), f"len({name})"))
    lines = ["/* Written by flowos/facts.py when FlowOS is built: the two state the same facts. */"]
    lines += [f"#include <{header}>" for header in HEADERS]
    lines += [f'_Static_assert({c} == {value}, "flowos/facts.py: {what} is {value}, unlike {c}");'
              for c, value, what in checks]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    with open(sys.argv[1], "w") as out:
        out.write(c_assertions())
