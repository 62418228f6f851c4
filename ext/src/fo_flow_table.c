/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Per-connection flows: a bounded hash table keyed by the canonical 5-tuple, TCP state, idle
 * lists per timeout class (oldest first, so expiry looks only at list heads), and a small
 * cache that sends later IPv4/IPv6 fragments to the flow of their first fragment.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_errno.h>
#include <rte_ip.h>
#include <rte_jhash.h>
#include <rte_malloc.h>
#include <rte_tcp.h>

#include "fo_engine_priv.h"
#include "fo_flow_index.h"

int
fo_flow_table_create(struct fo_engine *e, char *err, size_t errlen)
{
	char name[RTE_MEMZONE_NAMESIZE];
	uint32_t i;

	snprintf(name, sizeof(name), "fo_flows_%p", (void *)e);
	e->index = fo_flow_index_create(name, e->conf.flow_capacity, e->conf.socket_id);
	if (e->index == NULL) {
		snprintf(err, errlen, "cannot create a flow table of %u flows: %s", e->conf.flow_capacity,
			 rte_strerror(rte_errno));
		return -ENOMEM;
	}
	e->n_flows = e->conf.flow_capacity;
	e->flows = rte_zmalloc_socket("fo_flows", sizeof(*e->flows) * e->n_flows, RTE_CACHE_LINE_SIZE,
				      e->conf.socket_id);
	if (e->flows == NULL) {
		snprintf(err, errlen, "cannot allocate %u flows (%zu bytes each)", e->n_flows, sizeof(*e->flows));
		return -ENOMEM;
	}
	for (i = 0; i < FO_TIMEOUT_CLASS_COUNT; i++)
		e->lru_head[i] = e->lru_tail[i] = FO_FLOW_NONE;
	for (i = 0; i < FRAG_CACHE_SIZE; i++)
		e->frags[i].value = FO_FLOW_NONE;
	return 0;
}

void
fo_flow_table_free(struct fo_engine *e)
{
	fo_flow_index_free(e->index);
	rte_free(e->flows);
}

/* Whether (a, a_port) sorts before or equal to (b, b_port): addresses as memcmp orders them. */
static inline int
endpoint_leq(const uint8_t *a, uint16_t a_port, const uint8_t *b, uint16_t b_port)
{
	uint64_t a0, a1, b0, b1;

	memcpy(&a0, a, 8);
	memcpy(&a1, a + 8, 8);
	memcpy(&b0, b, 8);
	memcpy(&b1, b + 8, 8);
	a0 = rte_be_to_cpu_64(a0), b0 = rte_be_to_cpu_64(b0);
	if (a0 != b0)
		return a0 < b0;
	a1 = rte_be_to_cpu_64(a1), b1 = rte_be_to_cpu_64(b1);
	if (a1 != b1)
		return a1 < b1;
	return a_port <= b_port;
}

/* Both directions of a connection give one key; returns whether the source is the low side. */
int
fo_flow_make_key(struct fo_flow_key *k, uint16_t def, const struct fo_match_fields *f, const struct rte_mbuf *m)
{
	int src_lo = endpoint_leq(f->src_ip, f->src_port, f->dst_ip, f->dst_port);

	k->def = def;
	k->family = f->family;
	k->proto = f->proto;
	memset(k->pad, 0, sizeof(k->pad));
	if (f->family == FO_FAMILY_ANY) {
		/* Not IP: one flow per ether type within the definition. */
		const uint8_t *data = rte_pktmbuf_mtod(m, const uint8_t *);
		uint16_t l3 = fo_pkt_meta((struct rte_mbuf *)(uintptr_t)m)->offset[FO_LEVEL_L3];

		memset(k->addr_lo, 0, sizeof(k->addr_lo) + sizeof(k->addr_hi));
		k->port_lo = l3 != FO_NO_LEVEL && l3 >= 2 ? (uint16_t)data[l3 - 2] << 8 | data[l3 - 1] : 0;
		k->port_hi = 0;
		return 1;
	}
	memcpy(k->addr_lo, src_lo ? f->src_ip : f->dst_ip, 16);
	memcpy(k->addr_hi, src_lo ? f->dst_ip : f->src_ip, 16);
	k->port_lo = src_lo ? f->src_port : f->dst_port;
	k->port_hi = src_lo ? f->dst_port : f->src_port;
	return src_lo;
}

static enum fo_timeout_class
timeout_class(const struct fo_flow *flow)
{
	switch (flow->key.proto) {
	case IPPROTO_TCP:
		if (flow->tcp_state == FO_TCP_ESTABLISHED)
			return FO_TIMEOUT_TCP_ESTABLISHED;
		if (flow->tcp_state >= FO_TCP_CLOSING)
			return FO_TIMEOUT_TCP_CLOSING;
		return FO_TIMEOUT_TCP_OPENING;
	case IPPROTO_UDP:
		return FO_TIMEOUT_UDP;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return FO_TIMEOUT_ICMP;
	default:
		return FO_TIMEOUT_OTHER;
	}
}

static void
lru_unlink(struct fo_engine *e, struct fo_flow *flow)
{
	uint8_t c = flow->timeout_class;

	if (flow->lru_prev != FO_FLOW_NONE)
		e->flows[flow->lru_prev].lru_next = flow->lru_next;
	else
		e->lru_head[c] = flow->lru_next;
	if (flow->lru_next != FO_FLOW_NONE)
		e->flows[flow->lru_next].lru_prev = flow->lru_prev;
	else
		e->lru_tail[c] = flow->lru_prev;
}

static void
lru_append(struct fo_engine *e, struct fo_flow *flow)
{
	uint8_t c = flow->timeout_class;

	flow->lru_next = FO_FLOW_NONE;
	flow->lru_prev = e->lru_tail[c];
	flow->lru_time = e->now;
	if (e->lru_tail[c] != FO_FLOW_NONE)
		e->flows[e->lru_tail[c]].lru_next = flow->id;
	else
		e->lru_head[c] = flow->id;
	e->lru_tail[c] = flow->id;
}

/* Once per flow: out of line, so that the per-packet lookup keeps a small frame. */
static __rte_noinline void
flow_start(struct fo_engine *e, struct fo_flow *flow, const struct fo_flow_key *key, int src_lo,
	   uint32_t id, struct rte_mbuf *first)
{
	const struct definition *d = &e->defs[key->def];
	struct def_shard *ds = &e->per_def[key->def];
	void *area = NULL;
	uint16_t p;

	memset(flow, 0, sizeof(*flow));
	flow->key = *key;
	flow->id = id;
	flow->live = 1;
	flow->opener_is_lo = src_lo;
	flow->first_seen = flow->last_seen = e->now;
	flow->timeout_class = timeout_class(flow);
	if (d->state_size > 0) {
		area = flow_state_area(e, id);
		memset(area, 0, d->state_size);
		flow->heads = area;
		flow->states = area;
	}
	lru_append(e, flow);
	RELAXED_ADD(e->stats.flows_created, 1);
	RELAXED_ADD(e->stats.flows_active, 1);
	if (e->stats.flows_active > e->stats.flows_peak)
		RELAXED_ADD(e->stats.flows_peak, e->stats.flows_active - e->stats.flows_peak);
	RELAXED_ADD(ds->stats.flows_created, 1);
	RELAXED_ADD(ds->stats.flows_active, 1);
	for (p = 0; p < d->n_procs; p++) {
		const struct proc_conf *proc = &d->procs[p];

		if (proc->ops.flow_start != NULL) {
			engine_call_enter(e, d, p, FO_CALL_FLOW_START);
			proc->ops.flow_start(ds->procs[p].ctx, flow, flow->states + proc->state_offset, first);
			engine_call_leave(e);
		}
	}
}

/* fo_flow_for_key's way when the burst's lookup cannot be trusted, or found nothing (fo_engine_priv.h). */
struct fo_flow *
fo_flow_for_key_hashed(struct fo_engine *e, const struct fo_flow_key *key, int src_lo, int32_t pos,
		    struct rte_mbuf *m, uint8_t *dir, int *over)
{
	enum fo_flow_end_reason reason;
	uint32_t hash = fo_flow_index_hash(e->index, key);

	/*
	 * The flow the burst's lookup found may have ended since, earlier in the burst, and its slot
	 * been taken by another.
	 */
	if (pos < 0 || !e->flows[pos].live || memcmp(&e->flows[pos].key, key, sizeof(*key)) != 0)
		pos = fo_flow_index_lookup(e->index, e->flows, key, hash);
	if (pos >= 0 && unlikely(fo_flow_is_over(e, &e->flows[pos], m, &reason))) {
		*over = reason;
		return &e->flows[pos];
	}
	if (pos < 0) {
		/* Every flow id has its state area, so only the table can be full. */
		pos = fo_flow_index_add(e->index, hash);
		if (pos < 0)
			return NULL;
		flow_start(e, &e->flows[pos], key, src_lo, pos, m);
	}
	*dir = src_lo == e->flows[pos].opener_is_lo ? 0 : 1;
	return &e->flows[pos];
}

void
fo_flow_remember_fragment(struct fo_engine *e, const struct fo_flow *flow, const struct fo_match_fields *f,
			  uint32_t id)
{
	frag_entry_set(frag_entry_of(e->frags, FRAG_CACHE_SIZE, f, id), f, id, flow->id);
}

struct fo_flow *
fo_flow_for_fragment(struct fo_engine *e, const struct fo_match_fields *f, uint32_t id, uint8_t *dir)
{
	uint32_t found = frag_entry_find(frag_entry_of(e->frags, FRAG_CACHE_SIZE, f, id), f, id);
	struct fo_flow *flow;

	if (found == FO_FLOW_NONE)
		return NULL;
	flow = &e->flows[found];
	/* The flow may have ended (and its slot been reused) since. */
	if (!flow->live || flow->key.family != f->family)
		return NULL;
	*dir = (memcmp(f->src_ip, flow->key.addr_lo, 16) == 0) == flow->opener_is_lo ? 0 : 1;
	return flow;
}

/*
 * TCP state from one packet whose flags or connection's state may change it (fo_flow_account
 * passes by the others: data and acknowledgements of an open connection). A connection is over
 * on RST, or once each side's FIN has been acknowledged by the other (which also covers a
 * simultaneous close): closed by FIN.
 */
static __rte_noinline void
track_tcp(struct fo_flow *flow, const struct rte_mbuf *m, const struct rte_tcp_hdr *th, uint8_t dir)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta((struct rte_mbuf *)(uintptr_t)m);
	uint8_t flags = th->tcp_flags, other = dir ^ 1;
	uint32_t seq, payload;

	seq = rte_be_to_cpu_32(th->sent_seq);
	payload = meta->offset[FO_LEVEL_PAYLOAD] != FO_NO_LEVEL && meta->end > meta->offset[FO_LEVEL_PAYLOAD] ?
		meta->end - meta->offset[FO_LEVEL_PAYLOAD] : 0;

	if (flags & RTE_TCP_RST_FLAG) {
		flow->tcp_state = FO_TCP_CLOSED;
		flow->end_pending = 1 + FO_END_RST;
		return;
	}
	if ((flags & RTE_TCP_ACK_FLAG) && (flow->fin_seen & (1 << other)) &&
	    seq_geq(rte_be_to_cpu_32(th->recv_ack), flow->fin_end[other]))
		flow->fin_acked |= 1 << other;
	if (flags & RTE_TCP_FIN_FLAG) {
		flow->fin_seen |= 1 << dir;
		flow->fin_end[dir] = seq + payload + 1 + !!(flags & RTE_TCP_SYN_FLAG);
	}
	/*
	 * Once closed, the flow stays for the closing timeout (TCP's TIME-WAIT) so that late
	 * packets of the connection still join it; a new SYN on the same ports ends it sooner.
	 */
	if (flow->fin_seen) {
		flow->tcp_state = flow->fin_seen == 3 ? FO_TCP_CLOSED : FO_TCP_CLOSING;
		return;
	}
	switch (flow->tcp_state) {
	case FO_TCP_NONE:
		/* A flow picked up mid-connection counts as established. */
		flow->tcp_state = (flags & RTE_TCP_SYN_FLAG) ?
			((flags & RTE_TCP_ACK_FLAG) ? FO_TCP_SYN_RECV : FO_TCP_SYN_SENT) : FO_TCP_ESTABLISHED;
		break;
	case FO_TCP_SYN_SENT:
		if ((flags & (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG)) == (RTE_TCP_SYN_FLAG | RTE_TCP_ACK_FLAG))
			flow->tcp_state = FO_TCP_SYN_RECV;
		break;
	case FO_TCP_SYN_RECV:
		if ((flags & RTE_TCP_ACK_FLAG) && !(flags & RTE_TCP_SYN_FLAG))
			flow->tcp_state = FO_TCP_ESTABLISHED;
		break;
	default:
		break;
	}
}

/* The flow moves to the end of its (maybe new) timeout class's idle list. */
static __rte_noinline void
flow_relist(struct fo_engine *e, struct fo_flow *flow, uint8_t cls)
{
	lru_unlink(e, flow);
	flow->timeout_class = cls;
	lru_append(e, flow);
}

void
fo_flow_account(struct fo_engine *e, struct fo_flow *flow, struct rte_mbuf *m, uint8_t dir)
{
	struct fo_pkt_meta *meta = fo_pkt_meta(m);
	uint8_t cls;

	meta->dir = dir;
	flow->packets[dir]++;
	flow->bytes[dir] += rte_pktmbuf_pkt_len(m);
	flow->last_seen = e->now;
	if (flow->key.proto == IPPROTO_TCP && meta->offset[FO_LEVEL_L4] != FO_NO_LEVEL) {
		const struct rte_tcp_hdr *th = rte_pktmbuf_mtod_offset(m, const struct rte_tcp_hdr *,
								       meta->offset[FO_LEVEL_L4]);

		/* Most packets: data or acknowledgements of an open connection, which change nothing. */
		if (unlikely(flow->tcp_state != FO_TCP_ESTABLISHED ||
			     (th->tcp_flags & (RTE_TCP_SYN_FLAG | RTE_TCP_FIN_FLAG | RTE_TCP_RST_FLAG))))
			track_tcp(flow, m, th, dir);
	}
	/*
	 * A flow moves to its idle list's end only when its class changed or when it last moved
	 * more than 1/1024 of its timeout ago: most packets skip the list (and the neighbours it
	 * would touch), and flow_expire, which reads last_seen, ends a flow at most that late.
	 */
	cls = timeout_class(flow);
	if (unlikely(cls != flow->timeout_class || e->now - flow->lru_time >= (e->pc->conf.timeout_ns[cls] >> 10)))
		flow_relist(e, flow, cls);
}

void
fo_flow_enqueue(struct fo_engine *e, struct fo_flow *flow, struct rte_mbuf *m)
{
	RELAXED_ADD(e->stats.held, 1);
	*fo_pkt_seq(m) = flow->next_seq++;
	*pkt_next(m) = NULL;
	if (flow->q_tail != NULL)
		*pkt_next(flow->q_tail) = m;
	else
		flow->q_head = m;
	flow->q_tail = m;
	flow->q_packets++;
	flow->q_bytes += rte_pktmbuf_pkt_len(m);
}

int
fo_flow_wants_end(const struct fo_flow *flow, enum fo_flow_end_reason *reason)
{
	/* What it still holds goes out as it ends: nothing more will come to complete it. */
	if (flow->end_pending == 0)
		return 0;
	*reason = flow->end_pending - 1;
	return 1;
}

void
fo_flow_end(struct fo_engine *e, struct fo_flow *flow, enum fo_flow_end_reason reason)
{
	const struct definition *d = &e->defs[flow->key.def];
	struct def_shard *ds = &e->per_def[flow->key.def];
	uint16_t p;

	for (p = 0; p < d->n_procs; p++) {
		const struct proc_conf *proc = &d->procs[p];

		if (proc->ops.flow_end != NULL) {
			engine_call_enter(e, d, p, FO_CALL_FLOW_END);
			proc->ops.flow_end(ds->procs[p].ctx, flow, flow->states + proc->state_offset, reason);
			engine_call_leave(e);
		}
	}
	lru_unlink(e, flow);
	fo_flow_index_del(e->index, fo_flow_index_hash(e->index, &flow->key), flow->id);
	flow->live = 0;
	e->flows_ended++;
	flow_note_kept(e, flow);
	RELAXED_ADD(e->stats.flows_ended[reason], 1);
	RELAXED_ADD(e->stats.flows_active, -1);
	RELAXED_ADD(ds->stats.flows_active, -1);
}

struct fo_flow *
fo_flow_idle_oldest(struct fo_engine *e, int c)
{
	struct fo_flow *flow;

	if (e->lru_head[c] == FO_FLOW_NONE)
		return NULL;
	flow = &e->flows[e->lru_head[c]];
	/* Those behind it moved after it, so they were seen less than timeout/1024 before it. */
	return e->now - flow->last_seen >= e->pc->conf.timeout_ns[c] ? flow : NULL;
}
