/* A memory curve over time, in bounded memory: old points are merged in pairs,
 * keeping each span's minimum and maximum. */
#ifndef CURVE_H
#define CURVE_H

#include <stddef.h>

#include "verdict.h"

struct curve_point {
	double t;
	double low;  /* minimum over the point's span */
	double high; /* maximum over the point's span */
	double last;
};

struct curve {
	struct curve_point *p;
	size_t n;
	size_t room; /* points allocated; grows up to cap */
	size_t cap;  /* points kept at most; a power of two */
	bool merged; /* some points are merged pairs, spans (not samples) */
};

void curve_init(struct curve *c, size_t cap);
void curve_add(struct curve *c, double t, double value);
/* Judge the curve again by its points' minima (the verdict reads floors); v
 * holds the previous judgement. */
void curve_judge(const struct curve *c, struct verdict *v);
void curve_free(struct curve *c);

#endif
