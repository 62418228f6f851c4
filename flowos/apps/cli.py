"""flowos-run: run a FlowOS middlebox from the command line, with or without a config file.

Exit status: 0 after a clean run, 1 when the run fails or a processor faulted (flowos/runtime/faults.py),
2 for bad input (flags or config), 3 when the data plane crashed or had to be killed
(flowos/runtime/supervisor.py).
"""
import argparse
import gc
import math
import os
import sys

import yaml
from rich.console import Console

from flowos import __version__
from flowos.configuration import config as configuration, devices, eal_args
from flowos.runtime import faults, machine
from flowos.errors import ConfigError, FlowOSError
from flowos.configuration.config import MEMORY_MODES
from flowos.facts import MAX_BURST

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise ConfigError("", None, f"{message} (see flowos-run --help)")


def _positive(kind):
    def parse(text):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a value > 0, got {text!r}")
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite value, got {text!r}")
        return value
    return parse


def _workers(text):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of workers or auto, got {text!r}") from None


def _cpus(text):
    try:
        return eal_args.parse_cpus(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def build_parser():
    p = _Parser(prog="flowos-run", description="Run a FlowOS middlebox. With no config file, a transparent "
                "bridge: one port sends back out of itself, two ports forward to each other.",
                epilog="Flags and the config file are checked before DPDK starts. Exit status: 0 after a clean "
                       "run; 1 when the run fails or a processor faulted; 2 for bad input, said in one line that names "
                       "the file and key, or the flag (docs/configuration.md); 3 when the data plane crashed or "
                       "did not stop in time (docs/operations.md).")
    p.add_argument("-c", "--config", help="YAML configuration file")
    p.add_argument("--vdev", action="append", default=[], metavar="SPEC",
                   help="add a virtual device, e.g. net_pcap0,rx_pcap=in.pcap,tx_pcap=out.pcap (repeatable)")
    p.add_argument("--pci", action="append", default=[], metavar="ADDR", help="add a PCI NIC (repeatable)")
    p.add_argument("--processor", action="append", default=[], metavar="SPEC",
                   help="a processor for all traffic, with its parameters: NAME[,key=value...] (NAME a built-in "
                        "or package.module:Class; each value read as YAML: 23, true, drop), or a stage as the "
                        "config's pipeline writes it, in YAML: '{acl: {rules: [...], default: deny}}'; repeat "
                        "for more stages (with no flows: in the config)")
    p.add_argument("--forward", action="append", default=[], metavar="ROUTE",
                   help='forwarding between port names: "a -> b" or "a <-> b" (repeatable)')
    p.add_argument("--duration", type=_positive(float), help="stop after this many seconds")
    p.add_argument("--packets", type=_positive(int), help="stop after receiving this many packets")
    p.add_argument("--burst", type=_positive(int), help=f"packets per receive burst, 1..{MAX_BURST} (default 32; {MAX_BURST} with a Python processor)")
    p.add_argument("--mbufs", type=_positive(int), help="mbufs in the packet pool (default: sized from the ports)")
    p.add_argument("--memory", choices=MEMORY_MODES, help="hugepages, no-huge, or auto (default: hugepages when enough are free)")
    p.add_argument("--memory-mb", type=_positive(int), help="EAL memory in MB (default: sized from the pool)")
    p.add_argument("--clock", choices=("tsc", "capture"),
                   help="flow engine time: the TSC, or the replayed captures' timestamps (deterministic)")
    p.add_argument("--workers", type=_workers, metavar="N|auto",
                   help="worker lcores, each with its own queue on every port (default 1, or one per --worker-cpus "
                        "CPU); auto: one per CPU this process may use, less one for the main lcore")
    p.add_argument("--worker-cpus", type=_cpus, metavar="CPUS",
                   help="the workers' CPUs, e.g. 2,3,5-7 (default: the last CPUs this process may use)")
    p.add_argument("--worker-cpu", type=int, help="CPU of the one worker (default: the last one)")
    p.add_argument("--file-prefix", help="DPDK file prefix (default: flowos-<pid>)")
    p.add_argument("--eal-arg", action="append", default=[], metavar="ARG", help="extra EAL argument (repeatable)")
    p.add_argument("--no-dashboard", action="store_true", help="no live dashboard; print the summary only")
    p.add_argument("--stats-json", metavar="FILE", help="write the final statistics as JSON")
    p.add_argument("--check", action="store_true",
                   help="check the configuration and this machine (DPDK, memory, ports and NIC bindings, captures, "
                        "processors, file prefix) without starting: print each check, exit 0, or 2 with the problems")
    p.add_argument("--version", action="version", version=f"flowos {__version__}")
    return p


def processor_stage(text):
    """One --processor value -> a pipeline stage as a config file writes it (docs/processors.md)."""
    if text.lstrip().startswith(("{", "[")):
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ConfigError("command line", "--processor", f"{text!r} is not valid YAML: "
                              f"{getattr(e, 'problem', e)}") from None
    name, *pairs = (part.strip() for part in text.split(","))
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError("command line", "--processor", f"{pair!r} in {text!r}: expected key=value "
                              "(NAME,key=value,...)")
        if key in params:
            raise ConfigError("command line", "--processor", f"{key!r} is given twice in {text!r}")
        try:
            params[key] = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            params[key] = value
    return {name: params} if pairs else name


def make_config(args):
    """The config file (if any) with the command line laid over it, checked (the configuration's
    reading, then this machine's: flowos.runtime.machine)."""
    cfg = configuration.load(args.config) if args.config else configuration.Config(source="command line")
    for flag, values, parse in (("--vdev", args.vdev, devices.parse_vdev), ("--pci", args.pci, devices.parse_pci)):
        for value in values:
            try:
                port = parse(value)
            except FlowOSError as e:
                raise ConfigError("command line", flag, str(e)) from None
            port.origin = flag
            cfg.ports.append(port)
    if args.forward:
        cfg.forward = configuration.from_dict({"forward": args.forward}, "--forward").forward
    for flag, key in (("--duration", "run.duration"), ("--packets", "run.packets"), ("--burst", "run.burst"),
                      ("--mbufs", "pool.mbufs"), ("--memory", "eal.memory"), ("--memory-mb", "eal.memory_mb"),
                      ("--worker-cpu", "eal.worker_cpu"), ("--worker-cpus", "eal.worker_cpus"),
                      ("--workers", "run.workers"), ("--file-prefix", "eal.file_prefix"), ("--clock", "engine.clock")):
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            section, attr = key.split(".")
            setattr(getattr(cfg, section), attr, value)
            cfg.flags[key] = flag
    # --worker-cpu and --worker-cpus set one thing, the workers' CPUs: either replaces the file's.
    if (args.worker_cpu is None) != (args.worker_cpus is None):
        if args.worker_cpu is None:
            cfg.eal.worker_cpu = None
        else:
            cfg.eal.worker_cpus = None
    bad = eal_args.check_user_args(args.eal_arg)
    if bad:
        raise ConfigError("command line", "--eal-arg", bad[1])
    cfg.eal.args += args.eal_arg
    if args.processor:
        if cfg.flows:
            raise ConfigError(cfg.source, "--processor", "the config defines flows: name processors in their pipelines")
        try:
            cfg.flows = configuration.flow_defs.parse_flows(
                [{"name": "all", "pipeline": [processor_stage(text) for text in args.processor]}], "--processor")
        except configuration.flow_defs.Invalid as e:
            raise ConfigError("--processor", None, e.problem) from None
    return machine.check(configuration.finish(cfg))   # then what only this machine's DPDK can tell


def main(argv=None):
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    errors = Console(stderr=True, highlight=False)
    # Python processors are named by import path: from here, or beside the config file.
    sys.path[:0] = [p for p in (os.getcwd(),) if p not in sys.path]
    try:
        args = build_parser().parse_args(argv)
        if args.config:
            sys.path.insert(0, os.path.dirname(os.path.abspath(args.config)))
        cfg = make_config(args)
        if args.check:      # what a run finds as it makes its processors, found without starting
            from flowos.apps import check
            check.construct_processors(cfg)
    except FlowOSError as e:
        errors.print(f"flowos-run: error: {e}", markup=False, soft_wrap=True)
        return EXIT_BAD_INPUT
    if args.check:
        from flowos.apps import check
        return 0 if check.report(cfg, args.stats_json, console, errors) else EXIT_BAD_INPUT
    from flowos.runtime import supervisor
    return supervisor.supervise(cfg, args.stats_json, lambda channel: run_box(args, cfg, console, errors, channel))


def run_box(args, cfg, console, errors, channel):
    """The data plane, in the supervisor's child process: the run, its summary and --stats-json."""
    from flowos.runtime import output, runner, watchdog
    from flowos.apps.dashboard import Dashboard, QuietView, summary_table

    view = channel.watch(QuietView(console) if args.no_dashboard else Dashboard(console))
    try:
        with output.Router(console):   # processors' output and logging, after the banner, where it was sent
            report = runner.run(cfg, view)
        # What is left is freed by the exit: the interpreter's last collections over it took
        # ~0.1 s (several times that on a busy machine) of the exit after SIGTERM.
        gc.freeze()
    except FlowOSError as e:
        errors.print(f"flowos-run: error: {e}", markup=False, soft_wrap=True)
        return EXIT_BAD_INPUT if isinstance(e, ConfigError) else EXIT_FAILED
    console.print(summary_table(report))
    for line in faults.summary_lines(report):
        console.print(line, markup=False, soft_wrap=True)
    if args.stats_json:
        report.write_json(args.stats_json)
    channel.reported(report)
    stuck = watchdog.verdict(report, EXIT_FAILED, lambda text: errors.print(f"flowos-run: error: {text}",
                                                                            markup=False, soft_wrap=True))
    if stuck is not None:
        return stuck
    failures = faults.failures(report)
    failures += [f"worker process {row['worker']} (pid {row['pid']}) ended: {row['ended']}; its flows were lost "
                 f"and {row['inbox_freed']} packets handed to it freed" for row in report.workers if "ended" in row]
    # Worker processes that died and were restarted took what they held with them (counted): only
    # more than that is a leak.
    lost = report.mbufs_lost_with_workers or {"held": 0, "in_hand_at_most": 0}
    if report.mbufs_in_use_at_exit > lost["held"] + lost["in_hand_at_most"]:
        failures.append(f"{report.mbufs_in_use_at_exit} mbufs were not returned to the pool")
    elif report.mbufs_in_use_at_exit:
        errors.print(f"flowos-run: {report.mbufs_in_use_at_exit} mbufs went with the {lost['restarts']} worker "
                     "processes that died and were restarted", markup=False, soft_wrap=True)
    for failure in failures:
        errors.print(f"flowos-run: error: {failure}", markup=False, soft_wrap=True)
    return EXIT_FAILED if failures else 0


if __name__ == "__main__":
    sys.exit(main())
