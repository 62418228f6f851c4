/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The classifier (ext/src/fo_classify.c: definitions compiled into one rte_acl trie) against
 * the plain linear match it stands for (fo_match_test, ext/src/fo_match.c), on definitions and
 * frames from the input: for every frame the trie must name the first definition whose match
 * the frame's fields (fo_match_fields_of, after fo_decode) satisfy. Definitions are made as the
 * configuration makes them: an address match has a family and a prefix no longer than its
 * addresses, a port range has lo <= hi. Up to 4 definitions are tested linearly
 * (fo_classify.c's LINEAR_MAX), more by the lists of their destination ports when no port lists
 * more than 8 (PORT_LIST_MAX: a random range is one port half the time), else through the trie:
 * all three are checked. The fields the engine takes from the decoder's answer
 * (fo_match_fields_decoded) must be the metadata's.
 *
 * Input: a byte n (1 + n % 16 definitions), each definition's fields, then frames (2-byte
 * length, in port, bytes) to the end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "flowos/fo_classify.h"
#include "flowos/fo_decode.h"
#include "flowos/fo_match.h"
#include "flowos/fo_processor.h"

#include "fuzz_common.h"

#define MAX_DEFS 16
#define MAX_FRAMES 16

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_init(0);
	return 0;
}

static void
read_match(struct fuzz_in *in, struct fo_match *m)
{
	size_t len;
	uint8_t bits;

	memset(m, 0, sizeof(*m));
	m->fields = fuzz_u8(in);
	m->family = (uint8_t[]){ FO_FAMILY_ANY, FO_FAMILY_IPV4, FO_FAMILY_IPV6 }[fuzz_u8(in) % 3];
	if ((m->fields & (FO_MATCH_SRC_IP | FO_MATCH_DST_IP)) && m->family == FO_FAMILY_ANY)
		m->family = FO_FAMILY_IPV4;
	bits = m->family == FO_FAMILY_IPV6 ? 128 : 32;
	m->proto = fuzz_u8(in);
	m->in_port = fuzz_u8(in) % 4;
	memcpy(m->src_mac, fuzz_bytes(in, 6, &len), len);
	memcpy(m->dst_mac, fuzz_bytes(in, 6, &len), len);
	memcpy(m->src_ip, fuzz_bytes(in, bits / 8, &len), len);
	memcpy(m->dst_ip, fuzz_bytes(in, bits / 8, &len), len);
	m->src_prefix = fuzz_u8(in) % (bits + 1);
	m->dst_prefix = fuzz_u8(in) % (bits + 1);
	m->src_port_lo = fuzz_u16(in);
	m->src_port_hi = fuzz_u16(in);
	m->dst_port_lo = fuzz_u16(in);
	m->dst_port_hi = fuzz_u16(in);
	if (m->src_port_lo > m->src_port_hi)
		m->src_port_hi = m->src_port_lo;
	if (m->dst_port_lo > m->dst_port_hi)
		m->dst_port_hi = m->dst_port_lo;
}

/* The engine's metadata of m, as fo_pkt_decode writes it, and what fo_decode found (*d). */
static void
decode(struct rte_mbuf *m, struct fo_decoded *d)
{
	struct fo_pkt_meta *meta = fo_pkt_meta(m);
	int l;

	fo_decode(rte_pktmbuf_mtod(m, const uint8_t *), rte_pktmbuf_data_len(m), d);
	memset(meta, 0, sizeof(*meta));
	for (l = 0; l < FO_LEVEL_COUNT; l++)
		meta->offset[l] = d->offset[l];
	meta->end = d->end;
	meta->flags = d->flags;
	meta->ip_proto = d->ip_proto;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	struct fo_match defs[MAX_DEFS];
	uint16_t n = 1 + fuzz_u8(&in) % MAX_DEFS, i, frames = 0;
	struct fo_classifier *c;
	uint32_t constant;

	for (i = 0; i < n; i++)
		read_match(&in, &defs[i]);
	c = fo_classifier_create("fuzz", defs, n, SOCKET_ID_ANY);
	if (c == NULL)
		return 0;     /* refused, with a reason: not a finding */
	constant = fo_classifier_constant(c);
	while (in.left > 0 && frames++ < MAX_FRAMES) {
		size_t want = fuzz_u16(&in) % 1600, len;
		uint16_t port = fuzz_u8(&in) % 4;
		const uint8_t *bytes = fuzz_bytes(&in, want, &len);
		struct rte_mbuf *m = fuzz_mbuf(bytes, len);
		struct fo_match_fields f, f_decoded;
		struct fo_decoded d;
		struct fo_class_key key;
		const struct fo_class_key *kp = &key;
		uint32_t got, want_def = FO_CLASS_NONE;

		decode(m, &d);
		fo_match_fields_of(m, port, &f);
		/* The engine's fields come from the decoder's answer: they must be the metadata's. */
		fo_match_fields_decoded(m, &d, port, &f_decoded);
		if (memcmp(&f, &f_decoded, sizeof(f)) != 0) {
			fprintf(stderr, "fuzz_classify: fo_match_fields_decoded and fo_match_fields_of differ\n");
			abort();
		}
		memset(&key, 0, sizeof(key));
		fo_class_key_fill(&key, &f);
		fo_classify(c, &kp, &f, &got, 1);
		for (i = 0; i < n && want_def == FO_CLASS_NONE; i++)
			if (fo_match_test(&defs[i], &f))
				want_def = i;
		if (got != want_def || (constant != FO_CLASS_VARIES && constant != want_def)) {
			fprintf(stderr, "fuzz_classify: the classifier says %u (constant %u), fo_match_test %u\n",
				got, constant, want_def);
			abort();
		}
		rte_pktmbuf_free(m);
	}
	fo_classifier_free(c);
	return 0;
}
