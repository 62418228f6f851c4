/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_CAPTURE_H
#define FO_CAPTURE_H

#include <stddef.h>
#include <stdint.h>

/* Packet and byte totals of a capture file (pcap or pcapng), as net_pcap will replay it. */
struct fo_capture_info {
	uint64_t packets;
	uint64_t bytes;       /* captured bytes: what net_pcap puts in mbufs */
	uint64_t truncated;   /* packets captured shorter than they were on the wire */
	uint64_t longest_at;  /* the longest packet's number, from 1 (the first of equals) */
	uint32_t longest;     /* its captured bytes */
	uint32_t linktype;    /* DLT_ value (pcap_datalink) */
	const char *linktype_name;  /* libpcap's name for it ("EN10MB", "RAW"), or NULL */
	const char *linktype_description;  /* and its description ("Ethernet", "Raw IP"), or NULL */
};

/*
 * Reads a capture to its end with libpcap. Returns 0, or -errno with the reason in err:
 * ENOENT/EACCES (cannot read), EINVAL (not a capture), EPIPE (a damaged record: info then
 * counts the packets before it, which is what net_pcap will replay).
 */
int fo_capture_scan(const char *path, struct fo_capture_info *info, char *err, size_t errlen);

#endif /* FO_CAPTURE_H */
