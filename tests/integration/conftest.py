"""Integration fixtures: the real local Kafka broker and PostgreSQL, a fresh topic and database per test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from nginx_kpi.generate import LogSpec, write_log
from nginx_kpi.localstack import LocalStack


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test in this folder needs the servers."""
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.integration)


@dataclass(frozen=True)
class Pipeline:
    """Where one test's pipeline lives: its own topic, consumer group and database."""

    brokers: str
    topic: str
    group: str
    dsn: str

    def env(self) -> dict[str, str]:
        """Environment for `nginx-kpi` subprocesses pointing at this pipeline."""
        return {
            **os.environ,
            "NGINX_KPI_BROKERS": self.brokers,
            "NGINX_KPI_TOPIC": self.topic,
            "NGINX_KPI_GROUP": self.group,
            "NGINX_KPI_DSN": self.dsn,
        }

    def run(self, *args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """Run `nginx-kpi ARGS...` and capture its output."""
        result = subprocess.run(
            [sys.executable, "-m", "nginx_kpi", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"nginx-kpi {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def start(self, *args: str) -> subprocess.Popen[str]:
        """Start `nginx-kpi ARGS...` in the background."""
        return subprocess.Popen(
            [sys.executable, "-m", "nginx_kpi", *args],
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def kpis(self) -> dict[tuple[str, str], int]:
        """Every stored KPI row."""
        with psycopg.connect(self.dsn) as conn:
            rows = conn.execute("SELECT kpi_key, kpi_value, vcount FROM kpis").fetchall()
        return {(k, v): n for k, v, n in rows}

    def topic_values(self, expected_count: int, timeout: float = 30.0) -> list[bytes]:
        """Every message value in the topic, read until `expected_count` arrived or `timeout` passed."""
        consumer = Consumer(
            {
                "bootstrap.servers": self.brokers,
                "group.id": f"{self.group}-reader",
                "auto.offset.reset": "earliest",
            }
        )
        consumer.subscribe([self.topic])
        values: list[bytes] = []
        deadline = time.monotonic() + timeout
        while len(values) < expected_count and time.monotonic() < deadline:
            values.extend(m.value() for m in consumer.consume(10_000, 0.5) if m.error() is None)
        # A little longer, so that an unexpected extra record is seen too.
        values.extend(m.value() for m in consumer.consume(10_000, 1.0) if m.error() is None)
        consumer.close()
        return values

    def query(self, sql: str) -> list[tuple[object, ...]]:
        """Rows of a query on the test's database."""
        with psycopg.connect(self.dsn) as conn:
            return conn.execute(sql).fetchall()  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def stack() -> Iterator[LocalStack]:
    """The local stack, started (and installed) when it is not running yet, and then stopped again."""
    local = LocalStack()
    was_running = all(state.startswith("running") for state in local.status().values())
    local.up(timeout=300)
    yield local
    if not was_running:
        local.down()


@pytest.fixture
def pipeline(stack: LocalStack, request: pytest.FixtureRequest) -> Iterator[Pipeline]:
    """A fresh topic (4 partitions) and database for one test, dropped afterwards."""
    name = f"t_{request.node.name[:30].lower()}_{uuid.uuid4().hex[:8]}".replace("[", "_").replace("]", "_")
    name = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
    with psycopg.connect(stack.postgres_dsn, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    admin_client = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
    admin_client.create_topics([NewTopic(name, num_partitions=4, replication_factor=1)])[name].result(30)
    dsn = psycopg.conninfo.make_conninfo(stack.postgres_dsn, dbname=name)
    yield Pipeline(stack.kafka_bootstrap, name, f"group-{name}", dsn)
    admin_client.delete_topics([name])[name].result(30)
    with psycopg.connect(stack.postgres_dsn, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def sample_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated 60,000-line log with every kind of malformed line, crossing midnight."""
    path = tmp_path_factory.mktemp("logs") / "access.log"
    write_log(LogSpec(lines=60_000, seed=7, malformed_ratio=0.01), path)
    return path
