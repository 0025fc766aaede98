#!/usr/bin/env python3
"""bench-collector: the syslog collector of tools/bench-latency.sh (a benchmark tool, not a test).

    bench-collector.py PORT OUT [READY]

Listens on 127.0.0.1:PORT for UDP datagrams (one syslog message each) and TCP connections
(RFC 6587 octet counting, `LEN SP MSG`, as wwatchd sends), and writes one line per message to
OUT:

    RECV_NS USER_NS TAG I CREATE_US LEN  for an alert naming a bench-creator file
    RECV_NS USER_NS - - - LEN            for any other message (diagnostics, summaries)

RECV_NS is the kernel's receive time of the datagram or of the TCP segment (SO_TIMESTAMPNS,
CLOCK_REALTIME, nanoseconds), so the collector's own scheduling does not count; USER_NS is
time.time_ns() when this process read it, for comparison. TAG, I and CREATE_US come from the
file name `wwlat-TAG-I-CREATE_US` that tools/bench-creator.c gives each file: CREATE_US is
CLOCK_REALTIME (µs) just before the creating syscall. LEN is the message's length in bytes
(the syslog header included, the TCP frame's length prefix not). Writes READY (when given) once both
sockets listen; stops on SIGTERM or SIGINT, after writing everything received.
"""
import os
import re
import selectors
import signal
import socket
import struct
import sys
import time

NAME = re.compile(rb"wwlat-([A-Za-z0-9_]+)-(\d+)-(\d+)")
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
ANC = socket.CMSG_SPACE(16)


def kernel_ns(anc):
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            return sec * 1_000_000_000 + nsec
    return 0


def main():
    if len(sys.argv) not in (3, 4):
        sys.exit(__doc__.strip().splitlines()[2].strip())
    port, out_path = int(sys.argv[1]), sys.argv[2]
    ready = sys.argv[3] if len(sys.argv) == 4 else None
    out = open(out_path, "w", buffering=1 << 20)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))

    def emit(recv_ns, user_ns, msg):
        m = NAME.search(msg)
        if m:
            tag, i, us = (g.decode() for g in m.groups())
            out.write(f"{recv_ns} {user_ns} {tag} {i} {us} {len(msg)}\n")
        else:
            out.write(f"{recv_ns} {user_ns} - - - {len(msg)}\n")

    sel = selectors.DefaultSelector()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
    udp.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    udp.bind(("127.0.0.1", port))
    udp.setblocking(False)
    sel.register(udp, selectors.EVENT_READ, "udp")
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind(("127.0.0.1", port))
    tcp.listen(8)
    tcp.setblocking(False)
    sel.register(tcp, selectors.EVENT_READ, "listen")
    buffers = {}
    if ready:
        open(ready, "w").close()
    while not stop:
        events = sel.select(timeout=0.2)
        if not events:
            # Quiet for 0.2 s: write out what came, so the benchmark can see its warm-up.
            out.flush()
        for key, _ in events:
            sock = key.fileobj
            if key.data == "udp":
                while True:
                    try:
                        msg, anc, _, _ = sock.recvmsg(1 << 17, ANC)
                    except BlockingIOError:
                        break
                    emit(kernel_ns(anc), time.time_ns(), msg)
            elif key.data == "listen":
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    continue
                conn.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                conn.setblocking(False)
                sel.register(conn, selectors.EVENT_READ, "tcp")
                buffers[conn] = b""
            else:
                try:
                    data, anc, _, _ = sock.recvmsg(1 << 20, ANC)
                except BlockingIOError:
                    continue
                except OSError:
                    data, anc = b"", []
                if not data:
                    sel.unregister(sock)
                    sock.close()
                    buffers.pop(sock, None)
                    continue
                recv_ns, user_ns = kernel_ns(anc), time.time_ns()
                buf = buffers[sock] + data
                # RFC 6587 §3.4.1: MSG-LEN SP SYSLOG-MSG, repeated.
                while True:
                    sp = buf.find(b" ", 0, 12)
                    if sp <= 0:
                        break
                    n = int(buf[:sp])
                    if len(buf) < sp + 1 + n:
                        break
                    emit(recv_ns, user_ns, buf[sp + 1 : sp + 1 + n])
                    buf = buf[sp + 1 + n :]
                buffers[sock] = buf
    out.close()


if __name__ == "__main__":
    main()
