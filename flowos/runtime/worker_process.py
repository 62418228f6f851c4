"""One worker process (docs/architecture.md, "Worker processes"): a DPDK secondary of flowos-run's
process, with its own interpreter and its own processor instances. It builds its shard of the flow
engine as a worker thread would, drains its inbox (what the primary's relay hands it), sends into
its outboxes (the relay sends them on the ports), and reports its statistics when the run ends.

    python -m flowos.runtime.worker_process PLAN INDEX READY_FD [restart]

PLAN: the pickled plan the primary wrote (flowos.runtime.worker_processes.Plan); READY_FD: a pipe it
writes a line to once its worker runs; restart: it replaces worker INDEX's process, which died
(it waits for the primary's "go" before it takes from its inbox). Started by the primary only."""
import ctypes
import json
import os
import pickle
import signal
import sys

PR_SET_PDEATHSIG = 1


def end_with_parent():
    """A worker process must not outlive the primary (its relay, its memory): the kernel sends
    SIGKILL when the primary exits, however it exits."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() == 1:     # the primary ended before prctl took effect
        os._exit(1)


def main(argv):
    plan_path, index, ready_fd = argv[0], int(argv[1]), int(argv[2])
    restart = argv[3:] == ["restart"]
    end_with_parent()
    # The primary drives the run's end: a terminal's SIGINT reaches the whole process group.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(plan_path, "rb") as f:
        sys_path, cwd = pickle.load(f)
        sys.path[:0] = [p for p in sys_path if p not in sys.path]
        os.chdir(cwd)
        plan = pickle.load(f)    # the config names processor classes, importable now
    # The primary passes this process's stdout and stderr on, line by line, into its own.
    sys.stdout.reconfigure(line_buffering=True)
    sys.stderr.reconfigure(line_buffering=True)
    from flowos.runtime import output, worker_processes
    output.log_to_stderr()
    report = worker_processes.run_worker(plan, index, worker_processes.ready_writer(ready_fd), restart)
    with open(plan.report_path(index) + ".tmp", "w") as f:
        json.dump(report, f)
    os.rename(plan.report_path(index) + ".tmp", plan.report_path(index))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
