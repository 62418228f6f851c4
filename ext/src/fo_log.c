/* SPDX-License-Identifier: BSD-3-Clause */
#include <errno.h>
#include <stdio.h>

#include <rte_log.h>

#include "flowos/fo_log.h"

static FILE *log_file;

int
fo_log_to_file(const char *path)
{
	FILE *f = fopen(path, "a");

	if (f == NULL)
		return -errno;
	/* Line-buffered so that the file can be read while DPDK still runs. */
	setvbuf(f, NULL, _IOLBF, 0);
	if (rte_openlog_stream(f) != 0) {
		fclose(f);
		return -EINVAL;
	}
	if (log_file != NULL)
		fclose(log_file);
	log_file = f;
	return 0;
}

void
fo_log_close(void)
{
	if (log_file == NULL)
		return;
	rte_openlog_stream(NULL);
	fclose(log_file);
	log_file = NULL;
}
