/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The poll loop: receive a burst, skip if empty, run the processing hook, send, free and count
 * what was not sent. Counters are written by the worker's lcore only and read by others with
 * relaxed atomic loads, which cost nothing extra on the writer's side.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>
#include <rte_memzone.h>
#include <rte_ring.h>

#include "flowos/fo_steer.h"
#include "flowos/fo_tx.h"
#include "flowos/fo_worker.h"

#define RELAXED_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define RELAXED_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
/* How long a member with nothing to poll sleeps between looks at the group's end: it shares its
 * CPU with others (the relay's lcore) and only its end waits on it. */
#define IDLE_MEMBER_SLEEP_US 1000
/* A worker that no longer receives (its captures read) and finds nothing in this many polls in a
 * row sleeps this long between polls: what others send through it (the relay's outboxes) or hand
 * it waits that much longer, and the CPU it may share goes to them. */
#define IDLE_SPINS 1024
#define IDLE_SLEEP_US 50

/* Where a finite source stands; private to the loop. */
struct source_progress {
	uint64_t silent_since;  /* TSC of the first empty poll in a row; 0 while receiving */
	bool finished;
};

struct fo_worker_group {
	uint16_t workers;
	uint16_t receiving;        /* workers still polling their routes: each counts itself out once */
	uint8_t stop;
	uint64_t packet_limit;     /* 0: none */
	uint64_t claimed;          /* packets workers may receive against the limit, or have */
	uint64_t received;
	uint16_t left;             /* members in other processes done sending (fo_worker_group_leave) */
	/* Per member: still counted in receiving. Exchanged to 0 once, by the member or for it (a dead
	 * worker process's, by the primary), so that no member is counted out twice. */
	uint8_t member_receiving[FO_MAX_WORKERS];
	const struct rte_memzone *mz;   /* a shared group's memzone; NULL: rte_malloc'd */
};

/* Where a relay sends what a worker process put in its outbox for a port. */
struct outbox {
	struct rte_ring *ring;
	uint16_t port, queue;
	rte_spinlock_t *lock;
};

struct fo_worker {
	struct fo_worker_conf conf;
	struct fo_worker_group *group;
	uint8_t own_group;         /* created with the worker (a group of one) */
	uint16_t member;           /* its index in the group */
	uint16_t n_routes;
	unsigned int lcore_id;
	uint8_t launched;
	uint8_t running;           /* written by the loop */
	uint32_t stop_reason;      /* written by the loop */
	uint16_t short_sources;    /* written by the loop */
	struct rte_ring *inbox;
	fo_inbox_hook_t inbox_hook;
	void *inbox_ctx;
	uint64_t polls, busy_polls;   /* written by the loop */
	struct fo_route routes[FO_MAX_ROUTES];
	struct fo_route_stats stats[FO_MAX_ROUTES];
	uint16_t n_outboxes;
	struct outbox outboxes[FO_MAX_OUTBOXES];
	struct fo_route_stats outbox_stats[FO_MAX_OUTBOXES];
	fo_thread_hook_t thread_start, thread_stop;
	void *thread_ctx;
};

static void
group_init(struct fo_worker_group *g, uint16_t workers, uint64_t packet_limit)
{
	g->workers = g->receiving = workers;
	memset(g->member_receiving, 1, workers);
	g->packet_limit = packet_limit;
}

struct fo_worker_group *
fo_worker_group_create(uint16_t workers, uint64_t packet_limit)
{
	struct fo_worker_group *g;

	if (workers == 0 || workers > FO_MAX_WORKERS) {
		rte_errno = EINVAL;
		return NULL;
	}
	g = rte_zmalloc("fo_worker_group", sizeof(*g), RTE_CACHE_LINE_SIZE);
	if (g == NULL) {
		rte_errno = ENOMEM;
		return NULL;
	}
	group_init(g, workers, packet_limit);
	return g;
}

void
fo_worker_group_free(struct fo_worker_group *g)
{
	if (g != NULL && g->mz != NULL)
		rte_memzone_free(g->mz);
	else
		rte_free(g);
}

struct fo_worker_group *
fo_worker_group_create_shared(const char *name, uint16_t workers, uint64_t packet_limit)
{
	const struct rte_memzone *mz;
	struct fo_worker_group *g;

	if (workers == 0 || workers > FO_MAX_WORKERS) {
		rte_errno = EINVAL;
		return NULL;
	}
	mz = rte_memzone_reserve(name, sizeof(*g), SOCKET_ID_ANY, 0);
	if (mz == NULL)
		return NULL;
	g = mz->addr;
	memset(g, 0, sizeof(*g));
	group_init(g, workers, packet_limit);
	g->mz = mz;
	return g;
}

struct fo_worker_group *
fo_worker_group_lookup(const char *name)
{
	const struct rte_memzone *mz = rte_memzone_lookup(name);

	return mz != NULL ? mz->addr : NULL;
}

void
fo_worker_group_leave(struct fo_worker_group *g)
{
	/* Release: what the member sent is in its outboxes before the relay sees it gone. */
	__atomic_fetch_add(&g->left, 1, __ATOMIC_RELEASE);
}

uint16_t
fo_worker_group_left(const struct fo_worker_group *g)
{
	return __atomic_load_n(&g->left, __ATOMIC_ACQUIRE);
}

bool
fo_worker_group_stop_receiving(struct fo_worker_group *g, uint16_t member)
{
	if (member >= g->workers || !__atomic_exchange_n(&g->member_receiving[member], 0, __ATOMIC_ACQ_REL))
		return false;
	/* Release: what the member handed over is in the inboxes before others see it stop. */
	__atomic_fetch_sub(&g->receiving, 1, __ATOMIC_RELEASE);
	return true;
}

/*
 * A process killed inside an enqueue or dequeue leaves its end of the ring with head past tail:
 * it moved the head (claimed the slots) and died before publishing the tail. The next process on
 * that end would start from the head, and its tail update would publish the dead one's slots:
 * stale pointers in an outbox (the relay would send mbufs already sent), or, in an inbox, slots
 * skipped (their mbufs leaked). DPDK has no call for this; struct rte_ring's head and tail are
 * public (rte_ring_core.h). Moving the head back to the tail gives the claimed slots back: what
 * the dead consumer had not finished taking is taken again, what the dead producer had not
 * finished writing was never sent. Only for a single-producer or single-consumer end that nobody
 * else touches meanwhile.
 */
unsigned int
fo_ring_reset_abandoned_end(struct rte_ring *r, bool consumer_end)
{
	struct rte_ring_headtail *ht = consumer_end ? &r->cons : &r->prod;
	uint32_t tail = __atomic_load_n(&ht->tail, __ATOMIC_ACQUIRE);
	uint32_t claimed = ht->head - tail;

	__atomic_store_n(&ht->head, tail, __ATOMIC_RELEASE);
	return claimed;
}

struct fo_worker *
fo_worker_create(const struct fo_worker_conf *conf, int socket_id)
{
	struct fo_worker *w;

	if (conf == NULL || conf->burst == 0 || conf->burst > FO_MAX_BURST) {
		rte_errno = EINVAL;
		return NULL;
	}
	w = rte_zmalloc_socket("fo_worker", sizeof(*w), RTE_CACHE_LINE_SIZE, socket_id);
	if (w == NULL) {
		rte_errno = ENOMEM;
		return NULL;
	}
	w->group = fo_worker_group_create(1, conf->packet_limit);
	if (w->group == NULL) {
		rte_free(w);
		return NULL;
	}
	w->own_group = 1;
	w->conf = *conf;
	return w;
}

int
fo_worker_join_group(struct fo_worker *w, struct fo_worker_group *g, uint16_t member, struct rte_ring *inbox,
		     fo_inbox_hook_t hook, void *ctx)
{
	if (RELAXED_LOAD(&w->running) || w->launched)
		return -EBUSY;
	if (g == NULL || member >= g->workers || (inbox != NULL && hook == NULL))
		return -EINVAL;
	if (w->own_group)
		fo_worker_group_free(w->group);
	w->own_group = 0;
	w->group = g;
	w->member = member;
	w->inbox = inbox;
	w->inbox_hook = hook;
	w->inbox_ctx = ctx;
	return 0;
}

int
fo_worker_add_route(struct fo_worker *w, const struct fo_route *route)
{
	if (RELAXED_LOAD(&w->running))
		return -EBUSY;
	if (w->n_routes == FO_MAX_ROUTES)
		return -ENOSPC;
	/* The TX port may be one only the primary process has (fo_worker.h): not checked here. */
	if (!rte_eth_dev_is_valid_port(route->rx_port) || route->tx_port >= RTE_MAX_ETHPORTS)
		return -EINVAL;
	w->routes[w->n_routes++] = *route;
	return 0;
}

int
fo_worker_add_outbox(struct fo_worker *w, struct rte_ring *ring, uint16_t port, uint16_t queue,
		     rte_spinlock_t *lock)
{
	struct outbox *o;

	if (RELAXED_LOAD(&w->running))
		return -EBUSY;
	if (w->n_outboxes == FO_MAX_OUTBOXES)
		return -ENOSPC;
	if (ring == NULL || !rte_eth_dev_is_valid_port(port))
		return -EINVAL;
	o = &w->outboxes[w->n_outboxes++];
	o->ring = ring;
	o->port = port;
	o->queue = queue;
	o->lock = lock;
	return 0;
}

/*
 * Called on an empty poll of a finite source: it is finished once it has delivered what it
 * was expected to, or once it has been silent for source_idle_ms (a short source).
 */
static bool
source_finished(struct fo_worker *w, uint16_t i, struct source_progress *p)
{
	uint64_t now;

	if (p->finished)
		return true;
	if (w->stats[i].rx_packets >= w->routes[i].expected_rx) {
		p->finished = true;
		return true;
	}
	now = rte_rdtsc();
	if (p->silent_since == 0) {
		p->silent_since = now;
		return false;
	}
	if (now - p->silent_since < rte_get_tsc_hz() / 1000 * w->conf.source_idle_ms)
		return false;
	p->finished = true;
	RELAXED_STORE(&w->short_sources, w->short_sources + 1);
	return true;
}

static inline void
count(uint64_t *counter, uint64_t n)
{
	RELAXED_STORE(counter, *counter + n);
}

/*
 * How many packets the next receive may take under the group's limit (up to burst): claimed
 * before receiving, so that the group never receives more than the limit; 0 while other
 * workers hold the rest of it.
 */
static uint16_t
claim(struct fo_worker_group *g, uint16_t burst)
{
	uint64_t claimed = __atomic_load_n(&g->claimed, __ATOMIC_RELAXED), want;

	do {
		if (claimed >= g->packet_limit)
			return 0;
		want = RTE_MIN((uint64_t)burst, g->packet_limit - claimed);
	} while (!__atomic_compare_exchange_n(&g->claimed, &claimed, claimed + want, false, __ATOMIC_RELAXED,
					      __ATOMIC_RELAXED));
	return (uint16_t)want;
}

/* Receives, runs the hook and sends on one route; returns how many packets came. */
static uint16_t
poll_route(struct fo_worker *w, uint16_t i, struct rte_mbuf **pkts, uint16_t want)
{
	const struct fo_route *r = &w->routes[i];
	struct fo_route_stats *s = &w->stats[i];
	const struct fo_txq txq = { .queue = r->tx_queue, .lock = r->tx_lock };
	uint16_t nb_rx, nb_tx, nb_sent;

	nb_rx = rte_eth_rx_burst(r->rx_port, r->rx_queue, pkts, want);
	if (nb_rx == 0)
		return 0;
	count(&s->rx_packets, nb_rx);
	nb_tx = nb_rx;
	if (w->conf.hook != NULL) {
		nb_tx = w->conf.hook(w->conf.hook_ctx, r, pkts, nb_rx);
		count(&s->hook_kept, nb_rx - nb_tx);
	}
	nb_sent = fo_tx_burst(r->tx_port, &txq, pkts, nb_tx);
	count(&s->tx_packets, nb_sent);
	if (unlikely(nb_sent < nb_tx)) {
		rte_pktmbuf_free_bulk(&pkts[nb_sent], nb_tx - nb_sent);
		count(&s->tx_unsent, nb_tx - nb_sent);
	}
	return nb_rx;
}

/* One pass over the routes; returns whether anything came, and sets *reason when receiving is over. */
static bool
receive(struct fo_worker *w, uint16_t n_finite, struct source_progress *progress, struct rte_mbuf **pkts,
	enum fo_stop_reason *reason)
{
	struct fo_worker_group *g = w->group;
	uint16_t finished = 0, i;
	bool received = false;

	for (i = 0; i < w->n_routes; i++) {
		uint16_t want = w->conf.burst, nb_rx;

		if (g->packet_limit != 0) {
			if (__atomic_load_n(&g->received, __ATOMIC_RELAXED) >= g->packet_limit) {
				*reason = FO_STOP_PACKET_LIMIT;
				return received;
			}
			want = claim(g, want);
			if (want == 0)
				continue;
		}
		nb_rx = poll_route(w, i, pkts, want);
		if (g->packet_limit != 0) {
			__atomic_fetch_sub(&g->claimed, want - nb_rx, __ATOMIC_RELAXED);
			__atomic_fetch_add(&g->received, nb_rx, __ATOMIC_RELAXED);
		}
		if (nb_rx == 0) {
			if (w->routes[i].finite)
				finished += source_finished(w, i, &progress[i]);
			continue;
		}
		progress[i].silent_since = 0;
		received = true;
		/* A processor's fault may have asked to stop (on_error: stop): no further burst. */
		if (unlikely(RELAXED_LOAD(&g->stop))) {
			*reason = FO_STOP_REQUESTED;
			return received;
		}
	}
	if (w->n_routes > 0 && n_finite == w->n_routes && finished == n_finite)
		*reason = FO_STOP_INPUT_DONE;
	return received;
}

unsigned int
fo_worker_drain_outboxes(void *worker)
{
	struct fo_worker *w = worker;
	struct rte_mbuf *pkts[FO_MAX_BURST];
	unsigned int moved = 0;
	uint16_t i;

	for (i = 0; i < w->n_outboxes; i++) {
		const struct outbox *o = &w->outboxes[i];
		const struct fo_txq txq = { .queue = o->queue, .lock = o->lock };
		struct fo_route_stats *s = &w->outbox_stats[i];
		uint16_t n, sent;

		n = (uint16_t)rte_ring_sc_dequeue_burst(o->ring, (void **)pkts, FO_MAX_BURST, NULL);
		if (n == 0)
			continue;
		moved += n;
		sent = fo_tx_burst(o->port, &txq, pkts, n);
		count(&s->tx_packets, sent);
		if (unlikely(sent < n)) {
			rte_pktmbuf_free_bulk(&pkts[sent], n - sent);
			count(&s->tx_unsent, n - sent);
		}
	}
	return moved;
}

/* Drains up to a burst from the inbox into its hook; returns whether anything came. */
static bool
drain_inbox(struct fo_worker *w, struct rte_mbuf **pkts)
{
	unsigned int n;

	if (w->inbox == NULL)
		return false;
	n = rte_ring_dequeue_burst(w->inbox, (void **)pkts, w->conf.burst, NULL);
	if (n == 0)
		return false;
	w->inbox_hook(w->inbox_ctx, pkts, (uint16_t)n);
	return true;
}

int
fo_worker_loop(void *arg)
{
	static const struct fo_route no_route;
	struct fo_worker *w = arg;
	struct fo_worker_group *g = w->group;
	struct source_progress progress[FO_MAX_ROUTES] = {0};
	struct rte_mbuf *pkts[FO_MAX_BURST];
	enum fo_stop_reason reason = FO_STOP_NONE;
	/* A restarted worker process's worker receives only if its predecessor was still counted in. */
	bool receiving = w->n_routes > 0 && __atomic_load_n(&g->member_receiving[w->member], __ATOMIC_ACQUIRE);
	/* Nothing to poll but the end (the relay when every port is polled by the worker processes). */
	const bool idle_member = w->inbox == NULL && w->n_outboxes == 0;
	uint16_t n_finite = 0, i;
	const uint64_t idle_period = rte_get_tsc_hz() / 1000;
	uint64_t last_idle_call = 0;
	unsigned int idle_polls = 0;

	for (i = 0; i < w->n_routes; i++)
		n_finite += w->routes[i].finite;
	if (!receiving)
		fo_worker_group_stop_receiving(g, w->member);
	if (w->thread_start != NULL)
		w->thread_start(w->thread_ctx);

	for (;;) {
		/* Loaded before the outboxes are drained: what a member sent before it left is in them now. */
		bool others_left = w->n_outboxes == 0 || fo_worker_group_left(g) >= g->workers - 1;
		bool got = false;

		if (receiving) {
			if (unlikely(RELAXED_LOAD(&g->stop)))
				reason = FO_STOP_REQUESTED;
			else
				got = receive(w, n_finite, progress, pkts, &reason);
			if (reason != FO_STOP_NONE) {
				receiving = false;
				fo_worker_group_stop_receiving(g, w->member);
			}
		}
		got |= drain_inbox(w, pkts);
		got |= fo_worker_drain_outboxes(w) > 0;
		count(&w->polls, 1);
		if (got)
			count(&w->busy_polls, 1);
		/* Nothing more can come once no worker receives: the inbox was empty after they stopped. */
		if (!receiving && !got && __atomic_load_n(&g->receiving, __ATOMIC_ACQUIRE) == 0 &&
		    (w->inbox == NULL || rte_ring_empty(w->inbox)) && others_left)
			break;
		if (!receiving && !got) {
			if (idle_member)
				rte_delay_us_sleep(IDLE_MEMBER_SLEEP_US);
			else if (++idle_polls > IDLE_SPINS)
				rte_delay_us_sleep(IDLE_SLEEP_US);
		} else {
			idle_polls = 0;
		}
		/* With nothing received, the hook still gets an empty call now and then: time goes on. */
		if (!got && w->conf.hook != NULL) {
			uint64_t now = rte_rdtsc();

			if (now - last_idle_call > idle_period) {
				last_idle_call = now;
				w->conf.hook(w->conf.hook_ctx, w->n_routes > 0 ? &w->routes[0] : &no_route, pkts, 0);
			}
		}
	}
	if (w->thread_stop != NULL)
		w->thread_stop(w->thread_ctx);
	RELAXED_STORE(&w->stop_reason, reason);
	__atomic_store_n(&w->running, 0, __ATOMIC_RELEASE);
	return 0;
}

int
fo_worker_set_thread_hooks(struct fo_worker *w, fo_thread_hook_t start, fo_thread_hook_t stop, void *ctx)
{
	if (RELAXED_LOAD(&w->running))
		return -EBUSY;
	w->thread_start = start;
	w->thread_stop = stop;
	w->thread_ctx = ctx;
	return 0;
}

int
fo_worker_set_hook(struct fo_worker *w, fo_burst_hook_t hook, void *ctx)
{
	if (RELAXED_LOAD(&w->running))
		return -EBUSY;
	w->conf.hook = hook;
	w->conf.hook_ctx = ctx;
	return 0;
}

int
fo_worker_launch(struct fo_worker *w, unsigned int lcore_id)
{
	int ret;

	if (RELAXED_LOAD(&w->running) || w->launched)
		return -EBUSY;
	if (w->own_group && w->n_routes == 0)
		return -EINVAL;
	if (w->own_group) {   /* a worker alone may run again */
		w->group->stop = 0;
		w->group->receiving = 1;
		w->group->member_receiving[0] = 1;
	}
	RELAXED_STORE(&w->stop_reason, FO_STOP_NONE);
	__atomic_store_n(&w->running, 1, __ATOMIC_RELEASE);
	ret = rte_eal_remote_launch(fo_worker_loop, w, lcore_id);
	if (ret != 0) {
		RELAXED_STORE(&w->running, 0);
		return ret;
	}
	w->lcore_id = lcore_id;
	w->launched = 1;
	return 0;
}

void
fo_worker_request_stop(struct fo_worker *w)
{
	RELAXED_STORE(&w->group->stop, 1);
}

int
fo_worker_running(const struct fo_worker *w)
{
	return __atomic_load_n(&w->running, __ATOMIC_ACQUIRE);
}

int
fo_worker_join(struct fo_worker *w)
{
	int ret;

	if (!w->launched)
		return 0;
	ret = rte_eal_wait_lcore(w->lcore_id);
	w->launched = 0;
	return ret;
}

enum fo_stop_reason
fo_worker_stop_reason(const struct fo_worker *w)
{
	return RELAXED_LOAD(&w->stop_reason);
}

uint16_t
fo_worker_short_sources(const struct fo_worker *w)
{
	return RELAXED_LOAD(&w->short_sources);
}

int
fo_worker_route_stats(const struct fo_worker *w, uint16_t route, struct fo_route_stats *out)
{
	const struct fo_route_stats *s;

	if (route >= w->n_routes)
		return -EINVAL;
	s = &w->stats[route];
	out->rx_packets = RELAXED_LOAD(&s->rx_packets);
	out->tx_packets = RELAXED_LOAD(&s->tx_packets);
	out->tx_unsent = RELAXED_LOAD(&s->tx_unsent);
	out->hook_kept = RELAXED_LOAD(&s->hook_kept);
	return 0;
}

int
fo_worker_outbox_stats(const struct fo_worker *w, uint16_t outbox, struct fo_route_stats *out)
{
	const struct fo_route_stats *s;

	if (outbox >= w->n_outboxes)
		return -EINVAL;
	s = &w->outbox_stats[outbox];
	memset(out, 0, sizeof(*out));
	out->tx_packets = RELAXED_LOAD(&s->tx_packets);
	out->tx_unsent = RELAXED_LOAD(&s->tx_unsent);
	return 0;
}

void
fo_worker_polls(const struct fo_worker *w, uint64_t *polls, uint64_t *busy)
{
	*polls = RELAXED_LOAD(&w->polls);
	*busy = RELAXED_LOAD(&w->busy_polls);
}

void
fo_worker_free(struct fo_worker *w)
{
	if (w == NULL)
		return;
	if (w->own_group)
		fo_worker_group_free(w->group);
	rte_free(w);
}
