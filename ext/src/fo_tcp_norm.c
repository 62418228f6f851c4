/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * TCP normalisation, per flow direction, for definitions with streams: what reaches a flow's
 * queue is each direction's data in sequence order, each byte once.
 *
 * On the way in (stream_admit): a segment past a gap waits, in sequence order, until the gap
 * fills (at most reorder_packets per direction: more are dropped, and their sender resends
 * them); bytes received before are trimmed off; a segment of data received before is a
 * retransmission: if that data has not left yet it is dropped (it leaves once), if it has, it
 * is sent again as it first left.
 *
 * On the way out (stream_depart): while nothing a direction carried was changed, numbers stay
 * as they are. Once a processor changes its bytes (an edit, a drop of data, an injected
 * packet), the direction is "rewritten": each segment that leaves is numbered after the one
 * before as the receiver sees them (out numbers), a reference to it is kept until the receiver
 * acknowledges it, and the other direction's acknowledgements (and SACK blocks) are mapped back
 * to the sender's numbers (in numbers) through those kept segments.
 */
#include <errno.h>
#include <string.h>

#include <rte_byteorder.h>
#include <rte_ip.h>
#include <rte_malloc.h>
#include <rte_tcp.h>
#include <rte_udp.h>

#include "fo_engine_priv.h"

#define SENT_MIN 64           /* kept segments per rewritten direction, at first (a power of two) */
#define SENT_MAX 16384        /* ... at most: then the oldest copy is let go */
#define RESEND_MAX 4          /* kept copies sent again for one retransmission, at most */
#define DEFAULT_MSS 536       /* RFC 9293's default, when neither the SYN nor the traffic says more */
#define TCP_OPT_MSS 2
#define TCP_OPT_SACK 5
#define TCP_OPT_TIMESTAMPS 8

static inline struct rte_tcp_hdr *
tcp_of(struct rte_mbuf *m)
{
	return rte_pktmbuf_mtod_offset(m, struct rte_tcp_hdr *, fo_pkt_meta(m)->offset[FO_LEVEL_L4]);
}

static inline uint32_t
seg_seq(struct rte_mbuf *m)
{
	return rte_be_to_cpu_32(tcp_of(m)->sent_seq);
}

static inline void
set_seq(struct rte_mbuf *m, uint32_t seq)
{
	tcp_of(m)->sent_seq = rte_cpu_to_be_32(seq);
	fo_pkt_meta(m)->flags |= FO_PKT_HDR_DIRTY;
}

/* Sequence space a segment takes: its payload, and one for a FIN. */
static inline uint32_t
seg_end(struct rte_mbuf *m)
{
	return seg_seq(m) + fo_pkt_level_len(m, FO_LEVEL_PAYLOAD) + !!(tcp_of(m)->tcp_flags & RTE_TCP_FIN_FLAG);
}

/* Where the IP header says the packet ends: the length it arrived with, until fix_lengths. */
static uint32_t
ip_header_end(struct rte_mbuf *m)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	uint16_t l3 = meta->offset[FO_LEVEL_L3];

	if (meta->flags & FO_PKT_IPV4)
		return l3 + rte_be_to_cpu_16(rte_pktmbuf_mtod_offset(m, struct rte_ipv4_hdr *, l3)->total_length);
	return l3 + sizeof(struct rte_ipv6_hdr) +
		rte_be_to_cpu_16(rte_pktmbuf_mtod_offset(m, struct rte_ipv6_hdr *, l3)->payload_len);
}

int
fo_stream_wants(const struct fo_engine *e, const struct fo_flow *flow, const struct rte_mbuf *m)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta((struct rte_mbuf *)(uintptr_t)m);

	return flow->key.proto == IPPROTO_TCP && flow_streams(e, flow) != NULL &&
		meta->ip_proto == IPPROTO_TCP && meta->offset[FO_LEVEL_PAYLOAD] != FO_NO_LEVEL &&
		!(meta->flags & FO_PKT_FRAGMENT) && meta->offset[FO_LEVEL_PAYLOAD] <= m->data_len;
}

/* The value of m's first TCP option of this kind (its length in *len), or NULL. */
static uint8_t *
tcp_option(struct rte_mbuf *m, uint8_t kind, uint8_t *len)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	uint8_t *opt = rte_pktmbuf_mtod_offset(m, uint8_t *, meta->offset[FO_LEVEL_L4] + sizeof(struct rte_tcp_hdr));
	uint8_t *end = rte_pktmbuf_mtod_offset(m, uint8_t *, meta->offset[FO_LEVEL_PAYLOAD]);

	while (opt < end && *opt != 0) {
		if (*opt == 1) {
			opt++;
			continue;
		}
		if (opt + 1 >= end || opt[1] < 2 || opt + opt[1] > end)
			return NULL;
		if (opt[0] == kind) {
			*len = opt[1] - 2;
			return opt + 2;
		}
		opt += opt[1];
	}
	return NULL;
}

static uint16_t
tcp_mss_option(struct rte_mbuf *m)
{
	uint8_t len;
	const uint8_t *v = tcp_option(m, TCP_OPT_MSS, &len);

	return v != NULL && len == 2 ? (uint16_t)(v[0] << 8 | v[1]) : 0;
}

/* The 8 bytes of m's TCP timestamps option (TSval, TSecr), or NULL. */
static uint8_t *
tcp_timestamps(struct rte_mbuf *m)
{
	uint8_t len;
	uint8_t *v = tcp_option(m, TCP_OPT_TIMESTAMPS, &len);

	return v != NULL && len == 8 ? v : NULL;
}

/* --- the kept segments of a rewritten direction ---------------------------------------------- */

static inline struct sent_seg *
sent_at(const struct stream_dir *sd, uint32_t k)
{
	return &sd->sent[(sd->sent_head + k) & (sd->sent_cap - 1)];
}

static void
sent_pop(struct fo_engine *e, struct stream_dir *sd)
{
	struct sent_seg *s = sent_at(sd, 0);

	sd->base_in = s->acks_to;
	sd->base_out = s->out + s->out_len;
	if (s->m != NULL) {
		rte_pktmbuf_free(s->m);
		RELAXED_ADD(e->stats.kept_copies, -1);
	}
	sd->sent_head = (sd->sent_head + 1) & (sd->sent_cap - 1);
	sd->sent_n--;
}

/* Room for one more kept segment: the ring grows, and at its largest lets the oldest go. */
static int
sent_room(struct fo_engine *e, struct stream_dir *sd)
{
	struct sent_seg *grown;
	uint32_t cap, k;

	if (sd->sent_n < sd->sent_cap)
		return 0;
	if (sd->sent_cap == SENT_MAX) {
		sent_pop(e, sd);
		RELAXED_ADD(e->stats.stream_copies_evicted, 1);
		return 0;
	}
	cap = sd->sent_cap ? sd->sent_cap * 2 : SENT_MIN;
	grown = rte_malloc_socket("fo_sent", sizeof(*grown) * cap, 0, e->conf.socket_id);
	if (grown == NULL) {
		if (sd->sent_n == 0)
			return -ENOMEM;
		sent_pop(e, sd);
		RELAXED_ADD(e->stats.stream_copies_evicted, 1);
		return 0;
	}
	for (k = 0; k < sd->sent_n; k++)
		grown[k] = *sent_at(sd, k);
	rte_free(sd->sent);
	sd->sent = grown;
	sd->sent_cap = cap;
	sd->sent_head = 0;
	return 0;
}

/* Keeps m (a reference to it: it is sent too) as the segment for in..in+in_len. */
static void
sent_push(struct fo_engine *e, struct stream_dir *sd, struct rte_mbuf *m, uint32_t in, uint32_t in_len,
	  uint32_t out, uint32_t out_len, uint32_t acks_to)
{
	struct sent_seg *s;
	struct rte_mbuf *seg;

	if (sent_room(e, sd) != 0) {
		/* No memory for even one: numbers move on, as if the receiver had it acknowledged. */
		sd->base_in = acks_to;
		sd->base_out = out + out_len;
		return;
	}
	s = &sd->sent[(sd->sent_head + sd->sent_n++) & (sd->sent_cap - 1)];
	s->m = m;
	s->in = in;
	s->in_len = in_len;
	s->out = out;
	s->out_len = out_len;
	s->acks_to = acks_to;
	for (seg = m; seg != NULL; seg = seg->next)
		rte_mbuf_refcnt_update(seg, 1);
	if (m != NULL)
		RELAXED_ADD(e->stats.kept_copies, 1);
}

/* The sender's number for the receiver's acknowledgement ack. */
static uint32_t
ack_in(const struct stream_dir *sd, uint32_t ack)
{
	uint32_t at_in = sd->base_in, at_out = sd->base_out, k;

	for (k = 0; k < sd->sent_n; k++) {
		const struct sent_seg *s = sent_at(sd, k);

		if (seq_lt(ack, s->out))
			break;
		if (seq_lt(ack, s->out + s->out_len)) {
			/* Into a segment: exact if it is the sender's bytes unchanged; else none of it. */
			if (s->in_len == s->out_len && s->acks_to == s->in + s->in_len)
				return s->in + (ack - s->out);
			return at_in;
		}
		at_in = s->acks_to;
		at_out = s->out + s->out_len;
	}
	return at_in + (ack - at_out);
}

/* The receiver's number for the sender's sequence number seq (of data that is not kept). */
static uint32_t
seq_out(const struct stream_dir *sd, uint32_t seq)
{
	if (!sd->rewritten)
		return seq;
	if (seq_geq(seq, sd->in_nxt))
		return seq + (sd->out_nxt - sd->in_nxt);
	return seq + (sd->base_out - sd->base_in);
}

static void
start_rewriting(struct stream_dir *sd)
{
	sd->rewritten = 1;
	sd->base_in = sd->in_nxt;
	sd->base_out = sd->out_nxt;
}

/* --- on the way in ---------------------------------------------------------------------------- */

static void
map_sack(struct rte_mbuf *m, const struct stream_dir *sd)
{
	uint8_t len, *edge;
	uint8_t *blocks = tcp_option(m, TCP_OPT_SACK, &len);

	if (blocks == NULL)
		return;
	for (edge = blocks; edge + 4 <= blocks + len; edge += 4) {
		uint32_t v;

		memcpy(&v, edge, 4);
		v = rte_cpu_to_be_32(ack_in(sd, rte_be_to_cpu_32(v)));
		memcpy(edge, &v, 4);
	}
	fo_pkt_meta(m)->flags |= FO_PKT_HDR_DIRTY;
}

/* Trims n bytes off the front of a segment (or, with back, off its end); its IP length follows. */
static int
trim(struct fo_engine *e, struct rte_mbuf *m, uint32_t n, int back)
{
	struct fo_pkt_meta *meta = fo_pkt_meta(m);
	uint32_t plen = fo_pkt_level_len(m, FO_LEVEL_PAYLOAD);
	int ret;

	if (n > plen)
		n = plen;
	ret = fo_pkt_splice(e->pc->conf.pool, m, meta->offset[FO_LEVEL_PAYLOAD] + (back ? plen - n : 0), n, NULL, 0);
	if (ret != 0)
		return ret;
	if (!back)
		set_seq(m, seg_seq(m) + n);
	fo_fix_lengths(m);
	meta->flags |= FO_PKT_HDR_DIRTY;
	RELAXED_ADD(e->stats.stream_overlap_bytes, n);
	return 0;
}

/* Sends a packet that does not go through the pipeline, its checksums repaired if needed. */
static void
send_now(struct fo_engine *e, struct rte_mbuf *m)
{
	if (fo_pkt_meta(m)->flags & FO_PKT_HDR_DIRTY)
		fo_fix_checksums(e, m);
	fo_send(e, m);
}

void
fo_stream_map_acks(struct fo_engine *e, struct fo_flow *flow, struct rte_mbuf *m, uint8_t dir)
{
	struct stream_flow *sf = flow_streams(e, flow);
	struct stream_dir *other = &sf->dir[dir ^ 1];
	struct rte_tcp_hdr *th = tcp_of(m);
	uint32_t ack;

	if (!(th->tcp_flags & RTE_TCP_ACK_FLAG))
		return;
	ack = rte_be_to_cpu_32(th->recv_ack);
	if (other->rewritten) {
		uint32_t in = ack_in(other, ack);

		while (other->sent_n > 0 && seq_leq(sent_at(other, 0)->out + sent_at(other, 0)->out_len, ack))
			sent_pop(e, other);
		map_sack(m, other);
		if (in != ack) {
			th->recv_ack = rte_cpu_to_be_32(in);
			fo_pkt_meta(m)->flags |= FO_PKT_HDR_DIRTY;
			RELAXED_ADD(e->stats.stream_rewritten, 1);
		}
		ack = in;
	}
	/* The receiver has bytes FlowOS never saw (it joined mid-connection): they will not come. */
	if (other->synced && seq_gt(ack, other->rcv_nxt)) {
		other->rcv_nxt = ack;
		if (!other->rewritten)
			other->in_nxt = other->out_nxt = ack;
		RELAXED_ADD(e->stats.stream_gaps_skipped, 1);
	}
}

/* A segment of data received before: it leaves once, as it first left. Returns 1 (taken). */
static int
retransmission(struct fo_engine *e, struct stream_dir *sd, struct rte_mbuf *m, uint32_t seq, uint32_t end)
{
	uint32_t k, resent = 0;
	const uint8_t *ts;

	if (seq_gt(end, sd->in_nxt)) {
		/*
		 * Part of it is still in the flow's queue, and leaves from there. (If a processor holds
		 * it, waiting for bytes its sender sends only once these are acknowledged, the hold
		 * ends when the flow has brought no new bytes for a while: fo_stream_hold.c.)
		 */
		if (seq_geq(seq, sd->in_nxt) || trim(e, m, end - sd->in_nxt, 1) != 0) {
			RELAXED_ADD(e->stats.stream_duplicates, 1);
			fo_drop(e, m);
			return 1;
		}
		tcp_of(m)->tcp_flags &= ~RTE_TCP_FIN_FLAG;
		end = sd->in_nxt;
	}
	RELAXED_ADD(e->stats.stream_retransmits, 1);
	if (!sd->rewritten) {
		send_now(e, m);
		return 1;
	}
	/*
	 * The copies of the range, in order, but a few at most: each copy the receiver has already
	 * gets a duplicate ACK, and a retransmission that covers many small copies (or is answered
	 * by many) would multiply the packets. The receiver acknowledges those sent, they are let go,
	 * and the sender's next retransmission brings the next ones.
	 */
	ts = tcp_timestamps(m);
	for (k = 0; k < sd->sent_n && resent < RESEND_MAX; k++) {
		struct sent_seg *s = sent_at(sd, k);
		struct rte_mbuf *seg;
		uint8_t *copy_ts;

		if (s->m == NULL || !seq_lt(s->in, end) || !seq_gt(s->in + s->in_len, seq))
			continue;
		/*
		 * It leaves with the retransmission's timestamps: the receiver may have taken a newer
		 * TSval since the copy first left, and would discard an older one (PAWS, RFC 7323).
		 */
		copy_ts = tcp_timestamps(s->m);
		if (ts != NULL && copy_ts != NULL && memcmp(copy_ts, ts, 8) != 0) {
			memcpy(copy_ts, ts, 8);
			fo_fix_checksums(e, s->m);
		}
		for (seg = s->m; seg != NULL; seg = seg->next)
			rte_mbuf_refcnt_update(seg, 1);
		fo_send(e, s->m);
		resent++;
	}
	if (resent > 0) {
		/* The retransmission leaves as the copies: counted so that every packet out has a reason. */
		RELAXED_ADD(e->stats.created, resent);
		RELAXED_ADD(e->stats.stream_copies_resent, resent);
		RELAXED_ADD(e->stats.replaced, 1);
		rte_pktmbuf_free(m);
		return 1;
	}
	/* Acknowledged already: the receiver will answer it with an ACK. */
	set_seq(m, seq_out(sd, seq));
	send_now(e, m);
	return 1;
}

static int
hold_out_of_order(struct fo_engine *e, struct fo_flow *flow, struct stream_dir *sd, struct rte_mbuf *m,
		  uint32_t seq, uint32_t end)
{
	struct rte_mbuf *prev = NULL, *cur = sd->ooo;

	while (cur != NULL && seq_lt(seg_seq(cur), seq)) {
		prev = cur;
		cur = *pkt_next(cur);
	}
	if (cur != NULL && seg_seq(cur) == seq && seq_geq(seg_end(cur), end)) {
		RELAXED_ADD(e->stats.stream_duplicates, 1);
		fo_drop(e, m);
		return 1;
	}
	if (sd->ooo_n >= e->defs[flow->key.def].conf.reorder_packets) {
		RELAXED_ADD(e->stats.stream_reorder_overflow, 1);
		fo_drop(e, m);
		return 1;
	}
	*pkt_next(m) = cur;
	if (prev != NULL)
		*pkt_next(prev) = m;
	else
		sd->ooo = m;
	sd->ooo_n++;
	RELAXED_ADD(e->stats.held, 1);
	RELAXED_ADD(e->stats.stream_reordered, 1);
	return 1;
}

int
fo_stream_admit(struct fo_engine *e, struct fo_flow *flow, struct rte_mbuf *m, uint8_t dir)
{
	struct stream_flow *sf = flow_streams(e, flow);
	struct stream_dir *sd = &sf->dir[dir];
	struct rte_tcp_hdr *th = tcp_of(m);
	uint8_t flags = th->tcp_flags;
	uint32_t seq = rte_be_to_cpu_32(th->sent_seq), plen = fo_pkt_level_len(m, FO_LEVEL_PAYLOAD), end;

	/*
	 * What a SYN (TCP Fast Open) or a RST carries is not given to payload-level processors: it
	 * passes as it came (a SYN cannot be split, a RST's text is not the stream's).
	 */
	if ((flags & (RTE_TCP_SYN_FLAG | RTE_TCP_RST_FLAG)) && plen > 0)
		fo_pkt_meta(m)->offset[FO_LEVEL_PAYLOAD] = fo_pkt_meta(m)->end;
	if (flags & RTE_TCP_RST_FLAG)
		return 0;
	if (flags & RTE_TCP_SYN_FLAG) {
		uint16_t mss = tcp_mss_option(m);

		if (mss != 0)
			sf->dir[dir ^ 1].mss = mss;
		if (!sd->synced || sd->in_nxt == sd->rcv_nxt) {
			sd->rcv_nxt = seq + 1 + plen + !!(flags & RTE_TCP_FIN_FLAG);
			sd->in_nxt = sd->out_nxt = seq + 1;
			sd->synced = 1;
		}
		return 0;
	}
	if (!sd->synced) {
		/* Picked up in the middle: the stream starts here. */
		sd->rcv_nxt = sd->in_nxt = sd->out_nxt = seq;
		sd->synced = 1;
	}
	if (plen > sd->largest)
		sd->largest = RTE_MIN(plen, (uint32_t)UINT16_MAX);
	end = seq + plen + !!(flags & RTE_TCP_FIN_FLAG);
	if (end == seq)
		return 0;   /* no data: an ACK, a window update */
	if (seq_leq(end, sd->rcv_nxt))
		return retransmission(e, sd, m, seq, end);
	if (unlikely(flow_over_budget(e, flow))) {
		/* New data from a flow over its share of the keep budget: its sender resends it. */
		RELAXED_ADD(e->stats.budget_segments_dropped, 1);
		fo_drop(e, m);
		return 1;
	}
	if (seq_lt(seq, sd->rcv_nxt)) {
		if (trim(e, m, sd->rcv_nxt - seq, 0) != 0) {
			fo_drop(e, m);
			return 1;
		}
		seq = sd->rcv_nxt;
	}
	if (seq == sd->rcv_nxt) {
		sd->rcv_nxt = end;
		sd->new_at = e->now;
		return 0;
	}
	return hold_out_of_order(e, flow, sd, m, seq, end);
}

void
fo_stream_drain(struct fo_engine *e, struct fo_flow *flow, uint8_t dir)
{
	struct stream_dir *sd = &flow_streams(e, flow)->dir[dir];

	while (sd->ooo != NULL && seq_leq(seg_seq(sd->ooo), sd->rcv_nxt)) {
		struct rte_mbuf *m = sd->ooo;

		sd->ooo = *pkt_next(m);
		sd->ooo_n--;
		RELAXED_ADD(e->stats.held, -1);
		if (seq_leq(seg_end(m), sd->rcv_nxt) ||
		    (seq_lt(seg_seq(m), sd->rcv_nxt) && trim(e, m, sd->rcv_nxt - seg_seq(m), 0) != 0)) {
			RELAXED_ADD(e->stats.stream_duplicates, 1);
			fo_drop(e, m);
			continue;
		}
		sd->rcv_nxt = seg_end(m);
		sd->new_at = e->now;
		fo_flow_enqueue(e, flow, m);
	}
}

/* --- on the way out ------------------------------------------------------------------------- */

/* Sends m (a rewritten direction's data) as segments of at most mss payload bytes, all kept. */
static void
send_split(struct fo_engine *e, struct stream_dir *sd, struct rte_mbuf *m, uint32_t in, uint32_t in_span,
	   uint32_t mss)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	uint32_t pay = meta->offset[FO_LEVEL_PAYLOAD], plen = meta->end - pay, done, out = sd->out_nxt;
	uint8_t fin = tcp_of(m)->tcp_flags & RTE_TCP_FIN_FLAG;

	for (done = 0; done < plen; done += mss) {
		uint32_t n = RTE_MIN(mss, plen - done);
		int last = done + n == plen;
		struct rte_mbuf *p = fo_pkt_build(e->pc->conf.pool, m, pay, pay + done, n);

		if (p == NULL)
			break;
		*fo_pkt_meta(p) = *meta;
		fo_pkt_meta(p)->end = pay + n;
		fo_pkt_meta(p)->next = NULL;
		tcp_of(p)->sent_seq = rte_cpu_to_be_32(out + done);
		if (!last)
			tcp_of(p)->tcp_flags &= ~(RTE_TCP_FIN_FLAG | RTE_TCP_PSH_FLAG);
		fo_fix_lengths(p);
		fo_fix_checksums(e, p);
		sent_push(e, sd, p, in, in_span, out + done, n + (last ? !!fin : 0), last ? in + in_span : in);
		fo_send(e, p);
		RELAXED_ADD(e->stats.created, 1);
		RELAXED_ADD(e->stats.stream_split_parts, 1);
	}
	if (done < plen) {
		/* Out of mbufs: what is left goes as one segment, past the MSS (counted). */
		RELAXED_ADD(e->stats.stream_split_failed, 1);
		if (done > 0 && fo_pkt_splice(e->pc->conf.pool, m, pay, done, NULL, 0) != 0) {
			fo_drop(e, m);
			sd->out_nxt = out + done;
			return;
		}
		set_seq(m, out + done);
		fo_fix_lengths(m);
		fo_fix_checksums(e, m);
		sent_push(e, sd, m, in, in_span, out + done, plen - done + !!fin, in + in_span);
		fo_send(e, m);
	} else {
		RELAXED_ADD(e->stats.replaced, 1);   /* it left as its parts */
		rte_pktmbuf_free(m);
	}
	sd->out_nxt = out + plen + !!fin;
	RELAXED_ADD(e->stats.stream_split, 1);
}

struct rte_mbuf *
fo_stream_split_rest(struct fo_engine *e, struct rte_mbuf *m, uint32_t n)
{
	struct fo_pkt_meta *meta = fo_pkt_meta(m), *rmeta;
	uint32_t pay = meta->offset[FO_LEVEL_PAYLOAD], plen = fo_pkt_level_len(m, FO_LEVEL_PAYLOAD);
	uint32_t in_len = ip_header_end(m) > pay ? ip_header_end(m) - pay : 0;
	/* Edits are taken to lie before the cut: the rest is as the sender sent it. */
	uint32_t rest = plen - n, rest_in = RTE_MIN(rest, in_len), front_in = in_len - rest_in;
	struct rte_mbuf *r;

	if (n == 0 || n >= plen)
		return NULL;
	r = fo_pkt_build(e->pc->conf.pool, m, pay, pay + n, rest);
	if (r == NULL)
		goto fail;
	if (fo_pkt_splice(e->pc->conf.pool, m, pay + n, rest, NULL, 0) != 0)   /* at the end: nothing moves */
		goto fail;
	rmeta = fo_pkt_meta(r);
	*rmeta = *meta;
	rmeta->next = NULL;
	rmeta->end = pay + rest;
	tcp_of(m)->tcp_flags &= ~RTE_TCP_FIN_FLAG;   /* the FIN stays with the last byte */
	fo_pkt_set_ip_end(m, pay + front_in);         /* the sender's bytes each part covers */
	fo_pkt_set_ip_end(r, pay + rest_in);
	set_seq(r, seg_seq(m) + front_in);
	meta->flags |= FO_PKT_HDR_DIRTY;
	RELAXED_ADD(e->stats.stream_release_split, 1);
	RELAXED_ADD(e->stats.created, 1);
	return r;
fail:
	rte_pktmbuf_free(r);
	RELAXED_ADD(e->stats.stream_release_split_failed, 1);
	return NULL;
}

int
fo_stream_depart(struct fo_engine *e, struct fo_flow *flow, struct rte_mbuf *m)
{
	struct fo_pkt_meta *meta = fo_pkt_meta(m);
	struct stream_dir *sd;
	struct rte_tcp_hdr *th;
	uint32_t seq, in, in_span, in_len, out_len, mss;
	int dropped = meta->verdict == FO_DROP, injected = meta->first_stage > 0, fin;

	if (!fo_stream_wants(e, flow, m))
		return 0;
	sd = &flow_streams(e, flow)->dir[meta->dir];
	th = tcp_of(m);
	seq = rte_be_to_cpu_32(th->sent_seq);
	fin = !!(th->tcp_flags & RTE_TCP_FIN_FLAG);
	in_len = ip_header_end(m) > meta->offset[FO_LEVEL_PAYLOAD] ? ip_header_end(m) - meta->offset[FO_LEVEL_PAYLOAD] : 0;
	out_len = fo_pkt_level_len(m, FO_LEVEL_PAYLOAD);
	if (injected)
		in_len = 0;
	if ((th->tcp_flags & (RTE_TCP_SYN_FLAG | RTE_TCP_RST_FLAG)) || !sd->synced ||
	    (in_len + fin == 0 && out_len == 0)) {
		/* No data: numbered as the receiver numbers the sender's data. */
		if (dropped) {
			fo_drop(e, m);
			return 1;
		}
		if (!(th->tcp_flags & RTE_TCP_SYN_FLAG) && seq_out(sd, seq) != seq) {
			set_seq(m, seq_out(sd, seq));
			RELAXED_ADD(e->stats.stream_rewritten, 1);
		}
		if (meta->verdict == FO_MODIFIED || (meta->flags & (FO_PKT_EDITED | FO_PKT_HDR_DIRTY)))
			fo_fix_checksums(e, m);
		fo_send(e, m);
		return 1;
	}
	if (dropped && fin) {
		/* Dropping data does not drop the end of the stream: the FIN goes, without the data. */
		if (out_len > 0 && fo_pkt_splice(e->pc->conf.pool, m, meta->offset[FO_LEVEL_PAYLOAD], out_len, NULL, 0) == 0)
			out_len = 0;
		dropped = out_len > 0;
	}
	if (!sd->rewritten && (injected || dropped || out_len != in_len || meta->verdict == FO_MODIFIED ||
			       (meta->flags & FO_PKT_EDITED)))
		start_rewriting(sd);
	in = injected ? sd->in_nxt : seq;
	in_span = in_len + (injected ? 0 : fin);
	if (!sd->rewritten) {
		sd->in_nxt = sd->out_nxt = in + in_span;
		if (meta->flags & (FO_PKT_EDITED | FO_PKT_HDR_DIRTY))
			fo_fix_checksums(e, m);
		fo_send(e, m);
		return 1;
	}
	if (dropped) {
		sent_push(e, sd, NULL, in, in_span, sd->out_nxt, 0, in + in_span);
		sd->in_nxt = in + in_span;
		fo_drop(e, m);
		return 1;
	}
	/* The MSS option counts no TCP options: the segment's own (timestamps...) come off it. */
	mss = sd->mss ? sd->mss - RTE_MIN((uint32_t)sd->mss / 2, meta->offset[FO_LEVEL_PAYLOAD] -
					  meta->offset[FO_LEVEL_L4] - (uint32_t)sizeof(struct rte_tcp_hdr)) :
		RTE_MAX(sd->largest, (uint16_t)DEFAULT_MSS);
	if (out_len > mss) {
		send_split(e, sd, m, in, in_span, mss);
	} else {
		uint32_t out = sd->out_nxt;

		if (out != seq) {
			set_seq(m, out);
			RELAXED_ADD(e->stats.stream_rewritten, 1);
		}
		fo_fix_lengths(m);
		fo_fix_checksums(e, m);
		sent_push(e, sd, m, in, in_span, out, out_len + fin, in + in_span);
		sd->out_nxt = out + out_len + fin;
		fo_send(e, m);
	}
	sd->in_nxt = in + in_span;
	return 1;
}

void
fo_stream_cut_back(struct fo_engine *e, struct fo_flow *flow, uint32_t share)
{
	struct stream_flow *sf = flow_streams(e, flow);
	int d;

	for (d = 0; d < 2 && flow_kept(e, flow) > share; d++) {
		struct stream_dir *sd = &sf->dir[d];

		/* Past a gap, nothing has been given to processors yet: the sender resends it. */
		while (sd->ooo != NULL) {
			struct rte_mbuf *m = sd->ooo;

			sd->ooo = *pkt_next(m);
			sd->ooo_n--;
			RELAXED_ADD(e->stats.held, -1);
			RELAXED_ADD(e->stats.stream_reorder_overflow, 1);
			fo_drop(e, m);
		}
	}
	/* A copy let go is data whose retransmission can no longer be answered as it first left. */
	for (d = 0; d < 2; d++) {
		struct stream_dir *sd = &sf->dir[d];

		while (sd->sent_n > 0 && flow_kept(e, flow) > share) {
			sent_pop(e, sd);
			RELAXED_ADD(e->stats.stream_copies_evicted, 1);
		}
	}
}

void
fo_stream_flow_end(struct fo_engine *e, struct fo_flow *flow)
{
	struct stream_flow *sf = flow_streams(e, flow);
	int d;

	if (sf == NULL)
		return;
	for (d = 0; d < 2; d++) {
		struct stream_dir *sd = &sf->dir[d];

		/* What waited past a gap goes as it is: ending a flow loses no data. */
		while (sd->ooo != NULL) {
			struct rte_mbuf *m = sd->ooo;

			sd->ooo = *pkt_next(m);
			RELAXED_ADD(e->stats.held, -1);
			if (sd->rewritten)
				set_seq(m, seq_out(sd, seg_seq(m)));
			send_now(e, m);
		}
		sd->ooo_n = 0;
		while (sd->sent_n > 0)
			sent_pop(e, sd);
		rte_free(sd->sent);
		sd->sent = NULL;
		sd->sent_cap = 0;
	}
}
