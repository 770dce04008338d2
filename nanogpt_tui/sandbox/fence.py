"""Removes every route but the on-link one from a network namespace, so that a connection to any address off the
session's internal network fails at once ("Network is unreachable") instead of reaching the host through Docker's
gateway address. Run once per session by a short-lived helper container that shares the session container's
network namespace and alone holds NET_ADMIN (the session's own processes have no capabilities, so they cannot put a
route back). Standard library only: one rtnetlink request per route.

Run as `python3 -m nanogpt_tui.sandbox.fence`; prints what it removed as JSON.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import sys

RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP = 0x1, 0x4, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
RT_TABLE_MAIN = 254
RTA_DST, RTA_GATEWAY, RTA_TABLE = 1, 5, 15
_NLMSG = struct.Struct("=IHHII")
_RTMSG = struct.Struct("=BBBBBBBBI")


def _request(sock: socket.socket, kind: int, flags: int, payload: bytes, seq: int) -> list[tuple[int, bytes]]:
    sock.send(_NLMSG.pack(_NLMSG.size + len(payload), kind, flags, seq, 0) + payload)
    replies: list[tuple[int, bytes]] = []
    while True:
        data = sock.recv(1 << 16)
        offset = 0
        while offset < len(data):
            length, rtype, _flags, _seq, _pid = _NLMSG.unpack_from(data, offset)
            body = data[offset + _NLMSG.size: offset + length]
            offset += (length + 3) & ~3
            if rtype == NLMSG_DONE:
                return replies
            if rtype == NLMSG_ERROR:
                code = struct.unpack_from("=i", body)[0]
                if code:
                    raise OSError(-code, os.strerror(-code))
                return replies
            replies.append((rtype, body))


def _attrs(body: bytes) -> dict[int, bytes]:
    found, offset = {}, _RTMSG.size
    while offset + 4 <= len(body):
        length, kind = struct.unpack_from("=HH", body, offset)
        if length < 4:
            break
        found[kind] = body[offset + 4: offset + length]
        offset += (length + 3) & ~3
    return found


def routes(sock: socket.socket) -> list[dict]:
    """The main table's IPv4 routes: destination prefix, gateway, and the raw message to delete them with."""
    dump = _request(sock, RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, _RTMSG.pack(socket.AF_INET, 0, 0, 0, 0, 0, 0, 0, 0), 1)
    found = []
    for _kind, body in dump:
        family, dst_len, _src, _tos, table, _proto, _scope, _rtype, _flags = _RTMSG.unpack_from(body)
        attrs = _attrs(body)
        if family != socket.AF_INET or (table != RT_TABLE_MAIN and
                                        struct.unpack("=I", attrs.get(RTA_TABLE, b"\0\0\0\0"))[0] != RT_TABLE_MAIN):
            continue
        found.append({"dst": socket.inet_ntoa(attrs[RTA_DST]) if RTA_DST in attrs else "0.0.0.0",
                      "dst_len": dst_len,
                      "gateway": socket.inet_ntoa(attrs[RTA_GATEWAY]) if RTA_GATEWAY in attrs else None,
                      "body": body})
    return found


def fence() -> dict:
    """Delete every route through a gateway (the default route, and any other); keep the on-link ones."""
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as sock:
        sock.bind((0, 0))
        removed = []
        for n, route in enumerate(r for r in routes(sock) if r["gateway"]):
            _request(sock, RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, route["body"], 10 + n)
            removed.append(f"{route['dst']}/{route['dst_len']} via {route['gateway']}")
        left = [f"{r['dst']}/{r['dst_len']}" for r in routes(sock)]
    return {"removed": removed, "left": left}


def main() -> int:
    try:
        print(json.dumps(fence()), flush=True)
    except OSError as err:
        print(json.dumps({"error": f"{err.strerror or err}"}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
