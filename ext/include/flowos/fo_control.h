/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_CONTROL_H
#define FO_CONTROL_H

/*
 * The control mailbox: what an operator asks of a running engine that must run on the worker's
 * lcore, between bursts, never beside a processor call: a listing of the live flows, a message
 * to a processor. Another thread (DPDK's telemetry thread) posts one request at a time and waits
 * for its answer, bounded; the worker serves it from its processing hook, which wraps the
 * engine's (fo_control_burst): after a burst, or in the empty call it gets about every 1 ms.
 */
#include <stddef.h>
#include <stdint.h>

#include "fo_engine.h"
#include "fo_flow.h"
#include "fo_worker.h"

#define FO_CONTROL_MAX_FLOWS 64      /* flows per listing, at most */
#define FO_CONTROL_MSG_LEN 1024      /* a message, with its NUL */

/* One live flow, as a listing shows it. */
struct fo_flow_info {
	struct fo_flow_key key;
	uint8_t opener_is_lo;
	uint8_t tcp_state;           /* enum fo_tcp_state */
	uint64_t packets[2];         /* by direction: 0 from the side that opened the flow */
	uint64_t bytes[2];
	uint64_t age_ns;             /* engine clock: since its first packet */
	uint64_t idle_ns;            /* ... since its last */
};

struct fo_control;

/*
 * Returns a mailbox for an engine that is built, or NULL with rte_errno set.
 */
struct fo_control *fo_control_create(struct fo_engine *e);

/* The worker's processing hook (ctx: the fo_control): the engine's burst, then a pending request. */
uint16_t fo_control_burst(void *ctl, const struct fo_route *route, struct rte_mbuf **pkts, uint16_t n);

/*
 * The `max` live flows with the most bytes (both directions), largest first, into out; *live
 * gets how many flows the scan found live. The worker scans the table a slice per call, so on a
 * busy engine the listing is not one instant's. Returns the number listed, or -errno:
 * -ETIMEDOUT (no answer within timeout_ms), -EBUSY (an earlier request that timed out is still
 * being served), -ESHUTDOWN (the mailbox is closed: the run is ending).
 */
int fo_control_flows(struct fo_control *c, struct fo_flow_info *out, uint32_t max, uint64_t *live,
		     unsigned int timeout_ms);

/*
 * Delivers msg to processor `proc` of definition `def` (its ops->message, on the worker) and
 * copies its reply into reply (len bytes, always NUL-terminated). Returns what the processor's
 * message() returned (the reply's length, which may exceed len: then it was cut; or -errno, with
 * a reason in reply when it gave one), or -ENOTSUP (the processor takes no messages), -EINVAL
 * (no such processor), or one of fo_control_flows' errors.
 */
int fo_control_message(struct fo_control *c, uint16_t def, uint16_t proc, const char *msg,
		       char *reply, size_t len, unsigned int timeout_ms);

/*
 * The worker switches its engine to the conf staged there (fo_engine_switch, docs/reload.md),
 * between two bursts. Returns fo_engine_switch's answer, or fo_control_flows' errors: with
 * -ETIMEDOUT the request was withdrawn before the worker took it (nothing changed) unless the
 * worker had begun it (then it completes: the caller asks fo_engine_generations, or waits).
 */
int fo_control_switch(struct fo_control *c, int migrate, unsigned int timeout_ms);

/* Refuses requests from now on and wakes those waiting (-ESHUTDOWN). Call before stopping the worker. */
void fo_control_close(struct fo_control *c);

/* Frees a closed mailbox once the worker has stopped. */
void fo_control_free(struct fo_control *c);

#endif /* FO_CONTROL_H */
