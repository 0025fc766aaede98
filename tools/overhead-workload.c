/* overhead-workload: the fixed workload of tools/bench-overhead.sh (host overhead of audit rules).
 *
 *   overhead-workload MODE DIR ITERATIONS
 *
 * Each iteration does the same syscalls in DIR:
 *   getpid, getuid, getppid, stat(/etc/hostname)            (unrelated, no file of ours)
 *   openat(DIR/f, O_CREAT|O_WRONLY|O_TRUNC), write 64 B, close, stat, unlink
 * MODE says who runs it and where DIR is, nothing else changes:
 *   unrelated  root, DIR outside every watched directory
 *   root-tmp   root, DIR under /tmp (the uid filter excludes it)
 *   storm      uid/gid 65534 (setresuid after start), DIR under /tmp: a creation storm
 * Prints one line: "MODE ITERATIONS WALL_NS WALL_NS_PER_ITERATION CPU_NS_PER_ITERATION": wall
 * time (CLOCK_MONOTONIC) and this process's CPU time (CLOCK_PROCESS_CPUTIME_ID, user + kernel,
 * so the audit work done in its syscalls, but not auditd's or kauditd's, nor time spent waiting
 * for CPU on a busy machine), around the loop only. Exits non-zero on any failed syscall, so a
 * broken run is never timed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what) {
    fprintf(stderr, "overhead-workload: %s: %s\n", what, strerror(errno));
    exit(1);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: overhead-workload unrelated|root-tmp|storm DIR ITERATIONS\n");
        return 2;
    }
    const char *mode = argv[1], *dir = argv[2];
    long n = strtol(argv[3], NULL, 10);
    if (n <= 0) {
        fprintf(stderr, "overhead-workload: ITERATIONS must be a positive number\n");
        return 2;
    }
    if (strcmp(mode, "storm") == 0) {
        if (setresgid(65534, 65534, 65534) != 0) die("setresgid 65534");
        if (setresuid(65534, 65534, 65534) != 0) die("setresuid 65534");
    } else if (strcmp(mode, "unrelated") != 0 && strcmp(mode, "root-tmp") != 0) {
        fprintf(stderr, "overhead-workload: unknown mode %s\n", mode);
        return 2;
    }
    char path[4096];
    if (snprintf(path, sizeof path, "%s/f.%d", dir, (int)getpid()) >= (int)sizeof path) {
        fprintf(stderr, "overhead-workload: DIR too long\n");
        return 2;
    }
    char buf[64];
    memset(buf, 'w', sizeof buf);
    struct stat st;
    struct timespec t0, t1, c0, c1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < n; i++) {
        /* syscall(2) so libc cannot cache or skip them. */
        syscall(SYS_getpid);
        syscall(SYS_getuid);
        syscall(SYS_getppid);
        if (stat("/etc/hostname", &st) != 0) die("stat /etc/hostname");
        int fd = openat(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, 0600);
        if (fd < 0) die(path);
        if (write(fd, buf, sizeof buf) != (ssize_t)sizeof buf) die("write");
        if (close(fd) != 0) die("close");
        if (stat(path, &st) != 0) die("stat");
        if (unlink(path) != 0) die("unlink");
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
    long long ns = (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
    long long cpu = (long long)(c1.tv_sec - c0.tv_sec) * 1000000000LL + (c1.tv_nsec - c0.tv_nsec);
    printf("%s %ld %lld %.1f %.1f\n", mode, n, ns, (double)ns / (double)n, (double)cpu / (double)n);
    return 0;
}
