# cython: language_level=3
"""Operator control over DPDK telemetry: FlowOS's commands on the EAL's telemetry socket
(<runtime dir>/dpdk_telemetry.v2), and the mailbox that runs on the worker what must run there.

DPDK's telemetry thread (one per connected client) calls on_command, which takes the GIL, asks
the Python handler (flowos.runtime.control.Commands.handle) for a flat dict and copies it into the
reply. The commands are registered once per process (DPDK 22.11 cannot unregister them), so a
guard lets a run end while a request is under way: stop_serving() waits for it, and later
requests get an error without touching Python.
"""
import socket

from cpython.ref cimport PyObject
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport free, malloc

from flowos.includes.dpdk cimport *
from flowos.includes.fo cimport fo_burst_hook_t, fo_worker_set_hook
from flowos.includes.fo_control cimport *
from flowos.includes.fo_engine cimport fo_engine
from flowos.boundary._runtime cimport Worker, check

from flowos.errors import FlowOSError

cdef extern from "<pthread.h>" nogil:
    ctypedef struct pthread_mutex_t:
        pass
    int pthread_mutex_init(pthread_mutex_t *m, const void *attr)
    int pthread_mutex_lock(pthread_mutex_t *m)
    int pthread_mutex_unlock(pthread_mutex_t *m)

cdef extern from "<errno.h>":
    int ETIMEDOUT, EBUSY, ESHUTDOWN, ENOTSUP, EINVAL, E2BIG

ERRORS = {ETIMEDOUT: "timeout", EBUSY: "busy (an earlier request is still being served)",
          ESHUTDOWN: "the run is ending", ENOTSUP: "takes no messages", EINVAL: "no such processor",
          E2BIG: "message too long"}
TCP_STATES = ("none", "syn_sent", "syn_recv", "established", "closing", "closed")
MAX_FLOWS = FO_CONTROL_MAX_FLOWS
MAX_MESSAGE = FO_CONTROL_MSG_LEN - 1       # bytes
cdef enum:
    REPLY_LEN = 16384


# --- the telemetry side -----------------------------------------------------------------------

cdef pthread_mutex_t guard
pthread_mutex_init(&guard, NULL)
cdef bint active = False                    # a handler is set (under guard)
_handler = None
_registered = set()


def register(dict commands):
    """Registers each command (name -> help) with telemetry, once per process."""
    for name, help_text in commands.items():
        if name in _registered:
            continue
        ret = rte_telemetry_register_cmd(name.encode(), on_command, help_text.encode()[:RTE_TEL_MAX_STRING_LEN - 1])
        check(ret, f"cannot register telemetry command {name}")
        _registered.add(name)


def serve(handler):
    """From now on, handler(command, params) -> flat dict answers the registered commands."""
    global _handler, active
    _handler = handler
    with nogil:
        pthread_mutex_lock(&guard)
        active = True
        pthread_mutex_unlock(&guard)


def stop_serving():
    """Waits for a request under way, then answers later ones with an error. Idempotent."""
    global _handler, active
    with nogil:
        pthread_mutex_lock(&guard)
        active = False
        pthread_mutex_unlock(&guard)
    _handler = None


cdef int on_command(const char *cmd, const char *params, rte_tel_data *d) noexcept nogil:
    rte_tel_data_start_dict(d)
    pthread_mutex_lock(&guard)
    if active:
        with gil:
            answer(cmd, params, d)
    else:
        rte_tel_data_add_dict_string(d, "error", "FlowOS is not running (starting, or ending)")
    pthread_mutex_unlock(&guard)
    return 0


cdef void answer(const char *cmd, const char *params, rte_tel_data *d) noexcept:
    try:
        text = params.decode("utf-8", "replace") if params != NULL else ""
        fill(d, _handler(cmd.decode(), text))
    except BaseException as e:
        rte_tel_data_add_dict_string(d, "error", f"{type(e).__name__}: {e}".encode()[:RTE_TEL_MAX_STRING_LEN - 1])


cdef int fill(rte_tel_data *d, dict flat) except -1:
    """Copies a flat dict (values: str, int, or lists of either; see flowos.runtime.control.flatten) into d."""
    cdef rte_tel_data *array
    for key, value in flat.items():
        name = key.encode()
        if isinstance(value, str):
            rte_tel_data_add_dict_string(d, name, value.encode())
        elif isinstance(value, int):
            if value >= 0:
                rte_tel_data_add_dict_u64(d, name, value)
            else:
                rte_tel_data_add_dict_int(d, name, value)
        elif isinstance(value, list):
            array = rte_tel_data_alloc()
            if array == NULL:
                raise MemoryError()
            if all(isinstance(v, int) and v >= 0 for v in value):
                rte_tel_data_start_array(array, RTE_TEL_U64_VAL)
                for v in value:
                    rte_tel_data_add_array_u64(array, v)
            elif all(isinstance(v, int) for v in value):
                rte_tel_data_start_array(array, RTE_TEL_INT_VAL)
                for v in value:
                    rte_tel_data_add_array_int(array, v)
            else:
                rte_tel_data_start_array(array, RTE_TEL_STRING_VAL)
                for v in value:
                    rte_tel_data_add_array_string(array, str(v).encode())
            if rte_tel_data_add_dict_container(d, name, array, 0) < 0:
                rte_tel_data_free(array)
    return 0


# --- the worker side --------------------------------------------------------------------------

class ControlError(FlowOSError):
    """A request the worker did not answer: timeout, busy, shutting down, bad target."""

    def __init__(self, int errno):
        super().__init__(ERRORS.get(errno) or rte_strerror(errno).decode(), errno)


cdef str address(const uint8_t *a, uint8_t family):
    if family == 4:
        return socket.inet_ntop(socket.AF_INET, a[:4])
    if family == 6:
        return socket.inet_ntop(socket.AF_INET6, a[:16])
    return "-"


cdef class Control:
    """The mailbox of a running engine: its hook wraps the engine's on the worker."""
    cdef fo_control *c
    cdef bint owned
    cdef readonly object engine

    @staticmethod
    def at(size_t address):
        """Another process's mailbox (a worker process's, in DPDK's shared memory: address()), to
        ask; that process closes and frees it, not this object."""
        cdef Control self = Control.__new__(Control)
        self.c = <fo_control *>address
        return self

    def address(self):
        return <size_t>self.c

    @staticmethod
    def attach(engine, Worker worker):
        """Makes the mailbox the worker's hook, in place of the engine (which it calls)."""
        cdef Control self = Control.__new__(Control)
        self.c = fo_control_create(<fo_engine *><size_t>engine.address())
        if self.c == NULL:
            check(-rte_errno, "cannot create the control mailbox")
        self.engine = engine
        self.owned = True
        ret = fo_worker_set_hook(worker.w, <fo_burst_hook_t>fo_control_burst, self.c)
        if ret < 0:
            self.close()
            check(ret, "cannot attach the control mailbox")
        worker.hook_owner = self
        return self

    def flows(self, uint32_t top, unsigned int timeout_ms=2000):
        """(live flows, the `top` with the most bytes as dicts, largest first)."""
        if self.c == NULL:
            raise ControlError(ESHUTDOWN)
        cdef fo_flow_info infos[FO_CONTROL_MAX_FLOWS]
        cdef uint64_t live = 0
        cdef int n
        with nogil:
            n = fo_control_flows(self.c, infos, top, &live, timeout_ms)
        if n < 0:
            raise ControlError(-n)
        out = []
        for i in range(n):
            f = &infos[i]
            lo, hi = address(f.key.addr_lo, f.key.family), address(f.key.addr_hi, f.key.family)
            out.append({"def": f.key.defn, "proto": f.key.proto,
                        "src": lo if f.opener_is_lo else hi, "sport": f.key.port_lo if f.opener_is_lo else f.key.port_hi,
                        "dst": hi if f.opener_is_lo else lo, "dport": f.key.port_hi if f.opener_is_lo else f.key.port_lo,
                        "tcp_state": TCP_STATES[f.tcp_state] if f.tcp_state < len(TCP_STATES) else str(f.tcp_state),
                        "packets": [f.packets[0], f.packets[1]], "bytes": [f.bytes[0], f.bytes[1]],
                        "age_ms": f.age_ns // 1000000, "idle_ms": f.idle_ns // 1000000})
        return live, out

    def message(self, uint16_t definition, uint16_t processor, str text, unsigned int timeout_ms=2000):
        """(what the processor's message() returned: its reply's length or -errno, its reply text).
        Raises ControlError when the worker did not deliver it."""
        if self.c == NULL:
            raise ControlError(ESHUTDOWN)
        cdef bytes msg = text.encode()
        if b"\0" in msg:
            raise ValueError("a message cannot hold a NUL character")
        if len(msg) > MAX_MESSAGE:
            raise ControlError(E2BIG)
        cdef const char *m = msg
        cdef char *reply = <char *>malloc(REPLY_LEN)
        cdef int ret
        if reply == NULL:
            raise MemoryError()
        try:
            with nogil:
                ret = fo_control_message(self.c, definition, processor, m, reply, REPLY_LEN, timeout_ms)
            if ret in (-ETIMEDOUT, -EBUSY, -ESHUTDOWN, -EINVAL, -ENOTSUP, -E2BIG) and reply[0] == 0:
                raise ControlError(-ret)
            return ret, reply.decode("utf-8", "replace")
        finally:
            free(reply)

    def switch(self, bint migrate=False, unsigned int timeout_ms=10000):
        """The worker switches its engine to the configuration staged there, between two bursts
        (docs/reload.md); returns once it did. Raises ControlError when it did not (nothing changed)."""
        if self.c == NULL:
            raise ControlError(ESHUTDOWN)
        cdef int ret
        with nogil:
            ret = fo_control_switch(self.c, migrate, timeout_ms)
        if ret < 0:
            raise ControlError(-ret)

    def stop(self):
        """Refuses requests from now on and wakes those waiting. Before the worker stops."""
        if self.c != NULL and self.owned:
            with nogil:
                fo_control_close(self.c)

    def close(self):
        """Frees the mailbox: once the worker has stopped."""
        if self.c != NULL and self.owned:
            fo_control_close(self.c)
            fo_control_free(self.c)
        self.c = NULL

    def __dealloc__(self):
        if self.c != NULL and self.owned:
            import warnings
            warnings.warn("control mailbox was not closed", ResourceWarning)
