/* bench-floor: the floor of tools/bench-latency.sh's live CPU figures (a benchmark tool, not a
 * test, and not a detector).
 *
 *   bench-floor PORT BYTES
 *
 * The least a multicast audit reader that alerts can do per event: it joins the kernel's
 * read-only audit multicast group (as wwatchd does, beside auditd), waits in poll(), takes every
 * queued record with one recvmmsg() of up to 64, and at each EOE record (the end of an event)
 * sends one UDP datagram of BYTES bytes to 127.0.0.1:PORT. It parses nothing, correlates
 * nothing, evaluates no rule and formats no JSON: what it costs is the kernel's part of
 * receiving the records and sending one alert-sized datagram per event, the cost that no
 * reader which alerts can avoid on this machine.
 *
 * So that the collector (tools/bench-collector.py) can time its datagrams as it times
 * wwatchd's alerts, the datagram carries the bench file name of the event's PATH record with
 * `wwlat-` turned into `wwlat-F` (its phase is the wwatchd phase's name with an `F` before it);
 * the rest is padding. It runs until killed and prints nothing: the benchmark reads its CPU time
 * from /proc/PID/schedstat.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <linux/netlink.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define AUDIT_EOE 1320
#define AUDIT_PATH 1302
#define AUDIT_NLGRP_READLOG 1
#define BATCH 64
#define RECORD 9216

static char bufs[BATCH][RECORD];

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: bench-floor PORT BYTES\n");
        return 2;
    }
    int port = atoi(argv[1]);
    size_t bytes = (size_t)atol(argv[2]);
    if (port <= 0 || port > 65535 || bytes < 64 || bytes > 60000) {
        fprintf(stderr, "bench-floor: PORT 1-65535, BYTES 64-60000\n");
        return 2;
    }
    int nl = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT);
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = 1u << (AUDIT_NLGRP_READLOG - 1)};
    if (nl < 0 || bind(nl, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("bench-floor: the audit multicast group (root or CAP_AUDIT_READ)");
        return 1;
    }
    /* The receive buffer wwatchd asks for by default (input.rcvbuf). */
    int rcvbuf = 16 << 20;
    if (setsockopt(nl, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof rcvbuf) != 0)
        perror("bench-floor: SO_RCVBUFFORCE");
    int u = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (u < 0 || connect(u, (struct sockaddr *)&to, sizeof to) != 0) {
        perror("bench-floor: UDP socket");
        return 1;
    }
    char *msg = malloc(bytes);
    if (!msg)
        return 1;
    static const char head[] = "<36>1 - floor - - - - ";
    const size_t hlen = sizeof head - 1;
    memset(msg, ' ', bytes);
    memcpy(msg, head, hlen);
    size_t name = 0; /* length of the name copied after the header, 0: none in this event */

    struct mmsghdr m[BATCH];
    struct iovec iov[BATCH];
    for (;;) {
        struct pollfd p = {.fd = nl, .events = POLLIN};
        if (poll(&p, 1, -1) < 0)
            continue;
        for (int i = 0; i < BATCH; i++) {
            iov[i].iov_base = bufs[i];
            iov[i].iov_len = RECORD;
            memset(&m[i].msg_hdr, 0, sizeof m[i].msg_hdr);
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        int n = recvmmsg(nl, m, BATCH, MSG_DONTWAIT, NULL);
        for (int i = 0; i < n; i++) {
            const struct nlmsghdr *h = (const struct nlmsghdr *)bufs[i];
            if (m[i].msg_len < sizeof *h || h->nlmsg_len > m[i].msg_len)
                continue;
            const char *text = (const char *)NLMSG_DATA(h);
            size_t len = h->nlmsg_len - NLMSG_HDRLEN;
            if (h->nlmsg_type == AUDIT_PATH && !name) {
                const char *w = memmem(text, len, "wwlat-", 6);
                if (w) {
                    const char *end = memchr(w, '"', len - (size_t)(w - text));
                    size_t k = end ? (size_t)(end - w) - 6 : 0;
                    if (k > 0 && hlen + 7 + k < bytes) {
                        memcpy(msg + hlen, "wwlat-F", 7);
                        memcpy(msg + hlen + 7, w + 6, k);
                        name = 7 + k;
                    }
                }
            } else if (h->nlmsg_type == AUDIT_EOE) {
                send(u, msg, bytes, MSG_DONTWAIT);
                memset(msg + hlen, ' ', name);
                name = 0;
            }
        }
    }
}
