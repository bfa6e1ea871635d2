"""LocalStack: the Docker-free Kafka + PostgreSQL pair that the tests and the demo run against."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import psycopg

from nginx_kpi.localstack import kafka, postgres, procs
from nginx_kpi.localstack.procs import StackError

STATE_ENV = "NGINX_KPI_STACK_DIR"
DEFAULT_KAFKA_PORT = 19092
DEFAULT_PG_PORT = 15432
MAX_PORT = 65535


def env_port(name: str, default: int) -> int:
    """A TCP port from environment variable name, else default."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or not 0 < int(raw) < MAX_PORT:
        raise StackError(f"{name}={raw!r} is not a TCP port number (1-{MAX_PORT - 1})")
    return int(raw)


def default_state_dir() -> Path:
    """$NGINX_KPI_STACK_DIR, else .stack in the repository root, else .stack in the cwd."""
    env = os.environ.get(STATE_ENV, "").strip()
    if env:
        return Path(env)
    root = procs.find_repo_root(kafka.DEPLOY_SUBDIR / "pom.xml")
    return (root or Path.cwd()) / ".stack"


@contextmanager
def _user_errors(action: str) -> Iterator[None]:
    """Turn low-level failures into one-line StackErrors, so no traceback reaches the user."""
    try:
        yield
    except StackError:
        raise
    except (OSError, subprocess.SubprocessError, psycopg.Error) as exc:
        raise StackError(f"{action} failed: {type(exc).__name__}: {exc}".replace("\n", " ")) from exc


class LocalStack:
    """A single-node KRaft Kafka broker and a private PostgreSQL cluster kept under one state dir."""

    def __init__(
        self, state_dir: Path | None = None, kafka_port: int | None = None, postgres_port: int | None = None
    ) -> None:
        """Arguments left as None come from the environment (see module constants) or defaults."""
        self.state_dir = (state_dir or default_state_dir()).resolve()
        kport = kafka_port if kafka_port is not None else env_port(kafka.PORT_ENV, DEFAULT_KAFKA_PORT)
        pport = postgres_port if postgres_port is not None else env_port(postgres.PORT_ENV, DEFAULT_PG_PORT)
        deploy_root = procs.find_repo_root(kafka.DEPLOY_SUBDIR / "pom.xml")
        deploy_dir = deploy_root / kafka.DEPLOY_SUBDIR if deploy_root else None
        self.kafka = kafka.KafkaNode(self.state_dir, kport, deploy_dir)
        self.postgres = postgres.PostgresNode(self.state_dir, pport)

    @property
    def kafka_bootstrap(self) -> str:
        """bootstrap.servers for Kafka clients, e.g. 127.0.0.1:19092."""
        return self.kafka.bootstrap

    @property
    def postgres_dsn(self) -> str:
        """libpq URI of the application database, e.g. postgresql://nginx_kpi@127.0.0.1:15432/nginx_kpi."""
        return self.postgres.dsn

    def up(self, timeout: float = 120.0) -> None:
        """Install what is missing, start what is stopped, and wait until both answer.

        timeout bounds the start-and-wait phase; one-off installs (mvn fetch, apt-get) have their own limits.
        """
        with _user_errors("starting the local stack"), self._lock():
            self.kafka.prepare()
            self.postgres.prepare()
            deadline = time.monotonic() + timeout
            # Kafka's JVM boots while pg_ctl waits for PostgreSQL: the two start in parallel.
            self.kafka.start()
            self.postgres.start(deadline)
            self.postgres.wait_ready(deadline)
            self.kafka.wait_ready(deadline)

    def status(self) -> dict[str, str]:
        """One line per service: 'running (pid N) at host:port' or 'stopped'."""
        with _user_errors("reading the local stack's status"):
            return {"kafka": self.kafka.status(), "postgres": self.postgres.status()}

    def down(self) -> None:
        """Stop both services gracefully; stopped services are left alone."""
        with _user_errors("stopping the local stack"), self._lock():
            self._down()

    def clean(self) -> None:
        """Stop both services and delete their data and logs (the downloaded Kafka jars stay)."""
        with _user_errors("cleaning the local stack"), self._lock():
            self._down()
            self.kafka.clean()
            self.postgres.clean()

    def _down(self) -> None:
        # Stop both even if the first fails, then report the first failure.
        errors: list[StackError] = []
        for stop in (self.kafka.down, self.postgres.down):
            try:
                stop()
            except StackError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]

    def _lock(self) -> AbstractContextManager[None]:
        return procs.locked(self.state_dir / ".lock")
