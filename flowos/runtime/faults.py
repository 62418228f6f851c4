"""What a run's processor faults tell the operator at the end: a line per processor that faulted
for the summary, and the errors that make flowos-run exit 1 (docs/processors.md, "Faults").

The rule: a run in which any processor faulted is not a clean run, whatever its on_error says.
on_error decides what happens to the packets of a failing call and whether the run goes on; the
exit status says whether everything worked."""

STOPPED_BY = "processor fault"   # how a stop_reason caused by on_error: stop begins


def faulted(report):
    """(flow name, processor report) for each Python or Cython processor that faulted."""
    if report.engine is None:
        return []
    return [(flow["name"], proc["report"]) for flow in report.engine["flows"] for proc in flow["processors"]
            if isinstance(proc["report"], dict) and proc["report"].get("faults")]


def first_message(text):
    """A fault's message in one line: a traceback's last line (the exception), or the text itself."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


def describe(flow, rep):
    calls = rep.get("calls", 0)
    text = (f"processor {rep['name']} (flow {flow}): {rep['faults']:,} fault{'s' if rep['faults'] != 1 else ''} "
            f"in {calls:,} call{'s' if calls != 1 else ''}, on_error {rep.get('on_error', 'pass')}")
    if rep.get("first_faults"):
        text += f"; first: {first_message(rep['first_faults'][0])}"
    return text


def summary_lines(report):
    """The summary's lines about faults: one per processor that faulted."""
    return [describe(flow, rep) for flow, rep in faulted(report)]


def failures(report):
    """Why the run is not clean, because of its processors: one line each, empty when none faulted."""
    if report.stop_reason and report.stop_reason.startswith(STOPPED_BY):
        return [f"stopped by a {report.stop_reason} (on_error: stop)"]
    procs = faulted(report)
    if not procs:
        return []
    return [f"{len(procs)} processor{'s' if len(procs) != 1 else ''} faulted: "
            + "; ".join(f"{rep['name']} {rep['faults']:,} times (on_error {rep.get('on_error', 'pass')})"
                        for _, rep in procs)]
