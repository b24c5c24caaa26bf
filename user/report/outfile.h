/* Output files written whole: a reader never sees one half written. */
#ifndef OUTFILE_H
#define OUTFILE_H

#include <limits.h>
#include <stdio.h>

struct outfile {
	FILE *f;
	char tmp[PATH_MAX + 8]; /* empty: written in place */
	char path[PATH_MAX];
};

/*
 * Start writing path. A regular file (or a new one) is written to path.tmp,
 * which replaces it at outfile_commit; anything else (a device, a FIFO) is
 * written in place. Returns -1 with errno set if it cannot be opened.
 */
int outfile_open(struct outfile *o, const char *path);
/* Finish: 0 once every byte reached the file; -1 with errno set otherwise,
 * and no temporary file left behind. */
int outfile_commit(struct outfile *o);

#endif
