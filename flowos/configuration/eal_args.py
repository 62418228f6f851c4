"""The EAL command line, derived from the configuration: memory, file prefix, lcores, devices."""
import math
import os
import re

from flowos.errors import FlowOSError

# What one mbuf costs in a pool (DPDK 22.11, rte_mempool_calc_obj_size): the mempool's object
# header (a cache line), the rte_mbuf and its data room, padded to whole cache lines, and to an
# odd number of them so that objects spread over the memory channels (4 when -n is not given).
MBUF_HEADER = 128
MEMPOOL_OBJ_HEADER = 64
CACHE_LINE = 64
MEMORY_CHANNELS = 4
# The pages the EAL's memory comes in: 2 MB hugepages, or the system's 4 KiB pages with --no-huge.
HUGEPAGE_SIZE = 2 << 20
SMALL_PAGE_SIZE = 4096
# What the EAL, ethdev and the PMDs take besides the pools.
BASE_MEMORY_MB = 64


def mbuf_object_size(data_room):
    """The bytes one mbuf of `data_room` takes in its pool."""
    lines = -(-(MEMPOOL_OBJ_HEADER + MBUF_HEADER + data_room) // CACHE_LINE)
    while math.gcd(lines, MEMORY_CHANNELS) != 1:
        lines += 1
    return lines * CACHE_LINE


def pool_memory_mb(mbufs, data_room, page_size=HUGEPAGE_SIZE):
    """The memory rte_mempool_populate_default takes for a pool: it puts no object across a page
    boundary, so with 4 KiB pages (--no-huge) an mbuf of 2 KiB takes a page of its own; and the
    pool's ring of pointers, of the next power of two above the pool's size."""
    size = mbuf_object_size(data_room)
    per_page = page_size // size
    if per_page == 0:
        objects = -(-size // page_size) * page_size * mbufs
    else:
        objects = -(-mbufs // per_page) * page_size + size
    ring = 8 * (1 << mbufs.bit_length())
    return math.ceil((objects + ring) / 2**20)


def needed_memory_mb(mbufs, data_room, page_size=HUGEPAGE_SIZE):
    """The EAL memory a run needs: its pool with a quarter to spare, plus the base."""
    return BASE_MEMORY_MB + math.ceil(pool_memory_mb(mbufs, data_room, page_size) * 1.25)


# What one flow costs: its fo_flow (~180 B), its flow index slot (~20 B), pipeline state
# (processors' own, and streams), with room to spare.
BYTES_PER_FLOW = 512


def flow_table_memory_mb(capacity, state_bytes=0):
    """state_bytes: the per-flow state of Cython processors, beyond what BYTES_PER_FLOW allows."""
    return math.ceil(capacity * (BYTES_PER_FLOW + state_bytes) / 2**20) + 16


# The engine's processing windows (fo_engine.c): for each of a burst's up to 256 flows, room for
# what a flow may hold and two bursts more; each entry a packet pointer, a pending drop, a
# verdict and an output port.
MAX_BURST = 256
WINDOW_ENTRY_BYTES = 8 + 8 + 1 + 2


def window_memory_mb(hold_packets):
    """hold_packets: the largest limits.hold_packets of the flow definitions."""
    return math.ceil((hold_packets + 2 * MAX_BURST) * MAX_BURST * WINDOW_ENTRY_BYTES / 2**20)


def usable_cpus():
    """The CPUs this process may run on (its affinity, as taskset or a container sets it), in order."""
    return sorted(os.sched_getaffinity(0))


def auto_workers(cpus):
    """run.workers auto: one worker per CPU, less one kept for the main lcore; at least one."""
    return max(1, len(cpus) - 1)


def check_worker_cpu(worker_cpu, cpus=None):
    """Raises FlowOSError unless `worker_cpu` is one this process may run on."""
    cpus = sorted(cpus if cpus is not None else usable_cpus())
    if worker_cpu not in cpus:
        raise FlowOSError(f"worker CPU {worker_cpu} is not one this process may run on ({cpu_list(cpus)})")


def check_worker_cpus(worker_cpus, cpus=None):
    """Raises FlowOSError unless each worker CPU is one this process may run on. A CPU may be given
    twice: its workers take turns on it (shared_cpus; what tests of many workers on few CPUs do)."""
    cpus = sorted(cpus if cpus is not None else usable_cpus())
    for cpu in worker_cpus:
        check_worker_cpu(cpu, cpus)


def shared_cpus(worker_cpus):
    """The CPUs given to more than one worker."""
    return sorted({cpu for cpu in worker_cpus if worker_cpus.count(cpu) > 1})


def main_cpus(worker_cpus, cpus):
    """The CPUs the main lcore floats over: every allowed CPU no worker has, or all of them when
    the workers have every one (the main lcore then shares theirs)."""
    return [c for c in sorted(cpus) if c not in worker_cpus] or sorted(cpus)


def lcore_map(worker_cpus=None, cpus=None):
    """Main lcore 0 floats over the CPUs no worker has; lcores 1..N, the workers, one each on
    `worker_cpus` in order (default: one worker on the last CPU). Returns the --lcores value and
    the worker CPUs.

    EAL pins the main thread, and every thread Python starts after it, to lcore 0's CPUs: letting
    it float keeps the dashboard and signal handling off the workers' cores, yet never starved.
    """
    cpus = sorted(cpus if cpus is not None else usable_cpus())
    worker_cpus = list(worker_cpus) if worker_cpus is not None else cpus[-1:]
    check_worker_cpus(worker_cpus, cpus)
    workers = ",".join(f"{lcore}@{cpu}" for lcore, cpu in enumerate(worker_cpus, 1))
    return f"0@({cpu_list(main_cpus(worker_cpus, cpus))}),{workers}", worker_cpus


# Linux numbers CPUs below its NR_CPUS, 8192 at most: a range past it is a typo, not a machine.
MAX_CPU_ID = 8191


def parse_cpus(text):
    """A CPU list as taskset -c writes it, '2,3,5-7' -> [2, 3, 5, 6, 7], in the order given.
    Raises ValueError, saying what was expected."""
    out = []
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        first, last = (int(m[1]), int(m[2] or m[1])) if m else (None, None)
        if first is None or last < first:
            raise ValueError(f"expected CPU ids and ranges such as 2,3,5-7, got {text!r}")
        if last > MAX_CPU_ID:
            raise ValueError(f"CPU {last} in {text!r}: CPU ids are at most {MAX_CPU_ID}")
        out += range(first, last + 1)
    return out


def cpu_list(cpus):
    """[0, 1, 2, 5] -> '0-2,5', as taskset -c and --lcores write CPU sets."""
    cpus = sorted(cpus)
    out, start = [], None
    for i, c in enumerate(cpus):
        if start is None:
            start = c
        if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
            out.append(str(start) if start == c else f"{start}-{c}")
            start = None
    return ",".join(out)


def eal_argv(memory, file_prefix, lcores, ports, log_level=None, extra=(), primary=False):
    """memory: a hugepages.MemoryMode; ports: PortSpecs; extra: the user's own EAL arguments.
    primary: worker processes will attach (docs/architecture.md, "Worker processes"): the
    shared configuration and the hugepage files stay for them to map (Eal.close removes them)."""
    argv = ["flowos", "--lcores", lcores, "--file-prefix", file_prefix, "-m", str(memory.memory_mb)]
    if not primary:
        argv.append("--no-shconf")
    if memory.mode == "no-huge":
        argv.append("--no-huge")
    else:
        argv += ["--huge-dir", memory.huge_dir]
        if not primary:
            argv.append("--huge-unlink")
    pci = [p for p in ports if p.kind == "pci"]
    if not pci:
        argv.append("--no-pci")
    for port in pci:
        argv += ["-a", port.eal_spec]
    for port in ports:
        if port.kind == "vdev":
            argv += ["--vdev", port.eal_spec]
    if log_level:
        argv.append(f"--log-level={log_level}")
    argv += list(extra)
    return argv


def relay_lcores(worker_cpus, cpus=None):
    """The primary of worker processes: its main lcore 0 and the relay's lcore 1 float over the
    CPUs no worker has (the relay, in C, takes little of them)."""
    cpus = sorted(cpus if cpus is not None else usable_cpus())
    floating = cpu_list(main_cpus(worker_cpus, cpus))
    return f"0@({floating}),1@({floating})"


def worker_process_argv(file_prefix, worker, worker_cpus, cpus=None, log_level=None):
    """The EAL command line of worker process `worker`, a secondary of the primary's file prefix.
    Lcore ids are the mempool's cache index, so no two processes may use the same one: the primary
    has 0 and 1, worker w 2 + 2w (its main thread, floating) and 3 + 2w (its worker, on its CPU).
    No devices of its own (it sends and receives through the relay), no telemetry socket."""
    cpus = sorted(cpus if cpus is not None else usable_cpus())
    main = 2 + 2 * worker
    argv = ["flowos", "--proc-type=secondary", "--file-prefix", file_prefix, "--no-pci", "--no-telemetry",
            "--lcores", f"{main}@({cpu_list(main_cpus(worker_cpus, cpus))}),{main + 1}@{worker_cpus[worker]}",
            "--main-lcore", str(main)]
    if log_level:
        argv.append(f"--log-level={log_level}")
    return argv


# The options of DPDK 22.11's EAL (lib/eal/common/eal_common_options.c, eal_long_options and
# eal_short_options): whether each takes a value: "required", "optional" (only as --name=value)
# or "none". FlowOS sets --lcores, --file-prefix, -m, --no-huge or --huge-dir, --vdev and -a itself.
EAL_LONG_OPTIONS = {
    "base-virtaddr": "required", "create-uio-dev": "none", "file-prefix": "required", "help": "none",
    "huge-dir": "required", "huge-unlink": "optional", "iova-mode": "required", "lcores": "required",
    "log-level": "required", "trace": "required", "trace-dir": "required", "trace-bufsz": "required",
    "trace-mode": "required", "main-lcore": "required", "mbuf-pool-ops-name": "required", "no-hpet": "none",
    "no-huge": "none", "no-pci": "none", "no-shconf": "none", "in-memory": "none", "block": "required",
    "allow": "required", "proc-type": "required", "socket-mem": "required", "socket-limit": "required",
    "syslog": "required", "vdev": "required", "vfio-intr": "required", "vfio-vf-token": "required",
    "vmware-tsc-map": "none", "legacy-mem": "none", "single-file-segments": "none",
    "match-allocations": "none", "telemetry": "none", "no-telemetry": "none",
    "force-max-simd-bitwidth": "required", "huge-worker-stack": "optional",
}
EAL_SHORT_OPTIONS = {"a": "required", "b": "required", "c": "required", "s": "required", "d": "required",
                     "h": "none", "l": "required", "S": "required", "m": "required", "n": "required",
                     "r": "required", "v": "none"}


def check_user_args(args):
    """The user's own EAL arguments, read as the EAL's getopt would. Returns (index, problem) for
    the first that is not an option of DPDK's EAL with its value, or None: the EAL would refuse
    it only after the run had begun to start, in a log line that does not say where it came from."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--"):
            name, has_value, _ = arg[2:].partition("=")
            takes = EAL_LONG_OPTIONS.get(name)
            if takes is None:
                return i, f"{arg!r} is not an option of DPDK's EAL"
            if takes == "none" and has_value:
                return i, f"{arg!r}: --{name} takes no value"
        elif arg.startswith("-") and len(arg) > 1:
            name, has_value, takes = arg[1], len(arg) > 2, EAL_SHORT_OPTIONS.get(arg[1])
            if takes is None:
                return i, f"{arg!r} is not an option of DPDK's EAL"
            if takes == "none" and has_value:
                return i, f"{arg!r}: -{name} takes no value"
        else:
            return i, f"{arg!r} is not an option of DPDK's EAL (options start with - or --)"
        if takes == "required" and not has_value:
            if i + 1 == len(args):
                return i, f"{arg!r} needs a value"
            i += 1
        i += 1
    return None
