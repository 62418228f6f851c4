/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_BUILTINS_H
#define FO_BUILTINS_H

/* Parameters of the built-in C processors, as their setup() takes them. */
#include <stdint.h>

#include "fo_match.h"

/* acl: ordered allow/deny rules, decided on a flow's first packet and kept for the flow. */
struct fo_acl_rule {
	struct fo_match match;
	uint8_t allow;
};

struct fo_acl_params {
	uint32_t n_rules;
	uint8_t default_allow;
	struct fo_acl_rule rules[];
};

/* counter: per-flow packets and bytes by direction, reported for up to max_flows flows. */
struct fo_counter_params {
	uint32_t max_flows;
};

/* ttl: rewrites the IPv4 TTL / IPv6 hop limit (a writer). */
struct fo_ttl_params {
	uint8_t set;          /* the value to write, or 0 to decrement instead */
	uint8_t decrement;    /* subtract this (not below 1) when set is 0 */
};

/* redirect: sends the flow's packets (of one direction, or both) out of another port. */
struct fo_redirect_params {
	uint16_t port;
	int8_t direction;     /* 0 or 1, or -1 for both */
};

/* hold: holds each flow's packets until it has `packets` of them, then releases them together. */
struct fo_hold_params {
	uint32_t packets;
};

/* mirror: injects a copy of every packet into the flow, to leave by another port. */
struct fo_mirror_params {
	uint16_t port;
};

#endif /* FO_BUILTINS_H */
