"""A private PostgreSQL cluster made with initdb and run with pg_ctl, listening on loopback only."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import stat
import time
from collections.abc import Iterable
from pathlib import Path

import psycopg

from nginx_kpi.localstack import procs
from nginx_kpi.localstack.procs import LOOPBACK, StackError

PORT_ENV = "NGINX_KPI_PG_PORT"
SUPERUSER = "postgres"
APP_NAME = "nginx_kpi"
SYSTEM_USER = "postgres"
PG_LIB = Path("/usr/lib/postgresql")
REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres")
CONF_NAME = "nginx_kpi.conf"
# sun_path holds 108 bytes including the NUL; PostgreSQL appends "/.s.PGSQL.<port>".
SOCKET_PATH_MAX = 107
APT_TIMEOUT = 900.0


def pick_bin_dir(candidates: Iterable[Path]) -> Path | None:
    """The candidate bin dir with every required binary and the highest version in its parent's name."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)

    usable = [c for c in candidates if all((c / b).is_file() for b in REQUIRED_BINARIES)]
    return max(usable, key=version, default=None)


def find_bin_dir() -> Path | None:
    """Newest /usr/lib/postgresql/*/bin, else the directory of pg_ctl found on PATH."""
    found = pick_bin_dir(PG_LIB.glob("*/bin"))
    if found is not None:
        return found
    pg_ctl = shutil.which("pg_ctl")
    # Debian's /usr/bin/pg_ctl is a wrapper script: resolve to the real binaries' directory.
    return pick_bin_dir([Path(pg_ctl).resolve().parent]) if pg_ctl else None


def install_postgres() -> Path:
    """Install Debian's postgresql package with apt-get; return the new bin dir."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise StackError(
            "PostgreSQL server binaries (initdb, pg_ctl) not found: "
            "install them, e.g. sudo apt-get install postgresql"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    procs.run_checked(["apt-get", "update"], what="apt-get update", timeout=APT_TIMEOUT, env=env)
    procs.run_checked(
        ["apt-get", "install", "-y", "--no-install-recommends", "postgresql"],
        what="apt-get install postgresql",
        timeout=APT_TIMEOUT,
        env=env,
    )
    found = find_bin_dir()
    if found is None:
        raise StackError(f"apt-get installed postgresql but no initdb/pg_ctl appeared under {PG_LIB}")
    return found


def socket_dir_setting(sock_dir: Path, port: int) -> str:
    """The socket dir, or '' (TCP only) when its socket path would be too long for the kernel."""
    return str(sock_dir) if len(f"{sock_dir}/.s.PGSQL.{port}") <= SOCKET_PATH_MAX else ""


def render_conf(port: int, socket_dirs: str) -> str:
    """Settings that override the initdb defaults: loopback only, our port, our socket dir."""

    def quote(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    return (
        "# Written by nginx_kpi.localstack before every start.\n"
        f"listen_addresses = {quote(LOOPBACK)}\n"
        f"port = {port}\n"
        f"unix_socket_directories = {quote(socket_dirs)}\n"
        "logging_collector = off\n"
    )


def missing_traverse_bits(path: Path) -> list[Path]:
    """Ancestors of path (not path itself) that other users cannot traverse (no o+x)."""
    return [p for p in path.resolve().parents if not os.stat(p).st_mode & stat.S_IXOTH]


def dsn(port: int, user: str = APP_NAME, dbname: str = APP_NAME) -> str:
    """A libpq URI for the local server over TCP loopback."""
    return f"postgresql://{user}@{LOOPBACK}:{port}/{dbname}"


class PostgresNode:
    """The cluster's files under <state_dir>/postgres and its postmaster."""

    def __init__(self, state_dir: Path, port: int) -> None:
        """Describe the node; nothing is touched until up()."""
        self.port = port
        self.root = state_dir / "postgres"
        self.data = self.root / "data"
        self.run_dir = self.root / "run"
        self.log = self.root / "postgres.log"
        self._bin_dir: Path | None = None

    @property
    def dsn(self) -> str:
        """The application's connection URI."""
        return dsn(self.port)

    def pid(self) -> int | None:
        """Pid of our running postmaster, or None (a stale postmaster.pid does not count)."""
        pid = procs.read_pid(self.data / "postmaster.pid")
        if pid is None or not procs.pid_alive(pid):
            return None
        # After a reboot the recorded pid may belong to an unrelated process.
        program = (procs.cmdline(pid) or [""])[0]
        return pid if "postgres" in program or "postmaster" in program else None

    def status(self) -> str:
        """'running (pid N) at host:port' or 'stopped'."""
        pid = self.pid()
        return f"running (pid {pid}) at {LOOPBACK}:{self.port}" if pid else "stopped"

    def prepare(self) -> None:
        """Unless running: find or install the binaries, check the port, initdb, write our settings."""
        if self.pid() is None:
            self._bin_dir = self._prepare_cluster()

    def start(self, deadline: float) -> None:
        """pg_ctl start unless running (prepare() must have run)."""
        if self.pid() is None:
            self._start(self._bin_dir or self._prepare_cluster(), deadline)

    def wait_ready(self, deadline: float) -> None:
        """Wait until the server takes connections, then create the app's role and database."""
        procs.wait_for(
            self._accepts_connections,
            deadline=deadline,
            what=f"PostgreSQL at {LOOPBACK}:{self.port}",
            log=self.log,
            alive=lambda: self.pid() is not None,
        )
        self._ensure_app_database()

    def up(self, deadline: float) -> None:
        """prepare(), start() and wait_ready() in one go."""
        self.prepare()
        self.start(deadline)
        self.wait_ready(deadline)

    def down(self) -> None:
        """Fast shutdown (pg_ctl stop -m fast): active sessions are cut, data is checkpointed."""
        pid = self.pid()
        if pid is None:
            return
        bin_dir = find_bin_dir()
        if bin_dir is None:
            # Binaries gone (uninstalled) but the server is alive: SIGTERM is a smart shutdown.
            procs.terminate(pid, 60.0)
            return
        cmd = self._as_owner(
            [str(bin_dir / "pg_ctl"), "stop", "-D", str(self.data), "-m", "fast", "-w", "-t", "60"]
        )
        procs.run_checked(cmd, what="pg_ctl stop", timeout=90, cwd=self.root)

    def clean(self) -> None:
        """Stop the server and delete the whole cluster."""
        self.down()
        shutil.rmtree(self.root, ignore_errors=True)

    def _prepare_cluster(self) -> Path:
        bin_dir = find_bin_dir() or install_postgres()
        procs.ensure_ports_free((self.port,), "PostgreSQL", PORT_ENV)
        self._prepare_dirs()
        self._ensure_initdb(bin_dir)
        self._write_conf()
        return bin_dir

    def _as_owner(self, cmd: list[str]) -> list[str]:
        """Run cmd as the postgres system user when we are root: initdb and postgres refuse root."""
        return ["runuser", "-u", SYSTEM_USER, "--", *cmd] if os.geteuid() == 0 else cmd

    def _prepare_dirs(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.run_dir.mkdir(exist_ok=True)
        if os.geteuid() != 0:
            return
        try:
            owner = pwd.getpwnam(SYSTEM_USER)
        except KeyError as exc:
            raise StackError(
                f"running as root needs the '{SYSTEM_USER}' system user to own the cluster "
                "(apt-get install postgresql creates it)"
            ) from exc
        for path in (self.root, self.run_dir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
        # Search-only (o+x) on the ancestors: the postgres user must reach its data dir inside
        # our state dir (e.g. under /root or pytest's 0700 tmp root); nobody gains listing rights.
        for parent in missing_traverse_bits(self.root):
            parent.chmod(stat.S_IMODE(os.stat(parent).st_mode) | stat.S_IXOTH)
        procs.run_checked(
            self._as_owner(["test", "-w", str(self.root)]),
            what=f"checking that user {SYSTEM_USER} can write {self.root}",
            timeout=30,
        )

    def _ensure_initdb(self, bin_dir: Path) -> None:
        """Create the cluster once; a half-made data dir (no PG_VERSION) is removed first."""
        if (self.data / "PG_VERSION").is_file():
            return
        shutil.rmtree(self.data, ignore_errors=True)
        # trust auth is acceptable: the server listens on 127.0.0.1 only and holds dev data.
        cmd = [
            str(bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
        ]
        procs.run_checked(self._as_owner(cmd), what="initdb", timeout=300, cwd=self.root)
        with (self.data / "postgresql.conf").open("a") as fh:
            fh.write(f"\ninclude = '{CONF_NAME}'\n")

    def _write_conf(self) -> None:
        conf = self.data / CONF_NAME
        conf.write_text(render_conf(self.port, socket_dir_setting(self.run_dir, self.port)))
        if os.geteuid() == 0:
            owner = pwd.getpwnam(SYSTEM_USER)
            os.chown(conf, owner.pw_uid, owner.pw_gid)

    def _start(self, bin_dir: Path, deadline: float) -> None:
        """pg_ctl start -w: returns when the server accepts connections, fails fast if it dies."""
        self._remove_stale_locks()
        wait = max(1, int(deadline - time.monotonic()))
        pg_ctl = str(bin_dir / "pg_ctl")
        cmd = [pg_ctl, "start", "-D", str(self.data), "-l", str(self.log), "-w", "-t", str(wait), "-s"]
        try:
            procs.run_checked(self._as_owner(cmd), what="pg_ctl start", timeout=wait + 30, cwd=self.root)
        except StackError as exc:
            raise StackError(
                f"PostgreSQL failed to start or was not ready within {wait}s ({exc}); "
                f"log {self.log}: {procs.tail(self.log)}"
            ) from exc

    def _remove_stale_locks(self) -> None:
        """Delete lock files left by a dead postmaster (crash, kill -9, reboot).

        Only called when pid() found no server of ours and the port is free, so they are stale.
        PostgreSQL would clear them itself, but not while the old pid is an unreaped zombie or reused.
        """
        for lock in [self.data / "postmaster.pid", *self.run_dir.glob(".s.PGSQL.*.lock")]:
            lock.unlink(missing_ok=True)

    def _accepts_connections(self) -> bool:
        try:
            with psycopg.connect(
                host=LOOPBACK, port=self.port, user=SUPERUSER, dbname="postgres", connect_timeout=2
            ):
                return True
        except psycopg.OperationalError:
            return False

    def _ensure_app_database(self) -> None:
        """Create the nginx_kpi role (LOGIN, CREATEDB) and its database unless they exist."""
        with psycopg.connect(
            host=LOOPBACK,
            port=self.port,
            user=SUPERUSER,
            dbname="postgres",
            autocommit=True,
            connect_timeout=5,
        ) as conn:
            if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (APP_NAME,)).fetchone() is None:
                conn.execute("CREATE ROLE nginx_kpi")
            # CREATEDB: the test suite gives every test a throw-away database of its own.
            conn.execute("ALTER ROLE nginx_kpi LOGIN CREATEDB")
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (APP_NAME,)).fetchone() is None:
                conn.execute("CREATE DATABASE nginx_kpi OWNER nginx_kpi")
