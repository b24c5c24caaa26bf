/*
 * The verdict on synthetic curves with known answers. Each curve is sampled
 * every 0.5 s and judged at each sample with its history, as the tracer
 * does; what a report every 5 s would print is checked: a leak printed on a
 * curve that never leaks is a false positive, a leak never printed (or not
 * by the case's bound) a false negative, a leak withdrawn on a curve that
 * never comes back a flip.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "unit.h"
#include "util.h"
#include "curve.h"
#include "verdict.h"

#define MIB  (1024.0 * 1024.0)
#define KIB  1024.0
#define BASE (20 * MIB)

#define RNG_SEED 88172645463325252ull
static unsigned long long rng = RNG_SEED;

static double uniform(void) /* [-1, 1) */
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (double)(rng >> 11) / (double)(1ull << 52) - 1;
}

static double sawtooth(double t, double period, double height)
{
	return height * fmod(t, period) / period;
}

static double steady_noise(double t)
{
	(void)t;
	return BASE + 256 * KIB * uniform();
}

static double gc_sawtooth(double t)
{
	return BASE + sawtooth(t, 1.5, 8 * MIB);
}

static double load_release_bursts(double t)
{
	return steady_noise(t) + (fmod(t, 10) < 3 ? 30 * MIB : 0);
}

static double cache_plateau(double t)
{
	return steady_noise(t) + 30 * MIB * fmin(t / 40, 1);
}

static double step_settles(double t)
{
	return steady_noise(t) + (t > 30 ? 15 * MIB : 0);
}

static double slow_leak(double t) /* 1% of its 2 MiB band a minute */
{
	return BASE + 1 * MIB * uniform() + 2 * MIB * 0.01 * t / 60;
}

static double fast_leak(double t)
{
	return steady_noise(t) + 1 * MIB * t;
}

static double late_leak(double t)
{
	return steady_noise(t) + (t > 60 ? 200 * KIB * (t - 60) : 0);
}

static double leak_under_sawtooth(double t)
{
	return gc_sawtooth(t) + 100 * KIB * t;
}

static double idle_then_load(double t) /* a server idle 10 s, then busy */
{
	return 1 * MIB + 32 * KIB * uniform() + (t > 10 ? 2 * MIB + sawtooth(t, 3, 4 * MIB) : 0);
}

static double leak_that_stops(double t)
{
	return steady_noise(t) + 500 * KIB * fmin(t, 40);
}

static double saturating(double t)
{
	return steady_noise(t) + 40 * MIB * (1 - exp(-t / 25));
}

static double leak_released(double t) /* leaks 30-90 s, then frees it all */
{
	return steady_noise(t) + (t > 30 && t < 100 ? 500 * KIB * (fmin(t, 90) - 30) : 0);
}

static double staircase(double t)
{
	return steady_noise(t) + 2 * MIB * floor(t / 10);
}

/* A server: a churning 16 MiB cache, 16 MiB bursts every 2 s; from 25 s on a
 * 640 KiB/s drip. */
static double settled_then_drip(double t)
{
	return steady_noise(t) + 16 * MIB + (fmod(t, 2) < 1 ? 16 * MIB : 0) +
	       (t > 25 ? 640 * KIB * (t - 25) : 0);
}

static const struct curve_case {
	const char *name;
	double (*curve)(double t);
	double duration_s;
	double detect_by_s; /* a leak: called by then; 0: never a leak */
	bool recovers;	    /* called a leak, then back in its band */
} cases[] = {
    {"steady noise", steady_noise, 120, 0, false},
    {"sawtooth (GC-like)", gc_sawtooth, 120, 0, false},
    {"load-and-release bursts", load_release_bursts, 120, 0, false},
    {"cache filling to a plateau", cache_plateau, 120, 0, false},
    {"step that settles", step_settles, 120, 0, false},
    {"idle, then a busy sawtooth", idle_then_load, 120, 0, false},
    {"leak that stops", leak_that_stops, 120, 0, false},
    {"saturating growth", saturating, 120, 0, false},
    {"slow leak (1%/min of band)", slow_leak, 1800, 1500, false},
    {"fast leak", fast_leak, 60, 60, false},
    {"leak starting late", late_leak, 120, 120, false},
    {"leak under a large sawtooth", leak_under_sawtooth, 120, 70, false},
    {"staircase leak", staircase, 120, 80, false},
    {"settled server, then a drip", settled_then_drip, 90, 40, false},
    {"leak, then all freed", leak_released, 150, 90, true},
};

struct replay {
	char printed[400];  /* the state at each report: first letter */
	double detected_at; /* when a leak was first printed; < 0: never */
	int flips;	    /* leak printed, then something else */
	struct verdict last;
};

static void replay_case(const struct curve_case *c, struct replay *r)
{
	size_t n = (size_t)(c->duration_s / 0.5) + 1, k = 0;
	double *t = xcalloc(n, sizeof(double)), *y = xcalloc(n, sizeof(double));
	bool leak_printed = false;

	memset(r, 0, sizeof(*r));
	r->detected_at = -1;
	for (size_t i = 0; i < n; i++) {
		t[i] = i * 0.5;
		y[i] = c->curve(t[i]);
		verdict_update(&r->last, t, y, i + 1);
		if (i % 10 || i == 0)
			continue;
		if (k + 1 < sizeof(r->printed) && (i % 100 == 0 || n < 400))
			r->printed[k++] = verdict_name(r->last.state)[0];
		if (r->last.state == VERDICT_LEAK && r->detected_at < 0)
			r->detected_at = t[i];
		r->flips += leak_printed && r->last.state != VERDICT_LEAK &&
			    !(c->recovers && r->last.state == VERDICT_RECOVERED);
		leak_printed = r->last.state == VERDICT_LEAK;
	}
	free(t);
	free(y);
}

void test_verdict_synthetic(void)
{
	int fp = 0, fn = 0, flips = 0;

	rng = RNG_SEED; /* the same noise whatever ran before */

	printf("  %-28s %-8s %-9s %-9s %s\n", "case", "expected", "final", "detected",
	       "printed every 5 s (w s r g l)");
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		const struct curve_case *c = &cases[i];
		struct replay r;
		char at[16] = "-";

		replay_case(c, &r);
		if (r.detected_at >= 0)
			snprintf(at, sizeof(at), "%.0f s", r.detected_at);
		fp += !c->detect_by_s && r.detected_at >= 0;
		fn += c->detect_by_s && (r.detected_at < 0 || r.detected_at > c->detect_by_s);
		fn += c->recovers && r.last.state != VERDICT_RECOVERED;
		flips += r.flips;
		printf("  %-28s %-8s %-9s %-9s %s\n", c->name, c->detect_by_s ? "leak" : "no leak",
		       verdict_name(r.last.state), at, r.printed);
	}
	printf("  false positives %d, false negatives %d, flips %d\n", fp, fn, flips);
	CHECK(fp == 0);
	CHECK(fn == 0);
	CHECK(flips == 0);
}

void test_verdict_warmup_and_band(void)
{
	double t[40], y[40];
	struct verdict v = {0};

	for (int i = 0; i < 40; i++) {
		t[i] = i * 0.25;
		y[i] = BASE;
	}
	judge_curve(t, y, 40, &v); /* 9.75 s: still warming up */
	CHECK(v.state == VERDICT_WARMUP);
	for (int i = 0; i < 40; i++)
		t[i] = i * 0.5;
	judge_curve(t, y, 40, &v);
	CHECK(v.state == VERDICT_STEADY && v.left_band_at_s < 0);
	CHECK(v.band_low == BASE && v.band_high > BASE && v.band_high <= BASE + 16384);
}

/* Steady at 4 MiB for two minutes, then leaking 1 MiB/s: for a while the
 * recent half's median slope still reads flat, but the band must not widen
 * with the leak (it took in its first 18 MiB before the newest half's slope
 * was read too): its top stays under 12 MiB while the floor climbs to 45. */
void test_verdict_band_does_not_absorb_a_leak(void)
{
	static double t[720], y[720];
	struct verdict v = {0};
	double top = 0;

	for (int i = 0; i < 720; i++) {
		t[i] = i * 0.25;
		y[i] = 4 * MIB + 16 * KIB * uniform() + (t[i] > 125 ? 1 * MIB * (t[i] - 125) : 0);
		verdict_update(&v, t, y, i + 1);
		top = fmax(top, v.band_high);
	}
	CHECK(v.floor > 40 * MIB);
	CHECK(top < 12 * MIB); /* a few seconds of the onset at most */
}

/* A leak is withdrawn only when its floor is back in the band's lower half
 * for 10 s: a floor that only dips under the band's top is still a leak. */
void test_verdict_recovery_needs_the_floor_back(void)
{
	static double t[1200], y[1200];
	struct verdict v = {0};
	double top = 0, called = 0;
	bool dipped_leak = true;

	for (int i = 0; i < 1200; i++) {
		t[i] = i * 0.25;
		if (!called)
			y[i] =
			    BASE + 16 * KIB * uniform() + (t[i] > 60 ? 1 * MIB * (t[i] - 60) : 0);
		else if (t[i] < called + 60)
			y[i] = top - 8 * KIB; /* just under the top of the band */
		else
			y[i] = BASE + 16 * KIB * uniform();
		verdict_update(&v, t, y, i + 1);
		if (!called && v.state == VERDICT_LEAK) {
			called = t[i];
			top = v.band_high;
		} else if (called && t[i] < called + 60) {
			dipped_leak &= v.state == VERDICT_LEAK;
		}
	}
	CHECK(called > 0);
	CHECK(dipped_leak);
	CHECK(v.state == VERDICT_RECOVERED);
}

/* The demo's climb (25 KiB/s from the start, a request's 4 KiB in flight
 * now and then) judged every 0.5 s while the tracer stalls for up to 2.5 s at
 * any point: the windows it saw nothing in are left out, not read as flat,
 * and the climb never reads steady; nor when the program stalls. */
void test_verdict_climb_through_a_stall_never_reads_steady(void)
{
	static double t[40], y[40];
	int runs = 0, steady = 0;

	for (int stall = 0; stall < 160; stall++)
		for (int phase = 0; phase < 5; phase++, runs++) {
			struct verdict v = {.raw = true};
			size_t n = 0;

			for (double at = phase / 10.0; at < 17; at += 0.5) {
				if (at >= stall / 10.0 && at < stall / 10.0 + 0.5 + phase * 0.5)
					continue;
				t[n] = at;
				y[n] =
				    25600 * floor(at * 10) / 10 + 4352 * (fmod(at * 7.3, 1) > 0.5);
				verdict_update(&v, t, y, ++n);
				steady += v.state == VERDICT_STEADY;
			}
		}
	printf("  %d runs, %d steady readings\n", runs, steady);
	CHECK(runs == 800 && steady == 0);
	/* The program stalls instead (its floor holds for up to 1 s, sampled
	 * all the while): a floor that held once in a climb is not a wandering
	 * one; its autocorrelation does not make the climb steady. */
	runs = steady = 0;
	for (int stall = 0; stall < 160; stall++)
		for (int len = 1; len <= 2; len++)
			for (int phase = 0; phase < 5; phase++, runs++) {
				struct verdict v = {.raw = true};
				double from = stall / 10.0, until = from + len * 0.5;
				size_t n = 0;

				for (double at = phase / 10.0; at < 17; at += 0.5) {
					double ran = at < from	  ? at
						     : at < until ? from
								  : at - len * 0.5;

					t[n] = at;
					y[n] = 25600 * floor(ran * 10) / 10;
					verdict_update(&v, t, y, ++n);
					steady += v.state == VERDICT_STEADY;
				}
			}
	printf("  %d runs with the program stalled, %d steady readings\n", runs, steady);
	CHECK(runs == 1600 && steady == 0);
}

static int by_value(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* The selection finds what a sort finds, on short arrays full of repeats. */
void test_median_is_a_sorts_middle(void)
{
	unsigned seed = 1;

	for (int round = 0; round < 100000; round++) {
		double v[41], sorted[41], want;
		size_t n = 1 + (size_t)(round % 41);

		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245 + 12345;
			v[i] = sorted[i] = (double)((seed >> 16) % (1 + round % 9));
		}
		qsort(sorted, n, sizeof(*sorted), by_value);
		want = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
		if (verdict_median(v, n) != want) {
			CHECK(!"the median of an array is its sorted middle");
			return;
		}
	}
}

/* A value held is two points, the later one moved on: the curve's shape
 * and span are the same, its memory is not one point per sample. */
void test_curve_flat_stretch_keeps_its_ends(void)
{
	const double y[] = {5, 5, 5, 5, 9, 9, 9, 5};
	struct curve c;

	curve_init(&c, 64);
	for (int i = 0; i < 8; i++)
		curve_add(&c, i, y[i]);
	CHECK(c.n == 5);
	CHECK(c.p[0].t == 0 && c.p[1].t == 3 && c.p[1].last == 5);
	CHECK(c.p[2].t == 4 && c.p[3].t == 6 && c.p[3].last == 9);
	CHECK(c.p[4].t == 7 && c.p[4].last == 5);
	curve_free(&c);
}

void test_curve_bounded_keeps_extremes(void)
{
	struct curve c;
	struct verdict v = {0};

	curve_init(&c, 64);
	for (int i = 0; i < 100000; i++) /* a week at 6 s, say */
		curve_add(&c, i * 0.5, i == 777 ? 1.0 : i == 50000 ? 9e9 : BASE + i % 7);
	CHECK(c.n <= 64 && c.n >= 32);
	CHECK(c.p[0].t == 0);
	double lo = 1e18, hi = 0;
	for (size_t i = 0; i < c.n; i++) {
		lo = fmin(lo, c.p[i].low);
		hi = fmax(hi, c.p[i].high);
	}
	CHECK(lo == 1.0 && hi == 9e9);
	curve_judge(&c, &v);
	CHECK(v.state == VERDICT_STEADY);
	curve_free(&c);
}
