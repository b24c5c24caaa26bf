#include <errno.h>
#include <string.h>

#include "escape.h"
#include "report_csv.h"

FILE *csv_open(const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "we");

	if (!f) {
		snprintf(err, errlen, "cannot write --curve %s: %s", path, strerror(errno));
		return NULL;
	}
	fputs("time_s,pid,comm,heap_bytes,rss_bytes,kernel_bytes,band_low_bytes,"
	      "band_high_bytes,state,judged_bytes\n",
	      f);
	if (fflush(f) || ferror(f)) {
		snprintf(err, errlen, "cannot write --curve %s: %s", path, strerror(errno));
		fclose(f);
		return NULL;
	}
	return f;
}

/* kernel_bytes stays empty without -k. */
int csv_rows(FILE *out, const struct curve_report *curves, int n)
{
	for (int i = 0; i < n; i++) {
		const struct curve_report *t = &curves[i];
		const struct curve_point *p;
		char kernel[32] = "", band[64];

		if (!t->in_last_sample || !t->mem->n)
			continue;
		p = &t->mem->p[t->mem->n - 1];
		if (t->has_kernel)
			snprintf(kernel, sizeof(kernel), "%lld", t->kernel_bytes);
		fprintf(out, "%.3f,%d,", p->t, t->pid);
		put_csv(out, t->comm);
		if (verdict_has_band(t->verdict))
			snprintf(band, sizeof(band), "%.0f,%.0f", t->verdict->band_low,
				 t->verdict->band_high);
		else
			snprintf(band, sizeof(band), ","); /* empty: never steady, no band */
		fprintf(out, ",%lld,%llu,%s,%s,%s,%.0f\n", t->heap_bytes, t->rss_bytes, kernel,
			band, verdict_name(t->verdict->state), p->last);
	}
	return fflush(out) || ferror(out) ? -1 : 0;
}
