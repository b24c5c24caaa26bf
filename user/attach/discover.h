/* Allocator discovery: which ELF objects may serve malloc in a target. */
#ifndef DISCOVER_H
#define DISCOVER_H

#include <sys/types.h>

struct objlist {
	char **paths;
	int n;
};

/* The executable (a script's interpreter) and every object the dynamic
 * linker will load for it, LD_PRELOAD (from our environment, which the
 * command inherits) first. Fails if file is neither ELF nor a #! script. */
int discover_command(const char *file, struct objlist *out);
/* Every executable file mapping of a running process. */
int discover_pid(pid_t pid, struct objlist *out);
/* The system's allocators, for tracing every process. */
int discover_system(struct objlist *out);

void objlist_add(struct objlist *l, const char *path);
void objlist_free(struct objlist *l);

#endif
