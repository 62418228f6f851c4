/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The poll loop: receive a burst, skip if empty, run the processing hook, send, free and count
 * what was not sent. Counters are written by the worker's lcore only and read by others with
 * relaxed atomic loads, which cost nothing extra on the writer's side.
 */
#include <errno.h>
#include <stdbool.h>

#include <rte_cycles.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_launch.h>
#include <rte_lcore.h>
#include <rte_malloc.h>

#include "flowos/fo_worker.h"

#define RELAXED_LOAD(p) __atomic_load_n((p), __ATOMIC_RELAXED)
#define RELAXED_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)

/* Where a finite source stands; private to the loop. */
struct source_progress {
	uint64_t silent_since;  /* TSC of the first empty poll in a row; 0 while receiving */
	bool finished;
};

struct fo_worker {
	struct fo_worker_conf conf;
	uint16_t n_routes;
	unsigned int lcore_id;
	uint8_t launched;
	uint8_t running;           /* written by the loop */
	uint8_t stop;              /* written by the controller */
	uint32_t stop_reason;      /* written by the loop */
	uint16_t short_sources;    /* written by the loop */
	struct fo_route routes[FO_MAX_ROUTES];
	struct fo_route_stats stats[FO_MAX_ROUTES];
	fo_thread_hook_t thread_start, thread_stop;
	void *thread_ctx;
};

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
	w->conf = *conf;
	return w;
}

int
fo_worker_add_route(struct fo_worker *w, const struct fo_route *route)
{
	if (RELAXED_LOAD(&w->running))
		return -EBUSY;
	if (w->n_routes == FO_MAX_ROUTES)
		return -ENOSPC;
	if (!rte_eth_dev_is_valid_port(route->rx_port) || !rte_eth_dev_is_valid_port(route->tx_port))
		return -EINVAL;
	w->routes[w->n_routes++] = *route;
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

int
fo_worker_loop(void *arg)
{
	struct fo_worker *w = arg;
	struct source_progress progress[FO_MAX_ROUTES] = {0};
	struct rte_mbuf *pkts[FO_MAX_BURST];
	const uint64_t limit = w->conf.packet_limit;
	const uint16_t burst = w->conf.burst;
	uint16_t n_finite = 0, i;
	uint64_t rx_total = 0;
	enum fo_stop_reason reason = FO_STOP_NONE;

	const uint64_t idle_period = rte_get_tsc_hz() / 1000;
	uint64_t last_idle_call = 0;

	for (i = 0; i < w->n_routes; i++)
		n_finite += w->routes[i].finite;
	if (w->thread_start != NULL)
		w->thread_start(w->thread_ctx);

	while (reason == FO_STOP_NONE) {
		uint16_t finished = 0, received = 0;

		if (unlikely(RELAXED_LOAD(&w->stop))) {
			reason = FO_STOP_REQUESTED;
			break;
		}
		for (i = 0; i < w->n_routes; i++) {
			const struct fo_route *r = &w->routes[i];
			struct fo_route_stats *s = &w->stats[i];
			uint16_t want = burst, nb_rx, nb_tx, nb_sent;

			if (limit != 0) {
				if (rx_total >= limit) {
					reason = FO_STOP_PACKET_LIMIT;
					break;
				}
				want = RTE_MIN((uint64_t)burst, limit - rx_total);
			}
			nb_rx = rte_eth_rx_burst(r->rx_port, r->rx_queue, pkts, want);
			if (nb_rx == 0) {
				if (r->finite)
					finished += source_finished(w, i, &progress[i]);
				continue;
			}
			progress[i].silent_since = 0;
			received = 1;
			rx_total += nb_rx;
			count(&s->rx_packets, nb_rx);

			nb_tx = nb_rx;
			if (w->conf.hook != NULL) {
				nb_tx = w->conf.hook(w->conf.hook_ctx, r, pkts, nb_rx);
				count(&s->hook_kept, nb_rx - nb_tx);
			}
			nb_sent = rte_eth_tx_burst(r->tx_port, r->tx_queue, pkts, nb_tx);
			count(&s->tx_packets, nb_sent);
			if (unlikely(nb_sent < nb_tx)) {
				rte_pktmbuf_free_bulk(&pkts[nb_sent], nb_tx - nb_sent);
				count(&s->tx_unsent, nb_tx - nb_sent);
			}
			/* A processor's fault may have asked to stop (on_error: stop): no further burst. */
			if (unlikely(RELAXED_LOAD(&w->stop)))
				break;
		}
		if (n_finite == w->n_routes && finished == n_finite)
			reason = FO_STOP_INPUT_DONE;
		/* With nothing received, the hook still gets an empty call now and then: time goes on. */
		if (!received && w->conf.hook != NULL) {
			uint64_t now = rte_rdtsc();

			if (now - last_idle_call > idle_period) {
				last_idle_call = now;
				w->conf.hook(w->conf.hook_ctx, &w->routes[0], pkts, 0);
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
	if (w->n_routes == 0)
		return -EINVAL;
	RELAXED_STORE(&w->stop, 0);
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
	RELAXED_STORE(&w->stop, 1);
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

void
fo_worker_free(struct fo_worker *w)
{
	rte_free(w);
}
