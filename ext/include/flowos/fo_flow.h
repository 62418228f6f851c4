/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_FLOW_H
#define FO_FLOW_H

/*
 * Per-connection flows. Within a flow definition, a connection's 5-tuple (both directions map to
 * one key) names one flow, created on its first packet and kept in a hash table of bounded size.
 */
#include <stdint.h>

#include <rte_mbuf.h>

#include "fo_processor.h"

/* The canonical key: the lower endpoint first, so that both directions give the same key. */
struct fo_flow_key {
	uint8_t addr_lo[16];
	uint8_t addr_hi[16];
	uint16_t port_lo;
	uint16_t port_hi;
	uint8_t proto;
	uint8_t family;          /* FO_FAMILY_*; ANY for non-IP traffic (keyed by ether type in port_lo) */
	uint16_t def;            /* the flow definition */
	uint8_t pad[8];          /* 48 bytes: six 8-byte words, hashed and compared word by word */
};

enum fo_tcp_state {
	FO_TCP_NONE = 0,         /* not TCP */
	FO_TCP_SYN_SENT,
	FO_TCP_SYN_RECV,
	FO_TCP_ESTABLISHED,
	FO_TCP_CLOSING,          /* FIN seen in one direction */
	FO_TCP_CLOSED,           /* FIN seen both ways, or RST */
	FO_TCP_STATE_COUNT
};

/* Timeout classes: each flow is in exactly one, which sets how long it may stay idle. */
enum fo_timeout_class {
	FO_TIMEOUT_TCP_OPENING = 0,
	FO_TIMEOUT_TCP_ESTABLISHED,
	FO_TIMEOUT_TCP_CLOSING,
	FO_TIMEOUT_UDP,
	FO_TIMEOUT_ICMP,
	FO_TIMEOUT_OTHER,
	FO_TIMEOUT_CLASS_COUNT
};

struct fo_flow {
	struct fo_flow_key key;
	uint64_t first_seen;         /* engine clock, ns */
	uint64_t last_seen;
	uint64_t packets[2];         /* by direction: 0 from the side that opened the flow */
	uint64_t bytes[2];
	uint64_t touched_epoch;      /* the engine's burst counter when a packet last joined */
	uint64_t lru_time;           /* engine clock when it last moved to its idle list's end */
	uint32_t id;                 /* index in the table */
	uint32_t next_seq;           /* sequence number of the next packet to arrive */
	uint32_t lru_prev, lru_next; /* in its timeout class's idle list */
	uint32_t fin_end[2];         /* by direction: the sequence number right after its FIN */
	uint32_t q_packets;          /* packets not yet released by the last stage ... */
	uint32_t q_bytes;
	struct rte_mbuf *q_head;     /* ... in flow order */
	struct rte_mbuf *q_tail;
	uint32_t *heads;             /* per processor: the sequence number it has released up to */
	uint8_t *states;             /* the processors' private states */
	uint8_t live;
	uint8_t opener_is_lo;        /* direction 0 goes from addr_lo to addr_hi */
	uint8_t tcp_state;           /* enum fo_tcp_state */
	uint8_t fin_seen;            /* bit per direction */
	uint8_t fin_acked;           /* bit per direction: that direction's FIN was acknowledged */
	uint8_t timeout_class;       /* enum fo_timeout_class */
	uint8_t end_pending;         /* 1 + enum fo_flow_end_reason once it should end; 0 otherwise */
	uint8_t keeping;             /* it kept packets when last released: counted in the engine's keepers */
};

#define FO_FLOW_NONE UINT32_MAX

#endif /* FO_FLOW_H */
