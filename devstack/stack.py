"""The embedded stack's servers: a Temporal dev server and a SeaweedFS S3 server, as child processes.

Used by `docflow up`, the demo and the test fixtures, so all three start the same real servers.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from docflow.config import Settings
from docflow.temporal import SEARCH_ATTRIBUTES


class StackError(RuntimeError):
    """A server of the stack failed to start."""


def venv_binary(name: str) -> str:
    """A console script installed beside this interpreter (temporal, weed), else on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise StackError(f"'{name}' not found: install the project (pip install -e .)")
    return found


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Block until something accepts connections on host:port."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise StackError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise StackError(f"nothing listening on {host}:{port} after {timeout}s")


@dataclass
class Server:
    """A child process and its log file."""

    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def stop(self, timeout: float = 10) -> None:
        """Stop gracefully, then kill."""
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)


def _wait_listening(server: Server, host: str, port: int, timeout: float) -> None:
    try:
        wait_for_port(host, port, timeout, server.proc)
    except StackError as exc:
        server.stop()
        tail = server.log_path.read_text(errors="replace")[-2000:] if server.log_path.exists() else ""
        raise StackError(f"{server.name}: {exc}; last log lines:\n{tail}") from exc


def start_servers(settings: Settings) -> list[Server]:
    """Start Temporal and S3; if the second fails, stop the first."""
    temporal = start_temporal(settings)
    try:
        return [temporal, start_s3(settings)]
    except BaseException:
        temporal.stop()
        raise


def _spawn(name: str, args: list[str], log_path: Path) -> Server:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = log_path.open("ab")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    return Server(name, proc, log_path)


def start_temporal(settings: Settings) -> Server:
    """Start `temporal server start-dev` on the settings' ports with our search attributes."""
    host, port = settings.temporal_address.rsplit(":", 1)
    data = settings.data_dir / "temporal"
    data.mkdir(parents=True, exist_ok=True)
    args = [
        venv_binary("temporal"), "server", "start-dev",
        "--db-filename", str(data / "temporal.db"),
        "--ip", host, "--port", port, "--ui-port", str(settings.temporal_ui_port),
        "--namespace", settings.temporal_namespace, "--log-level", "warn",
    ]  # fmt: skip
    for name, kind in SEARCH_ATTRIBUTES.items():
        args += ["--search-attribute", f"{name}={kind}"]
    server = _spawn("temporal", args, settings.data_dir / "logs" / "temporal.log")
    _wait_listening(server, host, int(port), 30)
    _set_retention(settings)
    return server


def _set_retention(settings: Settings) -> None:
    """The dev server keeps closed runs 24 h by default; the embedded stack keeps them longer."""
    subprocess.run(
        [
            venv_binary("temporal"),
            "operator",
            "namespace",
            "update",
            "--address",
            settings.temporal_address,
            "-n",
            settings.temporal_namespace,
            "--retention",
            settings.temporal_retention,
        ],  # fmt: skip
        check=False,
        capture_output=True,
        timeout=30,
    )


def start_s3(settings: Settings) -> Server:
    """Start SeaweedFS (`weed mini`) with an S3 endpoint on loopback and our credentials."""
    data = settings.data_dir / "s3"
    data.mkdir(parents=True, exist_ok=True)
    identities = settings.data_dir / "s3-identities.json"
    identities.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "docflow",
                        "credentials": [{"accessKey": settings.s3_access_key, "secretKey": settings.s3_secret_key}],
                        "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                    }
                ]
            }
        )
    )
    identities.chmod(0o600)
    s3_port = int(settings.s3_endpoint.rsplit(":", 1)[1].split("/")[0])
    args = [
        venv_binary("weed"), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={settings.s3_master_port}", f"-volume.port={settings.s3_volume_port}",
        f"-filer.port={settings.s3_filer_port}", f"-s3.port={s3_port}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", "-webdav=false", "-admin.ui=false",
        f"-admin.port={settings.s3_admin_port}", f"-s3.config={identities}",
    ]  # fmt: skip
    server = _spawn("s3", args, settings.data_dir / "logs" / "s3.log")
    _wait_listening(server, "127.0.0.1", s3_port, 60)
    return server


@dataclass
class Ports:
    """Ports of a stack started on free ports (tests, benchmarks)."""

    temporal: int = field(default_factory=free_port)
    temporal_ui: int = field(default_factory=free_port)
    api: int = field(default_factory=free_port)
    s3: int = 0
    s3_master: int = 0
    s3_volume: int = 0
    s3_filer: int = 0
    s3_admin: int = 0

    def __post_init__(self) -> None:
        # SeaweedFS also listens on each HTTP port + 10000 for gRPC: pick ports that leave room.
        picked: set[int] = set()
        for name in ("s3", "s3_master", "s3_volume", "s3_filer", "s3_admin"):
            port = _free_port_with_grpc_room(picked)
            picked |= {port, port + 10000}
            setattr(self, name, port)

    def settings_overrides(self) -> dict[str, object]:
        """Settings fields that point at these ports."""
        return {
            "temporal_address": f"127.0.0.1:{self.temporal}",
            "temporal_ui_port": self.temporal_ui,
            "api_port": self.api,
            "s3_endpoint": f"http://127.0.0.1:{self.s3}",
            "s3_master_port": self.s3_master,
            "s3_volume_port": self.s3_volume,
            "s3_filer_port": self.s3_filer,
            "s3_admin_port": self.s3_admin,
        }


def _free_port_with_grpc_room(taken: set[int]) -> int:
    for _ in range(200):
        port = free_port()
        if port + 10000 > 65535 or port in taken or port + 10000 in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port
    raise StackError("no free port pair found")
