/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_WORKER_H
#define FO_WORKER_H

#include <rte_common.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <rte_spinlock.h>

#include "fo_common.h"

/* One direction of forwarding: what is received on (rx_port, rx_queue) goes out on (tx_port, tx_queue). */
struct fo_route {
	uint16_t rx_port;
	uint16_t rx_queue;
	uint16_t tx_port;
	uint16_t tx_queue;
	rte_spinlock_t *tx_lock;   /* the TX queue is shared with other workers (fo_tx.h); NULL: its own */
	/* A finite source (a capture being replayed) and how many packets it will deliver. */
	uint8_t finite;
	uint64_t expected_rx;
};

/* Counters of one route. Written by the worker only; read with fo_worker_route_stats(). */
struct fo_route_stats {
	uint64_t rx_packets;
	uint64_t tx_packets;
	uint64_t tx_unsent;   /* the TX queue refused them: freed and counted here */
	uint64_t hook_kept;   /* taken by the processing hook (dropped, held or sent elsewhere) */
} __rte_cache_aligned;

/*
 * The processing seam, called once per received burst before TX. The hook owns pkts[0..n-1]:
 * it leaves the packets to send on the route compacted at the front of pkts and returns how
 * many there are; every other packet it frees, sends elsewhere or keeps. No hook: forward all.
 * When nothing arrives, it is also called with n == 0 about once a millisecond (timers).
 */
typedef uint16_t (*fo_burst_hook_t)(void *ctx, const struct fo_route *route,
				    struct rte_mbuf **pkts, uint16_t n);

/* Packets another worker handed to this one (its inbox), to process: the hook owns them. */
typedef void (*fo_inbox_hook_t)(void *ctx, struct rte_mbuf **pkts, uint16_t n);

enum fo_stop_reason {
	FO_STOP_NONE = 0,
	FO_STOP_REQUESTED,     /* fo_worker_request_stop() */
	FO_STOP_PACKET_LIMIT,  /* received packet_limit packets */
	FO_STOP_INPUT_DONE,    /* every source was finite and has been read to its end */
};

struct fo_worker_conf {
	uint16_t burst;              /* packets per rx burst, 1..FO_MAX_BURST */
	uint64_t packet_limit;       /* stop after receiving this many packets; 0 = no limit */
	uint32_t source_idle_ms;     /* a finite source silent this long before its expected count is finished (short) */
	fo_burst_hook_t hook;        /* NULL: forward everything */
	void *hook_ctx;
};

struct fo_worker;

/*
 * The workers of one run stop together. Each stops receiving when the group is told to stop,
 * when the group's packet limit is reached, or when its own finite sources are done; it ends once
 * no worker of the group receives any more and its inbox is empty, so nothing handed over is
 * left behind. A worker alone is a group of one.
 */
struct fo_worker_group;

/* Returns a group of `workers` workers (1..FO_MAX_WORKERS), or NULL with rte_errno set. */
struct fo_worker_group *fo_worker_group_create(uint16_t workers, uint64_t packet_limit);
void fo_worker_group_free(struct fo_worker_group *g);

/*
 * A group whose workers are in several processes (docs/architecture.md, "Worker processes"): the
 * primary creates it in a memzone of this name, each worker process looks it up (NULL with
 * rte_errno set). Only its creator frees it. A member in another process leaves the group once it
 * has sent its last packet (after its loop ended and its flows were ended): a worker with outboxes
 * (the relay) ends only once every other member has left and its outboxes are empty.
 */
struct fo_worker_group *fo_worker_group_create_shared(const char *name, uint16_t workers, uint64_t packet_limit);
struct fo_worker_group *fo_worker_group_lookup(const char *name);
void fo_worker_group_leave(struct fo_worker_group *g);
/* Members that have left the group. */
uint16_t fo_worker_group_left(const struct fo_worker_group *g);
/*
 * Counts member out of the group's receivers, once: what its worker does when it stops receiving,
 * and what the primary does for a worker process that died receiving and is not replaced. A
 * replacement (a restarted worker process, a worker of the same member) receives only while its
 * predecessor was still counted in. Returns whether this call counted it out.
 */
bool fo_worker_group_stop_receiving(struct fo_worker_group *g, uint16_t member);
/*
 * Gives back the slots a dead process had claimed on its end of a single-producer (consumer_end
 * false) or single-consumer (true) ring: head back to tail. Only while nothing else uses that end.
 * Returns how many slots were claimed.
 */
unsigned int fo_ring_reset_abandoned_end(struct rte_ring *r, bool consumer_end);

/* Returns a worker with no routes, or NULL with rte_errno set. conf->packet_limit: ignored in a group (the group's). */
struct fo_worker *fo_worker_create(const struct fo_worker_conf *conf, int socket_id);

/*
 * Makes the worker group g's member `member` (0..workers-1), with an inbox (NULL: none) drained
 * into hook. A member with no routes, inbox or outboxes only waits for the group's end (sleeping).
 * Before launch; 0, -EINVAL or -EBUSY.
 */
int fo_worker_join_group(struct fo_worker *w, struct fo_worker_group *g, uint16_t member, struct rte_ring *inbox,
			 fo_inbox_hook_t hook, void *ctx);

/*
 * Adds a route. Its TX port may be one only the primary process has attached (a worker process's
 * route to a port the relay serves): its hook then sends everything through outboxes, and what it
 * leaves to send there is refused (tx_unsent). Returns 0, -ENOSPC past FO_MAX_ROUTES, -EINVAL for
 * an invalid RX port, -EBUSY while running.
 */
int fo_worker_add_route(struct fo_worker *w, const struct fo_route *route);

#define FO_MAX_OUTBOXES 256

/*
 * Makes the worker (the relay of worker processes) send what the ring holds on (port, queue),
 * under lock if not NULL, on each pass of its loop. Its route stats count what was sent and what
 * the port refused (tx_unsent, freed). Returns 0, -ENOSPC past FO_MAX_OUTBOXES, -EINVAL, -EBUSY.
 */
int fo_worker_add_outbox(struct fo_worker *w, struct rte_ring *ring, uint16_t port, uint16_t queue,
			 rte_spinlock_t *lock);

/* One pass over the worker's outboxes (its loop's step, and what its engine does while it waits
 * for room in an inbox: fo_engine_set_handoff_wait). Returns the packets taken from them. */
unsigned int fo_worker_drain_outboxes(void *worker);

/* Outbox i's counters (tx_packets, tx_unsent). Returns 0 or -EINVAL. */
int fo_worker_outbox_stats(const struct fo_worker *w, uint16_t outbox, struct fo_route_stats *out);

/*
 * Called on the worker's lcore thread when its loop starts and when it ends: where a
 * processing tier sets up what it needs per thread (the Python tier: one thread state).
 */
typedef void (*fo_thread_hook_t)(void *ctx);

/* Sets the thread hooks of a worker that is not running (either may be NULL). Returns 0 or -EBUSY. */
int fo_worker_set_thread_hooks(struct fo_worker *w, fo_thread_hook_t start, fo_thread_hook_t stop, void *ctx);

/* Sets the processing hook of a worker that is not running. Returns 0 or -EBUSY. */
int fo_worker_set_hook(struct fo_worker *w, fo_burst_hook_t hook, void *ctx);

/* Starts the poll loop on a worker lcore. Returns 0 or -errno. */
int fo_worker_launch(struct fo_worker *w, unsigned int lcore_id);

/* Asks the loop, and every other of its group, to end after its current burst; returns at once.
 * Any thread may call it, the hook too (a processor's fault under on_error: stop): no route is
 * polled after that burst (the inbox is still drained). */
void fo_worker_request_stop(struct fo_worker *w);

/* Nonzero while the poll loop runs (it may have ended by itself: see fo_worker_stop_reason). */
int fo_worker_running(const struct fo_worker *w);

/* Waits for the loop to end. Returns the loop's return value (0) or -errno. */
int fo_worker_join(struct fo_worker *w);

enum fo_stop_reason fo_worker_stop_reason(const struct fo_worker *w);

/* Finite sources that went silent before delivering the packets they were expected to. */
uint16_t fo_worker_short_sources(const struct fo_worker *w);

/* Loop iterations, and those that found packets (RX or inbox): the worker's load. */
void fo_worker_polls(const struct fo_worker *w, uint64_t *polls, uint64_t *busy);

/* A consistent-enough copy of a route's counters, safe to call while the loop runs. Returns 0 or -EINVAL. */
int fo_worker_route_stats(const struct fo_worker *w, uint16_t route, struct fo_route_stats *out);

/* Frees a worker that is not running. */
void fo_worker_free(struct fo_worker *w);

/* The poll loop itself, as an lcore_function_t: usable with rte_eal_remote_launch or on the calling lcore. */
int fo_worker_loop(void *worker);

#endif /* FO_WORKER_H */
