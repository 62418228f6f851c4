/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Stream edits (ext/src/fo_stream.c) through the engine: the traffic of fuzz_traffic.h into an
 * engine with streams on and one editor, whose operations come from the input too (records of
 * type 4: find, replace what is found, delete, insert, release up to a point), kept in a ring
 * of 8 and applied in order to both directions of every flow at every call; frames longer
 * than one mbuf come as chains, and edits of up to 255 bytes grow packets past one. A splice must
 * succeed or say why (fo_stream.h's errors), and an edit that succeeded must be there to read.
 * At the end every mbuf is back in the pool.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowos/fo_stream.h"

#include "fuzz_traffic.h"

#define RING 8
#define MAX_BYTES 256

enum op { OP_FIND, OP_REPLACE, OP_DELETE, OP_INSERT, OP_RELEASE, OP_COUNT };

struct edit {
	uint8_t op;                /* enum op */
	uint16_t at;               /* where, from the window's start (mod its length + 1) */
	uint8_t del;               /* bytes deleted */
	uint16_t len;              /* bytes: the pattern found, or inserted */
	uint8_t bytes[MAX_BYTES];
	uint16_t with_len;         /* OP_REPLACE: what replaces the pattern */
	uint8_t with[MAX_BYTES];
};

static struct edit ring[RING];
static unsigned int n_edits;

static void
broken(const char *what, int ret)
{
	fprintf(stderr, "fuzz_stream_edit: %s (%d)\n", what, ret);
	abort();
}

/* Record 4: one more edit (the oldest goes when there are RING). */
static void
read_edit(struct fuzz_in *in)
{
	struct edit *ed = &ring[n_edits++ % RING];
	size_t got;

	ed->op = fuzz_u8(in) % OP_COUNT;
	ed->at = fuzz_u16(in);
	ed->del = fuzz_u8(in);
	ed->len = fuzz_u8(in) % MAX_BYTES;
	memcpy(ed->bytes, fuzz_bytes(in, ed->len, &got), got);
	ed->len = (uint16_t)got;
	ed->with_len = fuzz_u8(in) % MAX_BYTES;
	memcpy(ed->with, fuzz_bytes(in, ed->with_len, &got), got);
	ed->with_len = (uint16_t)got;
}

static void
splice(struct fo_batch *b, uint8_t d, uint64_t off, uint32_t del, const uint8_t *ins, uint32_t ins_len)
{
	uint8_t back[MAX_BYTES];
	int ret = fo_stream_splice(b, d, off, del, ins, ins_len);

	if (ret != 0 && ret != -ERANGE && ret != -EPERM && ret != -EMSGSIZE && ret != -ENOMEM)
		broken("a splice failed with an undocumented error", ret);
	if (ret == 0 && ins_len > 0 &&
	    (fo_stream_read(b, d, off, back, ins_len) != ins_len || memcmp(back, ins, ins_len) != 0))
		broken("a splice succeeded but its bytes are not there", ret);
}

static void
apply(struct fo_batch *b, uint8_t d, const struct edit *ed)
{
	uint64_t start = fo_stream_start(b, d), len = fo_stream_len(b, d), at = start + ed->at % (len + 1);
	int64_t hit;

	switch (ed->op) {
	case OP_FIND:
	case OP_REPLACE:
		if (ed->len == 0)
			return;
		hit = fo_stream_find(b, d, ed->bytes, ed->len, start, start + len);
		if (hit >= 0 && ((uint64_t)hit < start || (uint64_t)hit + ed->len > start + len))
			broken("a find answered outside the window", (int)(hit - (int64_t)start));
		if (hit >= 0 && ed->op == OP_REPLACE)
			splice(b, d, (uint64_t)hit, ed->len, ed->with, ed->with_len);
		return;
	case OP_DELETE:
		splice(b, d, at, ed->del, NULL, 0);
		return;
	case OP_INSERT:
		splice(b, d, at, 0, ed->bytes, ed->len);
		return;
	default:
		fo_stream_release(b, d, at);
		return;
	}
}

static void
editor(void *ctx, struct fo_batch *b, uint16_t n)
{
	unsigned int k, first = n_edits > RING ? n_edits - RING : 0;
	uint16_t i;
	uint8_t d;

	for (i = 0; i < n; i++)
		for (d = 0; d < 2; d++)
			for (k = first; k < n_edits; k++)
				apply(&b[i], d, &ring[k % RING]);
}

static const struct fo_processor_ops editor_ops = {
	.name = "fuzz_editor", .level = FO_LEVEL_PAYLOAD, .readonly = 0, .process = editor,
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
	static const struct fo_processor_ops *const ops[] = { &editor_ops };
	static const struct fuzz_traffic traffic = { .target = "fuzz_stream_edit", .hook = read_edit, .chains = 1 };

	n_edits = 0;
	fuzz_traffic_run(fuzz_engine(64, 1, ops, 1), data, size, &traffic);
	return 0;
}
