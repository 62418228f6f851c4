/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The TCP normaliser (ext/src/fo_tcp_norm.c) through the engine: TCP segments and raw frames from
 * the input (fuzz_traffic.h: out of order, overlapping, retransmitted, with SYN/FIN/RST in any
 * order, time passing, frames past one mbuf chained) into an engine with streams on and one payload reader, which reads every
 * stream it is shown and, as the input's first byte says, releases all of it or holds back its
 * last bytes (as a processor waiting for more does). The stream view must be consistent: what
 * it says is there can be read. At the end every mbuf is back in the pool.
 */
#include <stdio.h>
#include <stdlib.h>

#include "flowos/fo_stream.h"

#include "fuzz_traffic.h"

static uint8_t hold_back;     /* bytes the reader keeps unreleased at the end of each stream */

static void
broken(const char *what)
{
	fprintf(stderr, "fuzz_tcp_norm: %s\n", what);
	abort();
}

static void
reader(void *ctx, struct fo_batch *b, uint16_t n)
{
	uint8_t buf[256];
	uint16_t i;
	uint8_t d;

	for (i = 0; i < n; i++) {
		for (d = 0; d < 2; d++) {
			uint64_t start = fo_stream_start(&b[i], d), len = fo_stream_len(&b[i], d), off;
			uint32_t avail;

			for (off = start; off < start + len; off += avail) {
				const uint8_t *p = fo_stream_peek(&b[i], d, off, &avail);

				if (p == NULL || avail == 0 || avail > start + len - off)
					broken("the stream has a hole where it says there are bytes");
			}
			if (len > 0 && fo_stream_read(&b[i], d, start + len - 1, buf, sizeof(buf)) != 1)
				broken("the stream's last byte cannot be read");
			if (hold_back > 0 && len > hold_back)
				fo_stream_release(&b[i], d, start + len - hold_back);
		}
	}
}

static const struct fo_processor_ops reader_ops = {
	.name = "fuzz_reader", .level = FO_LEVEL_PAYLOAD, .readonly = 1, .process = reader,
};

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init(1);
	fuzz_traffic_init();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct fo_processor_ops *const ops[] = { &reader_ops };
	static const struct fuzz_traffic traffic = { .target = "fuzz_tcp_norm", .chains = 1 };

	if (size == 0)
		return 0;
	hold_back = data[0] % 8 == 0 ? data[0] / 8 : 0;
	fuzz_traffic_run(fuzz_engine(64, 1, ops, 1), data + 1, size - 1, &traffic);
	return 0;
}
