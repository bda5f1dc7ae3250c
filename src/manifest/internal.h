#ifndef VEIL_MANIFEST_INTERNAL_H
#define VEIL_MANIFEST_INTERNAL_H

#include "veil/manifest.h"

#define POS(n) ((struct veil_pos){(n) ? (n)->line : 0, (n) ? (n)->col : 0})

/* A list of {name, value} entries; duplicate and invalid names are errors. */
int manifest_env_list(struct yctx *c, const struct ynode *seq, const char *where,
		      struct veil_env_var **out, size_t *count);

#endif
