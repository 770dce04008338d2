"""A Docker host's egress policy: the model API and nothing else.

Each session gets an internal network (no route out; IPv6 off; the host takes no address on it, so host services
are not reachable through it either). The model gateway (`nanogpt_tui.sandbox.gateway`, one container per host)
sits on every session's network under the alias `model-gateway` and on one ordinary bridge to reach the APIs; it
holds the real keys (sent on its stdin at start, never in a container's config) and is the sessions' DNS server,
answering no outside name. Once a session's container is created, a helper sharing its network namespace with
NET_ADMIN removes the routes through a gateway address, so a direct connection to any address off the network
fails at once. The gateway's CONNECT proxy tunnels to the `[sandbox] allow` destinations (the CLIs get
HTTPS_PROXY) and refuses every other. Refused requests, tunnels and names land in `<state>/out/<session>.jsonl`
with the metered token usage (`nanogpt_tui.sessions.egress_records` reads them for the session).

Routes and keys are the session's own: before its container starts, the session's endpoints (its agent's
`base_url`, or the vendor's API) and keys are handed to the gateway's control listener, on the gateway's loopback,
through a `docker exec` whose stdin carries them (so they are in no stored config); sessions with different APIs or
keys share one gateway per host, and the gateway's own routes are the vendors' (for no session in particular).
"""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import docker.errors

from nanogpt_tui.backends.docker_backend import DockerBackend, _api_message, hardening
from nanogpt_tui.config import parse_allow_entry
from nanogpt_tui.contract import layout
from nanogpt_tui.errors import UserError
from nanogpt_tui.sandbox.names import (
    CONTROL_PORT,
    DEFAULT_ROUTES,
    GATEWAY_ALIAS,
    GATEWAY_PORT,
    PROXY_PORT,
)
from nanogpt_tui.sandbox.probe import is_address
from nanogpt_tui.fsutil import atomic_write_json

# Run inside the gateway's container by `docker exec`: one request to the control listener, the body from stdin.
# The body is one line, so nothing has to half-close the exec's stdin (the SDK's ssh transport cannot).
TELL = ("import sys, urllib.request, urllib.error\n"
        "body = sys.stdin.buffer.readline().strip()\n"
        "req = urllib.request.Request(sys.argv[1], data=body or None, method=sys.argv[2],\n"
        "                             headers={'content-type': 'application/json'})\n"
        "try:\n"
        "    urllib.request.urlopen(req, timeout=20).read()\n"
        "except urllib.error.HTTPError as err:\n"
        "    print(err.code, err.read()[:300].decode('utf-8', 'replace')); sys.exit(1)\n"
        "except OSError as err:\n"
        "    print(type(err).__name__, err); sys.exit(1)\n")
GATEWAY_USER = "0:0"  # binds DNS's port 53 with NET_BIND_SERVICE only; every other capability is dropped
EGRESS_LABEL = "nanogpt-tui.egress"
HEALTH_TIMEOUT_S = 30.0



def _policy(config: dict[str, Any]) -> dict[str, Any]:
    """What a running gateway must agree with to be kept: its config, but only the names its resolver answers (the
    addresses a name resolves to move between lookups; a gateway is not restarted for that)."""
    return {**config, "dns_names": sorted(config.get("dns_names") or {})}


@dataclass
class Egress:
    """One host's gateway and session networks (names start with `prefix`, so tests keep theirs apart)."""

    backend: DockerBackend
    image: str
    state_dir: Path  # on the Docker host: gateway.json, clients.json, out/<session>.jsonl
    routes: dict[str, dict[str, Any]] = field(default_factory=lambda: dict(DEFAULT_ROUTES))
    keys: dict[str, str] = field(default_factory=dict)
    prefix: str = "nanogpt-tui"
    ca_file: Path | None = None  # a CA bundle for the upstream APIs (tests: the stand-in's); None: the system's
    allow: tuple[str, ...] = ()  # `[sandbox] allow`: "host:port" the CONNECT proxy tunnels to
    # The names the sessions' resolver answers (name -> IPv4s); None: the allowed destinations' names, looked up
    # by this machine when the gateway starts (a session needs no name to use the proxy; some tools look first).
    dns_names: dict[str, list[str]] | None = None

    @property
    def client(self) -> docker.DockerClient:
        return self.backend.client

    @property
    def gateway_name(self) -> str:
        return f"{self.prefix}-gateway"

    @property
    def egress_network(self) -> str:
        return f"{self.prefix}-egress"

    def session_network(self, session_id: str) -> str:
        return f"{self.prefix}-net-{session_id}".lower()[:120]

    def _resolved_names(self) -> dict[str, list[str]]:
        if self.dns_names is not None:
            return {k: list(v) for k, v in self.dns_names.items()}
        names: dict[str, list[str]] = {}
        for entry in self.allow:
            parsed = parse_allow_entry(entry)
            if parsed is None or is_address(parsed[0]) or parsed[0] in names:
                continue
            try:
                found = socket.getaddrinfo(parsed[0], parsed[1], socket.AF_INET, socket.SOCK_STREAM)
            except OSError:
                continue  # not known here: the session's lookups of it are refused, the proxy still tunnels
            names[parsed[0]] = sorted({info[4][0] for info in found})
        return names

    def gateway_config(self) -> dict[str, Any]:
        # Routes are each session's own (told at attach); the gateway's are the vendors' APIs, the same for every
        # session, so a session with other endpoints does not restart the gateway under the others.
        config: dict[str, Any] = {"routes": dict(DEFAULT_ROUTES), "clients_file": "/gateway/clients.json",
                                  "out_dir": f"/gateway/{layout.EGRESS_OUT}", "routes_dir": "/gateway/routes", "allow": list(self.allow),
                                  "dns_names": self._resolved_names()}
        if self.ca_file:
            config["ca_file"] = "/gateway-ca.pem"
        return config

    # --- the gateway ------------------------------------------------------------------------------------------

    def _network(self, name: str, *, internal: bool) -> Any:
        try:
            return self.client.networks.get(name)
        except docker.errors.NotFound:
            options = {"com.docker.network.bridge.inhibit_ipv4": "true"} if internal else {}
            return self.client.networks.create(name, driver="bridge", internal=internal, enable_ipv6=False,
                                               options=options, labels={EGRESS_LABEL: self.prefix})

    def gateway_ip(self, network: str) -> str | None:
        try:
            attrs = self.client.api.inspect_container(self.gateway_name)
        except docker.errors.NotFound:
            return None
        net = (attrs.get("NetworkSettings") or {}).get("Networks", {}).get(network) or {}
        return net.get("IPAddress") or None

    def healthy(self) -> bool:
        """The gateway answers /healthz: asked over its egress bridge from this machine when the Docker host is
        this machine, else from inside the gateway's container."""
        ip = self.gateway_ip(self.egress_network)
        if not ip:
            return False
        if not self.backend.url.startswith("unix://"):
            try:
                code, _ = self.client.containers.get(self.gateway_name).exec_run(
                    ["python3", "-c", f"import urllib.request; urllib.request.urlopen("
                                      f"'http://127.0.0.1:{GATEWAY_PORT}/healthz', timeout=2)"])
            except (docker.errors.DockerException, OSError):
                # The SDK's ssh transport can fail as it closes the exec's connection (BrokenPipeError): not an
                # answer from the gateway either way.
                return False
            return code == 0
        try:
            with urllib.request.urlopen(f"http://{ip}:{GATEWAY_PORT}/healthz", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def ensure_gateway(self) -> str:
        """Start the gateway if it is missing, stopped, not answering or running an older policy (routes, allowed
        destinations, names); its IP on the egress bridge."""
        config = self.gateway_config()
        try:
            running = json.loads((self.state_dir / "gateway.json").read_text())
        except (OSError, ValueError):
            running = None
        if running is not None and _policy(running) == _policy(config) and self.healthy():
            return str(self.gateway_ip(self.egress_network))
        try:
            attrs = self.client.api.inspect_container(self.gateway_name)
            # The running sessions' networks it was on: the new gateway joins them again under the same alias.
            rejoin = [n for n in (attrs.get("NetworkSettings") or {}).get("Networks", {}) if n != self.egress_network]
            self.client.api.remove_container(self.gateway_name, force=True)
        except docker.errors.NotFound:
            rejoin = []
        self._network(self.egress_network, internal=False)
        for sub in (layout.EGRESS_OUT, "routes"):
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)
        mounts = [docker.types.Mount("/gateway", str(self.state_dir.absolute()), type="bind")]
        if self.ca_file:
            mounts.append(docker.types.Mount("/gateway-ca.pem", str(Path(self.ca_file).absolute()), type="bind",
                                             read_only=True))
        atomic_write_json(self.state_dir / "gateway.json", config)
        if not (self.state_dir / "clients.json").exists():
            atomic_write_json(self.state_dir / "clients.json", {})
        options = hardening()
        options["cap_add"] = ["NET_BIND_SERVICE"]
        try:
            container = self.client.containers.create(
                self.image, ["python3", "-m", "nanogpt_tui.sandbox.gateway", "--config", "/gateway/gateway.json",
                             "--port", str(GATEWAY_PORT), "--proxy-port", str(PROXY_PORT)],
                name=self.gateway_name, user=GATEWAY_USER, detach=True, init=True, stdin_open=True,
                network=self.egress_network, mounts=mounts, labels={EGRESS_LABEL: self.prefix}, **options)
            sock = self.client.api.attach_socket(container.id, params={"stdin": 1, "stream": 1})
            container.start()
            raw = getattr(sock, "_sock", sock)
            # The keys, one line the gateway reads and keeps in memory only. No half-close: the gateway needs
            # none (it reads one line), and the SDK's ssh transport cannot half-close a socket.
            raw.sendall((json.dumps(self.keys) + "\n").encode())
            raw.close()
        except docker.errors.APIError as err:
            raise UserError(f"Docker host {self.backend.name} could not start the model gateway "
                            f"({_api_message(err)}); check the image {self.image}.") from None
        except OSError as err:
            raise UserError(f"Could not give the model gateway on {self.backend.name} its keys "
                            f"({type(err).__name__}: {err}); start the session again.") from None
        for name in rejoin:
            try:
                self.client.networks.get(name).connect(self.gateway_name, aliases=[GATEWAY_ALIAS])
            except docker.errors.APIError:
                pass  # that session's network is gone meanwhile
        deadline = time.monotonic() + HEALTH_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.healthy():
                return str(self.gateway_ip(self.egress_network))
            time.sleep(0.2)
        logs = self.client.api.logs(self.gateway_name, tail=20).decode("utf-8", "replace").strip()
        raise UserError(f"The model gateway on {self.backend.name} did not answer within {HEALTH_TIMEOUT_S:g} s "
                        f"({logs[-300:] or 'no output'}); check the image {self.image}.")

    # --- sessions ---------------------------------------------------------------------------------------------

    def attach(self, session_id: str) -> dict[str, Any]:
        """The session's internal network with the gateway on it: the container options a session (or probe)
        container is created with."""
        self.ensure_gateway()
        self.tell("POST", session_id, {"routes": self.routes, "keys": self.keys})
        meter = self.meter_path(session_id)
        if not meter.exists():  # there from the start: the session's tokens are metered here, not read from it
            meter.touch()
        name = self.session_network(session_id)
        network = self._network(name, internal=True)
        if not self.gateway_ip(name):
            network.connect(self.gateway_name, aliases=[GATEWAY_ALIAS])
        # Docker's embedded DNS answers the containers' names itself and forwards every other name, from the
        # session's namespace, to the servers given here: the gateway's address on the session's own network (on
        # link, so the fence leaves it reachable), where our resolver refuses it and records the refusal.
        return {"network": name, "dns": [str(self.gateway_ip(name))]}

    def meter_path(self, session_id: str) -> Path:
        """Where the gateway writes the session's metered usage and refusals (host side)."""
        return layout.gateway_meter(self.state_dir, session_id)

    def tell(self, method: str, session_id: str, body: dict[str, Any] | None) -> None:
        """One request to the gateway's control listener, from inside its container (`docker exec`); the body,
        keys included, travels on the exec's stdin, so it is in no stored config and on no command line."""
        api = self.client.api
        url = f"http://127.0.0.1:{CONTROL_PORT}/sessions/{session_id}"
        try:
            exec_id = api.exec_create(self.gateway_name, ["python3", "-c", TELL, url, method], stdin=True,
                                      stdout=True, stderr=True)["Id"]
            sock = api.exec_start(exec_id, socket=True)
            raw = getattr(sock, "_sock", sock)
            raw.settimeout(60)
            try:
                raw.sendall((json.dumps(body) if body is not None else "").encode() + b"\n")
                output = bytearray()  # until the exec ends and the daemon closes the stream
                while chunk := raw.recv(65536):
                    output += chunk
            finally:
                raw.close()
            deadline = time.monotonic() + 10
            while (state := api.exec_inspect(exec_id)).get("Running") and time.monotonic() < deadline:
                time.sleep(0.05)
        except (docker.errors.DockerException, OSError) as err:
            raise UserError(f"Could not give the model gateway on {self.backend.name} the session's routes "
                            f"({type(err).__name__}: {err}); start the session again.") from None
        if state.get("ExitCode") != 0:
            said = _demux(bytes(output)).strip()[-300:] or "no answer"
            raise UserError(f"The model gateway on {self.backend.name} refused the session's routes ({said}); "
                            "start the session again.")

    def register(self, session_id: str, container_id: str) -> None:
        """After the session's container exists: its address -> session for the gateway's records, and the
        route fence in its network namespace."""
        attrs = self.client.api.inspect_container(container_id)
        net = (attrs.get("NetworkSettings") or {}).get("Networks", {}).get(self.session_network(session_id)) or {}
        clients_path = self.state_dir / "clients.json"
        try:
            clients = json.loads(clients_path.read_text())
        except (OSError, ValueError):
            clients = {}
        if net.get("IPAddress"):
            clients[net["IPAddress"]] = session_id
        atomic_write_json(clients_path, clients)
        self.fence(container_id)

    def fence(self, container_id: str) -> dict:
        """Remove the routes through a gateway address in the container's network namespace (see fence.py)."""
        helper = self.client.containers.create(
            self.image, ["python3", "-m", "nanogpt_tui.sandbox.fence"], network_mode=f"container:{container_id}",
            cap_drop=["ALL"], cap_add=["NET_ADMIN"], user="0:0", detach=True,
            labels={EGRESS_LABEL: self.prefix})
        try:
            helper.start()
            code = int(helper.wait(timeout=60).get("StatusCode", -1))
            output = helper.logs().decode("utf-8", "replace").strip()
        finally:
            helper.remove(force=True)
        try:
            result = json.loads(output.splitlines()[-1])
        except (ValueError, IndexError):
            result = {"error": output[-300:]}
        if code != 0 or "error" in result:
            raise UserError(f"Could not fence the session's network ({result.get('error')}); the session was not "
                            "started with a way out, so remove it and start again.")
        return result

    def detach(self, session_id: str) -> None:
        """Make the gateway forget the session's routes and keys, disconnect it from the session's network and
        remove the network."""
        try:
            self.tell("DELETE", session_id, None)
        except UserError:
            pass  # no gateway running: nothing of the session's is held
        name = self.session_network(session_id)
        try:
            network = self.client.networks.get(name)
        except docker.errors.NotFound:
            return
        try:
            network.disconnect(self.gateway_name, force=True)
        except docker.errors.APIError:
            pass
        try:
            network.remove()
        except docker.errors.APIError:
            pass

    def records(self, session_id: str) -> list[dict]:
        """What the gateway recorded for the session: `usage` and `blocked` lines, oldest first."""
        path = self.meter_path(session_id)
        found = []
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            return []
        for line in lines:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                found.append(data)
        return found

    def remove_all(self) -> None:
        """The gateway and every network of this prefix (tests clean up with it)."""
        try:
            self.client.api.remove_container(self.gateway_name, force=True)
        except docker.errors.NotFound:
            pass
        for network in self.client.networks.list(filters={"label": f"{EGRESS_LABEL}={self.prefix}"}):
            try:
                network.remove()
            except docker.errors.APIError:
                pass


def _demux(stream: bytes) -> str:
    """The text of a non-tty exec's multiplexed output (8-byte frame headers before each chunk)."""
    out, pos = [], 0
    while pos + 8 <= len(stream) and stream[pos] in (0, 1, 2) and stream[pos + 1:pos + 4] == b"\0\0\0":
        size = int.from_bytes(stream[pos + 4:pos + 8], "big")
        out.append(stream[pos + 8:pos + 8 + size])
        pos += 8 + size
    return b"".join(out or [stream]).decode("utf-8", "replace")
