/*
 * bench.h — what every greenhub benchmark shares: a clock, repetition
 * helpers (min / median) and the aligned result table.
 *
 * Every figure is printed beside a reference measured in the same run, with
 * the ratio and the target it is held to. The machine is shared and noisy,
 * so each figure is the min (for costs) or the median (for rates and
 * latencies) of several repetitions; the table says which.
 */
#ifndef GH_BENCH_BENCH_H
#define GH_BENCH_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static inline int64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static inline double bench_min(const double *v, int n)
{
    double m = v[0];
    for (int i = 1; i < n; i++)
        if (v[i] < m)
            m = v[i];
    return m;
}

/* Median of @n values (sorts a copy). */
static inline double bench_median(const double *v, int n)
{
    double *tmp = malloc((size_t)n * sizeof *tmp);
    if (!tmp)
        abort();
    memcpy(tmp, v, (size_t)n * sizeof *tmp);
    qsort(tmp, (size_t)n, sizeof *tmp, bench_cmp_double);
    double m = n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
    free(tmp);
    return m;
}

/* Percentile @p (0..100) of @n sorted int64 samples. */
static inline int64_t bench_pct_sorted(const int64_t *sorted, size_t n, double p)
{
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return sorted[i < n ? i : n - 1];
}

static inline int bench_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Format a value with its unit into @buf: "5.93 ns", "1.23 M/s", ... */
static inline const char *bench_fmt(char *buf, size_t n, double v, const char *unit)
{
    if (v != v) /* NaN: not measured */
        snprintf(buf, n, "n/a");
    else if (v >= 1e6 && strcmp(unit, "/s") == 0)
        snprintf(buf, n, "%.3f M/s", v / 1e6);
    else if (v >= 1e3 && strcmp(unit, "/s") == 0)
        snprintf(buf, n, "%.1f k/s", v / 1e3);
    else if (v >= 100)
        snprintf(buf, n, "%.0f %s", v, unit);
    else
        snprintf(buf, n, "%.2f %s", v, unit);
    return buf;
}

#define BENCH_COLS "%-58s %14s   %-30s %12s %7s  %-9s %s\n"

static inline void bench_table_header(const char *title)
{
    printf("\n%s\n", title);
    printf(BENCH_COLS, "measure", "greenhub", "reference", "ref value", "ratio", "target",
           "verdict");
    printf("%.*s\n", 154,
           "-----------------------------------------------------------------------------------"
           "-----------------------------------------------------------------------------------");
}

/*
 * One row. @ratio is greenhub / reference (a cost) or greenhub / reference
 * (a rate) as the caller computed it; @target names the bound; @verdict is
 * "ok", "MISS", or "" when the row has no target.
 */
static inline void bench_row(const char *measure, double value, const char *unit,
                             const char *ref_name, double ref_value, const char *ref_unit,
                             double ratio, const char *target, const char *verdict)
{
    char a[32], b[32], r[32];
    bench_fmt(a, sizeof a, value, unit);
    bench_fmt(b, sizeof b, ref_value, ref_unit);
    if (ratio != ratio)
        snprintf(r, sizeof r, "n/a");
    else
        snprintf(r, sizeof r, "%.2fx", ratio);
    printf(BENCH_COLS, measure, a, ref_name, b, r, target, verdict);
    fflush(stdout);
}

/* A row whose greenhub figure could not be measured, with the reason. */
static inline void bench_row_na(const char *measure, const char *why, const char *ref_name,
                                double ref_value, const char *ref_unit, const char *target)
{
    char b[32];
    bench_fmt(b, sizeof b, ref_value, ref_unit);
    printf(BENCH_COLS, measure, why, ref_name, b, "n/a", target, "");
    fflush(stdout);
}

#define BENCH_CHECK(cond, ...)                                                                     \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "bench: %s:%d: ", __FILE__, __LINE__);                                 \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#endif /* GH_BENCH_BENCH_H */
