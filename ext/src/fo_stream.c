/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The stream view of a processor's window (fo_stream.h): finding, reading and editing a flow
 * direction's bytes across the window's packets, and releasing up to a point.
 */
#define _GNU_SOURCE   /* memmem */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <rte_mbuf.h>

#include "flowos/fo_stream.h"
#include "fo_engine_priv.h"

#define MAX_PATTERN 4096

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
			fo_pkt_write(m, at, data, cut);
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
