/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The stream view of a processor's window (fo_stream.h), and the one function that changes a
 * packet's payload length (pkt_splice), which the stream edits and the TCP normaliser share.
 */
#define _GNU_SOURCE   /* memmem */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_mbuf.h>

#include "flowos/fo_stream.h"
#include "fo_engine_priv.h"

#define MAX_PATTERN 4096

/* Overwrites n bytes of m at frame offset at, across segments. */
static void
pkt_write(struct rte_mbuf *m, uint32_t at, const uint8_t *data, uint32_t n)
{
	struct rte_mbuf *seg;

	for (seg = m; seg != NULL && n > 0; seg = seg->next) {
		uint32_t k;

		if (at >= seg->data_len) {
			at -= seg->data_len;
			continue;
		}
		k = RTE_MIN(n, (uint32_t)seg->data_len - at);
		memcpy(rte_pktmbuf_mtod_offset(seg, uint8_t *, at), data, k);
		data += k;
		n -= k;
		at = 0;
	}
}

/* A place in a chain: a segment and an offset in it. */
struct seg_pos {
	struct rte_mbuf *seg;
	uint32_t at;
};

static void
seg_seek(struct rte_mbuf *m, uint32_t off, struct seg_pos *p)
{
	p->seg = m;
	while (p->seg != NULL && off >= p->seg->data_len) {
		off -= p->seg->data_len;
		p->seg = p->seg->next;
	}
	p->at = off;
}

static void
seg_advance(struct seg_pos *p, uint32_t k)
{
	p->at += k;
	if (p->at == p->seg->data_len) {
		p->seg = p->seg->next;
		p->at = 0;
	}
}

/* Moves the n bytes at frame offset from back to offset to (to < from), across segments. */
static void
pkt_move_back(struct rte_mbuf *m, uint32_t to, uint32_t from, uint32_t n)
{
	struct seg_pos w, r;

	if (n == 0)
		return;
	seg_seek(m, to, &w);
	seg_seek(m, from, &r);
	while (n > 0) {
		uint32_t k = RTE_MIN(n, RTE_MIN(w.seg->data_len - w.at, r.seg->data_len - r.at));

		memmove(rte_pktmbuf_mtod_offset(w.seg, uint8_t *, w.at), rte_pktmbuf_mtod_offset(r.seg, uint8_t *, r.at), k);
		n -= k;
		seg_advance(&w, k);
		seg_advance(&r, k);
	}
}

/* Cuts m to its first len bytes, freeing the segments past them. */
static void
pkt_truncate(struct rte_mbuf *m, uint32_t len)
{
	struct rte_mbuf *seg = m;
	uint32_t kept = 0;
	uint16_t n = 1;

	while (kept + seg->data_len < len && seg->next != NULL) {
		kept += seg->data_len;
		seg = seg->next;
		n++;
	}
	seg->data_len = len - kept;
	if (seg->next != NULL) {
		rte_pktmbuf_free(seg->next);
		seg->next = NULL;
	}
	m->nb_segs = n;
	m->pkt_len = len;
}

int
fo_pkt_splice(struct rte_mempool *pool, struct rte_mbuf *m, uint32_t at, uint32_t del, const void *ins, uint32_t ins_len)
{
	struct fo_pkt_meta *meta = fo_pkt_meta(m);
	uint32_t end = meta->end, total, done, room;
	struct rte_mbuf *segs[RTE_MBUF_MAX_NB_SEGS], *prev;
	uint16_t n_segs = 0, s;
	uint8_t *tmp;

	if (at + del > end || at > rte_pktmbuf_pkt_len(m))
		return -ERANGE;
	total = end - del + ins_len;
	if (total > FO_DECODE_MAX_LEN)
		return -EMSGSIZE;
	if (ins_len <= del) {
		/* No longer: the bytes after move back in place, in any number of segments. */
		pkt_write(m, at, ins, ins_len);
		pkt_move_back(m, at + ins_len, at + del, end - at - del);
		pkt_truncate(m, total);    /* Ethernet padding after the IP packet goes */
		meta->end = total;
		return 0;
	}
	if (m->nb_segs == 1 && (uint32_t)m->data_off + total <= m->buf_len) {
		uint8_t *d = rte_pktmbuf_mtod(m, uint8_t *);

		memmove(d + at + ins_len, d + at + del, end - at - del);
		memcpy(d + at, ins, ins_len);
		m->data_len = total;
		m->pkt_len = total;
		meta->end = total;
		return 0;
	}
	/* It does not fit in place: gather the new bytes, then lay them over m and new segments. */
	room = m->buf_len - m->data_off;
	while (room + (uint32_t)n_segs * (rte_pktmbuf_data_room_size(pool) - RTE_PKTMBUF_HEADROOM) < total) {
		if (n_segs + 1 == RTE_MBUF_MAX_NB_SEGS || (segs[n_segs] = rte_pktmbuf_alloc(pool)) == NULL) {
			for (s = 0; s < n_segs; s++)
				rte_pktmbuf_free(segs[s]);
			return -ENOMEM;
		}
		n_segs++;
	}
	tmp = malloc(total);
	if (tmp == NULL) {
		for (s = 0; s < n_segs; s++)
			rte_pktmbuf_free(segs[s]);
		return -ENOMEM;
	}
	pkt_copy_out(m, 0, at, tmp);
	memcpy(tmp + at, ins, ins_len);
	pkt_copy_out(m, at + del, end - at - del, tmp + at + ins_len);
	if (m->next != NULL)
		rte_pktmbuf_free(m->next);
	m->next = NULL;
	done = RTE_MIN(total, room);
	memcpy(rte_pktmbuf_mtod(m, uint8_t *), tmp, done);
	m->data_len = done;
	m->nb_segs = 1;
	prev = m;
	for (s = 0; s < n_segs; s++) {
		struct rte_mbuf *seg = segs[s];
		uint32_t n = RTE_MIN(total - done, (uint32_t)rte_pktmbuf_tailroom(seg));

		memcpy(rte_pktmbuf_mtod(seg, uint8_t *), tmp + done, n);
		seg->data_len = n;
		done += n;
		prev->next = seg;
		prev = seg;
		m->nb_segs++;
	}
	free(tmp);
	m->pkt_len = total;
	meta->end = total;
	return 0;
}

int
fo_pkt_pullup(struct rte_mbuf *m, uint32_t len)
{
	if (len <= m->data_len)
		return 0;
	if (len > rte_pktmbuf_pkt_len(m) || (uint32_t)m->data_off + len > m->buf_len || RTE_MBUF_CLONED(m))
		return -ENOSPC;
	while (m->data_len < len) {
		struct rte_mbuf *seg = m->next;
		uint32_t k = RTE_MIN(len - m->data_len, (uint32_t)seg->data_len);

		memcpy(rte_pktmbuf_mtod_offset(m, uint8_t *, m->data_len), rte_pktmbuf_mtod(seg, uint8_t *), k);
		m->data_len += k;
		seg->data_off += k;
		seg->data_len -= k;
		if (seg->data_len == 0) {
			m->next = seg->next;
			seg->next = NULL;
			seg->nb_segs = 1;
			rte_pktmbuf_free_seg(seg);
			m->nb_segs--;
		}
	}
	return 0;
}

struct rte_mbuf *
fo_pkt_build(struct rte_mempool *pool, const struct rte_mbuf *m, uint32_t hdr, uint32_t off, uint32_t len)
{
	struct rte_mbuf *head = NULL, *tail = NULL, *seg;
	uint32_t total = hdr + len, done = 0;

	do {
		uint32_t n, k;
		uint8_t *d;

		seg = rte_pktmbuf_alloc(pool);
		if (seg == NULL)
			goto fail;
		n = RTE_MIN(total - done, (uint32_t)rte_pktmbuf_tailroom(seg));
		if ((head == NULL && n < hdr) || (head != NULL && head->nb_segs == RTE_MBUF_MAX_NB_SEGS))
			goto fail;   /* the headers go in the first segment */
		d = rte_pktmbuf_mtod(seg, uint8_t *);
		k = done < hdr ? RTE_MIN(n, hdr - done) : 0;
		pkt_copy_out(m, done, k, d);
		pkt_copy_out(m, off + done + k - hdr, n - k, d + k);
		seg->data_len = n;
		done += n;
		if (head == NULL) {
			head = seg;
		} else {
			tail->next = seg;
			head->nb_segs++;
		}
		tail = seg;
	} while (done < total);
	head->pkt_len = total;
	return head;
fail:
	rte_pktmbuf_free(seg);
	rte_pktmbuf_free(head);
	return NULL;
}

/* The window's bytes of one direction, piece by piece: one per mbuf segment of each packet. */
struct piece_iter {
	const struct fo_batch *b;
	uint8_t dir;
	uint16_t next;            /* the next window packet to look at */
	uint16_t pkt;             /* the packet of the current piece */
	const struct rte_mbuf *seg;
	uint32_t skip;            /* bytes of seg before the payload */
	uint32_t left;            /* payload bytes of the packet after this segment's start */
	uint64_t off;             /* the stream offset of the next piece */
};

static void
piece_start(struct piece_iter *it, const struct fo_batch *b, uint8_t dir)
{
	memset(it, 0, sizeof(*it));
	it->b = b;
	it->dir = dir & 1;
	it->off = b->stream_base[it->dir];
}

static int
piece_next(struct piece_iter *it, const uint8_t **p, uint32_t *len)
{
	uint32_t n;

	while (it->seg == NULL || it->left == 0) {
		struct rte_mbuf *m;

		if (it->next >= it->b->n)
			return 0;
		m = it->b->pkts[it->next++];
		if (fo_pkt_meta(m)->dir != it->dir || (it->left = fo_pkt_level_len(m, FO_LEVEL_PAYLOAD)) == 0)
			continue;
		it->pkt = it->next - 1;
		it->seg = m;
		it->skip = fo_pkt_meta(m)->offset[FO_LEVEL_PAYLOAD];
		while (it->seg != NULL && it->skip >= it->seg->data_len) {
			it->skip -= it->seg->data_len;
			it->seg = it->seg->next;
		}
	}
	n = RTE_MIN((uint32_t)it->seg->data_len - it->skip, it->left);
	*p = rte_pktmbuf_mtod(it->seg, const uint8_t *) + it->skip;
	*len = n;
	it->off += n;
	it->left -= n;
	it->seg = it->seg->next;
	it->skip = 0;
	return 1;
}

uint64_t
fo_stream_start(const struct fo_batch *b, uint8_t dir)
{
	return b->stream_base[dir & 1];
}

uint64_t
fo_stream_len(const struct fo_batch *b, uint8_t dir)
{
	uint64_t len = 0;
	uint16_t i;

	for (i = 0; i < b->n; i++)
		if (fo_pkt_meta(b->pkts[i])->dir == (dir & 1))
			len += fo_pkt_level_len(b->pkts[i], FO_LEVEL_PAYLOAD);
	return len;
}

int64_t
fo_stream_find(const struct fo_batch *b, uint8_t dir, const void *pat, uint32_t pat_len, uint64_t from, uint64_t to)
{
	/* The last pat_len - 1 bytes seen, for a match that starts in one piece and ends in another. */
	uint8_t carry[2 * MAX_PATTERN];
	uint32_t carry_len = 0, len;
	uint64_t carry_off = 0, off;
	struct piece_iter it;
	const uint8_t *p;

	if (pat_len == 0 || pat_len > MAX_PATTERN)
		return pat_len == 0 ? (int64_t)RTE_MAX(from, fo_stream_start(b, dir)) : -1;
	piece_start(&it, b, dir);
	while (piece_next(&it, &p, &len)) {
		const uint8_t *hit;

		off = it.off - len;
		if (off + len <= from)
			continue;
		if (off >= to)
			break;
		if (off < from) {
			p += from - off;
			len -= from - off;
			off = from;
		}
		if (off + len > to)
			len = to - off;
		if (carry_len > 0) {
			uint32_t head = RTE_MIN(pat_len - 1, len);

			memcpy(carry + carry_len, p, head);
			hit = memmem(carry, carry_len + head, pat, pat_len);
			if (hit != NULL && (uint32_t)(hit - carry) < carry_len)
				return carry_off + (hit - carry);
		}
		hit = memmem(p, len, pat, pat_len);
		if (hit != NULL)
			return off + (hit - p);
		if (len >= pat_len - 1) {
			carry_len = pat_len - 1;
			memcpy(carry, p + len - carry_len, carry_len);
			carry_off = off + len - carry_len;
		} else {
			uint32_t keep = RTE_MIN(carry_len, pat_len - 1 - len);

			memmove(carry, carry + carry_len - keep, keep);
			memcpy(carry + keep, p, len);
			carry_off = off - keep;
			carry_len = keep + len;
		}
	}
	return -1;
}

uint32_t
fo_stream_read(const struct fo_batch *b, uint8_t dir, uint64_t off, void *out, uint32_t len)
{
	struct piece_iter it;
	const uint8_t *p;
	uint32_t n, done = 0;

	piece_start(&it, b, dir);
	while (done < len && piece_next(&it, &p, &n)) {
		uint64_t start = it.off - n, at = off + done;
		uint32_t k;

		if (start + n <= at)
			continue;
		if (start > at)
			break;
		k = RTE_MIN((uint64_t)(len - done), start + n - at);
		memcpy((uint8_t *)out + done, p + (at - start), k);
		done += k;
	}
	return done;
}

const uint8_t *
fo_stream_peek(const struct fo_batch *b, uint8_t dir, uint64_t off, uint32_t *avail)
{
	struct piece_iter it;
	const uint8_t *p;
	uint32_t n;

	piece_start(&it, b, dir);
	while (piece_next(&it, &p, &n)) {
		uint64_t start = it.off - n;

		if (off >= start && off < start + n) {
			*avail = start + n - off;
			return p + (off - start);
		}
	}
	*avail = 0;
	return NULL;
}

int
fo_stream_locate(const struct fo_batch *b, uint8_t dir, uint64_t off, uint16_t *index, uint32_t *pkt_off)
{
	uint64_t start = fo_stream_start(b, dir);
	uint16_t i, last = UINT16_MAX;
	uint32_t plen = 0;

	for (i = 0; i < b->n; i++) {
		if (fo_pkt_meta(b->pkts[i])->dir != (dir & 1) ||
		    (plen = fo_pkt_level_len(b->pkts[i], FO_LEVEL_PAYLOAD)) == 0)
			continue;
		if (off >= start && off < start + plen) {
			*index = i;
			*pkt_off = off - start;
			return 0;
		}
		start += plen;
		last = i;
	}
	if (off == start && last != UINT16_MAX) {   /* the end: in the last packet, after its bytes */
		*index = last;
		*pkt_off = fo_pkt_level_len(b->pkts[last], FO_LEVEL_PAYLOAD);
		return 0;
	}
	return -ERANGE;
}

static void
mark_modified(struct fo_batch *b, uint16_t i)
{
	fo_pkt_meta(b->pkts[i])->flags |= FO_PKT_EDITED;   /* a later hold keeps it */
	if (b->verdicts[i] == FO_PASS)
		b->verdicts[i] = FO_MODIFIED;
}

/*
 * Whether FlowOS can make m right again after an edit of its payload (one that changes its length
 * too, with resize): its checksums, and the lengths and numbers its headers carry.
 */
static int
pkt_editable(const struct fo_batch *b, struct rte_mbuf *m, int resize)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);

	if (!fo_checksums_fixable(m))
		return 0;
	if (!resize)
		return 1;
	if (meta->flags & FO_PKT_FRAGMENT)   /* the datagram's length is in its first fragment */
		return 0;
	switch (meta->ip_proto) {
	case IPPROTO_TCP:
		return b->normalized;        /* sequence numbers follow the change */
	case IPPROTO_UDP:
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return 1;
	default:
		return 0;                    /* a protocol whose own lengths FlowOS does not know */
	}
}

/* Whether every packet an edit of del bytes at (first, local) touches lets it be made. */
static int
edit_allowed(const struct fo_batch *b, uint8_t dir, uint16_t first, uint32_t local, uint32_t del, int resize)
{
	uint16_t i;

	for (i = first; i < b->n && (i == first || del > 0); i++) {
		struct rte_mbuf *m = b->pkts[i];
		uint32_t plen;

		if (fo_pkt_meta(m)->dir != (dir & 1) || (plen = fo_pkt_level_len(m, FO_LEVEL_PAYLOAD)) == 0)
			continue;
		if (!pkt_editable(b, m, resize))
			return 0;
		del -= RTE_MIN(del, plen - (i == first ? local : 0));
	}
	return 1;
}

int
fo_stream_can_resize(const struct fo_batch *b, uint8_t dir, uint64_t off, uint32_t len)
{
	uint64_t start = fo_stream_start(b, dir);
	uint32_t local;
	uint16_t first;

	if (off < start || off + len > start + fo_stream_len(b, dir) || fo_stream_locate(b, dir, off, &first, &local) != 0)
		return 0;
	return edit_allowed(b, dir, first, local, len, 1);
}

int
fo_stream_splice(struct fo_batch *b, uint8_t dir, uint64_t off, uint32_t del, const void *ins, uint32_t ins_len)
{
	uint64_t start = fo_stream_start(b, dir), pos;
	const uint8_t *data = ins;
	uint16_t i, first;
	uint32_t local;
	int ret;

	if (off < start || off + del > start + fo_stream_len(b, dir) || fo_stream_locate(b, dir, off, &first, &local) != 0)
		return -ERANGE;
	if (del == 0 && ins_len == 0)
		return 0;                    /* an empty edit: nothing to change (and ins may be NULL) */
	/* Refused before anything changes: the packets would leave wrong. */
	if (!edit_allowed(b, dir, first, local, del, del != ins_len)) {
		RELAXED_ADD(b->engine->stats.stream_edits_refused, 1);
		return -EPERM;
	}
	/*
	 * Packet by packet from the one holding off. A replace writes each its share in place; a
	 * length change takes each its share of del, and gives the first one all of ins: only the
	 * first may grow, and it goes first, so a failure (no mbuf, past 64 KB) changes nothing.
	 */
	pos = off - local;
	for (i = first; i < b->n && (i == first || del > 0); i++) {
		struct rte_mbuf *m = b->pkts[i];
		const struct fo_pkt_meta *meta = fo_pkt_meta(m);
		uint32_t plen, cut, at;

		if (meta->dir != (dir & 1) || (plen = fo_pkt_level_len(m, FO_LEVEL_PAYLOAD)) == 0)
			continue;
		local = i == first ? off - pos : 0;
		at = meta->offset[FO_LEVEL_PAYLOAD] + local;
		cut = RTE_MIN(del, plen - local);
		pos += plen;
		if (del == ins_len) {
			pkt_write(m, at, data, cut);
			data += cut;
			ins_len -= cut;
		} else {
			ret = fo_pkt_splice(fo_batch_pool(b), m, at, cut, i == first ? data : NULL, i == first ? ins_len : 0);
			if (ret != 0) {
				RELAXED_ADD(b->engine->stats.stream_edits_refused, 1);
				return ret;
			}
			if (i == first)
				ins_len = 0;
		}
		del -= cut;
		if (cut > 0 || i == first)
			mark_modified(b, i);
	}
	return 0;
}

uint64_t
fo_stream_release(struct fo_batch *b, uint8_t dir, uint64_t upto)
{
	uint64_t start = fo_stream_start(b, dir);
	uint16_t i;

	for (i = 0; i < b->n; i++) {
		uint32_t plen;

		if (fo_pkt_meta(b->pkts[i])->dir != (dir & 1) ||
		    (plen = fo_pkt_level_len(b->pkts[i], FO_LEVEL_PAYLOAD)) == 0)
			continue;
		if (start + plen > upto) {
			if (b->verdicts[i] == FO_DROP)
				return start;
			b->verdicts[i] = FO_HOLD;
			/*
			 * On normalised TCP the bytes before upto go on: the packet is cut once the call
			 * is over (fo_pipeline.c, split_held), so the window stays as it is until then.
			 */
			if (upto > start && b->normalized && i <= b->split_at &&
			    fo_stream_wants(b->engine, b->flow, b->pkts[i])) {
				b->split_at = i;
				b->split_bytes = upto - start;
				return upto;
			}
			return start;
		}
		start += plen;
	}
	return start;
}

const struct fo_stream_ops fo_stream_ops = {
	.start = fo_stream_start,
	.len = fo_stream_len,
	.find = fo_stream_find,
	.read = fo_stream_read,
	.peek = fo_stream_peek,
	.splice = fo_stream_splice,
	.release = fo_stream_release,
	.can_resize = fo_stream_can_resize,
};
