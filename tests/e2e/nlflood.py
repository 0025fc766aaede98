#!/usr/bin/env python3
"""nlflood.py: floods NETLINK_AUDIT ports with forged datagrams, as a local process holding
CAP_NET_ADMIN (and no audit capability) could: unicast to a user port needs CAP_NET_ADMIN
(netlink_sendmsg, NL_CFG_F_NONROOT_SEND), nothing more.

    nlflood.py SECONDS PORT...

Each datagram is a forged NLMSG_ERROR "ACK" (error 0) with a running sequence number, 4 KiB
padded, sent with MSG_DONTWAIT. Prints one JSON line with how each send ended: "sent" (the
kernel queued it for the port), "refused" (ECONNREFUSED: the port is connect()ed to someone
else), "full" (EAGAIN: the port's buffer is full) and "other".
"""
import errno
import json
import socket
import struct
import sys
import time

NETLINK_AUDIT = 9
NLMSG_ERROR = 2


def main():
    secs = float(sys.argv[1])
    ports = [int(p) for p in sys.argv[2:]]
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_AUDIT)
    s.bind((0, 0))
    counts = {"sent": 0, "refused": 0, "full": 0, "other": 0, "errors": []}
    seq = 0
    end = time.monotonic() + secs
    while time.monotonic() < end:
        for port in ports:
            seq += 1
            # struct nlmsgerr: error 0, then the "original" header.
            body = struct.pack("=i", 0) + struct.pack("=IHHII", 16, 1000, 0, seq, 0)
            body += b"\0" * (4096 - len(body))
            msg = struct.pack("=IHHII", 16 + len(body), NLMSG_ERROR, 0, seq, 0) + body
            try:
                s.sendto(msg, socket.MSG_DONTWAIT, (port, 0))
                counts["sent"] += 1
            except OSError as e:
                if e.errno == errno.ECONNREFUSED:
                    counts["refused"] += 1
                elif e.errno in (errno.EAGAIN, errno.ENOBUFS):
                    counts["full"] += 1
                else:
                    counts["other"] += 1
                    if len(counts["errors"]) < 5:
                        counts["errors"].append(errno.errorcode.get(e.errno, str(e.errno)))
    print(json.dumps(counts))


if __name__ == "__main__":
    main()
