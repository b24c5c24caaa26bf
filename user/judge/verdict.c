/*
 * The verdict reads a curve as an engineer reads a memory chart.
 *
 * 1. The floor: the curve is cut into windows (1.25 s, or a 24th of the run if
 *    longer) and each window keeps its minimum. A sawtooth or a burst that
 *    returns within a window does not move its minimum.
 * 2. The trend: over the recent half of the floors, the Theil-Sen slope (the
 *    median of pairwise slopes) and a Mann-Kendall test, its variance inflated
 *    for lag-1 autocorrelation (not when the floor never fell). Growth must
 *    be significant (z > 2.33, p < 1%) and larger than a margin: a tenth of
 *    the curve's typical in-window swing, at least 16 KiB.
 * 3. The band: the floors of the time the curve read steady and flat (rose
 *    less than a quarter of the margin over the recent half and over its
 *    newest half), plus the
 *    margin; before any such reading, those of the first third. The curve
 *    left it at the first window after which every floor stays above it.
 *    The band never narrows (the floors of coarser windows come out lower):
 *    an excursion seen while steady stays inside. The band of today's
 *    windows alone is the tight band.
 *
 * 4. Climbing out: a curve that read steady, whose every window has since
 *    peaked above its band for a few windows while the floor under them
 *    rose at each, is a leak reading before the trend of the recent half
 *    can say so (a drip under big bursts: the band holds the bursts).
 *
 * steady: no significant recent growth (a step or a cache that has settled).
 * leak: significant growth, out of the band for good (or out of the tight
 * band for VERDICT_OUT_S), and not slowing.
 * growing: significant growth that is still inside the band, slowing down,
 * or too recent to tell from a cache filling (a curve that may yet settle).
 *
 * A curve is judged again at each sample, with its history (verdict_update):
 * the time its band covers only extends, by steady flat readings; a leak is
 * withdrawn only when the floor has been back in the band's lower half for
 * VERDICT_CONFIRM_S (recovered), never because a new reading moved the band.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "verdict.h"

#define MIN_WINDOW_S  1.25 /* 8 windows by the end of warm-up */
#define WINDOWS	      24
#define MIN_RECENT    6
#define Z_SIGNIFICANT 2.33
#define MIN_MARGIN    16384.0
#define SLOWING	      0.75 /* the late half's slope below this much of the early half's */

struct floors {
	double *t;    /* window start */
	double *low;  /* minimum in the window */
	double *base; /* minimum in the window and the one before */
	double *high; /* maximum in the window */
	double w;     /* window length */
	size_t n;
};

/* Reorder v[0..n) so that v[k] is the k-th smallest, none before it larger
 * and none after it smaller (Hoare's selection): a median without a sort. */
static void select_kth(double *v, long n, long k)
{
	long lo = 0, hi = n - 1;

	while (lo < hi) {
		double pivot = v[lo + (hi - lo) / 2], tmp;
		long i = lo, j = hi;

		while (i <= j) {
			while (v[i] < pivot)
				i++;
			while (v[j] > pivot)
				j--;
			if (i <= j) {
				tmp = v[i], v[i] = v[j], v[j] = tmp;
				i++, j--;
			}
		}
		if (k <= j)
			hi = j;
		else if (k >= i)
			lo = i;
		else
			return;
	}
}

double verdict_median(double *v, size_t n)
{
	double below;

	select_kth(v, (long)n, (long)(n / 2));
	if (n % 2)
		return v[n / 2];
	below = v[0]; /* the largest of the lower half */
	for (size_t i = 1; i < n / 2; i++)
		below = fmax(below, v[i]);
	return (below + v[n / 2]) / 2;
}

static void make_floors(const double *t, const double *y, size_t n, bool raw, struct floors *f)
{
	double span = t[n - 1] - t[0];
	double w = span / WINDOWS > MIN_WINDOW_S ? span / WINDOWS : MIN_WINDOW_S;
	size_t cap = (size_t)(span / w) + 2;

	f->t = xcalloc(cap, sizeof(double));
	f->low = xcalloc(cap, sizeof(double));
	f->base = xcalloc(cap, sizeof(double));
	f->high = xcalloc(cap, sizeof(double));
	f->n = 0;
	f->w = w;
	for (size_t i = 0; i < n; i++) {
		size_t k = (size_t)((t[i] - t[0]) / w);

		if (k >= cap)
			k = cap - 1;
		/* Between points the curve holds its last value: empty windows
		 * too; but between two samples that differ nothing was seen (a
		 * stall): those windows are left out (NAN), not read as flat. */
		while (f->n < k) {
			f->t[f->n] = t[0] + f->n * w;
			f->low[f->n] = f->high[f->n] = raw && y[i - 1] != y[i] ? NAN : y[i - 1];
			f->n++;
		}
		if (k >= f->n) {
			f->n = k + 1;
			f->t[k] = t[0] + k * w;
			f->low[k] = f->high[k] = y[i];
		}
		f->low[k] = fmin(f->low[k], y[i]);
		f->high[k] = fmax(f->high[k], y[i]);
	}
	/* A last window with only a few samples is not a fair minimum. */
	if (f->n > 1 && t[n - 1] - f->t[f->n - 1] < w / 2)
		f->n--;
	for (size_t k = 0, windows = f->n, j = f->n = 0; k < windows; k++)
		if (!isnan(f->low[k])) {
			f->t[j] = f->t[k], f->low[j] = f->low[k], f->high[j] = f->high[k];
			f->n = ++j;
		}
	/* The lowest of two windows: a burst held for most of a window (1 s
	 * in a 2 s period, sampled at 0.5 s) lifts a window's minimum, not
	 * this. */
	f->base[0] = f->low[0];
	for (size_t k = 1; k < f->n; k++)
		f->base[k] = fmin(f->low[k], f->low[k - 1]);
}

static void free_floors(struct floors *f)
{
	free(f->t);
	free(f->low);
	free(f->base);
	free(f->high);
}

static double theil_sen(const double *t, const double *y, size_t n)
{
	double *s = xcalloc(n * n / 2 + 1, sizeof(double)), m;
	size_t k = 0;

	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (t[j] > t[i])
				s[k++] = (y[j] - y[i]) / (t[j] - t[i]);
	m = k ? verdict_median(s, k) : 0;
	free(s);
	return m;
}

/* Mann-Kendall z for an upward trend, corrected for lag-1 autocorrelation. */
static double mann_kendall_z(const double *t, const double *y, size_t n, double slope)
{
	double s = 0, var = n * (n - 1.0) * (2.0 * n + 5) / 18, mean = 0, c0 = 0, c1 = 0, r;
	size_t falls = 0;

	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++) {
			s += (y[j] > y[i]) - (y[j] < y[i]);
			falls += y[j] < y[i];
		}
	for (size_t i = 0; i < n; i++)
		mean += (y[i] - slope * t[i]) / n;
	for (size_t i = 0; i < n; i++) {
		double d = y[i] - slope * t[i] - mean;

		c0 += d * d;
		if (i + 1 < n)
			c1 += d * (y[i + 1] - slope * t[i + 1] - mean);
	}
	/* A series that never fell below an earlier value is not noise that
	 * wanders (a step keeps its ties and is judged by s alone). */
	r = c0 > 0 && falls ? c1 / c0 : 0;
	r = fmin(fmax(r, 0), 0.9);
	var *= (1 + r) / (1 - r);
	return s > 0 ? (s - 1) / sqrt(var) : 0;
}

static double swing_margin(const struct floors *f)
{
	double *swing = xcalloc(f->n, sizeof(double)), m;

	for (size_t i = 0; i < f->n; i++)
		swing[i] = f->high[i] - f->low[i];
	m = verdict_median(swing, f->n) / 10;
	free(swing);
	return m > MIN_MARGIN ? m : MIN_MARGIN;
}

static void set_band(struct verdict *v, const double *low, size_t n, double margin)
{
	v->band_low = low[0];
	v->band_high = low[0];
	for (size_t i = 1; i < n; i++) {
		v->band_low = fmin(v->band_low, low[i]);
		v->band_high = fmax(v->band_high, low[i]);
	}
	v->band_high += margin;
}

/* When the floors left the band for good; < 0 if they have not. */
static double left_band_at(const struct floors *f, double high)
{
	size_t i = f->n;

	while (i > 0 && f->low[i - 1] > high)
		i--;
	return i < f->n ? f->t[i] : -1;
}

/* The band over the windows that start in [from_s, to_s] (at least one). */
static void set_band_over(struct verdict *v, const struct floors *f, double from_s, double to_s,
			  double margin)
{
	size_t i = 0, j;

	while (i + 1 < f->n && f->t[i] < from_s)
		i++;
	for (j = i + 1; j < f->n && f->t[j] <= to_s;)
		j++;
	set_band(v, f->low + i, j - i, margin);
	v->band_from_s = from_s;
	v->band_to_s = to_s;
}

/*
 * The band the curve is shown against never narrows: as the run grows the
 * windows coarsen and the floors of the same time come out lower, but an
 * excursion seen while steady stays inside (the envelope). The floors at
 * today's windows give the tighter band.
 */
static void hold_band(struct verdict *v, const struct verdict *held)
{
	if (held && held->band_to_s && v->band_to_s) {
		v->band_low = fmin(v->band_low, held->band_low);
		v->band_high = fmax(v->band_high, held->band_high);
	}
}

/*
 * A growing curve is a leak once its floors have left the band for good and
 * its growth is not slowing. Out of the envelope, at once; out of only the
 * tighter band (a slow leak, inside the noise of its steady time), once it
 * has stayed out VERDICT_OUT_S: a burst of work that grows for a while and
 * gives its memory back does not.
 */
static void judge_departure(struct verdict *v, const struct floors *f, double now, bool not_slowing,
			    double tight_low, double tight_high)
{
	double tight = left_band_at(f, tight_high);

	v->left_band_at_s = left_band_at(f, v->band_high);
	if (v->left_band_at_s < 0 && tight >= 0 && now - tight >= VERDICT_OUT_S) {
		v->left_band_at_s = tight;
		v->band_low = tight_low;
		v->band_high = tight_high;
	}
	v->state = v->left_band_at_s >= 0 && not_slowing ? VERDICT_LEAK : VERDICT_GROWING;
}

/*
 * A curve that read steady in its band and has left it since, excursions
 * and all: from some window on, every window peaks above the band (which
 * holds the excursions seen while steady), four windows or more, and the
 * floor under them (the lowest of two windows) rises at each, by more than
 * twice the margin in all. A step (the floor flat at its new level) and a
 * burst that returns are not; a drip is, a few windows after its bursts
 * top the band, long before its floor leaves it or the trend of the recent
 * half (which holds the steady time too) says so.
 */
static bool climbing_out(struct verdict *v, const struct floors *f, double margin)
{
	size_t d = f->n;

	while (d > 0 && f->high[d - 1] > v->band_high && f->t[d - 1] >= v->band_to_s)
		d--;
	if (f->n - d < 4)
		return false;
	for (size_t k = d + 1; k < f->n; k++)
		if (f->base[k] <= f->base[k - 1])
			return false;
	if (f->base[f->n - 1] - f->base[d] <= 2 * margin)
		return false;
	v->left_band_at_s = f->t[d];
	return true;
}

/*
 * The reading of a curve, with the band held so far (NULL: none): it covers
 * [band_from_s, band_to_s], the time the curve read steady and flat (to_s 0:
 * none yet). A steady, flat reading extends it to now; any reading measures
 * from it, recomputed over that time and never narrower. Without one, a
 * steady curve's band is its recent floors', another's its first third's.
 */
static void read_curve(const double *t, const double *y, size_t n, const struct verdict *held,
		       bool raw, struct verdict *v)
{
	double from_s = held ? held->band_from_s : 0, to_s = held ? held->band_to_s : 0;
	struct floors f;
	size_t recent, from, half;
	double margin, z, late, early, rise, tight_low, tight_high;

	memset(v, 0, sizeof(*v));
	v->left_band_at_s = -1;
	v->band_from_s = from_s;
	v->band_to_s = to_s;
	if (n < 2 || t[n - 1] - t[0] < VERDICT_WARMUP_S)
		return;
	make_floors(t, y, n, raw, &f);
	recent = f.n / 2 > MIN_RECENT ? f.n / 2 : MIN_RECENT;
	if (f.n < recent + 2) {
		free_floors(&f);
		return;
	}
	from = f.n - recent;
	margin = swing_margin(&f);
	v->floor = f.low[f.n - 1];
	v->growth_bps = theil_sen(f.t + from, f.low + from, recent);
	z = mann_kendall_z(f.t + from, f.low + from, recent, v->growth_bps);
	rise = v->growth_bps * (f.t[f.n - 1] - f.t[from]);
	if (z < Z_SIGNIFICANT || rise < margin)
		v->state = VERDICT_STEADY;
	/* The slopes of the recent half's older and newer halves. */
	half = recent / 2;
	early = theil_sen(f.t + from, f.low + from, half);
	late = theil_sen(f.t + from + half, f.low + from + half, recent - half);

	/* Flat over the recent half and over its newer half alike (the onset
	 * of a leak moves the latter long before the median slope of the
	 * former): the band may widen. */
	if (v->state == VERDICT_STEADY && rise < margin / 4 &&
	    late * (f.t[f.n - 1] - f.t[from + half]) < margin / 4)
		set_band_over(v, &f, to_s ? fmin(from_s, f.t[from]) : f.t[from], t[n - 1], margin);
	else if (to_s)
		set_band_over(v, &f, from_s, to_s, margin);
	else if (v->state == VERDICT_STEADY)
		set_band(v, f.low + from, recent, margin);
	else
		set_band(v, f.low, f.n / 3 > 1 ? f.n / 3 : 1, margin);
	tight_low = v->band_low, tight_high = v->band_high;
	hold_band(v, held);
	if (v->state != VERDICT_STEADY)
		judge_departure(v, &f, t[n - 1], late >= early * SLOWING, tight_low, tight_high);
	if (v->band_to_s && climbing_out(v, &f, margin)) {
		v->state = VERDICT_LEAK; /* too recent for the trend of the recent half */
		v->climbing = true;
	}
	free_floors(&f);
}

void judge_curve(const double *t, const double *y, size_t n, struct verdict *v)
{
	read_curve(t, y, n, NULL, v->raw, v);
}

void verdict_update(struct verdict *v, const double *t, const double *y, size_t n)
{
	struct verdict now;

	read_curve(t, y, n, v, v->raw, &now);
	switch (v->state) {
	case VERDICT_LEAK:
		/* Its band and departure stay; it is withdrawn only when its floor
		 * has come back into the lower half of the band, for as long as a
		 * leak takes to be called (a slow leak's noisy floor, just out,
		 * dips back to the band's top now and then). */
		v->growth_bps = now.growth_bps;
		v->floor = now.floor;
		if (now.state == VERDICT_WARMUP || now.floor > (v->band_low + v->band_high) / 2)
			v->back_since_s = 0;
		else if (!v->back_since_s)
			v->back_since_s = t[n - 1];
		else if (t[n - 1] - v->back_since_s >= VERDICT_CONFIRM_S)
			v->state = VERDICT_RECOVERED;
		return;
	case VERDICT_RECOVERED:
		if (now.state != VERDICT_LEAK) {
			v->growth_bps = now.growth_bps;
			v->floor = now.floor;
			return;
		}
		break;
	default:
		break;
	}
	/* A leak is called once the readings have said so for a while: longer
	 * for a curve never seen settled (a cache filling from the start). */
	if (now.state != VERDICT_STEADY) {
		v->steady_since_s = 0;
	} else {
		if (!v->steady_since_s)
			v->steady_since_s = t[n - 1];
		/* Settled: read steady that long, or seen flat that long (the
		 * time its band covers; the first readings look back). */
		if (!v->settled_s && (t[n - 1] - v->steady_since_s >= VERDICT_SETTLE_S ||
				      now.band_to_s - now.band_from_s >= VERDICT_SETTLE_S))
			v->settled_s = t[n - 1];
	}
	if (now.state == VERDICT_LEAK) {
		if (!v->leak_since_s)
			v->leak_since_s = t[n - 1];
		/* A settled curve climbing out has its evidence since it left
		 * the band it settled in, not since the readings saw it. */
		bool out_long = v->settled_s && now.climbing &&
				t[n - 1] - now.left_band_at_s >= VERDICT_CLIMB_S;

		if (!out_long && t[n - 1] - v->leak_since_s <
				     (v->settled_s ? VERDICT_CONFIRM_S : VERDICT_CONFIRM_UNSETTLED_S))
			now.state = VERDICT_GROWING;
	} else if (v->steady_since_s && t[n - 1] - v->steady_since_s >= VERDICT_RESET_S) {
		v->leak_since_s = 0; /* steady a while: a single reading does not end it */
	}
	now.leak_since_s = v->leak_since_s;
	now.raw = v->raw;
	now.settled_s = v->settled_s;
	now.steady_since_s = v->steady_since_s;
	*v = now;
}

bool verdict_settled(const struct verdict *v)
{
	return v->state == VERDICT_STEADY && v->settled_s > 0;
}

bool verdict_has_band(const struct verdict *v)
{
	return v->state != VERDICT_WARMUP && (v->band_to_s > 0 || v->state == VERDICT_STEADY);
}

const char *verdict_name(enum verdict_state s)
{
	static const char *const names[] = {"warmup", "steady", "recovered", "growing", "leak"};

	return names[s];
}
