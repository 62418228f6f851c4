/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FUZZ_TRAFFIC_H
#define FUZZ_TRAFFIC_H

/*
 * Traffic for the engine targets, decoded from the fuzz input as records, each a type byte
 * (its value mod 5) and its fields:
 *   0 frame:   2-byte length (mod 9216: jumbo frames, in chained mbufs where the target asks for
 *              them), the frame's bytes (the captures' frames seed these)
 *   1 segment: a TCP segment of one of 4 connections (IPv4, or IPv6 for connection 3), built
 *              with valid headers and checksums: direction, flags, sequence and acknowledgement
 *              as signed offsets from what that side sent and received so far, window, an MSS
 *              option on SYNs, payload length (mod 1461) and bytes
 *   2 burst:   what is pending goes through fo_engine_burst now
 *   3 clock:   2 bytes: time moves on by that many times 10 ms (capture clock: timeouts happen)
 *   4 other:   handed to the target's own hook (stream edits), with the input to read its fields
 * A burst also goes when 32 packets are pending, and at the end. Then the engine is shut down:
 * its counters must account for every packet (in + created = sent + unsent + dropped + replaced,
 * none held), and once it is freed every mbuf must be back in the pool.
 */
#include "fuzz_common.h"

typedef void (*fuzz_record_hook)(struct fuzz_in *in);
typedef void (*fuzz_end_hook)(struct fo_engine *e);

struct fuzz_traffic {
	const char *target;         /* for messages */
	fuzz_record_hook hook;      /* records of type 4; or NULL */
	fuzz_end_hook at_end;       /* once the traffic is in, before the engine ends its flows; or NULL */
	fuzz_end_hook after_burst;  /* after each burst through the engine; or NULL */
	int chains;                 /* frames longer than one mbuf come as chains of mbufs (else cut short) */
};

void fuzz_traffic_init(void);

/* Aborts (a finding) unless e's counters account for every packet, none held. */
void fuzz_check_accounting(const struct fo_engine *e, const char *target);

/* Runs the input's traffic through e (fuzz_engine's) as t says, then shuts e down and frees it. */
void fuzz_traffic_run(struct fo_engine *e, const uint8_t *data, size_t size, const struct fuzz_traffic *t);

#endif /* FUZZ_TRAFFIC_H */
