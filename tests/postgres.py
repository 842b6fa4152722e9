"""A throwaway PostgreSQL server on loopback, for the distributed tests and the benchmark.

:func:`postgres_server` runs ``initdb`` in a temporary folder, starts ``postgres`` on
127.0.0.1 and a free port (its unix socket stays in the same folder), yields an SQLAlchemy URL
and, at the end, stops the server with ``pg_ctl stop -m immediate`` and deletes the folder. The
server binaries are looked up on ``PATH``, then in ``/usr/lib/postgresql/<version>/bin``
(Debian / Ubuntu). ``initdb`` refuses to run as root, so as root the server runs as the
``postgres`` system user (``runuser``). The benchmark imports this file by path, so it uses only
the standard library.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import glob
import os
from pathlib import Path
import shutil
import socket
import subprocess
import tempfile


INSTALL_HINT = (
    "PostgreSQL server binaries (initdb, pg_ctl) were not found on PATH or in "
    "/usr/lib/postgresql/*/bin. Install them, e.g. `apt-get install -y postgresql` on "
    "Debian / Ubuntu, and `pip install psycopg2-binary` (or `pip install -e .[postgres]`)."
)


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL server can be started on this machine (binaries or user missing)."""


def find_bin_dir() -> Path:
    """The folder holding ``initdb`` and ``pg_ctl``; :class:`PostgresUnavailable` if none."""
    initdb = shutil.which("initdb")
    if initdb is not None and shutil.which("pg_ctl") is not None:
        return Path(initdb).resolve().parent
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    for candidate in candidates:
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    raise PostgresUnavailable(INSTALL_HINT)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_as(user: str | None, args: list[str]) -> subprocess.CompletedProcess[str]:
    command = args if user is None else ["runuser", "-u", user, "--", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


@contextlib.contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[str]:
    """Start a PostgreSQL server for the duration of the ``with`` block and yield its URL.

    Args:
        durable:
            If :obj:`False` (tests), ``fsync``, ``synchronous_commit`` and
            ``full_page_writes`` are off, which is faster and loses nothing unless the machine
            crashes. If :obj:`True` (the throughput benchmark), the server keeps PostgreSQL's
            defaults, as a real deployment would.

    Yields:
        ``postgresql+psycopg2://postgres@127.0.0.1:<port>/postgres`` (trust authentication on
        loopback only).
    """
    bin_dir = find_bin_dir()
    user: str | None = None
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            raise PostgresUnavailable(
                "Running as root, and `runuser` is missing to drop to a user."
            )
        user = "postgres"
        try:
            import pwd

            entry = pwd.getpwnam(user)
        except KeyError:
            raise PostgresUnavailable(
                "Running as root and there is no `postgres` user to run the server as "
                "(initdb refuses root); create one, e.g. `useradd -r postgres`."
            ) from None

    root = Path(tempfile.mkdtemp(prefix="kmtpe-pg-"))
    data, sockets, log = root / "data", root / "sock", root / "server.log"
    sockets.mkdir()
    if user is not None:
        for path in (root, sockets):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    started = False
    try:
        init = _run_as(
            user,
            [
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed:\n{init.stdout}\n{init.stderr}")
        options = f"-h 127.0.0.1 -k {sockets} -c max_connections=200"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        for _ in range(3):  # The free port can be taken between the probe and the start.
            port = _free_port()
            start = _run_as(
                user,
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    f"{options} -p {port}",
                    "-l",
                    str(log),
                    "-w",
                    "-t",
                    "60",
                    "start",
                ],
            )
            if start.returncode == 0:
                started = True
                break
        if not started:
            text = log.read_text() if log.exists() else ""
            raise PostgresUnavailable(f"postgres did not start:\n{start.stderr}\n{text}")
        yield f"postgresql+psycopg2://postgres@127.0.0.1:{port}/postgres"
    finally:
        if started:
            _run_as(user, [str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"])
        shutil.rmtree(root, ignore_errors=True)
