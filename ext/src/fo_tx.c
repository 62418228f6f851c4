/* SPDX-License-Identifier: BSD-3-Clause */
/* Locks of TX queues that several workers share (fo_tx.h). */
#include <rte_errno.h>
#include <rte_malloc.h>

#include "flowos/fo_tx.h"

rte_spinlock_t *
fo_tx_lock_create(void)
{
	rte_spinlock_t *lock = rte_zmalloc("fo_tx_lock", sizeof(*lock), RTE_CACHE_LINE_SIZE);

	if (lock == NULL) {
		rte_errno = ENOMEM;
		return NULL;
	}
	rte_spinlock_init(lock);
	return lock;
}

void
fo_tx_lock_free(rte_spinlock_t *lock)
{
	rte_free(lock);
}
