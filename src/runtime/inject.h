/* veil-run's injection files: the policy's files, rendered with their secrets
 * by the CAS, placed at their paths without ever touching a disk. */
#ifndef VEIL_RUNTIME_INJECT_H
#define VEIL_RUNTIME_INJECT_H

#include <stddef.h>
#include <sys/types.h>

#include "veil/common.h"

struct inject_file {
	const char *path;    /* absolute, as in the policy */
	const char *content; /* the caller's; may hold secrets */
	size_t size;
};

/* Places every file, or none: either in a private mount namespace of this
 * process (a fresh tmpfs whose files are bind-mounted over the paths; the
 * rest of each directory stays visible, and no other process's view
 * changes), or, where that is not permitted (no CAP_SYS_ADMIN), directly into
 * directories that are on tmpfs/ramfs (Kubernetes emptyDir medium: Memory).
 * Anything else is refused. 0 on success; otherwise the reason, naming the
 * path but never the content, is in err and no written file is left.
 * A path that goes through a symbolic link, or whose folder is on a kernel
 * pseudo file system, is refused. The files are owned by uid:gid (the
 * program's, when the policy names them; (uid_t)-1, (gid_t)-1: this
 * process's), mode 0600. */
int inject_files(const struct inject_file *files, size_t count, uid_t uid, gid_t gid, char *err,
		 size_t cap) VEIL_MUST_CHECK;

/* How the files were placed, for the log. */
const char *inject_method(void);

#endif
