"""Egress on real Docker: a container on a session's internal network reaches the model API through the gateway
(which injects the real key, streams the answer and meters its tokens) and nothing else: a forbidden stand-in on
another port of the host, and one in a network namespace the test made, are unreachable by TCP at once, an outside
name does not resolve, and each refused request is recorded for the session.

Traffic goes only to the bridges and the namespace this test makes."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import shutil
import ssl
import subprocess
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import docker
import pytest

from nanogpt_tui.backends.docker_backend import DockerBackend, hardening
from nanogpt_tui.backends.egress import Egress
from nanogpt_tui.config import load_config
from nanogpt_tui.sandbox.names import PLACEHOLDER_KEY
from nanogpt_tui.sessions.manager import SessionManager
from tests.integration.test_docker_backend import _daemon_problem, _daemon_url

pytestmark = [pytest.mark.docker, pytest.mark.sandbox, pytest.mark.timeout(600)]
RUN = uuid.uuid4().hex[:6]
REAL_KEY = "sk-ant-api03-" + "real-key-held-by-the-gateway-only"
NETNS = f"ngt-sbx-{RUN}"
NETNS_IP = "10.213.7.2"

SSE_EVENTS = [
    {"type": "message_start", "message": {"id": "msg_1", "model": "claude-opus-4-6", "role": "assistant",
                                          "content": [], "usage": {"input_tokens": 321, "output_tokens": 1}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hello from the API"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 42}},
    {"type": "message_stop"},
]

PROBE = r'''
import json, os, socket, time, urllib.request, urllib.error
out = {"key": os.environ.get("ANTHROPIC_API_KEY")}
req = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + "/v1/messages", method="POST",
    data=json.dumps({"model": "claude-opus-4-6", "stream": True, "max_tokens": 64,
                     "messages": [{"role": "user", "content": "hi"}]}).encode(),
    headers={"x-api-key": os.environ["ANTHROPIC_API_KEY"], "content-type": "application/json",
             "anthropic-version": "2023-06-01"})
with urllib.request.urlopen(req, timeout=30) as r:
    out["status"], out["body"] = r.status, r.read().decode()
try:
    urllib.request.urlopen("http://model-gateway:8080/elsewhere", timeout=10)
except urllib.error.HTTPError as e:
    out["elsewhere"] = e.code
for name, addr in (("forbidden", (os.environ["FORBIDDEN_IP"], int(os.environ["FORBIDDEN_PORT"]))),
                   ("netns", (os.environ["NETNS_IP"], 8080))):
    t = time.monotonic()
    try:
        socket.create_connection(addr, timeout=10).close(); out[name] = "connected"
    except OSError as e:
        out[name] = f"{type(e).__name__}: {e}"
    out[name + "_s"] = round(time.monotonic() - t, 3)
try:
    socket.getaddrinfo("forbidden.example", 443); out["dns"] = "resolved"
except OSError as e:
    out["dns"] = f"{type(e).__name__}: {e}"
# The CONNECT proxy: a tunnel to the allowed destination (TLS end to end), a refusal for any other.
import ssl
def connect_via_proxy(target):
    proxy = os.environ["HTTPS_PROXY"].removeprefix("http://").split(":")
    sock = socket.create_connection((proxy[0], int(proxy[1])), timeout=10)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(1024)
        if not chunk:
            break
        head += chunk
    return sock, head.split(b"\r\n", 1)[0].decode()
sock, out["tunnel"] = connect_via_proxy(os.environ["ALLOWED"])
context = ssl.create_default_context(cadata=os.environ["API_CA"])
with context.wrap_socket(sock, server_hostname=os.environ["ALLOWED"].split(":")[0]) as tls:
    tls.sendall(b"GET /through-the-tunnel HTTP/1.1\r\nHost: api\r\nConnection: close\r\n\r\n")
    out["tunnelled"] = tls.recv(4096).decode().split("\r\n", 1)[0]
sock, out["tunnel_refused"] = connect_via_proxy(os.environ["FORBIDDEN_IP"] + ":" + os.environ["FORBIDDEN_PORT"])
sock.close()
print(json.dumps(out))
'''


def make_cert(tmp: Path, ip: str) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "stand-in model API")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp / "api.pem", tmp / "api.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class StandInAPI:
    """A TLS server on the egress bridge speaking Anthropic's streaming Messages API; it checks the key."""

    def __init__(self, host: str, cert: Path, key: Path) -> None:
        self.seen: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                outer.seen.append({"path": self.path, "key": self.headers.get("x-api-key"), "body": body.decode()})
                if self.headers.get("x-api-key") != REAL_KEY:
                    self.send_response(401)
                    self.send_header("content-length", "0")
                    self.end_headers()
                    return
                payload = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in SSE_EVENTS)
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self):  # noqa: N802 - what the CONNECT proxy's tunnel reaches
                outer.seen.append({"path": self.path, "key": self.headers.get("x-api-key"), "body": ""})
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                return

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def image():
    problem = _daemon_problem()
    if problem:
        pytest.skip(problem)
    from nanogpt_tui.backends.testimage import build_test_image

    backend = DockerBackend(_daemon_url(), None, "local")
    ref = build_test_image(backend, progress=lambda line: print(f"[test image] {line}", flush=True),
                           prune=False).ref
    backend.close()
    return ref


@pytest.fixture
def netns_server():
    """An HTTP server in a network namespace this test makes, reachable from the host over a veth pair."""
    ip = shutil.which("ip")
    assert ip, "iproute2 is provisioned by tests/provision/10-docker.sh"
    host_if, ns_if = f"ngtsb{RUN}a", f"ngtsb{RUN}b"
    cmds = [[ip, "netns", "add", NETNS], [ip, "link", "add", host_if, "type", "veth", "peer", "name", ns_if],
            [ip, "link", "set", ns_if, "netns", NETNS], [ip, "addr", "add", "10.213.7.1/30", "dev", host_if],
            [ip, "link", "set", host_if, "up"],
            [ip, "netns", "exec", NETNS, ip, "addr", "add", f"{NETNS_IP}/30", "dev", ns_if],
            [ip, "netns", "exec", NETNS, ip, "link", "set", ns_if, "up"],
            [ip, "netns", "exec", NETNS, ip, "link", "set", "lo", "up"]]
    for cmd in cmds:
        subprocess.run(cmd, check=True, capture_output=True)
    server = subprocess.Popen([ip, "netns", "exec", NETNS, "python3", "-m", "http.server", "8080", "--bind",
                               NETNS_IP], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield NETNS_IP
    finally:
        server.kill()
        server.wait()
        subprocess.run([ip, "link", "del", host_if], capture_output=True)
        subprocess.run([ip, "netns", "del", NETNS], capture_output=True)


def test_the_model_api_through_the_gateway_and_nothing_else(image, tmp_path, netns_server):
    backend = DockerBackend(_daemon_url(), None, "local")
    client = docker.DockerClient(base_url=_daemon_url())
    egress = Egress(backend, image=image, state_dir=tmp_path / "egress", prefix=f"ngt-sandbox-{RUN}")
    api = forbidden = None
    container = None
    try:
        # The stand-ins listen on the host side of the egress bridge this test's prefix owns.
        bridge = egress._network(egress.egress_network, internal=False)
        host_ip = bridge.attrs["IPAM"]["Config"][0]["Gateway"]
        cert, key = make_cert(tmp_path, host_ip)
        api = StandInAPI(host_ip, cert, key)
        forbidden = StandInAPI(host_ip, cert, key)
        # The session's environment, routes and keys as a launch makes them (its endpoint: the stand-in API).
        config = tmp_path / "nanogpt-tui.toml"
        config.write_text(f'schema_version = 1\n[paths]\nsessions_dir = "sessions"\n'
                          f'[sandbox]\nallow = ["{host_ip}:{api.port}"]\n')
        session_env = {"ANTHROPIC_API_KEY": REAL_KEY, "ANTHROPIC_BASE_URL": f"https://{host_ip}:{api.port}"}
        spec = SessionManager(load_config(config))._egress_spec("claude", "local", session_env)
        assert REAL_KEY not in json.dumps(session_env)
        egress.routes, egress.keys, egress.allow = spec.routes, spec.keys, spec.allow
        egress.ca_file = cert
        t0 = time.monotonic()
        egress.ensure_gateway()
        print(f"gateway up in {time.monotonic() - t0:.2f} s")
        assert egress.ensure_gateway() and egress.healthy()  # a second call finds it healthy and keeps it

        session_id = f"ngt-sandbox-{RUN}-s1"
        options = egress.attach(session_id)
        env = {**session_env, "FORBIDDEN_IP": host_ip, "FORBIDDEN_PORT": str(forbidden.port),
               "NETNS_IP": netns_server, "ALLOWED": f"{host_ip}:{api.port}", "API_CA": cert.read_text()}
        container = client.containers.create(image, ["sleep", "300"], environment=env, detach=True, init=True,
                                             user="1000:1000", **options, **hardening())
        container.start()
        egress.register(session_id, container.id)
        attrs = client.api.inspect_container(container.id)
        assert REAL_KEY not in json.dumps(attrs) and PLACEHOLDER_KEY in json.dumps(attrs)
        assert REAL_KEY not in json.dumps(client.api.inspect_container(egress.gateway_name))

        code, output = container.exec_run(["python3", "-c", PROBE])
        assert code == 0, output
        out = json.loads(output.decode().strip().splitlines()[-1])
        # The API answered through the gateway, which swapped the placeholder for the real key.
        assert out["key"] == PLACEHOLDER_KEY and out["status"] == 200 and "hello from the API" in out["body"]
        assert api.seen[0]["key"] == REAL_KEY and api.seen[0]["path"] == "/v1/messages"
        assert out["elsewhere"] == 403
        # Everything else: no route, at once; no name resolves.
        assert "Network is unreachable" in out["forbidden"] and out["forbidden_s"] < 1.0, out
        assert "Network is unreachable" in out["netns"] and out["netns_s"] < 1.0, out
        assert forbidden.seen == []
        assert out["dns"].startswith("gaierror"), out
        # The allowed destination through the proxy's tunnel; the forbidden one refused by it.
        assert out["tunnel"] == "HTTP/1.1 200 Connection established" and out["tunnelled"] == "HTTP/1.1 200 OK", out
        assert api.seen[-1]["path"] == "/through-the-tunnel" and api.seen[-1]["key"] is None
        assert out["tunnel_refused"].startswith("HTTP/1.1 403"), out
        # The gateway metered exactly what the API sent, and recorded what it refused.
        records = egress.records(session_id)
        usage = [r for r in records if r["type"] == "usage"]
        assert [(u["input_tokens"], u["output_tokens"], u["model"]) for u in usage] == [(321, 42, "claude-opus-4-6")]
        blocked = [r for r in records if r["type"] == "blocked"]
        assert any(b["via"] == "gateway" and "/elsewhere" in b["destination"] for b in blocked)
        assert any(b["via"] == "dns" and b["destination"] == "forbidden.example" for b in blocked), blocked
        assert any(b["via"] == "proxy" and b["destination"] == f"{host_ip}:{forbidden.port}" for b in blocked), blocked
        assert not any(b["destination"] == f"{host_ip}:{api.port}" for b in blocked)
    finally:
        if container is not None:
            container.remove(force=True)
        egress.remove_all()
        for server in (api, forbidden):
            if server is not None:
                server.close()
        backend.close()


def test_sandbox_check_holds_and_names_each_leak(image, tmp_path, netns_server, monkeypatch, capsys):
    """`nanogpt-tui sandbox check` (its probe container made by the code that makes session containers) is ok on
    this set-up, and not ok, naming the leak, when the test weakens the policy on purpose: a forbidden name added to
    the resolver; the probe attached to an ordinary bridge (the egress bridge this test's prefix made)."""
    from nanogpt_tui.cli import main

    def write_config(allow: str) -> Path:
        path = tmp_path / "nanogpt-tui.toml"
        path.write_text(f'schema_version = 1\n[paths]\nsessions_dir = "sessions"\n[docker]\nimage = "{image}"\n'
                        f'[sandbox]\nallow = [{allow}]\n[[hosts]]\nname = "local"\nurl = "{_daemon_url()}"\n')
        return path

    manager = SessionManager(load_config(write_config("")))
    backend = DockerBackend(_daemon_url(), None, "local")
    egress = Egress(backend, image=image, state_dir=manager.egress_dir("local"), prefix=manager.egress_prefix)
    api = forbidden = None
    try:
        bridge = egress._network(egress.egress_network, internal=False)
        host_ip = bridge.attrs["IPAM"]["Config"][0]["Gateway"]
        cert, key = make_cert(tmp_path, host_ip)
        api, forbidden = StandInAPI(host_ip, cert, key), StandInAPI(host_ip, cert, key)
        allowed = f"{host_ip}:{api.port}"
        monkeypatch.setenv("NANOGPT_TUI_CONFIG", str(write_config(f'"{allowed}"')))
        for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "CODEX_API_KEY"):
            monkeypatch.delenv(name, raising=False)
        probes = [f"{host_ip}:{forbidden.port}", f"{netns_server}:8080", "forbidden.test:443"]
        argv = ["sandbox", "check", "--host", "local", *(f"--probe={p}" for p in probes)]

        def check(*extra: str) -> tuple[int, str]:
            capsys.readouterr()
            t0 = time.monotonic()
            code = main([*argv, *extra])
            print(f"sandbox check: {time.monotonic() - t0:.1f} s", file=__import__("sys").stderr)
            return code, capsys.readouterr().out

        code, text = check("--json")
        result = json.loads(text)
        assert code == 0 and result["ok"], text
        assert [(a["endpoint"], a["reachable"]) for a in result["allowed"]] == [(allowed, True)]
        assert [(b["probe"], b["blocked"]) for b in result["blocked"]] == [(p, True) for p in probes]
        assert {c["check"] for c in result["hosts"][0]["checks"]} >= {"network", "gateway", "dns", "fence"}
        assert forbidden.seen == []
        # The probe's refusals are recorded like a session's (the proxy's, the resolver's).
        records = [json.loads(line) for p in (manager.egress_dir("local") / "out").glob("probe-*.jsonl")
                   for line in p.read_text().splitlines()]
        assert {("proxy", f"{host_ip}:{forbidden.port}"), ("dns", "forbidden.test")} <= \
            {(r["via"], r["destination"]) for r in records if r["type"] == "blocked"}

        # Weakened on purpose: the resolver answers a forbidden name.
        original_config = Egress.gateway_config
        monkeypatch.setattr(Egress, "gateway_config", lambda self: {
            **original_config(self), "dns_names": {"forbidden.test": [netns_server]}})
        code, text = check()
        assert code == 1, text
        assert "FAIL  dns      DNS answers what it must refuse: DNS resolved forbidden.test to 10.213.7.2" in text, text
        assert "FAIL  probe    forbidden.test:443 NOT blocked" in text and "the sandbox does NOT hold" in text
        monkeypatch.setattr(Egress, "gateway_config", original_config)

        # Weakened on purpose: the probe also on an ordinary bridge, after the fence.
        original_register = Egress.register

        def register_then_bridge(self, session_id, container_id):
            original_register(self, session_id, container_id)
            self.client.networks.get(self.egress_network).connect(container_id)

        monkeypatch.setattr(Egress, "register", register_then_bridge)
        code, text = check("--json")
        result = json.loads(text)
        assert code == 1 and not result["ok"]
        checks = {c["check"]: c for c in result["hosts"][0]["checks"]}
        assert not checks["network"]["ok"] and egress.egress_network in checks["network"]["detail"], checks
        leak = {b["probe"]: b for b in result["blocked"]}[f"{host_ip}:{forbidden.port}"]
        assert not leak["blocked"] and "TCP connection" in leak["error"], leak
    finally:
        egress.remove_all()
        for server in (api, forbidden):
            if server is not None:
                server.close()
        backend.close()
        manager.close()
