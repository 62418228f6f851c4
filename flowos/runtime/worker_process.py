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
import time

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
    from flowos.runtime import output
    output.log_to_stderr()
    report = run_worker(plan, index, ready_writer(ready_fd), restart)
    with open(plan.report_path(index) + ".tmp", "w") as f:
        json.dump(report, f)
    os.rename(plan.report_path(index) + ".tmp", plan.report_path(index))
    return 0


def run_worker(plan, w, ready, restart=False):
    """Worker process w's life: attach to the primary, build its shard and processors, run until
    the group ends, send its last packets, leave the group; returns its report. ready(text) tells
    the primary it runs (or why it cannot). restart: it replaces a process that died; it takes
    from its inbox only once the primary, which freed what came meanwhile, says "go"."""
    from flowos.boundary._control import Control
    from flowos.boundary._python import cover_kept_views, thread_hooks
    from flowos.boundary._runtime import Eal, Inbox, Mempool, Port, Worker, WorkerGroup
    from flowos.configuration import eal_args
    from flowos.errors import ConfigError, FlowOSError
    from flowos.runtime import pipelines, process_reload
    from flowos.runtime.worker_processes import GROUP, JOIN_POLL, POOL, Said, inbox_name, outbox_name
    cfg = plan.config
    argv = eal_args.worker_process_argv(plan.file_prefix, w, cfg.eal.worker_cpus, log_level=cfg.eal.log_level)
    try:
        eal = Eal.start(argv, plan.log_path(w))
    except FlowOSError as e:
        ready(f"error: {e}")
        raise
    engine = worker = control = None
    try:
        pool = Mempool.lookup(eal, POOL)
        inboxes = [Inbox.lookup(eal, inbox_name(i)) for i in range(plan.workers)]
        outboxes = {pid: Inbox.lookup(eal, outbox_name(w, pid)) for name, pid in plan.port_ids.items()
                    if name not in plan.own_ports}
        group = WorkerGroup.lookup(eal, GROUP)
        worker = Worker.create(eal, cfg.run.burst, 0, cfg.run.source_idle_ms)
        ports = {name: Port.find(eal, device) if name in plan.own_ports else
                 Port.of_primary(eal, plan.port_ids[name], device) for name, device in plan.devices.items()}
        for src, dst, queue, tx_queue in plan.routes[w]:
            worker.add_route(ports[src], ports[dst], None, queue, tx_queue)

        def steer_and_send(engine, _):
            engine.set_shard(w, inboxes, plan.steer_pattern)
            for name, pid in plan.port_ids.items():
                if name in plan.own_ports:
                    engine.set_txq(pid, w)      # its own TX queue
                else:
                    engine.set_tx_ring(pid, outboxes[pid])
        (engine,), (tiers,) = pipelines.build_shards(cfg, pool, plan.port_ids, plan.workers, plan.keep_budget, [worker],
                                                  worker.address(), steer_and_send)
        engine.attach_inbox(worker, group, w, inboxes[w])
        # Its worker's thread ready for Python whatever the pipeline: a reload may bring a Python processor.
        worker.set_thread_hooks(*thread_hooks())
        # The engine's hook, wrapped by the control mailbox the primary asks (flowos-ctl flows,
        # message); without routes, it gets only the idle calls that move the engine's time on.
        control = Control.attach(engine, worker)
        shared = f"{worker.address()} {engine.shard_address()} {control.address()}"
        primary = Said(sys.stdin.fileno())     # what the primary asks: "go", reloads, "read no more"
        if restart:
            ready(f"built {shared}")
            if primary.next_line() != "go":
                raise FlowOSError("the primary did not say go")
        worker.launch(eal.worker_lcores()[0])
    except FlowOSError as e:
        # A processor that rejects its parameters (made here, not in the primary) is the
        # configuration's error: said as such, for flowos-run's exit status 2.
        ready(f"{'config error' if isinstance(e, ConfigError) else 'error'}: {e}")
        _close(worker, engine, eal, control)
        raise
    # Ready once the loop runs (a worker without routes has counted itself out of the receivers).
    while worker.polls[0] == 0 and worker.running:
        time.sleep(0.001)
    ready("ready" if restart else f"ready {shared}")
    reloads = process_reload.WorkerReloads(plan, engine, worker, control, tiers, ready)
    # DPDK's join spins (rte_eal_wait_lcore): on the CPU this main thread shares with the relay it
    # took half of the relay's time (perf); wait for the primary's lines while the loop runs, join
    # once it has ended.
    while worker.running:
        for line in primary.new_lines(JOIN_POLL):
            reloads.serve(line)
    worker.join()
    reloads.ending = True
    reloads.drop()          # a reload prepared, not yet committed: it cannot be now
    control.stop()          # nothing serves it now: the primary's requests are refused at once
    for tier in tiers:      # the loop has ended: a later fault (teardown) has nothing to stop
        tier.stop_worker_on_fault(0)
    engine.shutdown()       # every flow ends; what they held goes into the outboxes
    group.leave()           # the relay sends it and ends once every worker process has left
    ready("left")
    # Until the primary no longer reads this process's counters (or has ended); a reload asked
    # meanwhile is refused.
    while (line := primary.next_line()) not in ("read no more", ""):
        reloads.serve(line)
    report = pipelines.engine_report(engine)
    engine.teardown()
    pipelines.refresh_tier_reports(engine, report)
    polls, busy = worker.polls
    stats = engine.stats()
    fault = next((pipelines.tier_name(t) for t in tiers if t.stop_requested), None)
    result = {"pid": os.getpid(), "engine": report, "load": {"polls": polls, "busy_polls": busy},
              "mbufs_held_at_exit": stats["budget"]["kept"], "fault_stop": fault,
              "stop_reason": worker.stop_reason if plan.routes[w] else None, "tx_unsent": worker.tx_unsent(),
              "own_queues_rx": sum(worker.route_stats(i).rx_packets for i in range(len(plan.routes[w])))}
    _close(worker, engine, eal, control)
    cover_kept_views()
    os.unlink(plan.log_path(w))
    return result


def _close(worker, engine, eal, control):
    if control is not None:
        control.close()
    if worker is not None:
        worker.close()
    if engine is not None:
        engine.close()
    eal.close()


def ready_writer(fd):
    def ready(text):
        os.write(fd, f"{text}\n".encode())
    return ready


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
