/* SPDX-License-Identifier: BSD-3-Clause */
/* One check that a built-in got the parameter struct it expects. */
#ifndef FO_PARAM_H
#define FO_PARAM_H

#include <errno.h>
#include <stdio.h>

#define FO_PARAMS(type, params, len, err, errlen) ({ \
	const type *p_ = (params); \
	if (p_ == NULL || (len) < sizeof(type)) { \
		snprintf((err), (errlen), "expected parameters of %zu bytes, got %zu", sizeof(type), (size_t)(len)); \
		return -EINVAL; \
	} \
	p_; })

#endif /* FO_PARAM_H */
