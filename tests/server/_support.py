"""Helpers of the server tests: paths of the test photos, a multipart encoder, and a real server process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

DATA = Path(__file__).resolve().parents[1] / "data"
GALLERY = DATA / "gallery"
QUERIES = DATA / "queries"
PEOPLE = sorted(p.name for p in GALLERY.iterdir() if p.is_dir())
BASE_URL = "http://127.0.0.1"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
_START_TIMEOUT_S = 60.0


def person_of(uri: str) -> str:
    """The person a gallery photo shows (its folder name)."""
    return Path(uri).parent.name


def query_photo(person: str) -> Path:
    """The bundled query photo of ``person`` (not in the gallery)."""
    return QUERIES / f"{person}_0010.jpg"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ---------------------------------------------------------------------------------------------- live server


@dataclass(frozen=True)
class LiveServer:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    token: str | None = None

    def request(
        self,
        path: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        method: str | None = None,
        auth: bool = True,
        timeout: float = 30.0,
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request with the standard library (no proxies); returns (status, headers, body)."""
        hdrs = dict(headers or {})
        if auth and self.token:
            hdrs["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url + path, data=data, headers=hdrs, method=method)
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(req, timeout=timeout) as resp:
                return resp.status, dict(resp.headers), resp.read()
        except urllib.error.HTTPError as err:
            return err.code, dict(err.headers), err.read()


def multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body and its content type."""
    boundary = "----lookalike-test-boundary"
    parts: list[bytes] = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, content) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        parts.append(head + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def start_server(
    dataset: Path, log: Path, *, token: str | None = None, allow_sources: list[str] | None = None
) -> LiveServer:
    """``python -m lookalike.cli serve`` on a free port of 127.0.0.1; waits until it answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("LOOKALIKE_TOKEN", "http_proxy", "HTTP_PROXY")}
    if token:
        env["LOOKALIKE_TOKEN"] = token  # the server takes it from the environment, as documented
    cmd = [sys.executable, "-m", "lookalike.cli", "serve", "--dataset", str(dataset), "--port", str(port)]
    for root in allow_sources or []:
        cmd += ["--allow-source", root]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    server = LiveServer(f"http://127.0.0.1:{port}", proc, log, token)
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"lookalike serve exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            status, _, _ = server.request("/healthz", timeout=1.0)
            if status == 200:
                return server
        except OSError:
            pass
        time.sleep(0.1)
    stop_server(server)
    pytest.fail(f"lookalike serve did not answer within {_START_TIMEOUT_S:.0f} s")


def stop_server(server: LiveServer) -> None:
    if server.proc.poll() is None:
        server.proc.terminate()
        try:
            server.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait()
