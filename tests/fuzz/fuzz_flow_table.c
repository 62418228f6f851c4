/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The flow table (ext/src/fo_flow_table.c: keys, TCP state, idle lists, the fragment cache)
 * through the engine: the traffic of fuzz_traffic.h (frames of any protocol, TCP segments of 4
 * connections, time passing) into an engine of only 8 flows with no processors, so that the
 * table fills, refuses, expires and reuses its ids; frames past one mbuf come chained. The engine's own counters must add up: every
 * flow created is active or ended, and no more are active than the table holds. At the end
 * every mbuf is back in the pool.
 */
#include <stdio.h>
#include <stdlib.h>

#include "fuzz_traffic.h"

#define CAPACITY 8

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init(1);
	fuzz_traffic_init();
	return 0;
}

/* Checks the counters once the input's traffic went through, before the engine ends its flows. */
static void
check(struct fo_engine *e)
{
	struct fo_engine_stats st;
	uint64_t ended = 0;
	int r;

	fo_engine_read_stats(e, &st);
	for (r = 0; r < FO_END_REASON_COUNT; r++)
		ended += st.flows_ended[r];
	if (st.flows_created != st.flows_active + ended || st.flows_active > CAPACITY ||
	    st.flows_peak > CAPACITY) {
		fprintf(stderr, "fuzz_flow_table: %lu created, %lu active, %lu ended, peak %lu (of %d)\n",
			(unsigned long)st.flows_created, (unsigned long)st.flows_active, (unsigned long)ended,
			(unsigned long)st.flows_peak, CAPACITY);
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fuzz_traffic traffic = { .target = "fuzz_flow_table", .at_end = check, .chains = 1 };

	fuzz_traffic_run(fuzz_engine(CAPACITY, 0, NULL, 0), data, size, &traffic);
	return 0;
}
