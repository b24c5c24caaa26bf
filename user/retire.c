#include <stdlib.h>
#include <string.h>

#include "retire.h"
#include "util.h"

struct tgid_list {
	const __u32 *tgids; /* sorted */
	size_t n;
};

static int by_tgid(const void *a, const void *b)
{
	__u32 x = *(const __u32 *)a, y = *(const __u32 *)b;

	return x < y ? -1 : x > y;
}

static int listed(__u32 tgid, void *ctx)
{
	const struct tgid_list *l = ctx;

	return bsearch(&tgid, l->tgids, l->n, sizeof(tgid), by_tgid) != NULL;
}

/* One process's stacks out of a snapshot sorted by process. */
static void take_stacks(const struct heap_maps *m, const struct snapshot *s, __u32 tgid,
			bool kernel, struct retired *r)
{
	size_t k = kernel, n = 0;

	for (size_t i = 0; i < s->nstacks; i++) {
		const struct stack_stat *st = &s->stacks[i];
		struct saved_frames *f;

		if (st->tgid != tgid)
			continue;
		r->stacks[k] = xrealloc(r->stacks[k], (n + 1) * sizeof(*st));
		r->stacks[k][n++] = *st;
		r->frames = xrealloc(r->frames, (r->nframes + 1) * sizeof(*r->frames));
		f = &r->frames[r->nframes++];
		f->stack_id = st->stack_id;
		f->kernel = kernel;
		f->n = snapshot_frames(m, st->stack_id, f->ips, &f->how);
	}
	r->nstacks[k] = n;
}

int retire_take(const struct heap_maps *maps[2], const __u32 *tgids, size_t n, __u64 older_ns,
		struct retired **out)
{
	__u32 *sorted = xcalloc(n, sizeof(*sorted));
	struct tgid_list list = {.tgids = sorted, .n = n};
	struct snapshot snap[2];
	int err = 0, e;

	memcpy(sorted, tgids, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), by_tgid);
	for (int k = 0; k < 2; k++)
		if ((e = snapshot_read(maps[k], listed, &list, older_ns, &snap[k])) && !err)
			err = e;
	for (size_t i = 0; i < n; i++) {
		struct retired *r = out[i] = xcalloc(1, sizeof(*r));

		r->heap = snapshot_proc(maps[0], tgids[i]);
		r->kernel = snapshot_proc(maps[1], tgids[i]);
		for (int k = 0; k < 2; k++)
			take_stacks(maps[k], &snap[k], tgids[i], k == 1, r);
	}
	for (int k = 0; k < 2; k++) {
		snapshot_free(&snap[k]);
		if ((e = snapshot_forget(maps[k], sorted, n)) && !err)
			err = e;
	}
	free(sorted);
	return err;
}

int retired_frames(const struct retired *r, __u64 stack_id, bool kernel, __u64 *ips, __u32 *how)
{
	for (size_t i = 0; i < r->nframes; i++) {
		if (r->frames[i].stack_id != stack_id || r->frames[i].kernel != kernel)
			continue;
		memcpy(ips, r->frames[i].ips, r->frames[i].n * sizeof(*ips));
		*how = r->frames[i].how;
		return r->frames[i].n;
	}
	return 0;
}

void retired_free(struct retired *r)
{
	if (!r)
		return;
	free(r->stacks[0]);
	free(r->stacks[1]);
	free(r->frames);
	free(r);
}
