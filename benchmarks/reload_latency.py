"""How long a reload takes on a running box (docs/reload.md), and what the traffic sees meanwhile.

  .venv/bin/python benchmarks/reload_latency.py [--reloads 50] [--workers 1] [--processes]

flowos-run's Bridge in this process, on a closed loop (a net_ring port forwarded into itself, fed
once from a capture of 16 UDP flows: the traffic never stops), with one definition and a C
pipeline (counter, hold). Each reload attaches or detaches a processor (alternately, --migrate
every other time) through flowos.runtime.reload, as flowos-ctl does. Printed: the whole reload's time
(parsing aside: the conf built, every shard's instances set up, every worker switched) and the
workers' part (from the first switch request to the last switch done), median and largest, and
the packets the loop carried meanwhile. --processes: the workers as worker processes (hugepages),
each preparing every reload before any switches (flowos.runtime.process_reload): "prepare" is that first
phase (every process built and set up the new configuration), "switches" the second (every
process switched). Timing, so run it on a quiet machine; it is no test.
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reloads", type=int, default=50)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--processes", action="store_true", help="the workers as worker processes")
    args = parser.parse_args()
    from flowos.configuration import config as flowos_config
    from flowos.runtime import machine, process_reload, reload, runner
    import test_reload_e2e as loop

    tmp = Path(tempfile.mkdtemp(prefix="reload-latency-"))
    loop.loop_capture(tmp / "loop.pcap")
    loop.write_config(tmp / "box.yaml", tmp, f"reload-latency-{os.getpid()}",
                      [{"counter": {"max_flows": 64}}, {"hold": {"packets": 2}}], args.workers, args.processes)
    config = flowos_config.load(tmp / "box.yaml")
    machine.check(flowos_config.finish(config))
    bridge = runner.Bridge(config)
    switch_times = []

    class Timed:
        """A worker's control mailbox whose switches are timed."""

        def __init__(self, control):
            self.control = control

        def switch(self, migrate=False):
            began = time.perf_counter()
            self.control.switch(migrate)
            switch_times.append(time.perf_counter() - began)

        def __getattr__(self, name):
            return getattr(self.control, name)

    phase_times = {"prepare": [], "commit": []}
    ask_all = process_reload.ask_all

    def timed_ask_all(procs, rid, phase, argument, timeout):
        """A phase of a reload of worker processes, timed: every process asked, every answer read."""
        began = time.perf_counter()
        answers = ask_all(procs, rid, phase, argument, timeout)
        phase_times[phase].append(time.perf_counter() - began)
        return answers

    process_reload.ask_all = timed_ask_all
    bridge.start()
    if not args.processes:
        bridge.control.all = [Timed(c) for c in bridge.control.all]
    try:
        time.sleep(0.5)
        whole, workers = [], []
        received = lambda: sum(p.rx_packets for p in bridge.port_stats() if p.name == "a")   # noqa: E731
        before = received()
        started = time.perf_counter()
        for i in range(args.reloads):
            what = "attach" if i % 2 == 0 else "detach"
            request = {"flow": "all", "processor": "ttl" if what == "detach" else {"ttl": {"set": 64}}}
            flows = reload.edit(bridge.config.flows, what, request)
            del switch_times[:]
            began = time.perf_counter()
            bridge.reloader.apply(flows, bridge.config.engine, migrate=i % 4 >= 2)
            whole.append(time.perf_counter() - began)
            workers.append(sum(switch_times) if not args.processes else phase_times["commit"][-1])
            time.sleep(0.01)
        seconds = time.perf_counter() - started
        carried = received() - before
    finally:
        if not args.processes:
            bridge.control.all = [c.control for c in bridge.control.all]
        bridge.close("benchmark")
    ms = lambda xs: {"median_ms": round(statistics.median(xs) * 1000, 3), "max_ms": round(max(xs) * 1000, 3)}  # noqa: E731
    print(json.dumps({"reloads": args.reloads, "workers": args.workers, "processes": args.processes,
                      "reload": ms(whole), **({"prepare": ms(phase_times["prepare"])} if args.processes else {}),
                      "switches": ms(workers), "loop_packets_meanwhile": carried, "seconds": round(seconds, 2)}))


if __name__ == "__main__":
    main()
