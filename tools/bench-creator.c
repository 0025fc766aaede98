/* bench-creator: the load generator of tools/bench-latency.sh (a benchmark tool, not a test).
 *
 *   bench-creator DIR TAG RATE COUNT
 *
 * Creates COUNT files in DIR, RATE per second on a fixed schedule (file i is due at
 * start + i/RATE, CLOCK_MONOTONIC, TIMER_ABSTIME sleeps so lateness does not accumulate), or as
 * fast as it can when RATE is 0. Each file's name carries the CLOCK_REALTIME time, in
 * microseconds, read just before its openat(O_CREAT|O_EXCL): DIR/wwlat-TAG-I-USEC. The
 * collector (tools/bench-collector.py) subtracts it from the time the alert naming that path
 * arrived, so the latency is measured from the syscall's start, not from the audit record's
 * coarse (jiffy) stamp.
 *
 * The process is started as a copy named like a listed tool (e.g. `rsync`), as a non-root uid
 * (setpriv), so each creation alerts; a copy with another name makes creations that do not.
 * Prints one line at the end:
 *   created=N failed=F seconds=S rate=R late_max_us=L late_p99_us=P
 * where "late" is how far behind its schedule a creation started (the machine's load, or the
 * kernel's backlog wait, slowing the producer).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static long long ns(clockid_t c) {
    struct timespec t;
    clock_gettime(c, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static int cmp(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: bench-creator DIR TAG RATE COUNT\n");
        return 2;
    }
    const char *dir = argv[1], *tag = argv[2];
    double rate = strtod(argv[3], NULL);
    long count = strtol(argv[4], NULL, 10);
    if (rate < 0 || count <= 0) {
        fprintf(stderr, "bench-creator: RATE must be >= 0 and COUNT > 0\n");
        return 2;
    }
    long long *late = calloc((size_t)count, sizeof *late);
    if (!late) return 1;
    char path[4096];
    long created = 0, failed = 0;
    long long start = ns(CLOCK_MONOTONIC);
    for (long i = 0; i < count; i++) {
        if (rate > 0) {
            long long due = start + (long long)((double)i * 1e9 / rate);
            struct timespec t = {due / 1000000000LL, due % 1000000000LL};
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR) {
            }
            long long now = ns(CLOCK_MONOTONIC);
            late[i] = now > due ? now - due : 0;
        }
        long long us = ns(CLOCK_REALTIME) / 1000;
        snprintf(path, sizeof path, "%s/wwlat-%s-%ld-%lld", dir, tag, i, us);
        int fd = open(path, O_CREAT | O_EXCL | O_WRONLY, 0644);
        if (fd < 0) {
            failed++;
            continue;
        }
        close(fd);
        created++;
    }
    double secs = (double)(ns(CLOCK_MONOTONIC) - start) / 1e9;
    qsort(late, (size_t)count, sizeof *late, cmp);
    printf("created=%ld failed=%ld seconds=%.3f rate=%.0f late_max_us=%lld late_p99_us=%lld\n",
           created, failed, secs, secs > 0 ? (double)created / secs : 0.0, late[count - 1] / 1000,
           late[(size_t)((double)(count - 1) * 0.99)] / 1000);
    return failed ? 1 : 0;
}
