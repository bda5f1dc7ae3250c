/* Small helpers shared by veil-run's parts (inject.c, pin.c). */
#ifndef VEIL_RUNTIME_UTIL_H
#define VEIL_RUNTIME_UTIL_H

#include <stddef.h>

#include "veil/common.h"

/* The message into err (at most cap bytes, always terminated); returns
 * VEIL_EINVAL (which is -1: the helpers that return a descriptor or -1 use it
 * too). */
int rt_failf(char *err, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* All n bytes of p to fd, retrying short writes and EINTR; 0 or VEIL_EIO. */
int rt_write_all(int fd, const void *p, size_t n) VEIL_MUST_CHECK;

#endif
