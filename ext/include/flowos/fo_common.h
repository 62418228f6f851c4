/* SPDX-License-Identifier: BSD-3-Clause */
#ifndef FO_COMMON_H
#define FO_COMMON_H

/*
 * Conventions of the FlowOS C API, said once here:
 *  - every exported name carries the fo_ / FO_ prefix (also those shared between the fast path's
 *    own files, ext/src/fo_engine_priv.h); file-local names are static;
 *  - constructors return a pointer, or NULL with rte_errno set;
 *  - set-up functions return 0 or a negative errno; those that add an item (a definition, a
 *    processor) return its index (>= 0) or a negative errno;
 *  - burst functions return a packet count;
 *  - a reason for an error a caller shows (a bad parameter) is written to an err/errlen buffer;
 *  - the burst path raises no errors: a packet it cannot handle is counted, and dropped or
 *    passed by a documented policy.
 */

#include <stdint.h>

#define FO_MAX_BURST 256
#define FO_MAX_ROUTES 64

#endif /* FO_COMMON_H */
