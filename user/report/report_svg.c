#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "memleak.h"
#include "outfile.h"
#include "report_svg.h"
#include "util.h"

#define WIDTH	   900
#define PANEL_H	   260
#define LEFT	   80
#define RIGHT	   20
#define TOP	   30
#define BOTTOM	   40
#define MAX_PANELS 4

struct scale {
	double t0, t1, y0, y1;
	int top;
};

static double sx(const struct scale *s, double t)
{
	return LEFT + (t - s->t0) / (s->t1 - s->t0) * (WIDTH - LEFT - RIGHT);
}

static double sy(const struct scale *s, double y)
{
	return s->top + TOP + (1 - (y - s->y0) / (s->y1 - s->y0)) * (PANEL_H - TOP - BOTTOM);
}

/* A round step giving about five ticks over span. */
static double tick_step(double span)
{
	double step = pow(10, floor(log10(span / 5)));

	if (span / step > 10)
		step *= 2;
	if (span / step > 10)
		step *= 2.5;
	return step;
}

/* Byte ticks fall on round KiB, MiB or GiB. */
static double byte_step(double span)
{
	double unit = 1;

	while (span / unit >= 1024 * 5)
		unit *= 1024;
	return tick_step(span / unit) * unit;
}

static void axes(FILE *f, const struct scale *s)
{
	double step = tick_step(s->t1 - s->t0), ystep = byte_step(s->y1 - s->y0);
	double bottom = s->top + PANEL_H - BOTTOM;
	char label[32];

	fprintf(f, "<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='black'/>\n", LEFT, bottom,
		WIDTH - RIGHT, bottom);
	fprintf(f, "<line x1='%d' y1='%d' x2='%d' y2='%.1f' stroke='black'/>\n", LEFT, s->top + TOP,
		LEFT, bottom);
	for (double t = ceil(s->t0 / step) * step; t <= s->t1; t += step)
		fprintf(f,
			"<text x='%.1f' y='%.1f' font-size='11' text-anchor='middle'>%g s</text>\n",
			sx(s, t), bottom + 16, t);
	for (double y = ceil(s->y0 / ystep) * ystep; y <= s->y1; y += ystep)
		fprintf(f,
			"<text x='%d' y='%.1f' font-size='11' text-anchor='end'>%s</text>\n"
			"<line x1='%d' y1='%.1f' x2='%d' y2='%.1f' stroke='#ddd'/>\n",
			LEFT - 6, sy(s, y) + 4, human_bytes(y, label, sizeof(label)), LEFT,
			sy(s, y), WIDTH - RIGHT, sy(s, y));
	fprintf(f, "<text x='%d' y='%.1f' font-size='11' text-anchor='middle'>time</text>\n",
		(LEFT + WIDTH) / 2, bottom + 32);
}

static void panel(FILE *f, const struct curve_report *t, int top)
{
	const struct curve *c = t->mem;
	const struct verdict *v = t->verdict;
	struct scale s = {.t0 = 0, .t1 = c->p[c->n - 1].t, .y0 = 0, .y1 = 1, .top = top};
	char rate[32];

	for (size_t i = 0; i < c->n; i++)
		s.y1 = fmax(s.y1, c->p[i].high);
	if (verdict_has_band(v))
		s.y1 = fmax(s.y1, v->band_high);
	s.y1 *= 1.1;
	if (s.t1 <= 0)
		s.t1 = 1;
	fprintf(f, "<text x='%d' y='%d' font-size='14' font-weight='bold'>pid %d (", LEFT, top + 18,
		t->pid);
	put_xml(f, t->comm);
	fprintf(f, "): %s, %s/s</text>\n", verdict_name(v->state),
		human_bytes(v->growth_bps, rate, sizeof(rate)));
	if (verdict_has_band(v))
		fprintf(
		    f,
		    "<rect class='band' x='%d' y='%.1f' width='%d' height='%.1f' fill='#2e7d32' "
		    "fill-opacity='0.25'><title>steady band</title></rect>\n",
		    LEFT, sy(&s, v->band_high), WIDTH - LEFT - RIGHT,
		    fmax(sy(&s, v->band_low) - sy(&s, v->band_high), 1));
	axes(f, &s);
	fputs("<polyline class='envelope' fill='none' stroke='#90caf9' points='", f);
	for (size_t i = 0; i < c->n; i++)
		fprintf(f, "%.1f,%.1f ", sx(&s, c->p[i].t), sy(&s, c->p[i].high));
	fputs(
	    "'/>\n<polyline class='curve' fill='none' stroke='#1565c0' stroke-width='1.5' points='",
	    f);
	for (size_t i = 0; i < c->n; i++)
		fprintf(f, "%.1f,%.1f ", sx(&s, c->p[i].t), sy(&s, c->p[i].last));
	fputs("'/>\n", f);
	/* The last sample marked: alone (a program shorter than an interval), a
	 * line of one point would not show. */
	fprintf(f,
		"<circle class='last' cx='%.1f' cy='%.1f' r='3' fill='#1565c0'><title>%s at "
		"%.1f s</title></circle>\n",
		sx(&s, c->p[c->n - 1].t), sy(&s, c->p[c->n - 1].last),
		human_bytes(c->p[c->n - 1].last, rate, sizeof(rate)), c->p[c->n - 1].t);
	if (v->left_band_at_s >= 0)
		fprintf(
		    f,
		    "<line class='left-band' x1='%.1f' y1='%d' x2='%.1f' y2='%d' stroke='#c62828' "
		    "stroke-dasharray='5,3'/>\n<text x='%.1f' y='%d' font-size='11' "
		    "fill='#c62828'>left the band at %.1f s</text>\n",
		    sx(&s, v->left_band_at_s), top + TOP, sx(&s, v->left_band_at_s),
		    top + PANEL_H - BOTTOM, sx(&s, v->left_band_at_s) + 4, top + TOP + 12,
		    v->left_band_at_s);
}

/* Leaks first, then the fastest growth, then the most memory. */
static int by_concern(const void *a, const void *b)
{
	const struct curve_report *x = *(const struct curve_report *const *)a;
	const struct curve_report *y = *(const struct curve_report *const *)b;
	double mx = x->mem->p[x->mem->n - 1].last, my = y->mem->p[y->mem->n - 1].last;

	if (x->verdict->state != y->verdict->state)
		return (int)y->verdict->state - (int)x->verdict->state; /* in order of concern */
	if (x->verdict->growth_bps != y->verdict->growth_bps)
		return x->verdict->growth_bps < y->verdict->growth_bps ? 1 : -1;
	return mx < my ? 1 : mx > my ? -1 : 0;
}

int svg_write(const char *path, const struct curve_report *curves, int ncurves)
{
	const struct curve_report **shown = xcalloc(ncurves + 1, sizeof(*shown));
	struct outfile out;
	int n = 0;
	FILE *f;

	for (int i = 0; i < ncurves; i++)
		if (curves[i].mem->n)
			shown[n++] = &curves[i];
	qsort(shown, n, sizeof(*shown), by_concern);
	for (int i = MAX_PANELS; i < n; i++) /* the kernel's own curve is always shown */
		if (shown[i]->pid == KERNEL_OWNER)
			shown[MAX_PANELS - 1] = shown[i];
	n = n < MAX_PANELS ? n : MAX_PANELS;
	if (outfile_open(&out, path)) {
		free(shown);
		return -1;
	}
	f = out.f;
	fprintf(f,
		"<svg xmlns='http://www.w3.org/2000/svg' width='%d' height='%d' "
		"font-family='sans-serif'>\n<rect width='100%%' height='100%%' fill='white'/>\n",
		WIDTH, (n ? n : 1) * PANEL_H);
	for (int i = 0; i < n; i++)
		panel(f, shown[i], i * PANEL_H);
	fputs("</svg>\n", f);
	free(shown);
	return outfile_commit(&out);
}

int svg_check(const char *path, char *err, size_t errlen)
{
	if (svg_write(path, NULL, 0)) {
		snprintf(err, errlen, "cannot write --plot %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}
