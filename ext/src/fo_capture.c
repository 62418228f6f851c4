/* SPDX-License-Identifier: BSD-3-Clause */
/* What a capture holds, read with the same library net_pcap replays it with. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <pcap/pcap.h>

#include "flowos/fo_capture.h"

int
fo_capture_scan(const char *path, struct fo_capture_info *info, char *err, size_t errlen)
{
	char errbuf[PCAP_ERRBUF_SIZE] = "";
	struct pcap_pkthdr *hdr;
	const u_char *data;
	pcap_t *pcap;
	int ret;

	memset(info, 0, sizeof(*info));
	if (access(path, R_OK) != 0) {
		ret = -errno;
		snprintf(err, errlen, "%s", strerror(-ret));
		return ret;
	}
	pcap = pcap_open_offline(path, errbuf);
	if (pcap == NULL) {
		snprintf(err, errlen, "%s", errbuf);
		return -EINVAL;
	}
	info->linktype = pcap_datalink(pcap);
	info->linktype_name = pcap_datalink_val_to_name(info->linktype);
	info->linktype_description = pcap_datalink_val_to_description(info->linktype);
	ret = 0;
	for (;;) {
		int r = pcap_next_ex(pcap, &hdr, &data);

		if (r == PCAP_ERROR_BREAK)
			break;
		if (r != 1) {
			/* A damaged record ends the replay there, as it ends net_pcap's. */
			snprintf(err, errlen, "%s", pcap_geterr(pcap));
			ret = -EPIPE;
			break;
		}
		info->packets++;
		info->bytes += hdr->caplen;
		info->truncated += hdr->caplen < hdr->len;
		if (hdr->caplen > info->longest) {
			info->longest = hdr->caplen;
			info->longest_at = info->packets;
		}
	}
	pcap_close(pcap);
	return ret;
}
