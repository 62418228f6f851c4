/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * Vector header fields: a loop of its own per field, the field chosen once outside it. What a
 * loop costs is mostly the packets' metadata and header lines it reads, not its instructions.
 */
#include <errno.h>
#include <string.h>
#include <netinet/in.h>

#include "flowos/fo_fields.h"
#include "flowos/fo_processor.h"

static const uint8_t field_sizes[FO_FIELD_COUNT] = {
	[FO_FIELD_LENGTH] = 4, [FO_FIELD_PROTO] = 1, [FO_FIELD_DIR] = 1, [FO_FIELD_SPORT] = 2,
	[FO_FIELD_DPORT] = 2, [FO_FIELD_TCP_FLAGS] = 1, [FO_FIELD_TTL] = 1, [FO_FIELD_PAYLOAD_LEN] = 4,
	[FO_FIELD_SRC4] = 4, [FO_FIELD_DST4] = 4, [FO_FIELD_SRC] = 16, [FO_FIELD_DST] = 16,
};

unsigned int
fo_field_size(enum fo_field field)
{
	return (unsigned int)field < FO_FIELD_COUNT ? field_sizes[field] : 0;
}

static inline uint16_t
l4_word(struct rte_mbuf *m, unsigned int at)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	const uint8_t *p;

	if (!(meta->flags & FO_PKT_L4_PORTS))
		return 0;
	p = fo_pkt_data(m) + meta->offset[FO_LEVEL_L4] + at;
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint8_t
tcp_flags(struct rte_mbuf *m)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);

	if (meta->ip_proto != IPPROTO_TCP || meta->offset[FO_LEVEL_L4] == FO_NO_LEVEL)
		return 0;
	return fo_pkt_data(m)[meta->offset[FO_LEVEL_L4] + 13];
}

static inline uint8_t
ttl(struct rte_mbuf *m)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	const uint8_t *l3 = fo_pkt_data(m) + meta->offset[FO_LEVEL_L3];

	if (meta->flags & FO_PKT_IPV4)
		return l3[8];
	if (meta->flags & FO_PKT_IPV6)
		return l3[7];
	return 0;
}

static inline uint32_t
ipv4_addr(struct rte_mbuf *m, unsigned int at)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	const uint8_t *p = fo_pkt_data(m) + meta->offset[FO_LEVEL_L3] + at;

	if (!(meta->flags & FO_PKT_IPV4))
		return 0;
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* IPv6 addresses as they are, IPv4 ones mapped (::ffff:a.b.c.d); 16 zeros if not IP. */
static inline void
address(struct rte_mbuf *m, unsigned int v4_at, unsigned int v6_at, uint8_t *out)
{
	const struct fo_pkt_meta *meta = fo_pkt_meta(m);
	const uint8_t *l3 = fo_pkt_data(m) + meta->offset[FO_LEVEL_L3];

	memset(out, 0, 16);
	if (meta->flags & FO_PKT_IPV4) {
		out[10] = out[11] = 0xff;
		memcpy(out + 12, l3 + v4_at, 4);
	} else if (meta->flags & FO_PKT_IPV6) {
		memcpy(out, l3 + v6_at, 16);
	}
}

#define FIELD_LOOP(type, expr) do {                  \
		type *o = out;                       \
		for (i = 0; i < n; i++) {            \
			struct rte_mbuf *m = pkts[i]; \
			o[i] = (type)(expr);          \
		}                                    \
	} while (0)

int
fo_field_vector(enum fo_field field, struct rte_mbuf *const *pkts, uint32_t n, void *out)
{
	uint32_t i;

	switch (field) {
	case FO_FIELD_LENGTH:
		FIELD_LOOP(uint32_t, rte_pktmbuf_pkt_len(m));
		break;
	case FO_FIELD_PROTO:
		FIELD_LOOP(uint8_t, fo_pkt_meta(m)->ip_proto);
		break;
	case FO_FIELD_DIR:
		FIELD_LOOP(uint8_t, fo_pkt_meta(m)->dir);
		break;
	case FO_FIELD_SPORT:
		FIELD_LOOP(uint16_t, l4_word(m, 0));
		break;
	case FO_FIELD_DPORT:
		FIELD_LOOP(uint16_t, l4_word(m, 2));
		break;
	case FO_FIELD_TCP_FLAGS:
		FIELD_LOOP(uint8_t, tcp_flags(m));
		break;
	case FO_FIELD_TTL:
		FIELD_LOOP(uint8_t, ttl(m));
		break;
	case FO_FIELD_PAYLOAD_LEN:
		FIELD_LOOP(uint32_t, fo_pkt_level_len(m, FO_LEVEL_PAYLOAD));
		break;
	case FO_FIELD_SRC4:
		FIELD_LOOP(uint32_t, ipv4_addr(m, 12));
		break;
	case FO_FIELD_DST4:
		FIELD_LOOP(uint32_t, ipv4_addr(m, 16));
		break;
	case FO_FIELD_SRC:
	case FO_FIELD_DST: {
		int src = field == FO_FIELD_SRC;   /* where the address is in an IPv4 / IPv6 header */

		for (i = 0; i < n; i++)
			address(pkts[i], src ? 12 : 16, src ? 8 : 24, (uint8_t *)out + 16 * i);
		break;
	}
	default:
		return -EINVAL;
	}
	return 0;
}
