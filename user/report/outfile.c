#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "outfile.h"

int outfile_open(struct outfile *o, const char *path)
{
	struct stat st;

	snprintf(o->path, sizeof(o->path), "%s", path);
	o->tmp[0] = '\0';
	if (stat(path, &st) || S_ISREG(st.st_mode))
		snprintf(o->tmp, sizeof(o->tmp), "%s.tmp", path);
	o->f = fopen(o->tmp[0] ? o->tmp : path, "we");
	return o->f ? 0 : -1;
}

int outfile_commit(struct outfile *o)
{
	int failed = fflush(o->f) || ferror(o->f), e = errno;

	if (fclose(o->f) && !failed)
		failed = 1, e = errno;
	o->f = NULL;
	if (!o->tmp[0]) {
		errno = e;
		return failed ? -1 : 0;
	}
	if (!failed && rename(o->tmp, o->path) == 0)
		return 0;
	if (!failed)
		e = errno;
	unlink(o->tmp);
	errno = e;
	return -1;
}
