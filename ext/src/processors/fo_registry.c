/* SPDX-License-Identifier: BSD-3-Clause */
#include <string.h>

#include "flowos/fo_processor.h"

extern const struct fo_processor_ops fo_proc_counter;
extern const struct fo_processor_ops fo_proc_acl;
extern const struct fo_processor_ops fo_proc_ttl;
extern const struct fo_processor_ops fo_proc_redirect;
extern const struct fo_processor_ops fo_proc_hold;
extern const struct fo_processor_ops fo_proc_mirror;

static const struct fo_processor_ops *const builtins[] = {
	&fo_proc_counter, &fo_proc_acl, &fo_proc_ttl, &fo_proc_redirect, &fo_proc_hold, &fo_proc_mirror,
};

const struct fo_processor_ops *
fo_processor_find(const char *name)
{
	size_t i;

	for (i = 0; i < RTE_DIM(builtins); i++)
		if (strcmp(builtins[i]->name, name) == 0)
			return builtins[i];
	return NULL;
}
