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

#endif /* FO_BENCHPROC_H */
