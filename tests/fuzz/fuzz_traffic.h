/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FUZZ_TRAFFIC_H
#define FUZZ_TRAFFIC_H

/*
 * Traffic for the engine targets, decoded from the fuzz input as records, each a type byte
 * (its value mod 5) and its fields:
 *   0 frame:   2-byte length (mod 1600), the frame's bytes (the captures' frames seed these)
 *   1 segment: a TCP segment of one of 4 connections (IPv4, or IPv6 for connection 3), built
 *              with valid headers and checksums: direction, flags, sequence and acknowledgement
 *              as signed offsets from what that side sent and received so far, window, an MSS
 *              option on SYNs, payload length (mod 1461) and bytes
 *   2 burst:   what is pending goes through fo_engine_burst now
 *   3 clock:   2 bytes: time moves on by that many times 10 ms (capture clock: timeouts happen)
 *   4 other:   handed to the target's own hook (stream edits), with the input to read its fields
 * A burst also goes when 32 packets are pending, and at the end. Then the engine is shut down
 * and freed, and every mbuf must be back in the pool.
 */
#include "fuzz_common.h"

typedef void (*fuzz_record_hook)(struct fuzz_in *in);
typedef void (*fuzz_end_hook)(struct fo_engine *e);

void fuzz_traffic_init(void);

/*
 * Runs the input's traffic through e (fuzz_engine's), records of type 4 through hook, calls
 * at_end (if any) once the traffic is in, then shuts e down and frees it.
 */
void fuzz_traffic_run(struct fo_engine *e, const uint8_t *data, size_t size, fuzz_record_hook hook,
		      fuzz_end_hook at_end, const char *target);

#endif /* FUZZ_TRAFFIC_H */
