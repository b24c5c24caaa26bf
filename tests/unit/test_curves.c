/*
 * The verdict on memory curves recorded from real programs (tests/curves/,
 * by scripts/record_curves.sh), replayed sample by sample as the tracer
 * judges them, with what each report every 5 s would print checked against
 * the answer in tests/curves/cases.txt: false positives, false negatives
 * (or detection later than the case's bound) and flips. Cases marked
 * "held-out" were not looked at while the verdict's constants were chosen.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "util.h"
#include "curve.h"
#include "verdict.h"

#define CURVES "tests/curves"

struct recorded {
	double *t, *y;
	size_t n;
};

static int read_curve_csv(const char *name, struct recorded *c)
{
	char path[256], line[256];
	FILE *f;
	size_t room = 0;

	snprintf(path, sizeof(path), CURVES "/%s.csv", name);
	f = fopen(path, "r");
	if (!f)
		return -1;
	memset(c, 0, sizeof(*c));
	while (fgets(line, sizeof(line), f)) {
		double t, y;

		if (sscanf(line, "%lf,%lf", &t, &y) != 2)
			continue; /* the header */
		if (c->n == room) {
			room = room ? 2 * room : 256;
			c->t = xrealloc(c->t, room * sizeof(double));
			c->y = xrealloc(c->y, room * sizeof(double));
		}
		c->t[c->n] = t;
		c->y[c->n++] = y;
	}
	fclose(f);
	return c->n ? 0 : -1;
}

void test_verdict_recorded_curves(void)
{
	FILE *cases = fopen(CURVES "/cases.txt", "r");
	char line[256];
	int fp = 0, fn = 0, flips = 0, ncases = 0;

	CHECK(cases != NULL);
	printf("  %-22s %-8s %-9s %-9s %-9s %s\n", "curve", "expected", "final", "detected",
	       "held out", "printed every 5 s (w s r g l)");
	while (cases && fgets(line, sizeof(line), cases)) {
		char name[64], expect[16], held[16], printed[128] = "";
		double bound, next = 5, detected = -1;
		struct recorded c;
		struct verdict v = {0};
		bool leak = false, was_leak = false;
		int k = 0;

		if (line[0] == '#' ||
		    sscanf(line, "%63s %15s %lf %15s", name, expect, &bound, held) != 4)
			continue;
		ncases++;
		if (read_curve_csv(name, &c)) {
			printf("  %s: no curve\n", name);
			CHECK(0);
			continue;
		}
		leak = strcmp(expect, "leak") == 0;
		for (size_t i = 0; i < c.n; i++) {
			verdict_update(&v, c.t, c.y, i + 1);
			if (c.t[i] < next && i + 1 < c.n) /* the last is the final report */
				continue;
			next += 5;
			if (k + 1 < (int)sizeof(printed))
				printed[k++] = verdict_name(v.state)[0];
			if (v.state == VERDICT_LEAK && detected < 0)
				detected = c.t[i];
			flips +=
			    was_leak && v.state != VERDICT_LEAK && v.state != VERDICT_RECOVERED;
			was_leak = v.state == VERDICT_LEAK;
		}
		fp += !leak && detected >= 0;
		fn += leak && (detected < 0 || detected > bound);
		printf("  %-22s %-8s %-9s ", name, expect, verdict_name(v.state));
		if (detected >= 0)
			printf("%-9.0f ", detected);
		else
			printf("%-9s ", "-");
		printf("%-9s %s\n", held, printed);
		free(c.t);
		free(c.y);
	}
	if (cases)
		fclose(cases);
	printf("  %d curves: false positives %d, false negatives %d, flips %d\n", ncases, fp, fn,
	       flips);
	CHECK(ncases >= 6);
	CHECK(fp == 0);
	CHECK(fn == 0);
	CHECK(flips == 0);
}

/*
 * The stack judge in pages mode (tests/curves/pages_*_stack.csv: a stack's
 * resident bytes at each report of page_drip under --pages, recorded by
 * scripts/record_curves.sh): each report adds a point and judges the curve
 * again, as targets.c does; a stack is a suspect while its verdict is
 * growing or leak. The drip (from 25 s) is called within 15 s of it and
 * stays one; the churning cache and the bursts that are unmapped never are.
 */
void test_pages_stack_judge_recorded(void)
{
	static const struct {
		const char *name;
		double suspect_by; /* 0: never a suspect */
	} cases[] = {
	    {"pages_drip_stack", 40},
	    {"pages_cache_stack", 0},
	    {"pages_burst_stack", 0},
	};

	for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
		struct curve c;
		struct verdict v = {0};
		struct recorded r;
		double first = -1;
		bool dropped = false;

		CHECK(read_curve_csv(cases[k].name, &r) == 0);
		if (r.n == 0)
			continue;
		curve_init(&c, 4096);
		for (size_t i = 0; i < r.n; i++) {
			bool suspect;

			curve_add(&c, r.t[i], r.y[i]);
			curve_judge(&c, &v);
			suspect = v.state == VERDICT_LEAK || v.state == VERDICT_GROWING;
			if (suspect && first < 0)
				first = r.t[i];
			dropped |= first >= 0 && !suspect;
		}
		if (first < 0)
			printf("  %-18s never a suspect, final %s\n", cases[k].name,
			       verdict_name(v.state));
		else
			printf("  %-18s a suspect from %.1f s, final %s\n", cases[k].name, first,
			       verdict_name(v.state));
		if (cases[k].suspect_by) {
			CHECK(first >= 0 && first <= cases[k].suspect_by);
			CHECK(!dropped);
		} else {
			CHECK(first < 0);
		}
		curve_free(&c);
		free(r.t);
		free(r.y);
	}
}
