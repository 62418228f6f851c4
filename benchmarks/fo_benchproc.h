/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_BENCHPROC_H
#define FO_BENCHPROC_H

/*
 * The C processor of the processors benchmark: the same read-only logic as its Python and
 * Cython processors, written against the processor ABI. It reads the L4 destination port of
 * every packet it is given and counts those to port 443. No parameters, no per-flow state.
 */
#include <stdint.h>

#include <flowos/fo_processor.h>

struct fo_bench_dport_ctx {
	uint64_t packets;    /* packets seen */
	uint64_t matched;    /* ... with destination port 443 */
};

extern const struct fo_processor_ops fo_bench_dport_ops;

/*
 * bench_nothing: returns at once, having counted the packets of each batch (not each packet):
 * what having a processor in the stage costs the engine (per-flow queues, windows, verdicts,
 * release) with nothing of a processor's own, the floor under every tier's figures.
 */
struct fo_bench_nothing_ctx {
	uint64_t packets;
};

extern const struct fo_processor_ops fo_bench_nothing_ops;

/*
 * The streams benchmark's C processors (payload level, with streams), the logic of its Python
 * and Cython ones (benchmarks/streambench.py, cystream.pyx) written against fo_stream.h.
 *
 * bench_find counts the matches of a pattern in both directions of every flow, also across
 * packets: it scans each window with fo_stream_find and releases it up to where the pattern
 * may still be starting (the window's end less the longest proper prefix of the pattern it
 * ends with), so that a match cut by a packet boundary is found when its end arrives. What it
 * holds comes back whole in the next window (release is per packet), so it keeps, per flow and
 * direction, where the next match may start, and scans only from there.
 *
 * bench_edit makes one edit at the start of every data packet's payload, in both directions:
 * none (it only walks the packets and their stream offsets), a same-length replace, an insert
 * or a delete of `bytes` bytes (fo_stream_splice, from the last packet back, so that the
 * offsets it computed stay right).
 */
struct fo_bench_find_params {
	uint32_t pattern_len;
	uint8_t pattern[64];
};

struct fo_bench_find_ctx {
	struct fo_bench_find_params p;
	uint64_t calls, windows, matched, scanned;   /* scanned: bytes searched (held ones once) */
};

enum fo_bench_edit_mode { FO_BENCH_EDIT_NONE = 0, FO_BENCH_EDIT_REPLACE, FO_BENCH_EDIT_INSERT, FO_BENCH_EDIT_DELETE };

struct fo_bench_edit_params {
	uint8_t mode;       /* enum fo_bench_edit_mode */
	uint8_t bytes;      /* 1..16 */
};

struct fo_bench_edit_ctx {
	struct fo_bench_edit_params p;
	uint64_t packets, edits, failed;
};

extern const struct fo_processor_ops fo_bench_find_ops;
extern const struct fo_processor_ops fo_bench_edit_ops;

#endif /* FO_BENCHPROC_H */
