/* SPDX-License-Identifier: BSD-3-Clause */
/* Ways to spread one receiver's packets to workers (fo_spread.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rte_bus_vdev.h>
#include <rte_common.h>
#include <rte_distributor.h>
#include <rte_errno.h>
#include <rte_eventdev.h>
#include <rte_malloc.h>
#include <rte_mbuf_dyn.h>
#include <rte_pause.h>
#include <rte_prefetch.h>
#include <rte_ring.h>
#include <rte_service.h>

#include <flowos/fo_decode.h>
#include <flowos/fo_match.h>
#include <flowos/fo_processor.h>
#include <flowos/fo_steer.h>

#include "fo_gen.h"
#include "fo_spread.h"

#define INBOX_SIZE 1024                 /* flowos/runtime/runner.py's INBOX_SIZE */
#define EVENTDEV_NAME "event_sw0"
#define EVENTDEV_SETTLE 64              /* scheduler runs after the workers left: their last releases */

/* What worker w writes, alone on its cache line. */
struct spread_worker {
	uint64_t received;
	int asked;                      /* the distributor: a request is out */
} __rte_cache_aligned;

struct fo_spread {
	/* Read by all, written at creation. */
	enum fo_spread_kind kind;
	uint16_t workers;
	struct rte_ring *inboxes[FO_MAX_WORKERS];
	struct rte_distributor *dist;
	int eventdev;                   /* its id, or -1 */
	uint32_t service;               /* the event device's scheduler */
	struct fo_steer steer;
	/* The receiver's, apart from what the workers poll. */
	uint64_t sent __rte_cache_aligned;
	uint32_t over __rte_cache_aligned;   /* set by fo_spread_finish, read by the workers */
	uint32_t left;                  /* workers that left the run */
	struct spread_worker worker[FO_MAX_WORKERS];
};

/* What the receiver notes in each packet for fo_spread_check, in a dynamic field. */
struct check_stamp {
	uint32_t conn;                  /* fo_gen's connection; UINT32_MAX: none */
	uint32_t seq;                   /* the receiver's number for it */
};

static int stamp_offset = -1;

static const char *const kind_names[FO_SPREAD_KINDS] = { "inbox", "distributor", "eventdev" };

const char *
fo_spread_kind_name(enum fo_spread_kind kind)
{
	return kind < FO_SPREAD_KINDS ? kind_names[kind] : "?";
}

/* ------------------------------------------------------------------------------------------- */
/* Creation */

static int
create_inboxes(struct fo_spread *s, int socket_id)
{
	char name[RTE_RING_NAMESIZE];
	uint16_t w;

	for (w = 0; w < s->workers; w++) {
		/* Many producers (in flowos-run every shard may hand over), one consumer. */
		snprintf(name, sizeof(name), "sp_inbox%u", w);
		s->inboxes[w] = rte_ring_create(name, INBOX_SIZE, socket_id, RING_F_SC_DEQ);
		if (s->inboxes[w] == NULL)
			return -rte_errno;
	}
	return 0;
}

static int
create_eventdev(struct fo_spread *s)
{
	struct rte_event_dev_config conf = {0};
	struct rte_event_queue_conf qconf;
	struct rte_event_port_conf pconf;
	struct rte_event_dev_info info;
	uint8_t queue = 0;
	int dev, ret;
	uint16_t p;

	ret = rte_vdev_init(EVENTDEV_NAME, NULL);
	if (ret != 0)
		return ret < 0 ? ret : -ENODEV;
	dev = rte_event_dev_get_dev_id(EVENTDEV_NAME);
	if (dev < 0)
		return -ENODEV;
	s->eventdev = dev;
	ret = rte_event_dev_info_get((uint8_t)dev, &info);
	if (ret != 0)
		return ret;
	conf.nb_event_queues = 1;
	conf.nb_event_ports = (uint8_t)(s->workers + 1);     /* port 0: the receiver's */
	conf.nb_events_limit = info.max_num_events;
	conf.nb_event_queue_flows = info.max_event_queue_flows;
	conf.nb_event_port_dequeue_depth = RTE_MIN(info.max_event_port_dequeue_depth, FO_SPREAD_MAX_RECEIVE);
	conf.nb_event_port_enqueue_depth = info.max_event_port_enqueue_depth;
	conf.dequeue_timeout_ns = info.min_dequeue_timeout_ns;
	ret = rte_event_dev_configure((uint8_t)dev, &conf);
	if (ret == 0)
		ret = rte_event_queue_default_conf_get((uint8_t)dev, queue, &qconf);
	if (ret != 0)
		return ret;
	qconf.schedule_type = RTE_SCHED_TYPE_ATOMIC;
	qconf.event_queue_cfg = 0;
	qconf.nb_atomic_flows = conf.nb_event_queue_flows;
	ret = rte_event_queue_setup((uint8_t)dev, queue, &qconf);
	for (p = 0; ret == 0 && p <= s->workers; p++) {
		ret = rte_event_port_default_conf_get((uint8_t)dev, (uint8_t)p, &pconf);
		if (ret != 0)
			break;
		pconf.dequeue_depth = (uint16_t)conf.nb_event_port_dequeue_depth;
		ret = rte_event_port_setup((uint8_t)dev, (uint8_t)p, &pconf);
		/* The workers' ports take the queue's events; the receiver's only puts them in. */
		if (ret == 0 && p > 0 && rte_event_port_link((uint8_t)dev, (uint8_t)p, &queue, NULL, 1) != 1)
			ret = -EINVAL;
	}
	/* No service core: the receiver runs the scheduler itself (fo_spread_send). */
	if (ret == 0)
		ret = rte_event_dev_service_id_get((uint8_t)dev, &s->service);
	if (ret == 0)
		ret = rte_service_runstate_set(s->service, 1);
	if (ret == 0)
		ret = rte_service_set_runstate_mapped_check(s->service, 0);
	if (ret == 0)
		ret = rte_event_dev_start((uint8_t)dev);
	return ret;
}

struct fo_spread *
fo_spread_create(enum fo_spread_kind kind, uint16_t workers, uint16_t steer_pattern, int socket_id)
{
	struct fo_spread *s;
	int ret;

	if (kind >= FO_SPREAD_KINDS || workers == 0 || workers >= FO_MAX_WORKERS || steer_pattern == 0) {
		rte_errno = EINVAL;
		return NULL;
	}
	s = rte_zmalloc_socket("fo_spread", sizeof(*s), RTE_CACHE_LINE_SIZE, socket_id);
	if (s == NULL) {
		rte_errno = ENOMEM;
		return NULL;
	}
	s->kind = kind;
	s->workers = workers;
	s->eventdev = -1;
	fo_steer_init(&s->steer, steer_pattern);
	switch (kind) {
	case FO_SPREAD_INBOX:
		ret = create_inboxes(s, socket_id);
		break;
	case FO_SPREAD_DISTRIBUTOR:
		s->dist = rte_distributor_create("sp_dist", (unsigned int)socket_id, workers, RTE_DIST_ALG_BURST);
		ret = s->dist == NULL ? -rte_errno : 0;
		break;
	default:
		ret = create_eventdev(s);
		break;
	}
	if (ret != 0) {
		fo_spread_free(s);
		rte_errno = -ret;
		return NULL;
	}
	return s;
}

void
fo_spread_free(struct fo_spread *s)
{
	uint16_t w;

	if (s == NULL)
		return;
	for (w = 0; w < s->workers; w++)
		rte_ring_free(s->inboxes[w]);
	if (s->eventdev >= 0) {
		rte_event_dev_stop((uint8_t)s->eventdev);
		rte_event_dev_close((uint8_t)s->eventdev);
		rte_vdev_uninit(EVENTDEV_NAME);
	}
	rte_free(s);
}

void
fo_spread_reset(struct fo_spread *s)
{
	uint16_t w;

	s->sent = 0;
	for (w = 0; w < s->workers; w++)
		s->worker[w].received = 0;
	__atomic_store_n(&s->left, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&s->over, 0, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------------------------------- */
/* The receiver */

int
fo_spread_tag(struct fo_spread *s, struct rte_mbuf **pkts, uint16_t n, uint16_t port)
{
	struct fo_match_fields f;
	struct fo_decoded d;
	uint16_t i;
	int l;

	for (i = 0; i < n; i++) {
		struct rte_mbuf *m = pkts[i];
		struct fo_pkt_meta *meta = fo_pkt_meta(m);

		if (fo_decode(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), &d) != 0)
			return -EINVAL;
		for (l = 0; l < FO_LEVEL_COUNT; l++)
			meta->offset[l] = d.offset[l];
		meta->end = d.end;
		meta->flags = d.flags;
		meta->ip_proto = d.ip_proto;
		meta->out_port = (uint8_t)port;
		m->port = port;
		fo_match_fields_of(m, port, &f);
		m->hash.usr = fo_steer_hash(&s->steer, fo_steer_fold(&f, d.ether_type));
	}
	return 0;
}

/* Each packet to the inbox of its flow's owner: one enqueue per owner, in arrival order per owner. */
static void
send_inboxes(struct fo_spread *s, struct rte_mbuf **pkts, uint16_t n)
{
	struct rte_mbuf *sorted[FO_MAX_WORKERS][FO_SPREAD_MAX_RECEIVE];
	uint16_t count[FO_MAX_WORKERS] = {0};
	uint16_t i, w;

	for (i = 0; i < n; i += FO_SPREAD_MAX_RECEIVE) {
		uint16_t j, end = RTE_MIN(n, i + FO_SPREAD_MAX_RECEIVE);

		for (j = i; j < end; j++) {
			w = fo_steer_worker(pkts[j]->hash.usr, s->workers);
			sorted[w][count[w]++] = pkts[j];
		}
		for (w = 0; w < s->workers; w++) {
			unsigned int sent = 0;

			while (sent < count[w]) {
				sent += rte_ring_enqueue_burst(s->inboxes[w], (void **)&sorted[w][sent], count[w] - sent, NULL);
				if (sent < count[w])
					rte_pause();
			}
			count[w] = 0;
		}
	}
}

static void
send_distributor(struct fo_spread *s, struct rte_mbuf **pkts, uint16_t n)
{
	/* It takes none until a worker has asked for packets, and stops when none is asking. */
	while (n > 0) {
		int done = rte_distributor_process(s->dist, pkts, n);

		pkts += done;
		n -= (uint16_t)done;
	}
}

static inline void
run_scheduler(struct fo_spread *s)
{
	rte_service_run_iter_on_app_lcore(s->service, 0);
}

static void
send_events(struct fo_spread *s, struct rte_mbuf **pkts, uint16_t n)
{
	struct rte_event ev[FO_SPREAD_MAX_RECEIVE];
	uint16_t i, j, sent;

	for (i = 0; i < n; i += sent) {
		uint16_t count = RTE_MIN(n - i, FO_SPREAD_MAX_RECEIVE);

		for (j = 0; j < count; j++) {
			ev[j].event = 0;
			ev[j].op = RTE_EVENT_OP_NEW;
			ev[j].queue_id = 0;
			ev[j].sched_type = RTE_SCHED_TYPE_ATOMIC;
			ev[j].event_type = RTE_EVENT_TYPE_CPU;
			ev[j].flow_id = pkts[i + j]->hash.usr & 0xfffff;   /* the flow id's 20 bits */
			ev[j].priority = RTE_EVENT_DEV_PRIORITY_NORMAL;
			ev[j].mbuf = pkts[i + j];
		}
		/* Fewer go in when the device holds its most: the scheduler makes room. */
		sent = rte_event_enqueue_new_burst((uint8_t)s->eventdev, 0, ev, count);
		run_scheduler(s);
	}
}

void
fo_spread_send(struct fo_spread *s, struct rte_mbuf **pkts, uint16_t n)
{
	switch (s->kind) {
	case FO_SPREAD_INBOX:
		send_inboxes(s, pkts, n);
		break;
	case FO_SPREAD_DISTRIBUTOR:
		send_distributor(s, pkts, n);
		break;
	default:
		send_events(s, pkts, n);
		break;
	}
	s->sent += n;
}

/* What the receiver does while it waits for the workers: serve them, where the spreader needs it. */
static void
serve(struct fo_spread *s)
{
	switch (s->kind) {
	case FO_SPREAD_INBOX:
		rte_pause();
		break;
	case FO_SPREAD_DISTRIBUTOR:
		rte_distributor_process(s->dist, NULL, 0);   /* hands out what it holds, takes leaves */
		break;
	default:
		run_scheduler(s);
		break;
	}
}

static uint64_t
received(const struct fo_spread *s)
{
	uint64_t sum = 0;
	uint16_t w;

	for (w = 0; w < s->workers; w++)
		sum += __atomic_load_n(&s->worker[w].received, __ATOMIC_ACQUIRE);
	return sum;
}

void
fo_spread_finish(struct fo_spread *s)
{
	int i;

	while (received(s) < s->sent)
		serve(s);
	__atomic_store_n(&s->over, 1, __ATOMIC_RELEASE);
	while (__atomic_load_n(&s->left, __ATOMIC_ACQUIRE) < s->workers)
		serve(s);
	if (s->kind == FO_SPREAD_DISTRIBUTOR) {
		rte_distributor_process(s->dist, NULL, 0);   /* the last worker's leave */
		rte_distributor_clear_returns(s->dist);
	} else if (s->kind == FO_SPREAD_EVENTDEV) {
		for (i = 0; i < EVENTDEV_SETTLE; i++)
			run_scheduler(s);
	}
}

/* ------------------------------------------------------------------------------------------- */
/* The workers */

static uint16_t
receive_distributor(struct fo_spread *s, uint16_t w, struct rte_mbuf **pkts)
{
	struct spread_worker *k = &s->worker[w];
	int n;

	/* Asking again says that the packets received before are done: their flows may move. */
	if (!k->asked) {
		rte_distributor_request_pkt(s->dist, w, NULL, 0);
		k->asked = 1;
	}
	n = rte_distributor_poll_pkt(s->dist, w, pkts);
	if (n < 0)
		return 0;
	k->asked = 0;
	return (uint16_t)n;
}

static uint16_t
receive_events(struct fo_spread *s, uint16_t w, struct rte_mbuf **pkts)
{
	struct rte_event ev[FO_SPREAD_MAX_RECEIVE];
	uint16_t n, i;

	/* Dequeuing releases the events dequeued before (implicit release): their flows may move. */
	n = rte_event_dequeue_burst((uint8_t)s->eventdev, (uint8_t)(w + 1), ev, FO_SPREAD_MAX_RECEIVE, 0);
	for (i = 0; i < n; i++)
		pkts[i] = ev[i].mbuf;
	return n;
}

uint16_t
fo_spread_receive(struct fo_spread *s, uint16_t w, struct rte_mbuf **pkts)
{
	uint16_t n;

	switch (s->kind) {
	case FO_SPREAD_INBOX:
		n = (uint16_t)rte_ring_dequeue_burst(s->inboxes[w], (void **)pkts, FO_SPREAD_MAX_RECEIVE, NULL);
		break;
	case FO_SPREAD_DISTRIBUTOR:
		n = receive_distributor(s, w, pkts);
		break;
	default:
		n = receive_events(s, w, pkts);
		break;
	}
	if (n > 0)
		__atomic_store_n(&s->worker[w].received, s->worker[w].received + n, __ATOMIC_RELEASE);
	return n;
}

int
fo_spread_over(const struct fo_spread *s)
{
	return __atomic_load_n(&s->over, __ATOMIC_ACQUIRE);
}

void
fo_spread_leave(struct fo_spread *s, uint16_t w)
{
	struct rte_mbuf *pkts[FO_SPREAD_MAX_RECEIVE];

	if (s->kind == FO_SPREAD_DISTRIBUTOR) {
		rte_distributor_return_pkt(s->dist, w, NULL, 0);   /* waits for the receiver to take it */
		s->worker[w].asked = 0;
	} else if (s->kind == FO_SPREAD_EVENTDEV) {
		/* Releases what the last dequeue took; nothing is left to dequeue (every packet was received). */
		receive_events(s, w, pkts);
	}
	__atomic_fetch_add(&s->left, 1, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------------------------------------- */
/* The check */

static inline struct check_stamp *
stamp_of(struct rte_mbuf *m)
{
	return RTE_MBUF_DYNFIELD(m, stamp_offset, struct check_stamp *);
}

int
fo_spread_check_register(void)
{
	static const struct rte_mbuf_dynfield desc = {
		.name = "fo_bench_spread_check",
		.size = sizeof(struct check_stamp),
		.align = __alignof__(struct check_stamp),
	};

	if (stamp_offset < 0)
		stamp_offset = rte_mbuf_dynfield_register(&desc);
	return stamp_offset < 0 ? -rte_errno : 0;
}

int
fo_spread_check_init(struct fo_spread_check *c, uint32_t flows, int socket_id)
{
	int ret = fo_spread_check_register();

	if (ret != 0)
		return ret;
	c->flows = flows;
	c->seq = 0;
	c->flow = rte_zmalloc_socket("fo_spread_check", (size_t)flows * sizeof(*c->flow), RTE_CACHE_LINE_SIZE,
				     socket_id);
	return c->flow == NULL ? -ENOMEM : 0;
}

void
fo_spread_check_fini(struct fo_spread_check *c)
{
	rte_free(c->flow);
	c->flow = NULL;
}

void
fo_spread_check_stamp(struct fo_spread_check *c, struct rte_mbuf **pkts, uint16_t n)
{
	uint16_t i;

	for (i = 0; i < n; i++) {
		struct check_stamp *st = stamp_of(pkts[i]);
		int64_t conn = fo_gen_connection_index(pkts[i]);

		st->conn = conn < 0 || conn >= c->flows ? UINT32_MAX : (uint32_t)conn;
		st->seq = ++c->seq;
	}
}

uint64_t
fo_spread_check(struct fo_spread_check *c, uint16_t w, struct rte_mbuf **pkts, uint16_t n)
{
	const uint64_t bit = 1ull << w;
	uint64_t wrong = 0;
	uint16_t i;

	/* The connections' entries are scattered: fetch the burst's together. */
	for (i = 0; i < n; i++)
		if (stamp_of(pkts[i])->conn < c->flows)
			rte_prefetch0(&c->flow[stamp_of(pkts[i])->conn]);
	for (i = 0; i < n; i++) {
		const struct check_stamp *st = stamp_of(pkts[i]);
		struct fo_spread_flow *f;
		uint32_t last;

		if (st->conn >= c->flows) {
			wrong++;
			continue;
		}
		f = &c->flow[st->conn];
		if (!(__atomic_load_n(&f->workers, __ATOMIC_RELAXED) & bit))
			__atomic_fetch_or(&f->workers, bit, __ATOMIC_RELAXED);
		last = __atomic_load_n(&f->last_seq, __ATOMIC_RELAXED);
		if (last != 0 && (int32_t)(st->seq - last) <= 0)
			wrong++;
		__atomic_store_n(&f->last_seq, st->seq, __ATOMIC_RELAXED);
	}
	return wrong;
}

void
fo_spread_check_sum(const struct fo_spread_check *c, uint64_t *split, uint64_t *visits)
{
	uint32_t i;

	*split = *visits = 0;
	for (i = 0; i < c->flows; i++) {
		int k = __builtin_popcountll(c->flow[i].workers);

		*visits += (uint64_t)k;
		*split += k > 1;
	}
}
