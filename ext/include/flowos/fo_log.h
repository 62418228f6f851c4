/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_LOG_H
#define FO_LOG_H

/*
 * Sends DPDK's log to a file instead of the terminal, so that a failing start-up is reported
 * as one clear line by the caller and the full log stays in the file. Call before rte_eal_init.
 * Returns 0 or -errno.
 */
int fo_log_to_file(const char *path);

/* Flushes and closes the file set by fo_log_to_file (DPDK logs to stderr again). */
void fo_log_close(void);

#endif /* FO_LOG_H */
