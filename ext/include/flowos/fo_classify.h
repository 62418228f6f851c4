/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_CLASSIFY_H
#define FO_CLASSIFY_H

/*
 * Flow definitions to packets: ordered wildcard matches compiled into one rte_acl trie, so a
 * burst is classified in one call whatever the number of definitions. The first (earliest)
 * definition a packet matches wins. A first definition that matches everything needs no test at
 * all (fo_classifier_constant), and a few definitions are tested one after the other on the
 * packets' fields, without the trie or its keys (fo_classifier_uses_keys): all of them when
 * there are 4 at most, else those listed under the packet's destination port, when the
 * definitions name few enough ports that no port lists more than 8 (fo_classify.c).
 */
#include <stdint.h>

#include "fo_match.h"

/* The classifier's view of a packet: fo_match_fields laid out for rte_acl, in network order. */
struct fo_class_key {
	uint8_t proto;
	uint8_t pad0[3];
	uint16_t in_port;
	uint16_t family;      /* 2 bytes: rte_acl needs every 4-byte input group covered by fields */
	uint8_t src_ip[16];
	uint8_t dst_ip[16];
	uint16_t src_port;
	uint16_t dst_port;
	uint8_t src_mac_hi[4];
	uint8_t src_mac_lo[2];
	uint8_t dst_mac_lo[2];
	uint8_t dst_mac_hi[4];
} __attribute__((aligned(8)));

#define FO_CLASS_NONE UINT32_MAX
#define FO_CLASS_VARIES (UINT32_MAX - 1)

struct fo_classifier;

/* Compiles the definitions (in priority order). Returns NULL with rte_errno set on failure. */
struct fo_classifier *fo_classifier_create(const char *name, const struct fo_match *defs, uint16_t n,
					   int socket_id);

/*
 * The same, its results first + a definition's index (a conf of a later generation: its range of
 * the definition space, fo_pipeline_conf.h) where that costs nothing per packet (the trie, a
 * constant); the caller adds fo_classifier_unapplied() to the others' results (not
 * FO_CLASS_NONE).
 */
struct fo_classifier *fo_classifier_create_at(const char *name, const struct fo_match *defs, uint16_t n,
					      uint32_t first, int socket_id);
uint32_t fo_classifier_unapplied(const struct fo_classifier *c);

void fo_classifier_free(struct fo_classifier *c);

/*
 * The definition every packet gets whatever its fields (FO_CLASS_NONE: there are none), or
 * FO_CLASS_VARIES. When the first definition matches everything, callers skip the keys and the
 * trie: the zero-config bridge and most single-service configurations are like that.
 */
uint32_t fo_classifier_constant(const struct fo_classifier *c);

/* Whether fo_classify() reads the keys; when it does not, callers need not fill them. */
int fo_classifier_uses_keys(const struct fo_classifier *c);

void fo_class_key_fill(struct fo_class_key *key, const struct fo_match_fields *f);

/*
 * Writes for each packet the index of the first definition it matches, or FO_CLASS_NONE: keys[i]
 * is packet i's key (fo_class_key_fill of fields[i]; read only when fo_classifier_uses_keys),
 * fields[i] its fields.
 */
void fo_classify(const struct fo_classifier *c, const struct fo_class_key **keys,
		 const struct fo_match_fields *fields, uint32_t *defs, uint32_t n);

#endif /* FO_CLASSIFY_H */
