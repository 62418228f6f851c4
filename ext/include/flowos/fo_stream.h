/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_STREAM_H
#define FO_STREAM_H

/*
 * The stream view: what a payload-level processor holds of one flow direction, as bytes.
 *
 * A processor's window, restricted to one direction (0: from the flow's opener, 1: the other
 * way), is a run of the direction's stream: for TCP, the normaliser has put the data in
 * sequence order, each byte once; for UDP and ICMP, the datagrams' payloads in arrival order.
 * Offsets are absolute: the stream's first byte is 0, and fo_batch.stream_base[dir] is where
 * this window starts (what this processor released before). Each processor counts its own
 * offsets: the stream as the previous stage left it, with this processor's own edits.
 *
 * Edits change the packets in place (their verdict becomes FO_MODIFIED). Length changes are
 * what TCP would carry: the engine rewrites sequence numbers on the edited direction and
 * acknowledgement numbers (and SACK blocks) on the other, for the rest of the connection, and
 * splits a packet that grew past the direction's MSS when it leaves.
 */
#include <stdint.h>
#include <sys/types.h>

#include "fo_processor.h"

/* The window's bytes of one direction: [fo_stream_start, fo_stream_start + fo_stream_len). */
uint64_t fo_stream_start(const struct fo_batch *b, uint8_t dir);
uint64_t fo_stream_len(const struct fo_batch *b, uint8_t dir);

/*
 * Finds pat in [from, to) (clamped to the window), also across packets. Returns the absolute
 * offset of its first byte, or -1.
 */
int64_t fo_stream_find(const struct fo_batch *b, uint8_t dir, const void *pat, uint32_t pat_len,
		       uint64_t from, uint64_t to);

/* Copies up to len bytes from absolute offset off into out; returns how many it copied. */
uint32_t fo_stream_read(const struct fo_batch *b, uint8_t dir, uint64_t off, void *out, uint32_t len);

/*
 * A pointer to the bytes at off if they lie in one piece of one packet: *avail is how many
 * follow in that piece. NULL if off is outside the window.
 */
const uint8_t *fo_stream_peek(const struct fo_batch *b, uint8_t dir, uint64_t off, uint32_t *avail);

/*
 * Where off is: the window index of the packet holding it and the offset in its payload.
 * Returns 0, or -ERANGE.
 */
int fo_stream_locate(const struct fo_batch *b, uint8_t dir, uint64_t off, uint16_t *index, uint32_t *pkt_off);

/*
 * Replaces the del bytes at off with the ins_len bytes of ins: a same-length replace, a delete
 * (ins_len 0) or an insert (del 0), in packets of any number of segments. Returns 0, or
 * -ERANGE (outside the window), -EPERM (an edit the packets it touches could not carry right:
 * see fo_stream_can_resize; and any edit behind an IPv6 routing header whose final destination
 * FlowOS cannot read), -EMSGSIZE (a packet would grow past 64 KB), -ENOMEM (no mbuf). An edit
 * that fails changes nothing; every failure but -ERANGE is counted (stream_edits_refused).
 */
int fo_stream_splice(struct fo_batch *b, uint8_t dir, uint64_t off, uint32_t del, const void *ins, uint32_t ins_len);

/*
 * 1 if a length-changing edit of the len bytes at off (len 0: an insert at off) would be made,
 * memory and the 64 KB bound aside; else 0. Lengths may change on a normalised TCP flow
 * (streams: on), on UDP, ICMP and ICMPv6, never in an IP fragment or in another protocol. The
 * whole window: off = fo_stream_start(b, dir), len = fo_stream_len(b, dir).
 */
int fo_stream_can_resize(const struct fo_batch *b, uint8_t dir, uint64_t off, uint32_t len);

/*
 * Releases the direction's bytes before upto and holds the rest (holding a packet holds every
 * later packet of the window, both directions). On normalised TCP, a packet that upto falls
 * inside is cut there once the call is over: its first bytes go on, the rest waits as a segment
 * of its own (held whole if no mbuf is left to cut into). Elsewhere the packet holding upto is held whole.
 * Returns the offset up to which the bytes are released.
 */
uint64_t fo_stream_release(struct fo_batch *b, uint8_t dir, uint64_t upto);

/* The same operations, for code that does not link the fast path (fo_batch.stream_ops). */
struct fo_stream_ops {
	uint64_t (*start)(const struct fo_batch *b, uint8_t dir);
	uint64_t (*len)(const struct fo_batch *b, uint8_t dir);
	int64_t (*find)(const struct fo_batch *b, uint8_t dir, const void *pat, uint32_t pat_len,
			uint64_t from, uint64_t to);
	uint32_t (*read)(const struct fo_batch *b, uint8_t dir, uint64_t off, void *out, uint32_t len);
	const uint8_t *(*peek)(const struct fo_batch *b, uint8_t dir, uint64_t off, uint32_t *avail);
	int (*splice)(struct fo_batch *b, uint8_t dir, uint64_t off, uint32_t del, const void *ins, uint32_t ins_len);
	uint64_t (*release)(struct fo_batch *b, uint8_t dir, uint64_t upto);
	int (*can_resize)(const struct fo_batch *b, uint8_t dir, uint64_t off, uint32_t len);
};

extern const struct fo_stream_ops fo_stream_ops;

#endif /* FO_STREAM_H */
