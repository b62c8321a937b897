/*
 * args.h — the examples' one small command-line parser.
 *
 * Each example lists its options in a table and calls ex_args_parse:
 *
 *     long port = 6000;
 *     const char *backend = NULL;
 *     const ex_opt opts[] = {
 *         {"--port", "N", "port to listen on (0: any free one)", EX_LONG, &port, 0, 65535},
 *         {"--backend", "NAME", "epoll, poll, select, io_uring, libev, libevent", EX_STR, &backend,
 * 0, 0},
 *     };
 *     int rc = ex_args_parse(argc, argv, "an echo server", opts, EX_COUNT(opts));
 *     if (rc >= 0)
 *         return rc;
 *
 * --help / -h prints the usage to stdout (exit 0); an unknown option, a
 * missing value or a number out of range prints what is wrong and the usage
 * line to stderr (exit 2). The program is named by its base name, never by
 * Bazel's execroot path.
 */
#ifndef GH_EXAMPLES_ARGS_H
#define GH_EXAMPLES_ARGS_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum { EX_LONG, EX_STR, EX_FLAG } ex_kind;

typedef struct ex_opt {
    const char *name; /* "--port" */
    const char *meta; /* what the value is called in the usage ("N"); NULL for a flag */
    const char *help; /* one line */
    ex_kind kind;
    void *out;   /* long *, const char ** or bool * */
    long lo, hi; /* EX_LONG: the accepted range */
} ex_opt;

#define EX_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* The program's name as a person typed it, without the directories. */
static inline const char *ex_prog(const char *argv0)
{
    const char *slash = strrchr(argv0, '/');
    return slash ? slash + 1 : argv0;
}

static inline void ex_usage_line(FILE *out, const char *argv0, const ex_opt *opts, size_t n)
{
    fprintf(out, "usage: %s", ex_prog(argv0));
    for (size_t i = 0; i < n; i++) {
        if (opts[i].meta)
            fprintf(out, " [%s %s]", opts[i].name, opts[i].meta);
        else
            fprintf(out, " [%s]", opts[i].name);
    }
    fputc('\n', out);
}

static inline void ex_usage(FILE *out, const char *argv0, const char *about, const ex_opt *opts,
                            size_t n)
{
    ex_usage_line(out, argv0, opts, n);
    if (about)
        fprintf(out, "\n%s\n", about);
    if (n)
        fputc('\n', out);
    for (size_t i = 0; i < n; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", opts[i].name, opts[i].meta ? " " : "",
                 opts[i].meta ? opts[i].meta : "");
        if (opts[i].kind == EX_LONG)
            fprintf(out, "  %-22s %s (%ld..%ld)\n", left, opts[i].help, opts[i].lo, opts[i].hi);
        else
            fprintf(out, "  %-22s %s\n", left, opts[i].help);
    }
    fprintf(out, "  %-22s %s\n", "--help", "this text");
}

/* A whole decimal number in [lo, hi]: "abc", "12x", "" and overflow are refused. */
static inline bool ex_parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return false;
    *out = v;
    return true;
}

/* -1: go on; else the exit status (0 after --help, 2 for a bad command line). */
static inline int ex_args_parse(int argc, char **argv, const char *about, const ex_opt *opts,
                                size_t n)
{
    const char *prog = ex_prog(argv[0]);
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            ex_usage(stdout, argv[0], about, opts, n);
            return 0;
        }
        const ex_opt *o = NULL;
        for (size_t k = 0; k < n && !o; k++)
            if (strcmp(arg, opts[k].name) == 0)
                o = &opts[k];
        if (!o) {
            fprintf(stderr, "%s: unknown option '%s'\n", prog, arg);
            ex_usage_line(stderr, argv[0], opts, n);
            return 2;
        }
        if (o->kind == EX_FLAG) {
            *(bool *)o->out = true;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "%s: %s wants a value (%s)\n", prog, arg, o->meta);
            ex_usage_line(stderr, argv[0], opts, n);
            return 2;
        }
        const char *val = argv[++i];
        if (o->kind == EX_STR) {
            *(const char **)o->out = val;
        } else if (!ex_parse_long(val, o->lo, o->hi, (long *)o->out)) {
            fprintf(stderr, "%s: %s wants a number in %ld..%ld, not '%s'\n", prog, arg, o->lo,
                    o->hi, val);
            ex_usage_line(stderr, argv[0], opts, n);
            return 2;
        }
    }
    return -1;
}

#endif /* GH_EXAMPLES_ARGS_H */
