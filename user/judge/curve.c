#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "curve.h"
#include "util.h"

void curve_init(struct curve *c, size_t cap)
{
	memset(c, 0, sizeof(*c));
	c->cap = cap;
}

/* Halve the resolution: a week of samples keeps the shape in the same memory. */
static void decimate(struct curve *c)
{
	for (size_t i = 0; i < c->n / 2; i++) {
		struct curve_point a = c->p[2 * i], b = c->p[2 * i + 1];

		c->p[i] = (struct curve_point){.t = a.t,
					       .low = fmin(a.low, b.low),
					       .high = fmax(a.high, b.high),
					       .last = b.last};
	}
	c->n /= 2;
	c->merged = true;
}

static bool flat_at(const struct curve_point *p, double value)
{
	return p->low == value && p->high == value && p->last == value;
}

void curve_add(struct curve *c, double t, double value)
{
	/* The curve holds its last value between points (verdict.c): a flat
	 * stretch needs only its two ends, the later one moved on. */
	if (c->n >= 2 && flat_at(&c->p[c->n - 1], value) && flat_at(&c->p[c->n - 2], value)) {
		c->p[c->n - 1].t = t;
		return;
	}
	if (c->n == c->cap)
		decimate(c);
	if (c->n == c->room) {
		c->room = c->room ? c->room * 2 : 16;
		c->p = xrealloc(c->p, c->room * sizeof(*c->p));
	}
	c->p[c->n++] = (struct curve_point){.t = t, .low = value, .high = value, .last = value};
}

void curve_judge(const struct curve *c, struct verdict *v)
{
	double *t = xcalloc(c->n, sizeof(double)), *y = xcalloc(c->n, sizeof(double));

	for (size_t i = 0; i < c->n; i++) {
		t[i] = c->p[i].t;
		y[i] = c->p[i].low;
	}
	v->raw = !c->merged;
	verdict_update(v, t, y, c->n);
	free(t);
	free(y);
}

void curve_free(struct curve *c)
{
	free(c->p);
	memset(c, 0, sizeof(*c));
}
