"""The EAL command line, derived from the configuration: memory, file prefix, lcores, devices."""
import math
import os

from flowos.errors import FlowOSError

# What one mbuf costs in a pool: the rte_mbuf header, its data room, and the mempool's own header.
MBUF_HEADER = 128
MEMPOOL_OBJ_OVERHEAD = 64
# What the EAL, ethdev and the PMDs take besides the pools.
BASE_MEMORY_MB = 64


def pool_memory_mb(mbufs, data_room):
    return math.ceil(mbufs * (MBUF_HEADER + data_room + MEMPOOL_OBJ_OVERHEAD) / 2**20)


def needed_memory_mb(mbufs, data_room):
    """The EAL memory a run needs: its pool with a quarter to spare, plus the base."""
    return BASE_MEMORY_MB + math.ceil(pool_memory_mb(mbufs, data_room) * 1.25)


# What one flow costs: its fo_flow (~180 B), its flow index slot (~20 B), pipeline state
# (processors' own, and streams), with room to spare.
BYTES_PER_FLOW = 512


def flow_table_memory_mb(capacity):
    return math.ceil(capacity * BYTES_PER_FLOW / 2**20) + 16


def lcore_map(cpus=None, worker_cpu=None):
    """Main lcore 0 floats over every CPU but the worker's; lcore 1 (the worker) has its own CPU.

    EAL pins the main thread, and every thread Python starts after it, to lcore 0's CPUs: letting
    it float keeps the dashboard and signal handling off the worker's core, yet never starved.
    """
    cpus = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
    if worker_cpu is None:
        worker_cpu = cpus[-1]
    elif worker_cpu not in cpus:
        raise FlowOSError(f"worker CPU {worker_cpu} is not one this process may run on ({_ranges(cpus)})")
    main = [c for c in cpus if c != worker_cpu] or [worker_cpu]
    return f"0@({_ranges(main)}),1@{worker_cpu}", worker_cpu


def _ranges(cpus):
    out, start = [], None
    for i, c in enumerate(cpus):
        if start is None:
            start = c
        if i + 1 == len(cpus) or cpus[i + 1] != c + 1:
            out.append(str(start) if start == c else f"{start}-{c}")
            start = None
    return ",".join(out)


def eal_argv(memory, file_prefix, lcores, ports, log_level=None, extra=()):
    """memory: a hugepages.MemoryMode; ports: PortSpecs; extra: the user's own EAL arguments."""
    argv = ["flowos", "--lcores", lcores, "--file-prefix", file_prefix, "--no-shconf",
            "-m", str(memory.memory_mb)]
    if memory.mode == "no-huge":
        argv.append("--no-huge")
    else:
        argv += ["--huge-dir", memory.huge_dir, "--huge-unlink"]
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
