"""What `nanogpt-tui sandbox check` runs inside a probe container made like a session's: from the session's side
of the sandbox, is the fence in place (no route through a gateway address), does the model gateway answer, does
each allowed destination answer through the CONNECT proxy, and is each probe refused (a name: not resolved; an
address: no connection, directly or through the proxy).

It waits for the host's go (a file in its workspace, written once the host has attached and fenced it), so it
measures the container as a session would run. Standard library only; one JSON line on stdout.

Run as `python3 -m nanogpt_tui.sandbox.probe` with the plan as JSON in $NANOGPT_TUI_PROBE.
"""

from __future__ import annotations

import ipaddress
import json
import os
import socket
import sys
import time
import urllib.request

PLAN_ENV = "NANOGPT_TUI_PROBE"
GO_FILE = ".probe-go"
RTF_GATEWAY = 0x2
TIMEOUT_S = 5.0


def gateway_routes(path: str = "/proc/net/route") -> list[str]:
    """IPv4 routes through a gateway address (the fence removes them all), as "dest/mask via gateway"."""
    found = []
    try:
        lines = open(path, encoding="ascii").read().splitlines()[1:]
    except OSError:
        return ["(no /proc/net/route to read)"]
    for line in lines:
        cols = line.split()
        if len(cols) >= 8 and int(cols[3], 16) & RTF_GATEWAY:
            def ip(hexed: str) -> str:
                return socket.inet_ntoa(int(hexed, 16).to_bytes(4, "little"))
            found.append(f"{ip(cols[1])}/{ip(cols[7])} via {ip(cols[2])} dev {cols[0]}")
    return found


def split_endpoint(text: str) -> tuple[str, int | None]:
    host, sep, port = text.rpartition(":")
    if sep and port.isdigit():
        return host.strip("[]"), int(port)
    return text, None


def is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def connect(host: str, port: int) -> str | None:
    """None when a TCP connection opens; else why not."""
    try:
        socket.create_connection((host, port), timeout=TIMEOUT_S).close()
        return None
    except OSError as err:
        return f"{type(err).__name__}: {err.strerror or err}"


def through_proxy(proxy: tuple[str, int], target: str) -> tuple[int | None, str]:
    """The proxy's status for `CONNECT target` (None when the proxy itself did not answer), and its reason."""
    try:
        with socket.create_connection(proxy, timeout=TIMEOUT_S) as sock:
            sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
            head = b""
            while b"\r\n" not in head and len(head) < 4096:
                chunk = sock.recv(1024)
                if not chunk:
                    break
                head += chunk
        parts = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
        return int(parts[1]), " ".join(parts[1:])
    except (OSError, ValueError, IndexError) as err:
        return None, f"the proxy did not answer ({type(err).__name__}: {err})"


def resolve(name: str) -> str | None:
    """None when the name does not resolve; else the addresses it resolved to."""
    try:
        found = sorted({info[4][0] for info in socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)})
    except OSError:
        return None
    return ", ".join(found) or None


def run(plan: dict) -> dict:
    out: dict = {"routes_via_gateway": gateway_routes()}
    gateway = plan["gateway_url"].rstrip("/")
    try:
        with urllib.request.urlopen(f"{gateway}/healthz", timeout=TIMEOUT_S) as answer:
            out["gateway"] = {"ok": answer.status == 200, "error": None if answer.status == 200 else
                              f"HTTP {answer.status}"}
    except OSError as err:
        out["gateway"] = {"ok": False, "error": f"{type(err).__name__}: {err}"}
    proxy = split_endpoint(plan["proxy"]) if plan.get("proxy") else None
    out["allowed"] = []
    for endpoint in plan.get("allowed") or []:
        if proxy is None or proxy[1] is None:
            out["allowed"].append({"endpoint": endpoint, "reachable": False, "error": "no proxy configured"})
            continue
        status, reason = through_proxy((proxy[0], proxy[1]), endpoint)
        out["allowed"].append({"endpoint": endpoint, "reachable": status == 200,
                               "error": None if status == 200 else reason})
    out["blocked"] = []
    for probe in plan.get("probes") or []:
        host, port = split_endpoint(probe)
        leaks = []
        if not is_address(host):
            addresses = resolve(host)
            if addresses:
                leaks.append(f"DNS resolved {host} to {addresses}")
        elif port is not None:
            failed = connect(host, port)
            if failed is None:
                leaks.append(f"a TCP connection to {probe} opened")
        if port is not None and proxy is not None and proxy[1] is not None:
            status, reason = through_proxy((proxy[0], proxy[1]), probe)
            if status == 200:
                leaks.append(f"the proxy tunnels to {probe}")
        out["blocked"].append({"probe": probe, "blocked": not leaks, "error": "; ".join(leaks) or None})
    return out


def main() -> int:
    plan = json.loads(os.environ[PLAN_ENV])
    go = os.path.join(plan["workdir"], GO_FILE)  # the workspace, as the host names it
    deadline = time.monotonic() + float(plan.get("wait_s", 60))
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            print(json.dumps({"error": "the host never said go (no fence applied?)"}), flush=True)
            return 1
        time.sleep(0.05)
    print(json.dumps(run(plan)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
