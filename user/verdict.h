/* Judging a memory curve: steady inside its band, growing, or a leak. */
#ifndef VERDICT_H
#define VERDICT_H

#include <stddef.h>

/* In order of concern. */
enum verdict_state {
	VERDICT_WARMUP,
	VERDICT_STEADY,
	VERDICT_GROWING,
	VERDICT_LEAK,
};

struct verdict {
	enum verdict_state state;
	double growth_bps; /* Theil-Sen slope of the curve's floor, recent half */
	double band_low;
	double band_high;
	double left_band_at_s; /* < 0: the curve has not left its band for good */
};

#define VERDICT_WARMUP_S 10.0

/* t (seconds, increasing) and bytes of n samples. */
void judge_curve(const double *t, const double *bytes, size_t n, struct verdict *v);
const char *verdict_name(enum verdict_state s);

#endif
