/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The control mailbox. One request slot, guarded by a mutex; the worker looks at it with one
 * atomic load per call of its hook and takes the mutex only when a request is posted. A request
 * runs on the worker without the mutex held (a processor's message() may take its time), so the
 * thread that asked can always give up at its deadline: the worker then finishes the request and
 * throws its answer away.
 *
 * The mailbox may be another process's (a worker process's, in DPDK's shared memory, asked by the
 * primary): its mutex and condition are process-shared, and the mutex is robust, so that a worker
 * process that dies holding it does not leave the asking process waiting for ever.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <rte_errno.h>
#include <rte_malloc.h>

#include "flowos/fo_control.h"
#include "fo_engine_priv.h"

#define SCAN_SLICE 65536            /* flow table slots the worker scans per call of its hook */
#define REPLY_LEN 16384             /* a message's reply, as the worker writes it */

enum slot_state { SLOT_IDLE = 0, SLOT_POSTED, SLOT_SERVING, SLOT_DONE };
enum request_kind { REQ_FLOWS = 0, REQ_MESSAGE, REQ_SWITCH };

struct fo_control {
	struct fo_engine *e;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint32_t state;             /* enum slot_state; written under lock, read by the worker atomically */
	uint8_t closed;
	uint8_t abandoned;          /* the asking thread gave up: the answer goes nowhere */
	/* the request */
	uint8_t kind;
	uint16_t def, proc;
	uint32_t max;
	uint8_t migrate;
	char msg[FO_CONTROL_MSG_LEN];
	/* the worker's, while serving */
	uint8_t serving;
	uint32_t scan_pos;
	uint32_t min_at;            /* the smallest of top[] once it is full */
	/* the answer */
	int ret;
	uint32_t n_top;
	uint64_t live;
	struct fo_flow_info top[FO_CONTROL_MAX_FLOWS];
	char reply[REPLY_LEN];
};

struct fo_control *
fo_control_create(struct fo_engine *e)
{
	struct fo_control *c;
	pthread_mutexattr_t mattr;
	pthread_condattr_t attr;

	if (e == NULL || !e->built) {
		rte_errno = EINVAL;
		return NULL;
	}
	c = rte_zmalloc("fo_control", sizeof(*c), RTE_CACHE_LINE_SIZE);
	if (c == NULL) {
		rte_errno = ENOMEM;
		return NULL;
	}
	c->e = e;
	pthread_mutexattr_init(&mattr);
	pthread_mutexattr_setpshared(&mattr, PTHREAD_PROCESS_SHARED);
	pthread_mutexattr_setrobust(&mattr, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&c->lock, &mattr);
	pthread_mutexattr_destroy(&mattr);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_condattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_cond_init(&c->cond, &attr);
	pthread_condattr_destroy(&attr);
	return c;
}

/* A dead holder's lock is taken over as it is: the slot's state is one the waits below recheck. */
static void
lock(struct fo_control *c)
{
	if (pthread_mutex_lock(&c->lock) == EOWNERDEAD)
		pthread_mutex_consistent(&c->lock);
}

/* Waits on the condition until the deadline; returns whether it passed. */
static bool
timed_wait(struct fo_control *c, const struct timespec *deadline)
{
	int ret = pthread_cond_timedwait(&c->cond, &c->lock, deadline);

	if (ret == EOWNERDEAD)
		pthread_mutex_consistent(&c->lock);
	return ret == ETIMEDOUT;
}

static uint64_t
flow_total_bytes(const struct fo_flow *f)
{
	return f->bytes[0] + f->bytes[1];
}

static void
flow_info(const struct fo_engine *e, const struct fo_flow *f, struct fo_flow_info *out)
{
	out->key = f->key;
	out->opener_is_lo = f->opener_is_lo;
	out->tcp_state = f->tcp_state;
	memcpy(out->packets, f->packets, sizeof(out->packets));
	memcpy(out->bytes, f->bytes, sizeof(out->bytes));
	out->age_ns = e->now > f->first_seen ? e->now - f->first_seen : 0;
	out->idle_ns = e->now > f->last_seen ? e->now - f->last_seen : 0;
}

static void
find_min(struct fo_control *c)
{
	uint32_t i;

	c->min_at = 0;
	for (i = 1; i < c->n_top; i++)
		if (c->top[i].bytes[0] + c->top[i].bytes[1] < c->top[c->min_at].bytes[0] + c->top[c->min_at].bytes[1])
			c->min_at = i;
}

/* Scans a slice of the flow table into the top list; returns 1 once the whole table is done. */
static int
scan_slice(struct fo_control *c)
{
	struct fo_engine *e = c->e;
	uint32_t end = RTE_MIN(c->scan_pos + SCAN_SLICE, e->n_flows), i, j;

	for (; c->scan_pos < end; c->scan_pos++) {
		const struct fo_flow *f = &e->flows[c->scan_pos];
		struct fo_flow_info *top = c->top;

		if (!f->live)
			continue;
		c->live++;
		if (c->n_top < c->max) {
			flow_info(e, f, &top[c->n_top++]);
			if (c->n_top == c->max)
				find_min(c);
		} else if (c->max > 0 && flow_total_bytes(f) > top[c->min_at].bytes[0] + top[c->min_at].bytes[1]) {
			flow_info(e, f, &top[c->min_at]);
			find_min(c);
		}
	}
	if (c->scan_pos < e->n_flows)
		return 0;
	for (i = 1; i < c->n_top; i++) {          /* largest first */
		struct fo_flow_info x = c->top[i];

		for (j = i; j > 0 && c->top[j - 1].bytes[0] + c->top[j - 1].bytes[1] < x.bytes[0] + x.bytes[1]; j--)
			c->top[j] = c->top[j - 1];
		c->top[j] = x;
	}
	c->ret = (int)c->n_top;
	return 1;
}

/* To the current generation's processor: checked here, where no switch can come between. */
static void
deliver(struct fo_control *c)
{
	const struct fo_pipeline_conf *pc = c->e->pc;
	const struct proc_conf *p;

	c->reply[0] = '\0';
	if (c->def >= pc->n_defs || c->proc >= pc->defs[c->def].n_procs) {
		c->ret = -EINVAL;
		return;
	}
	p = &pc->defs[c->def].procs[c->proc];
	if (p->ops.message == NULL) {
		c->ret = -ENOTSUP;
		return;
	}
	c->ret = p->ops.message(c->e->per_def[pc->base + c->def].procs[c->proc].ctx, c->msg, c->reply,
				sizeof(c->reply));
	c->reply[sizeof(c->reply) - 1] = '\0';
}

static void
serve(struct fo_control *c)
{
	if (!c->serving) {
		lock(c);
		if (c->state != SLOT_POSTED) {
			pthread_mutex_unlock(&c->lock);
			return;
		}
		__atomic_store_n(&c->state, SLOT_SERVING, __ATOMIC_RELAXED);
		pthread_mutex_unlock(&c->lock);
		c->serving = 1;
		c->scan_pos = 0;
		c->n_top = 0;
		c->live = 0;
	}
	if (c->kind == REQ_FLOWS) {
		if (!scan_slice(c))
			return;
	} else if (c->kind == REQ_SWITCH) {
		c->ret = fo_engine_switch(c->e, c->migrate);
	} else {
		deliver(c);
	}
	c->serving = 0;
	lock(c);
	__atomic_store_n(&c->state, c->abandoned ? SLOT_IDLE : SLOT_DONE, __ATOMIC_RELAXED);
	c->abandoned = 0;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

uint16_t
fo_control_burst(void *ctl, const struct fo_route *route, struct rte_mbuf **pkts, uint16_t n)
{
	struct fo_control *c = ctl;
	uint16_t ret = fo_engine_burst(c->e, route, pkts, n);

	if (unlikely(c->serving || __atomic_load_n(&c->state, __ATOMIC_ACQUIRE) == SLOT_POSTED))
		serve(c);
	return ret;
}

static void
deadline_in(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/*
 * Waits until timeout_ms from now (*deadline, for the answer too) for the slot to be free, and
 * claims it for a request of `kind`; returns 0 with the lock held, or -errno without it.
 */
static int
begin(struct fo_control *c, enum request_kind kind, unsigned int timeout_ms, struct timespec *deadline)
{
	deadline_in(deadline, timeout_ms);
	lock(c);
	while (c->state != SLOT_IDLE && !c->closed) {
		if (timed_wait(c, deadline)) {
			pthread_mutex_unlock(&c->lock);
			return -EBUSY;
		}
	}
	if (c->closed) {
		pthread_mutex_unlock(&c->lock);
		return -ESHUTDOWN;
	}
	c->kind = (uint8_t)kind;
	return 0;
}

/* Posts the filled request and waits for its answer; returns 0 with the lock held, or -errno without it. */
static int
post_and_wait(struct fo_control *c, const struct timespec *deadline)
{
	int timed_out = 0;

	__atomic_store_n(&c->state, SLOT_POSTED, __ATOMIC_RELEASE);
	while (c->state != SLOT_DONE && !c->closed && !timed_out)
		timed_out = timed_wait(c, deadline);
	/* A switch the worker began is seen to its end (bounded work): its caller must know it happened. */
	while (c->kind == REQ_SWITCH && c->state == SLOT_SERVING) {
		struct timespec later;

		deadline_in(&later, 100);
		timed_wait(c, &later);
	}
	if (c->state == SLOT_DONE)
		return 0;
	if (c->state == SLOT_POSTED) {           /* never taken: withdraw it */
		__atomic_store_n(&c->state, SLOT_IDLE, __ATOMIC_RELAXED);
		pthread_cond_broadcast(&c->cond);
	} else {                                 /* being served: the worker drops the answer */
		c->abandoned = 1;
	}
	pthread_mutex_unlock(&c->lock);
	return timed_out ? -ETIMEDOUT : -ESHUTDOWN;
}

/* Frees the slot after its answer was read, and lets the lock go. */
static void
finish(struct fo_control *c)
{
	__atomic_store_n(&c->state, SLOT_IDLE, __ATOMIC_RELAXED);
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

int
fo_control_flows(struct fo_control *c, struct fo_flow_info *out, uint32_t max, uint64_t *live,
		 unsigned int timeout_ms)
{
	struct timespec deadline;
	int ret;

	ret = begin(c, REQ_FLOWS, timeout_ms, &deadline);
	if (ret != 0)
		return ret;
	c->max = RTE_MIN(max, (uint32_t)FO_CONTROL_MAX_FLOWS);
	ret = post_and_wait(c, &deadline);
	if (ret != 0)
		return ret;
	ret = c->ret;
	memcpy(out, c->top, sizeof(*out) * c->n_top);
	*live = c->live;
	finish(c);
	return ret;
}

int
fo_control_message(struct fo_control *c, uint16_t def, uint16_t proc, const char *msg,
		   char *reply, size_t len, unsigned int timeout_ms)
{
	struct timespec deadline;
	int ret;

	if (len > 0)
		reply[0] = '\0';
	if (strlen(msg) >= FO_CONTROL_MSG_LEN)
		return -E2BIG;
	ret = begin(c, REQ_MESSAGE, timeout_ms, &deadline);
	if (ret != 0)
		return ret;
	c->def = def;
	c->proc = proc;
	strcpy(c->msg, msg);
	ret = post_and_wait(c, &deadline);
	if (ret != 0)
		return ret;
	ret = c->ret;
	if (len > 0) {
		strncpy(reply, c->reply, len - 1);
		reply[len - 1] = '\0';
	}
	finish(c);
	return ret;
}

int
fo_control_switch(struct fo_control *c, int migrate, unsigned int timeout_ms)
{
	struct timespec deadline;
	int ret;

	ret = begin(c, REQ_SWITCH, timeout_ms, &deadline);
	if (ret != 0)
		return ret;
	c->migrate = (uint8_t)(migrate != 0);
	ret = post_and_wait(c, &deadline);
	if (ret != 0)
		return ret;
	ret = c->ret;
	finish(c);
	return ret;
}

void
fo_control_close(struct fo_control *c)
{
	lock(c);
	c->closed = 1;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

void
fo_control_free(struct fo_control *c)
{
	if (c == NULL)
		return;
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	rte_free(c);
}
