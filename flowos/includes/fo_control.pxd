# Declarations of the control mailbox (ext/include/flowos/fo_control.h); the wrapper is _control.pyx.
from libc.stdint cimport uint8_t, uint16_t, uint32_t, uint64_t

from flowos.includes.fo cimport fo_burst_hook_t
from flowos.includes.fo_engine cimport fo_engine
from flowos.includes.fo_processor cimport fo_flow_key


cdef extern from "flowos/fo_control.h" nogil:
    enum: FO_CONTROL_MAX_FLOWS
    enum: FO_CONTROL_MSG_LEN

    struct fo_flow_info:
        fo_flow_key key
        uint8_t opener_is_lo
        uint8_t tcp_state
        uint64_t packets[2]
        uint64_t bytes[2]
        uint64_t age_ns
        uint64_t idle_ns

    struct fo_control:
        pass

    fo_control *fo_control_create(fo_engine *e)
    uint16_t fo_control_burst(void *ctl, const void *route, void **pkts, uint16_t n)
    int fo_control_flows(fo_control *c, fo_flow_info *out, uint32_t max, uint64_t *live, unsigned int timeout_ms)
    int fo_control_message(fo_control *c, uint16_t d, uint16_t proc, const char *msg, char *reply, size_t len,
                           unsigned int timeout_ms)
    int fo_control_switch(fo_control *c, int migrate, unsigned int timeout_ms)
    void fo_control_close(fo_control *c)
    void fo_control_free(fo_control *c)
