"""`lianhu serve` as a real process: it comes up, says how to use it, and files a petition."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx2
import orjson

ROOT = Path(__file__).resolve().parents[2]
STARTUP_DEADLINE_SECONDS = 30.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_healthy(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_SECONDS
    while time.monotonic() < deadline:
        assert server.poll() is None, f"lianhu serve exited early:\n{log.read_text()}"
        try:
            if httpx2.get(f"{base}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.05)
    raise AssertionError(
        f"lianhu serve not healthy in {STARTUP_DEADLINE_SECONDS}s:\n{log.read_text()}"
    )


def printed_curl_body(banner: str) -> bytes:
    """The JSON body of the curl command the banner tells people to paste."""
    line = next(line for line in banner.splitlines() if line.strip().startswith("curl "))
    words = shlex.split(line)
    return words[words.index("-d") + 1].encode()


def test_lianhu_serve_starts_and_files_the_petition_it_suggests(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LIANHU_")},
        "LIANHU_DATA_DIR": str(tmp_path / "var"),
        "PYTHONPATH": str(ROOT),
    }
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        server = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=stdout,
            stderr=stderr,
        )
        try:
            wait_until_healthy(base, server, err)
            banner = out.read_text(encoding="utf-8")

            filed = httpx2.post(
                f"{base}/v1/cases",
                content=printed_curl_body(banner),
                headers={"Content-Type": "application/json", "Idempotency-Key": "smoke-1"},
            )
        finally:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()

    assert filed.status_code == 201, filed.text
    assert filed.headers["ETag"] == '"2"'
    assert orjson.loads(filed.content)["status"] == "routed"
    assert f"listening on {base}" in banner
    assert f"SQLite {(tmp_path / 'var' / 'lianhu.db').resolve()}" in banner
    assert "rule set: default sha256:" in banner
    assert (tmp_path / "var" / "lianhu.db").exists()
