/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <rte_acl.h>
#include <rte_byteorder.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_malloc.h>

#include "flowos/fo_classify.h"

enum {
	F_PROTO, F_IN_PORT, F_FAMILY,
	F_SRC0, F_SRC1, F_SRC2, F_SRC3,
	F_DST0, F_DST1, F_DST2, F_DST3,
	F_SPORT, F_DPORT,
	F_SMAC_HI, F_SMAC_LO, F_DMAC_LO, F_DMAC_HI,
	F_COUNT
};

RTE_ACL_RULE_DEF(class_rule, F_COUNT);

#define FIELD(t, f, input, member) { \
	.type = RTE_ACL_FIELD_TYPE_##t, \
	.size = sizeof(((struct fo_class_key *)0)->member), \
	.field_index = (f), .input_index = (input), \
	.offset = offsetof(struct fo_class_key, member) }
#define ADDR_FIELD(f, input, member, word) { \
	.type = RTE_ACL_FIELD_TYPE_MASK, .size = 4, .field_index = (f), .input_index = (input), \
	.offset = offsetof(struct fo_class_key, member) + 4 * (word) }

/*
 * rte_acl reads the first byte alone, then groups of 4 bytes: one input_index per group, and
 * the fields of a group must cover all 4 of its bytes.
 */
static const struct rte_acl_field_def class_fields[F_COUNT] = {
	FIELD(BITMASK, F_PROTO, 0, proto),
	FIELD(RANGE, F_IN_PORT, 1, in_port),
	FIELD(BITMASK, F_FAMILY, 1, family),
	ADDR_FIELD(F_SRC0, 2, src_ip, 0), ADDR_FIELD(F_SRC1, 3, src_ip, 1),
	ADDR_FIELD(F_SRC2, 4, src_ip, 2), ADDR_FIELD(F_SRC3, 5, src_ip, 3),
	ADDR_FIELD(F_DST0, 6, dst_ip, 0), ADDR_FIELD(F_DST1, 7, dst_ip, 1),
	ADDR_FIELD(F_DST2, 8, dst_ip, 2), ADDR_FIELD(F_DST3, 9, dst_ip, 3),
	FIELD(RANGE, F_SPORT, 10, src_port),
	FIELD(RANGE, F_DPORT, 10, dst_port),
	FIELD(BITMASK, F_SMAC_HI, 11, src_mac_hi),
	FIELD(BITMASK, F_SMAC_LO, 12, src_mac_lo),
	FIELD(BITMASK, F_DMAC_LO, 12, dst_mac_lo),
	FIELD(BITMASK, F_DMAC_HI, 13, dst_mac_hi),
};

/*
 * Up to this many definitions are tested one after the other rather than through the trie: for
 * a few, testing each costs less than building the trie's key and walking it.
 */
#define LINEAR_MAX 4
/*
 * More definitions are still tested one after the other when the packet's destination port picks
 * the few that can match: those that name at most PORT_SPAN destination ports are listed under
 * each of them, the others under every port; used when no port lists more than LINEAR_MAX * 2.
 * A table of every port's list costs 256 KiB; the trie walks a dozen nodes per packet whatever
 * the port, and its cost grows with the definitions. A bit per port says which have lists of
 * their own, so that traffic to other ports reads 8 KiB only.
 */
#define PORT_SPAN 64
#define PORT_LIST_MAX (LINEAR_MAX * 2)
#define N_PORTS (UINT16_MAX + 1)

/*
 * 16 bytes as one value (SSE2 on x86): the linear test compares a packet's fields 16 bytes at a
 * time. GCC's and clang's vector extension, so that the same code builds for other CPUs.
 */
typedef uint64_t linear_vec __attribute__((vector_size(16)));

/* The bytes of struct fo_match_fields before its ports: in_port, family, protocol, MACs, addresses. */
#define LINEAR_VECS 3

/*
 * A definition as the linear test compares it, fo_match_test's rules made branch-free: the
 * fields' first 48 bytes as they lie in struct fo_match_fields, under a mask (zero for the bytes
 * the definition leaves out, and for in_port's), then three ranges (the whole range when left
 * out). A packet's fields are then read in three 16-byte loads, with no key built from them
 * first: 30 instructions a packet fewer than a key of 64-bit words per field (callgrind, classify_1).
 */
struct linear_def {
	linear_vec value[LINEAR_VECS], mask[LINEAR_VECS];
	uint16_t in_port_lo, in_port_hi, src_port_lo, src_port_hi, dst_port_lo, dst_port_hi;
};

struct fo_classifier {
	struct rte_acl_ctx *acl;           /* NULL when constant, linear or by port */
	uint16_t n_defs;
	uint16_t n_linear;                 /* n_defs when they are tested linearly, else 0 */
	uint32_t constant;                 /* fo_classifier_constant() */
	uint32_t unapplied;                /* fo_classifier_unapplied() */
	struct linear_def *linear;         /* every definition, linear or by port; else NULL */
	uint32_t *port_list;               /* by port: where its list starts in lists; NULL unless by port */
	uint64_t *port_named;              /* by port, a bit: some definition names it (else list 0) */
	uint16_t *lists;                   /* each list: its length, then definition indexes, ascending */
};

static uint32_t
be32_at(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return rte_be_to_cpu_32(v);
}

static uint16_t
be16_at(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return rte_be_to_cpu_16(v);
}

static void
set_bits(struct rte_acl_field *f, uint64_t value, uint64_t mask, int on)
{
	f->value.u64 = on ? value : 0;
	f->mask_range.u64 = on ? mask : 0;
}

/* An address with a prefix, as four 32-bit MASK fields. */
static void
set_addr(struct rte_acl_field *f, const uint8_t *addr, uint8_t prefix, int on)
{
	int w;

	for (w = 0; w < 4; w++) {
		int bits = on ? RTE_MIN(RTE_MAX((int)prefix - 32 * w, 0), 32) : 0;

		f[w].value.u32 = bits ? be32_at(addr + 4 * w) : 0;
		f[w].mask_range.u32 = bits;
	}
}

static void
set_range(struct rte_acl_field *f, uint16_t lo, uint16_t hi, int on)
{
	f->value.u16 = on ? lo : 0;
	f->mask_range.u16 = on ? hi : UINT16_MAX;
}

static void
rule_from_match(struct class_rule *r, const struct fo_match *m, uint16_t index, uint32_t first)
{
	uint32_t on = m->fields;

	memset(r, 0, sizeof(*r));
	r->data.category_mask = 1;
	r->data.priority = RTE_ACL_MAX_PRIORITY - index;  /* the earliest definition wins */
	r->data.userdata = first + index + 1;             /* 0 means no match to rte_acl */
	set_bits(&r->field[F_PROTO], m->proto, 0xff, on & FO_MATCH_PROTO);
	set_range(&r->field[F_IN_PORT], m->in_port, m->in_port, on & FO_MATCH_IN_PORT);
	set_bits(&r->field[F_FAMILY], m->family, UINT16_MAX, m->family != FO_FAMILY_ANY);
	set_addr(&r->field[F_SRC0], m->src_ip, m->src_prefix, on & FO_MATCH_SRC_IP);
	set_addr(&r->field[F_DST0], m->dst_ip, m->dst_prefix, on & FO_MATCH_DST_IP);
	set_range(&r->field[F_SPORT], m->src_port_lo, m->src_port_hi, on & FO_MATCH_SRC_PORT);
	set_range(&r->field[F_DPORT], m->dst_port_lo, m->dst_port_hi, on & FO_MATCH_DST_PORT);
	set_bits(&r->field[F_SMAC_HI], be32_at(m->src_mac), UINT32_MAX, on & FO_MATCH_SRC_MAC);
	set_bits(&r->field[F_SMAC_LO], be16_at(m->src_mac + 4), UINT16_MAX, on & FO_MATCH_SRC_MAC);
	set_bits(&r->field[F_DMAC_LO], be16_at(m->dst_mac + 4), UINT16_MAX, on & FO_MATCH_DST_MAC);
	set_bits(&r->field[F_DMAC_HI], be32_at(m->dst_mac), UINT32_MAX, on & FO_MATCH_DST_MAC);
}

/* A prefix of `bits` (at most 128) as a mask over 16 bytes. */
static void
prefix_mask(uint8_t mask[16], uint8_t bits)
{
	int i;

	bits = RTE_MIN(bits, 128);
	for (i = 0; i < 16; i++, bits -= RTE_MIN(bits, 8))
		mask[i] = bits >= 8 ? 0xff : (uint8_t)(0xff00 >> bits);
}

static void
range_of(uint16_t *lo, uint16_t *hi, uint16_t want_lo, uint16_t want_hi, int on)
{
	*lo = on ? want_lo : 0;
	*hi = on ? want_hi : UINT16_MAX;
}

static void
linear_from_match(struct linear_def *d, const struct fo_match *m)
{
	uint32_t on = m->fields;
	struct fo_match_fields value, mask;   /* laid out as a packet's fields */
	size_t i;

	RTE_BUILD_BUG_ON(offsetof(struct fo_match_fields, src_port) != sizeof(d->value) ||
			 offsetof(struct fo_match_fields, in_port) != 0 || sizeof(value) < sizeof(d->value));
	memset(&value, 0, sizeof(value));
	memset(&mask, 0, sizeof(mask));
	if (m->family != FO_FAMILY_ANY) {
		value.family = m->family;
		mask.family = 0xff;
	}
	if (on & FO_MATCH_PROTO) {
		value.proto = m->proto;
		mask.proto = 0xff;
	}
	if (on & FO_MATCH_SRC_MAC) {
		memcpy(value.src_mac, m->src_mac, 6);
		memset(mask.src_mac, 0xff, 6);
	}
	if (on & FO_MATCH_DST_MAC) {
		memcpy(value.dst_mac, m->dst_mac, 6);
		memset(mask.dst_mac, 0xff, 6);
	}
	if (on & FO_MATCH_SRC_IP)
		prefix_mask(mask.src_ip, m->src_prefix);
	if (on & FO_MATCH_DST_IP)
		prefix_mask(mask.dst_ip, m->dst_prefix);
	for (i = 0; i < 16; i++) {
		value.src_ip[i] = m->src_ip[i] & mask.src_ip[i];
		value.dst_ip[i] = m->dst_ip[i] & mask.dst_ip[i];
	}
	memcpy(d->value, &value, sizeof(d->value));
	memcpy(d->mask, &mask, sizeof(d->mask));
	range_of(&d->in_port_lo, &d->in_port_hi, m->in_port, m->in_port, on & FO_MATCH_IN_PORT);
	range_of(&d->src_port_lo, &d->src_port_hi, m->src_port_lo, m->src_port_hi, on & FO_MATCH_SRC_PORT);
	range_of(&d->dst_port_lo, &d->dst_port_hi, m->dst_port_lo, m->dst_port_hi, on & FO_MATCH_DST_PORT);
}

static inline int
in_range(uint16_t v, uint16_t lo, uint16_t hi)
{
	return (uint16_t)(v - lo) <= (uint16_t)(hi - lo);
}

/* The fields' 16 bytes at 16 x i (the fields are only 2-aligned). */
static inline linear_vec
fields_vec(const struct fo_match_fields *f, int i)
{
	linear_vec v;

	memcpy(&v, (const uint8_t *)f + 16 * i, sizeof(v));
	return v;
}

/* fo_match_test() of the definition d was made from. */
static inline int
linear_matches(const struct linear_def *d, const struct fo_match_fields *f)
{
	linear_vec diff = ((fields_vec(f, 0) ^ d->value[0]) & d->mask[0]) |
			  ((fields_vec(f, 1) ^ d->value[1]) & d->mask[1]) |
			  ((fields_vec(f, 2) ^ d->value[2]) & d->mask[2]);

	return (diff[0] | diff[1]) == 0 && in_range(f->in_port, d->in_port_lo, d->in_port_hi) &&
	       in_range(f->src_port, d->src_port_lo, d->src_port_hi) &&
	       in_range(f->dst_port, d->dst_port_lo, d->dst_port_hi);
}

/* A definition listed under the destination ports it names (at most PORT_SPAN), or under all. */
static int
port_indexed(const struct fo_match *m)
{
	return (m->fields & FO_MATCH_DST_PORT) && m->dst_port_hi - m->dst_port_lo < PORT_SPAN;
}

/*
 * Lists, for every destination port, the definitions that can match it, when no list is longer
 * than PORT_LIST_MAX; returns 0, or -1 when one would be (or memory lacks: the trie does it).
 * Ports no definition names share one list: the definitions listed under every port.
 */
static int
index_by_port(struct fo_classifier *c, const struct fo_match *defs, uint16_t n, int socket_id)
{
	uint16_t *named = NULL, everywhere = 0, i;
	uint32_t port, used, size = 0;
	int ret = -1;

	for (i = 0; i < n; i++)
		everywhere += !port_indexed(&defs[i]);
	if (everywhere > PORT_LIST_MAX)
		return -1;
	named = calloc(N_PORTS, sizeof(*named));
	if (named == NULL)
		return -1;
	for (i = 0; i < n; i++)
		for (port = defs[i].dst_port_lo; port_indexed(&defs[i]) && port <= defs[i].dst_port_hi; port++)
			named[port]++;
	for (port = 0; port < N_PORTS; port++) {
		if (named[port] + everywhere > PORT_LIST_MAX)
			goto out;
		size += named[port] ? 1 + named[port] + everywhere : 0;
	}
	size += 1 + everywhere;
	c->port_list = rte_malloc_socket("fo_class_ports", sizeof(*c->port_list) * N_PORTS, 0, socket_id);
	c->port_named = rte_zmalloc_socket("fo_class_named", N_PORTS / 8, 0, socket_id);
	c->lists = rte_malloc_socket("fo_class_lists", sizeof(*c->lists) * size, 0, socket_id);
	if (c->port_list == NULL || c->port_named == NULL || c->lists == NULL)
		goto out;
	/* The shared list first, at 0; then each named port's, in definition order. */
	c->lists[0] = everywhere;
	for (i = 0, used = 1; i < n; i++)
		if (!port_indexed(&defs[i]))
			c->lists[used++] = i;
	for (port = 0; port < N_PORTS; port++) {
		uint32_t at = used;

		c->port_list[port] = 0;
		if (named[port] == 0)
			continue;
		c->port_list[port] = at;
		c->port_named[port / 64] |= 1ull << (port % 64);
		c->lists[used++] = named[port] + everywhere;
		for (i = 0; i < n; i++)
			if (!port_indexed(&defs[i]) ||
			    (port >= defs[i].dst_port_lo && port <= defs[i].dst_port_hi))
				c->lists[used++] = i;
	}
	ret = 0;
out:
	free(named);
	if (ret != 0) {
		rte_free(c->port_list);
		rte_free(c->port_named);
		rte_free(c->lists);
		c->port_list = NULL;
		c->port_named = NULL;
		c->lists = NULL;
	}
	return ret;
}

struct fo_classifier *
fo_classifier_create(const char *name, const struct fo_match *defs, uint16_t n, int socket_id)
{
	return fo_classifier_create_at(name, defs, n, 0, socket_id);
}

struct fo_classifier *
fo_classifier_create_at(const char *name, const struct fo_match *defs, uint16_t n, uint32_t first, int socket_id)
{
	struct rte_acl_param param = {
		.name = name, .socket_id = socket_id,
		.rule_size = RTE_ACL_RULE_SZ(F_COUNT), .max_rule_num = RTE_MAX(n, 1),
	};
	struct rte_acl_config build = { .num_categories = 1, .num_fields = F_COUNT };
	struct fo_classifier *c;
	struct class_rule rule;
	uint16_t i;
	int ret;

	c = rte_zmalloc_socket("fo_classifier", sizeof(*c), 0, socket_id);
	if (c == NULL) {
		rte_errno = ENOMEM;
		return NULL;
	}
	c->n_defs = n;
	c->constant = FO_CLASS_VARIES;
	if (n == 0 || (defs[0].fields == 0 && defs[0].family == FO_FAMILY_ANY)) {
		c->constant = n == 0 ? FO_CLASS_NONE : first;
		return c;
	}
	c->linear = rte_malloc_socket("fo_class_linear", sizeof(*c->linear) * n, 0, socket_id);
	if (c->linear == NULL) {
		rte_errno = ENOMEM;
		goto fail;
	}
	for (i = 0; i < n; i++)
		linear_from_match(&c->linear[i], &defs[i]);
	if (n <= LINEAR_MAX) {
		c->n_linear = n;
		c->unapplied = first;   /* the tests' loop gives the index: no add per packet for everyone */
		return c;
	}
	if (index_by_port(c, defs, n, socket_id) == 0) {
		c->unapplied = first;   /* the lists give indexes, as the tests do */
		return c;
	}
	rte_free(c->linear);
	c->linear = NULL;
	c->acl = rte_acl_create(&param);
	if (c->acl == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		rule_from_match(&rule, &defs[i], i, first);
		ret = rte_acl_add_rules(c->acl, (const struct rte_acl_rule *)&rule, 1);
		if (ret != 0) {
			rte_errno = -ret;
			goto fail;
		}
	}
	memcpy(build.defs, class_fields, sizeof(class_fields));
	ret = rte_acl_build(c->acl, &build);
	if (ret != 0) {
		rte_errno = -ret;
		goto fail;
	}
	return c;
fail:
	fo_classifier_free(c);
	return NULL;
}

void
fo_classifier_free(struct fo_classifier *c)
{
	if (c == NULL)
		return;
	rte_acl_free(c->acl);
	rte_free(c->linear);
	rte_free(c->port_list);
	rte_free(c->port_named);
	rte_free(c->lists);
	rte_free(c);
}

uint32_t
fo_classifier_constant(const struct fo_classifier *c)
{
	return c->constant;
}

uint32_t
fo_classifier_unapplied(const struct fo_classifier *c)
{
	return c->unapplied;
}

void
fo_class_key_fill(struct fo_class_key *k, const struct fo_match_fields *f)
{
	k->proto = f->proto;
	k->in_port = rte_cpu_to_be_16(f->in_port);
	k->family = rte_cpu_to_be_16(f->family);
	memcpy(k->src_ip, f->src_ip, 16);
	memcpy(k->dst_ip, f->dst_ip, 16);
	k->src_port = rte_cpu_to_be_16(f->src_port);
	k->dst_port = rte_cpu_to_be_16(f->dst_port);
	memcpy(k->src_mac_hi, f->src_mac, 4);
	memcpy(k->src_mac_lo, f->src_mac + 4, 2);
	memcpy(k->dst_mac_lo, f->dst_mac + 4, 2);
	memcpy(k->dst_mac_hi, f->dst_mac, 4);
}

int
fo_classifier_uses_keys(const struct fo_classifier *c)
{
	return c->acl != NULL;
}

void
fo_classify(const struct fo_classifier *c, const struct fo_class_key **keys, const struct fo_match_fields *fields,
	    uint32_t *defs, uint32_t n)
{
	uint32_t i, d;

	if (c->constant != FO_CLASS_VARIES) {
		for (i = 0; i < n; i++)
			defs[i] = c->constant;
		return;
	}
	if (c->n_linear > 0) {
		for (i = 0; i < n; i++) {
			for (d = 0; d < c->n_linear && !linear_matches(&c->linear[d], &fields[i]); d++)
				;
			defs[i] = d < c->n_linear ? d : FO_CLASS_NONE;
		}
		return;
	}
	if (c->port_list != NULL) {
		for (i = 0; i < n; i++) {
			uint16_t port = fields[i].dst_port;
			/* The bits (8 KiB) stay in cache where the lists' starts (256 KiB) may not. */
			const uint16_t *list = c->lists +
				((c->port_named[port / 64] >> (port % 64)) & 1 ? c->port_list[port] : 0);

			defs[i] = FO_CLASS_NONE;
			for (d = 1; d <= list[0]; d++) {
				if (linear_matches(&c->linear[list[d]], &fields[i])) {
					defs[i] = list[d];
					break;
				}
			}
		}
		return;
	}
	rte_acl_classify(c->acl, (const uint8_t **)keys, defs, n, 1);
	for (i = 0; i < n; i++)
		defs[i] = defs[i] == 0 ? FO_CLASS_NONE : defs[i] - 1;
}
