# cython: language_level=3
"""The flow engine, as Python builds and reads it: definitions, pipelines of built-in C
processors, and its statistics. The packets never come here: the engine runs as the worker's
processing hook, in C, without the GIL."""
import json

from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc
from libc.errno cimport ENOSPC
from libc.string cimport memcpy, memset

from flowos.includes.dpdk cimport rte_errno
from flowos.includes.fo cimport fo_burst_hook_t, fo_decode_error, fo_decode_error_name, fo_worker_drain_outboxes, fo_worker_set_hook
from flowos.includes.fo_engine cimport *
from flowos.boundary._runtime cimport Inbox, Mempool, TxLock, Worker, WorkerGroup, check

from flowos.errors import FlowOSError
from flowos.facts import CALLBACKS, DECODE_ERRORS, END_REASONS, TIMEOUT_CLASSES, VERDICTS

POLICIES = {
    "unmatched": ("pass", "drop"),
    "malformed": ("pass", "drop"),
    "table_full": ("bypass", "drop"),
    "hold_overflow": ("drop", "release"),
    "clock": ("tsc", "capture"),
}
# A shard runs at most this many generations of a reloaded configuration at once.
MAX_GENERATIONS = 8                 # a shard's, at once (ext/src/fo_engine_priv.h)

# Where each engine created from now on also records its processor callback under way (record_calls).
cdef uint64_t[::1] call_slots = None
cdef Py_ssize_t next_call_slot = 0


def record_calls(buffer):
    """Each engine created from now on also writes the callback under way to an 8-byte slot of
    `buffer` of its own (the first engine the first slot, and so on; fo_engine_set_call_record):
    memory shared with flowos.runtime.supervisor's parent process, which reads it after a crash. Engines
    past the last slot record nothing there."""
    global call_slots, next_call_slot
    call_slots = memoryview(buffer).cast("B").cast("Q")
    next_call_slot = 0


cdef void fill_match(fo_match *m, dict spec) except *:
    """spec: the canonical match of flowos.configuration.flows (in_port, src_mac, dst_mac, src, dst, proto, sport, dport)."""
    memset(m, 0, sizeof(fo_match))
    if "in_port" in spec:
        m.fields |= FO_MATCH_IN_PORT
        m.in_port = spec["in_port"]
    if "src_mac" in spec:
        m.fields |= FO_MATCH_SRC_MAC
        memcpy(m.src_mac, <const char *>spec["src_mac"], 6)
    if "dst_mac" in spec:
        m.fields |= FO_MATCH_DST_MAC
        memcpy(m.dst_mac, <const char *>spec["dst_mac"], 6)
    for key, flag in (("src", FO_MATCH_SRC_IP), ("dst", FO_MATCH_DST_IP)):
        if key in spec:
            family, address, prefix = spec[key]
            m.fields |= flag
            m.family = family
            if key == "src":
                memcpy(m.src_ip, <const char *>address, len(address))
                m.src_prefix = prefix
            else:
                memcpy(m.dst_ip, <const char *>address, len(address))
                m.dst_prefix = prefix
    if "proto" in spec:
        m.fields |= FO_MATCH_PROTO
        m.proto = spec["proto"]
    if "sport" in spec:
        m.fields |= FO_MATCH_SRC_PORT
        m.src_port_lo, m.src_port_hi = spec["sport"]
    if "dport" in spec:
        m.fields |= FO_MATCH_DST_PORT
        m.dst_port_lo, m.dst_port_hi = spec["dport"]


cdef bytes as_bytes(void *p, size_t size):
    return (<char *>p)[:size]


cdef bytes builtin_params(str name, dict params):
    """The C parameter struct a built-in's setup() takes, from validated parameters."""
    cdef fo_counter_params counter
    cdef fo_ttl_params ttl
    cdef fo_redirect_params redirect
    cdef fo_hold_params hold
    cdef fo_mirror_params mirror
    cdef fo_acl_params *acl
    cdef size_t size
    if name == "counter":
        counter.max_flows = params["max_flows"]
        return as_bytes(&counter, sizeof(counter))
    if name == "ttl":
        ttl.set = params.get("set", 0)
        ttl.decrement = params.get("decrement", 1)
        return as_bytes(&ttl, sizeof(ttl))
    if name == "redirect":
        redirect.port = params["port"]
        redirect.direction = params.get("direction", -1)
        return as_bytes(&redirect, sizeof(redirect))
    if name == "hold":
        hold.packets = params["packets"]
        return as_bytes(&hold, sizeof(hold))
    if name == "mirror":
        mirror.port = params["port"]
        return as_bytes(&mirror, sizeof(mirror))
    if name == "acl":
        rules = params["rules"]
        size = sizeof(fo_acl_params) + sizeof(fo_acl_rule) * len(rules)
        acl = <fo_acl_params *>malloc(size)
        if acl == NULL:
            raise MemoryError()
        try:
            memset(acl, 0, size)
            acl.n_rules = len(rules)
            acl.default_allow = params["default_allow"]
            for i, rule in enumerate(rules):
                fill_match(&acl.rules[i].match, rule["match"])
                acl.rules[i].allow = rule["allow"]
            return as_bytes(acl, size)
        finally:
            free(acl)
    raise FlowOSError(f"no built-in processor {name!r}")


def stats_at(size_t address, uint32_t keep_budget=0):
    """The counters of the engine at `address` in DPDK's shared memory (Engine.shard_address), read
    as Engine.stats reads them while its worker runs: only while its process is known to hold it."""
    return stats_of(<fo_engine *>address, keep_budget)


def current_call_at(size_t address):
    """Engine.current_call of the engine at `address` in DPDK's shared memory (a worker process's)."""
    cdef fo_call c
    if not fo_engine_current_call(<fo_engine *>address, &c):
        return None
    return c.def_, c.proc, CALLBACKS[<int>c.what], c.ns / 1e9, c.began


cdef dict stats_of(fo_engine *e, uint32_t keep_budget):
    cdef fo_engine_stats s
    fo_engine_read_stats(e, &s)
    return {
        "packets": s.packets,
        "malformed": {fo_decode_error_name(<fo_decode_error>i).decode(): s.malformed[i]
                      for i in range(1, DECODE_ERRORS)},
        "malformed_dropped": s.malformed_dropped,
        "unmatched": s.unmatched, "unmatched_dropped": s.unmatched_dropped,
        "table_full": s.table_full, "table_full_dropped": s.table_full_dropped,
        "fragments_tracked": s.fragments_tracked, "fragments_orphaned": s.fragments_orphaned,
        "flows_created": s.flows_created, "flows_active": s.flows_active, "flows_peak": s.flows_peak,
        "flows_ended": {reason: s.flows_ended[i] for i, reason in enumerate(END_REASONS)},
        "verdicts": {v: s.verdicts[i] for i, v in enumerate(VERDICTS)},
        "bad_verdicts": s.bad_verdicts, "bad_redirects": s.bad_redirects,
        "hold_overflows": s.hold_overflows, "hold_overflow_packets": s.hold_overflow_packets,
        "injected": s.injected, "inject_failed": s.inject_failed,
        "checksums_fixed": s.checksums_fixed, "checksums_offloaded": s.checksums_offloaded,
        "streams": {"reordered": s.stream_reordered, "reorder_overflow": s.stream_reorder_overflow,
                    "duplicates": s.stream_duplicates, "overlap_bytes": s.stream_overlap_bytes,
                    "retransmits": s.stream_retransmits, "gaps_skipped": s.stream_gaps_skipped,
                    "rewritten": s.stream_rewritten, "split": s.stream_split, "split_failed": s.stream_split_failed,
                    "release_split": s.stream_release_split, "release_split_failed": s.stream_release_split_failed,
                    "copies_evicted": s.stream_copies_evicted, "split_parts": s.stream_split_parts,
                    "copies_resent": s.stream_copies_resent, "holds_idle": s.stream_holds_idle,
                    "edits_refused": s.stream_edits_refused},
        "tx_packets": s.tx_packets, "tx_unsent": s.tx_unsent, "dropped": s.dropped,
        "created": s.created, "replaced": s.replaced, "held": s.held,
        "handed_off": s.handed_off, "handoff_full": s.handoff_full,
        "generations": s.generations, "generations_retired": s.generations_retired,
        "flows_migrated": s.flows_migrated,
        "budget": {"limit": keep_budget, "kept": s.held + s.kept_copies, "held": s.held,
                   "kept_copies": s.kept_copies, "peak": s.keep_peak, "overflows": s.budget_overflows,
                   "segments_dropped": s.budget_segments_dropped},
    }


cdef class PipelineConf:
    """The engine's read-only configuration, built once and shared by every shard: the policies
    and timeouts, the definitions and their classifier, each processor's ops and parameters
    (fo_pipeline_conf.h). A Python or Cython processor is added with the first shard's instance;
    every shard binds its own (Engine.bind_tier)."""
    cdef fo_pipeline_conf *pc
    cdef readonly Mempool pool
    cdef readonly list definitions      # names, by index
    cdef readonly list processors       # per definition: built-in names, or None for a tier, by index

    @staticmethod
    def create(Mempool pool, str unmatched="pass", str malformed="pass", str table_full="bypass",
               str clock="tsc", dict timeouts=None, Engine after=None):
        """after: a running shard whose next generation this conf is (docs/reload.md): it shares
        that shard's definition space, so that every shard of that conf can switch to it."""
        cdef fo_engine_conf conf
        memset(&conf, 0, sizeof(conf))
        conf.unmatched = POLICIES["unmatched"].index(unmatched)
        conf.malformed = POLICIES["malformed"].index(malformed)
        conf.table_full = POLICIES["table_full"].index(table_full)
        conf.clock = POLICIES["clock"].index(clock)
        for i, cls in enumerate(TIMEOUT_CLASSES):
            conf.timeout_ns[i] = <uint64_t>((timeouts or {}).get(cls, 60) * 1e9)
        conf.pool = pool.mp
        conf.socket_id = -1
        cdef PipelineConf self = PipelineConf.__new__(PipelineConf)
        if after is None:
            self.pc = fo_pipeline_conf_create(&conf)
        else:
            self.pc = fo_pipeline_conf_create_next(fo_engine_pipeline_conf(after.live()), &conf)
        if self.pc == NULL:
            check(-rte_errno, "cannot create the flow engine's configuration")
        self.pool = pool
        self.definitions = []
        self.processors = []
        return self

    cdef fo_pipeline_conf *live(self) except NULL:
        if self.pc == NULL:
            raise FlowOSError("the flow engine's configuration is closed")
        return self.pc

    def add_definition(self, str name, dict match, uint32_t hold_packets, uint32_t hold_bytes, str hold_overflow,
                       bint streams=False, uint16_t reorder_packets=64, uint32_t stream_hold_ms=0):
        cdef fo_def_conf d
        memset(&d, 0, sizeof(d))
        encoded = name.encode()[:47]
        memcpy(d.name, <const char *>encoded, len(encoded))
        fill_match(&d.match, match)
        d.hold_packets = hold_packets
        d.hold_bytes = hold_bytes
        d.hold_overflow = POLICIES["hold_overflow"].index(hold_overflow)
        d.streams = streams
        d.reorder_packets = reorder_packets
        d.stream_hold_ms = stream_hold_ms
        index = check(fo_pipeline_conf_add_definition(self.live(), &d), f"flow {name!r}")
        self.definitions.append(name)
        self.processors.append([])
        return index

    cdef int _add(self, uint16_t definition, uint16_t stage, const fo_processor_ops *ops, const void *params,
                  size_t size, str what) except -1:
        cdef char err[256]
        err[0] = 0
        ret = fo_pipeline_conf_add_processor(self.live(), definition, stage, ops, params, size, err, sizeof(err))
        return check(ret, f"flow {self.definitions[definition]!r}, stage {stage}{what}", err.decode(errors="replace"))

    def add_processor(self, uint16_t definition, uint16_t stage, str name, dict params):
        cdef const fo_processor_ops *ops = fo_processor_find(name.encode())
        if ops == NULL:
            raise FlowOSError(f"no built-in processor {name!r}")
        cdef bytes blob = builtin_params(name, params)
        index = self._add(definition, stage, ops, <const char *>blob, len(blob), f", {name}")
        self.processors[definition].append(name)
        return index

    def add_tier_processor(self, uint16_t definition, uint16_t stage, tier):
        """Appends a processor of another tier (flowos.boundary._python.PythonTier, flowos.cprocessor.CythonTier):
        its ops, and the parameters of the instance that shards which bind none would share."""
        cdef size_t ops = tier.ops_address()
        params, size = tier.params_address()
        index = self._add(definition, stage, <const fo_processor_ops *>ops, <const void *><size_t>params, size, "")
        self.processors[definition].append(None)
        return index

    def build(self):
        cdef char err[256]
        err[0] = 0
        check(fo_pipeline_conf_build(self.live(), err, sizeof(err)), "cannot build the flow engine", err.decode(errors="replace"))

    def address(self):
        """The fo_pipeline_conf: every shard made from this conf reads this one."""
        return <size_t>self.pc

    @property
    def users(self):
        """This object and the shards that still use the C conf (it is freed when none is left)."""
        return fo_pipeline_conf_users(self.pc) if self.pc != NULL else 0

    def close(self):
        """Lets the C conf go: freed now, or when the last shard made from it is closed."""
        if self.pc != NULL:
            fo_pipeline_conf_free(self.pc)
            self.pc = NULL

    def __dealloc__(self):
        if self.pc != NULL:
            import warnings
            warnings.warn("flow engine configuration was not closed", ResourceWarning)


cdef class Engine:
    """A shard of the flow engine: a worker's flows, state, scratch, counters and processor
    instances, made from a built PipelineConf that it reads."""
    cdef fo_engine *e
    cdef readonly PipelineConf conf
    cdef readonly list processors       # per definition: processor names, or this shard's tiers, by index
    cdef readonly uint32_t keep_budget
    cdef readonly object staged         # (PipelineConf, processors, base) staged for the next generation, or None
    cdef dict by_index                  # every generation's processors lists, by index in the definition space
    cdef dict names_by_index            # ... and definition names

    @staticmethod
    def create(PipelineConf conf, uint32_t capacity, uint32_t keep_budget=0):
        cdef fo_shard_conf sc
        memset(&sc, 0, sizeof(sc))
        sc.flow_capacity = capacity
        sc.keep_budget = keep_budget
        sc.socket_id = -1
        cdef Engine engine = Engine.__new__(Engine)
        engine.e = fo_engine_create(conf.live(), &sc)
        if engine.e == NULL:
            check(-rte_errno, "cannot create the flow engine")
        engine.conf = conf
        engine.keep_budget = keep_budget
        engine.processors = [list(names) for names in conf.processors]
        engine.by_index = dict(enumerate(engine.processors))    # a first conf's base is 0
        engine.names_by_index = dict(enumerate(conf.definitions))
        global next_call_slot
        if call_slots is not None and next_call_slot < call_slots.shape[0]:
            fo_engine_set_call_record(engine.e, &call_slots[next_call_slot])
            next_call_slot += 1
        return engine

    @property
    def definitions(self):
        return self.conf.definitions

    @property
    def pool(self):
        return self.conf.pool

    def bind_tier(self, uint16_t definition, uint16_t processor, tier):
        """This shard's own instance of a Python or Cython processor of the conf (its own object)."""
        cdef size_t ops = tier.ops_address()
        params, size = tier.params_address()
        check(fo_engine_bind_processor(self.e, definition, processor, <const fo_processor_ops *>ops,
                                       <const void *><size_t>params, size),
              f"flow {self.definitions[definition]!r}, processor {processor}: not the conf's processor")
        self.processors[definition][processor] = tier

    def build(self):
        cdef char err[256]
        for d, procs in enumerate(self.processors):
            for p, entry in enumerate(procs):
                if entry is None:   # it would share another shard's Python object
                    raise FlowOSError(f"flow {self.definitions[d]!r}, processor {p}: a Python or Cython "
                                      "processor needs an instance of this shard's own (bind_tier)")
        err[0] = 0
        check(fo_engine_build(self.e, err, sizeof(err)), "cannot build the flow engine", err.decode(errors="replace"))

    cdef fo_engine *live(self) except NULL:
        if self.e == NULL:
            raise FlowOSError("the flow engine is closed")
        return self.e

    def stage(self, PipelineConf conf, list tiers):
        """Stages conf, this shard's next generation (docs/reload.md), with its own instances of the
        Python and Cython processors ((definition, processor, tier) each), and sets their instances
        up; the worker runs on meanwhile. Raises FlowOSError with nothing staged on failure."""
        cdef char err[256]
        cdef size_t ops
        ret = fo_engine_stage(self.live(), conf.live())
        if ret == -ENOSPC:
            raise FlowOSError(f"no room: a worker runs {MAX_GENERATIONS} configurations at most, and its older ones "
                              "still have live flows (they end, or --migrate ends them now)")
        check(ret, "cannot stage the new configuration")
        processors = [list(names) for names in conf.processors]
        try:
            for definition, processor, tier in tiers:
                ops = tier.ops_address()
                params, size = tier.params_address()
                check(fo_engine_bind_processor(self.e, definition, processor, <const fo_processor_ops *>ops,
                                               <const void *><size_t>params, size),
                      f"flow {conf.definitions[definition]!r}, processor {processor}: not the conf's processor")
                processors[definition][processor] = tier
            err[0] = 0
            check(fo_engine_stage_setup(self.e, err, sizeof(err)), None, err.decode(errors="replace"))
        except BaseException:
            fo_engine_unstage(self.e)
            raise
        self.staged = (conf, processors, fo_pipeline_conf_base(conf.pc))

    def unstage(self):
        """Undoes stage(): the staged instances torn down, nothing changed."""
        if self.e != NULL:
            fo_engine_unstage(self.e)
        self.staged = None

    def switch(self, bint migrate=False):
        """Makes the staged conf current, here: only while no worker runs this shard (a running
        one switches through its control mailbox, flowos.boundary._control.Control.switch)."""
        check(fo_engine_switch(self.live(), migrate), "no new configuration staged")
        self.switched()

    def switched(self):
        """The staged conf is the shard's now (its worker switched): names and tiers follow it."""
        self.conf, self.processors, base = self.staged
        self.by_index.update((base + i, procs) for i, procs in enumerate(self.processors))
        self.names_by_index.update((base + i, name) for i, name in enumerate(self.conf.definitions))
        self.staged = None

    def definition_name(self, uint16_t definition, worker=0):
        """A definition's name by the index a flow's key has (any generation's); worker: as
        Engines.definition_name takes it (a worker process's relay engine has every worker's names)."""
        return self.names_by_index.get(definition, f"#{definition}")

    def processor_at(self, uint16_t definition, uint16_t processor):
        """A processor by the definition index current_call gives (any generation's): its name, or
        this shard's tier."""
        return self.by_index[definition][processor]

    def generations(self):
        """The configurations this shard runs: the current one, and older ones with live flows."""
        return fo_engine_generations(self.live())

    def conf_address(self):
        """The fo_pipeline_conf this shard reads (PipelineConf.address() of its conf)."""
        return <size_t>fo_engine_pipeline_conf(self.e)

    def conf_users(self):
        """Who holds this shard's fo_pipeline_conf: its creator (until PipelineConf.close) and its shards."""
        return fo_pipeline_conf_users(fo_engine_pipeline_conf(self.e))

    def attach(self, Worker worker):
        """Makes this engine the worker's processing hook."""
        check(fo_worker_set_hook(worker.w, <fo_burst_hook_t>fo_engine_burst, self.e), "cannot attach the flow engine")
        worker.hook_owner = self

    def set_shard(self, uint16_t index, list inboxes, uint16_t steer_pattern):
        """Makes this engine shard `index` of len(inboxes): it hands packets whose flows another shard
        owns to that shard's Inbox."""
        cdef void *rings[64]
        if not 1 <= len(inboxes) <= 64:
            raise FlowOSError(f"1..64 shards, not {len(inboxes)}")
        for i, inbox in enumerate(inboxes):
            rings[i] = <void *><size_t>(<Inbox?>inbox).address()
        check(fo_engine_set_shard(self.e, index, len(inboxes), rings, steer_pattern), "cannot make the engine a shard")

    def set_txq(self, uint16_t port, uint16_t queue, TxLock lock=None):
        """Sends on `queue` of `port`, under `lock` if other shards share it."""
        check(fo_engine_set_txq(self.e, port, queue, lock.lock if lock is not None else NULL),
              f"cannot send on port {port}")

    def set_relay(self, Worker relay, list inboxes, uint16_t steer_pattern):
        """Makes this engine the relay's (docs/architecture.md, "Worker processes"): it owns no flow
        and hands every packet to its worker process's inbox, draining the relay's outboxes while it
        waits for room."""
        cdef void *rings[64]
        if not 1 <= len(inboxes) <= 64:
            raise FlowOSError(f"1..64 shards, not {len(inboxes)}")
        for i, inbox in enumerate(inboxes):
            rings[i] = <void *><size_t>(<Inbox?>inbox).address()
        check(fo_engine_set_shard(self.e, len(inboxes), len(inboxes), rings, steer_pattern), "cannot make the engine a relay")
        check(fo_engine_set_handoff_wait(self.e, fo_worker_drain_outboxes, <void *><size_t>relay.address()),
              "cannot make the engine a relay")
        self.attach(relay)

    def set_tx_ring(self, uint16_t port, Inbox outbox):
        """Sends what goes out on port into outbox (a worker process's, the relay sends it)."""
        check(fo_engine_set_tx_ring(self.e, port, <void *><size_t>outbox.address()), f"cannot send on port {port}")

    def attach_inbox(self, Worker worker, WorkerGroup group, uint16_t member, Inbox inbox):
        """The worker joins group as `member` and drains inbox (packets other shards handed over)
        into this engine."""
        worker.join_group(group, member, inbox, <size_t>fo_engine_inbox, <size_t>self.e, self)

    def address(self):
        """The fo_engine, for the control mailbox (flowos.boundary._control)."""
        return <size_t>self.e

    def shutdown(self):
        """Ends every flow (sending what they held). Only once the worker has stopped."""
        fo_engine_shutdown(self.e)

    def stats(self):
        return stats_of(self.e, self.keep_budget)

    def shard_address(self):
        """Where this engine is: a worker process's, for the primary to read its counters with
        stats_at while it runs (DPDK maps the shared memory at the same address in every process)."""
        return <size_t>self.e

    def definition_stats(self, uint16_t definition):
        cdef fo_def_stats s
        check(fo_engine_read_def_stats(self.e, definition, &s), "no such flow definition")
        return {"packets": s.packets, "bytes": s.bytes, "flows_created": s.flows_created,
                "flows_active": s.flows_active}

    def processor_stats(self, uint16_t definition, uint16_t processor):
        """A processor's calls, packets and time in process() (busy_ns), any tier; safe while running."""
        cdef fo_proc_stats s
        check(fo_engine_read_proc_stats(self.e, definition, processor, &s), "no such processor")
        return {"calls": s.calls, "packets": s.packets, "busy_ns": s.busy_ns}

    def current_call(self):
        """(definition (processor_at's), processor, "process", "flow_start" or "flow_end", seconds so far, a token
        that tells two calls apart) of the processor callback the worker is in now, any tier, or
        None; safe while running."""
        cdef fo_call c
        if not fo_engine_current_call(self.e, &c):
            return None
        return c.def_, c.proc, CALLBACKS[<int>c.what], c.ns / 1e9, c.began

    def report(self, uint16_t definition, uint16_t processor):
        """What a processor reports (parsed JSON), or None if it has nothing to say."""
        entry = self.processors[definition][processor]
        if not isinstance(entry, str):
            return entry.stats()
        cdef char small[1]
        cdef int needed = fo_engine_processor_report(self.e, definition, processor, small, 0)
        if needed < 0:
            return None
        cdef char *buf = <char *>malloc(needed + 1)
        if buf == NULL:
            raise MemoryError()
        try:
            fo_engine_processor_report(self.e, definition, processor, buf, needed + 1)
            return json.loads(buf[:needed].decode())
        finally:
            free(buf)

    def teardown(self):
        """Calls every processor's teardown (once): before the final report, which counts its faults."""
        if self.e != NULL:
            fo_engine_teardown(self.e)

    def close(self):
        if self.e != NULL:
            fo_engine_free(self.e)
            self.e = NULL

    def __dealloc__(self):
        if self.e != NULL:
            import warnings
            warnings.warn("flow engine was not closed", ResourceWarning)
