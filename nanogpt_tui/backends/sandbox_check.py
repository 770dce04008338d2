"""`nanogpt-tui sandbox check` on one Docker host: a probe container made by the same code as a session's
(`DockerBackend.create_and_start`, so the same network, resolver, fence and limits) looks out from the session's
side (`nanogpt_tui.sandbox.probe`), and the host looks at what Docker says of its networks.

Each check is one line: the session network is internal, the model gateway answers, DNS refuses the probe names,
the fence left no route through a gateway address; each allowed destination answers through the CONNECT proxy;
each probe is blocked. `ok` only when every one holds.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import docker.errors

from nanogpt_tui.backends.base import LaunchSpec
from nanogpt_tui.backends.docker_backend import DockerBackend
from nanogpt_tui.contract import layout as L
from nanogpt_tui.errors import UserError
from nanogpt_tui.sandbox.names import GATEWAY_ALIAS, GATEWAY_PORT, PROXY_PORT
from nanogpt_tui.sandbox.probe import GO_FILE, PLAN_ENV, is_address, split_endpoint

WAIT_S = 120.0


def _check(name: str, ok: bool, detail: str) -> dict[str, Any]:
    return {"check": name, "ok": ok, "detail": detail}


def check_host(backend: DockerBackend, spec: LaunchSpec, *, allowed: list[str], probes: list[str]) -> dict[str, Any]:
    """Start the probe container `spec` describes (its command runs the probe), say go once it is attached and
    fenced, read its answer and remove it (and its network). The result: {"ok", "host", "checks", "allowed",
    "blocked"}."""
    if spec.egress is None:
        raise UserError("sandbox check needs the sandbox's egress settings; this is a bug in the caller.")
    plan = {"gateway_url": f"http://{GATEWAY_ALIAS}:{GATEWAY_PORT}", "proxy": f"{GATEWAY_ALIAS}:{PROXY_PORT}",
            "allowed": list(allowed), "probes": list(probes), "workdir": L.CONTAINER_WORKSPACE}
    spec = replace(spec, command=["python3", "-m", "nanogpt_tui.sandbox.probe"],
                   env={**spec.env, PLAN_ENV: json.dumps(plan)})
    container_id = backend.create_and_start(spec)
    checks: list[dict[str, Any]] = []
    try:
        attrs = backend.client.api.inspect_container(container_id)
        networks = list((attrs.get("NetworkSettings") or {}).get("Networks") or {})
        open_networks = []
        for name in networks:
            try:
                if not backend.client.api.inspect_network(name).get("Internal"):
                    open_networks.append(name)
            except docker.errors.NotFound:
                open_networks.append(f"{name} (not found)")
        checks.append(_check("network", bool(networks) and not open_networks,
                             f"the session network is internal ({', '.join(networks)})" if networks and
                             not open_networks else "the session container is on a network with a way out: " +
                             ", ".join(open_networks or ["(no network at all)"])))
        (Path(spec.workspace_dir) / GO_FILE).write_text("go\n")
        try:
            code = int(backend.client.api.wait(container_id, timeout=WAIT_S).get("StatusCode", -1))
        except Exception as err:  # noqa: BLE001 - the SDK raises a requests timeout: the probe hung
            raise UserError(f"The probe container on {backend.name} did not finish within {WAIT_S:g} s "
                            f"({type(err).__name__}); run the check again, and look at `docker logs` if it "
                            "repeats.") from None
        output = backend.client.api.logs(container_id, stdout=True, stderr=True).decode("utf-8", "replace")
    finally:
        backend.release(container_id, spec.session_id, Path(spec.log_path).with_name(L.INSPECT_FILE),
                        spec.egress.prefix)
    try:
        seen = json.loads(output.strip().splitlines()[-1])
    except (ValueError, IndexError):
        seen = {"error": output.strip()[-300:] or f"no output (exit {code})"}
    if "error" in seen or code != 0:
        raise UserError(f"The probe container on {backend.name} failed ({seen.get('error')}); check that the image "
                        f"{spec.image} holds this version of nanogpt-tui.")
    gateway = seen.get("gateway") or {}
    checks.append(_check("gateway", bool(gateway.get("ok")), "the model gateway answers" if gateway.get("ok")
                         else f"the model gateway does not answer ({gateway.get('error')})"))
    names = [b for b in seen.get("blocked", []) if not is_address(split_endpoint(b["probe"])[0])]
    leaked = [b for b in names if b["error"] and "DNS resolved" in b["error"]]
    if not names:
        checks.append(_check("dns", True, "DNS not probed (no name among the probes)"))
    else:
        checks.append(_check("dns", not leaked, f"DNS refuses {', '.join(b['probe'] for b in names)}" if not leaked
                             else "DNS answers what it must refuse: " + "; ".join(b["error"] for b in leaked)))
    routes = seen.get("routes_via_gateway") or []
    checks.append(_check("fence", not routes, "no route through a gateway address" if not routes
                         else "routes out left in place: " + ", ".join(routes)))
    for a in seen.get("allowed", []):
        checks.append(_check("allowed", a["reachable"], f"{a['endpoint']} reachable through the proxy"
                             if a["reachable"] else f"{a['endpoint']} not reachable ({a['error']})"))
    for b in seen.get("blocked", []):
        checks.append(_check("probe", b["blocked"], f"{b['probe']} blocked" if b["blocked"]
                             else f"{b['probe']} NOT blocked: {b['error']}"))
    allowed_out = [{"endpoint": a["endpoint"], "reachable": a["reachable"], "error": a["error"]}
                   for a in seen.get("allowed", [])]
    blocked_out = [{"probe": b["probe"], "blocked": b["blocked"], "error": b["error"]}
                   for b in seen.get("blocked", [])]
    return {"ok": all(c["ok"] for c in checks), "host": backend.name, "checks": checks, "allowed": allowed_out,
            "blocked": blocked_out}
