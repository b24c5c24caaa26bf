#include <stdlib.h>
#include <string.h>

#include "retire.h"
#include "util.h"

/* One process's stacks out of a snapshot sorted by process. */
static void take_stacks(const struct heap_maps *m, const struct snapshot *s, __u32 tgid,
			bool kernel, struct retired *r)
{
	size_t k = kernel, n;
	const struct stack_stat *first = snapshot_stacks_of(s, tgid, &n);

	r->stacks[k] = xcalloc(n, sizeof(*first));
	memcpy(r->stacks[k], first, n * sizeof(*first));
	r->nstacks[k] = n;
	r->frames = xrealloc(r->frames, (r->nframes + n) * sizeof(*r->frames));
	for (size_t i = 0; i < n; i++) {
		struct saved_frames *f = &r->frames[r->nframes++];

		f->stack_id = first[i].stack_id;
		f->kernel = kernel;
		f->n = snapshot_frames(m, first[i].stack_id, f->ips, &f->how);
	}
}

int retire_take(const struct heap_maps *maps[2], const __u32 *tgids, size_t n, __u64 older_ns,
		struct retired **out)
{
	__u32 *sorted = xcalloc(n, sizeof(*sorted));
	struct snapshot snap[2];
	int err = 0, e;

	memcpy(sorted, tgids, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), cmp_u32);
	for (int k = 0; k < 2; k++)
		if ((e = snapshot_read(maps[k], sorted, n, older_ns, VIEW_ENDED, &snap[k])) && !err)
			err = e;
	for (size_t i = 0; i < n; i++) {
		out[i] = xcalloc(1, sizeof(*out[i]));
		out[i]->heap = snapshot_proc(maps[0], tgids[i], VIEW_ENDED);
		out[i]->kernel = snapshot_proc(maps[1], tgids[i], VIEW_ENDED);
	}
	for (int k = 0; k < 2; k++) /* the oldest blocks not known are found on the way */
		if ((e = snapshot_forget(maps[k], sorted, n, true, &snap[k])) && !err)
			err = e;
	for (size_t i = 0; i < n; i++)
		for (int k = 0; k < 2; k++)
			take_stacks(maps[k], &snap[k], tgids[i], k == 1, out[i]);
	for (int k = 0; k < 2; k++)
		snapshot_free(&snap[k]);
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
