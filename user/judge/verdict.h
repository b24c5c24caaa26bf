/* Judging a memory curve: steady inside its band, growing, or a leak. */
#ifndef VERDICT_H
#define VERDICT_H

#include <stdbool.h>
#include <stddef.h>

/* In order of concern. */
enum verdict_state {
	VERDICT_WARMUP,
	VERDICT_STEADY,
	VERDICT_RECOVERED, /* judged a leak earlier, back in its band since */
	VERDICT_GROWING,
	VERDICT_LEAK,
};

struct verdict {
	enum verdict_state state;
	double growth_bps; /* Theil-Sen slope of the curve's floor, recent half */
	double band_low;
	double band_high;
	double left_band_at_s; /* < 0: the curve has not left its band for good */
	double floor;	       /* the curve's latest floor */
	double leak_since_s;   /* when the readings began to say leak; 0: they do not */
	double steady_since_s; /* when its readings last turned steady; 0: they are not */
	double settled_s;      /* when it had been steady (or flat) VERDICT_SETTLE_S; 0: not yet */
	double back_since_s;   /* a leak: since when its floor is back in the band's lower half */
	double band_from_s;    /* the band covers the floors of this time: when the */
	double band_to_s;      /* curve read steady and flat (0: not yet); it only extends */
	bool climbing;	       /* the reading: out of that band since, and still climbing */
	bool raw; /* set by the caller: the curve's points are samples, not spans (merged
		   * ones): a window none falls in between two that differ is unknown
		   * (the tracer stalled), not the earlier one held */
};

#define VERDICT_WARMUP_S 10.0
/* A leak is called once the readings have said so this long; for a curve
 * never steady yet, longer (a cache filling from the start is no leak). */
#define VERDICT_CONFIRM_S	    10.0
#define VERDICT_CONFIRM_UNSETTLED_S 35.0
#define VERDICT_SETTLE_S	    10.0
/* A settled curve climbing out of its band: the evidence since it left. */
#define VERDICT_CLIMB_S 8.0
/* Steady this long, a curve's run of leak readings is over. */
#define VERDICT_RESET_S 1.5
/* A floor out of the tight band only (not of the envelope) must stay out
 * this long to be a leak. */
#define VERDICT_OUT_S 60.0

/*
 * Judge the curve anew: t (seconds, increasing) and bytes of n samples. v
 * holds the previous judgement of the same curve (zeroed at first) and gets
 * the new one. A leak is called once the readings have said so for
 * VERDICT_CONFIRM_S; then it stays, with its band, until the curve's floor
 * comes back into (or below) that band: then it is recovered.
 */
void verdict_update(struct verdict *v, const double *t, const double *bytes, size_t n);
/* The same curve judged with no history: what verdict_update reads. */
void judge_curve(const double *t, const double *bytes, size_t n, struct verdict *v);
/* Steady and settled: a curve that has not moved since may keep this
 * judgement (judging it again would move only its growth estimate and the
 * span its band is measured over). */
bool verdict_settled(const struct verdict *v);
/* Whether the curve has a band to show: one it read steady in (a curve
 * never steady has only its early floors, which are no band). */
bool verdict_has_band(const struct verdict *v);
/* The median of v[0..n) (n > 0), found without a sort; v is reordered. */
double verdict_median(double *v, size_t n);
const char *verdict_name(enum verdict_state s);

#endif
