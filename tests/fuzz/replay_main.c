/*
 * replay_main.c — a plain driver for libFuzzer targets, for compilers
 * without -fsanitize=fuzzer (the default gcc toolchain): runs the target on
 * every file of the directories (or files) given as arguments, then on
 * GH_FUZZ_RANDOM_RUNS generated inputs (default 3000, 200 under TSan) from a fixed seed,
 * so a failure is reproducible. Exits non-zero if an input is unreadable
 * or the corpus is empty; the target aborts on a failed check.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return -1;
    }
    uint8_t *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len == cap) {
            cap = cap ? 2 * cap : 4096;
            uint8_t *nb = realloc(buf, cap);
            if (!nb) {
                fclose(f);
                free(buf);
                return -1;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        if (n == 0)
            break;
        len += n;
    }
    int err = ferror(f) ? -1 : 0;
    fclose(f);
    if (!err)
        LLVMFuzzerTestOneInput(buf, len);
    free(buf);
    return err;
}

#ifndef __has_feature
#define __has_feature(x) 0
#endif
/* Each input makes and closes a hub; under TSan that costs ~50x more (fibers, shadow). */
#if defined(__SANITIZE_THREAD__) || __has_feature(thread_sanitizer)
#define DEFAULT_RANDOM_RUNS 200
#else
#define DEFAULT_RANDOM_RUNS 3000
#endif

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

int main(int argc, char **argv)
{
    long files = 0;
    for (int i = 1; i < argc; i++) {
        struct stat st;
        if (stat(argv[i], &st) != 0) {
            perror(argv[i]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (run_file(argv[i]) != 0)
                return 1;
            files++;
            continue;
        }
        DIR *d = opendir(argv[i]);
        if (!d) {
            perror(argv[i]);
            return 1;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], e->d_name);
            if (run_file(path) != 0) {
                closedir(d);
                return 1;
            }
            files++;
        }
        closedir(d);
    }
    if (argc > 1 && files == 0) {
        fprintf(stderr, "replay: no corpus files\n");
        return 1;
    }
    const char *env = getenv("GH_FUZZ_RANDOM_RUNS");
    long runs = env ? atol(env) : DEFAULT_RANDOM_RUNS;
    /* Line-heavy random inputs: newlines are common, so lines of every length occur. */
    static const uint8_t alphabet[] = "ab\n\n\nxyz \r\n0";
    uint8_t buf[1024];
    for (long r = 0; r < runs; r++) {
        size_t len = 3 + rng() % (sizeof buf - 3);
        for (size_t i = 0; i < len; i++) {
            uint64_t v = rng();
            buf[i] = (i < 80 || v % 4 == 0) ? (uint8_t)(v >> 8)
                                            : alphabet[(v >> 8) % (sizeof alphabet - 1)];
        }
        LLVMFuzzerTestOneInput(buf, len);
    }
    printf("replay: %ld corpus files, %ld generated inputs, all passed\n", files, runs);
    return 0;
}
