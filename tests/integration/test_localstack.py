"""The real local stack: a private Kafka broker and PostgreSQL cluster on free ports in a temp dir."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic  # confluent_kafka.admin does not re-export it for mypy

from nginx_kpi.localstack import LocalStack, StackError, postgres, procs

pytestmark = pytest.mark.integration


def free_port(pair: bool = False) -> int:
    """A free loopback port (and, with pair, the next one free too: Kafka's controller port)."""
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port < 65000 and not procs.port_in_use(port) and not (pair and procs.port_in_use(port + 1)):
            return port


@pytest.fixture(scope="module")
def state_dir() -> Iterator[Path]:
    # Not under pytest's tmp dir: pytest makes it 0700 again at each session start, which would
    # lock the postgres user out of a running cluster's data.
    top = Path(tempfile.mkdtemp(prefix="nginx-kpi-stack-test-"))
    yield top / ".stack"
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def local(state_dir: Path) -> Iterator[LocalStack]:
    """One stack for the whole module; always stopped and deleted at the end (jars included)."""
    kafka_port = free_port(pair=True)
    pg_port = free_port()
    while pg_port in (kafka_port, kafka_port + 1):
        pg_port = free_port()
    stack = LocalStack(state_dir=state_dir, kafka_port=kafka_port, postgres_port=pg_port)
    try:
        stack.up(timeout=180)
        yield stack
    finally:
        stack.clean()
        shutil.rmtree(state_dir, ignore_errors=True)


@pytest.fixture
def listener() -> Iterator[int]:
    """A plain TCP listener standing in for some foreign service; yields its port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", free_port(pair=True)))
        sock.listen()
        yield sock.getsockname()[1]


def test_kafka_round_trip(local: LocalStack) -> None:
    topic = f"localstack-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": local.kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic].result(30)
    producer = Producer({"bootstrap.servers": local.kafka_bootstrap})
    producer.produce(topic, key=b"k", value=b"hello")
    assert producer.flush(30) == 0
    consumer = Consumer(
        {"bootstrap.servers": local.kafka_bootstrap, "group.id": topic, "auto.offset.reset": "earliest"}
    )
    try:
        consumer.subscribe([topic])
        deadline = time.monotonic() + 30
        msg = None
        while msg is None and time.monotonic() < deadline:
            msg = consumer.poll(1.0)
        assert msg is not None and msg.error() is None
        assert (msg.key(), msg.value()) == (b"k", b"hello")
    finally:
        consumer.close()


def test_auto_topic_creation_is_off(local: LocalStack) -> None:
    admin = AdminClient({"bootstrap.servers": local.kafka_bootstrap})
    producer = Producer({"bootstrap.servers": local.kafka_bootstrap, "message.timeout.ms": 1000})
    errors: list[object] = []
    producer.produce("no-such-topic", b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None
    assert "no-such-topic" not in admin.list_topics(timeout=10).topics


def test_postgres_select_1_as_app_role(local: LocalStack) -> None:
    with psycopg.connect(local.postgres_dsn, connect_timeout=10) as conn:
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("select current_user, current_database()").fetchone() == (
            "nginx_kpi",
            "nginx_kpi",
        )
        listen = conn.execute("show listen_addresses").fetchone()
    assert listen == ("127.0.0.1",)


def test_app_role_can_create_databases(local: LocalStack) -> None:
    name = f"tmp_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(local.postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
        conn.execute(f'DROP DATABASE "{name}"')


def test_status_reports_running_services(local: LocalStack) -> None:
    status = local.status()
    assert status["kafka"].startswith("running (pid ") and status["kafka"].endswith(local.kafka_bootstrap)
    assert status["postgres"].startswith("running (pid ")


def test_services_are_detached_from_the_starter(local: LocalStack) -> None:
    for pid in (local.kafka.pid(), local.postgres.pid()):
        assert pid is not None
        assert os.getsid(pid) != os.getsid(0)
        assert pid not in _children()


def test_up_again_is_fast_and_idempotent(local: LocalStack) -> None:
    before = local.status()
    started = time.monotonic()
    local.up(timeout=30)
    assert time.monotonic() - started < 5
    assert local.status() == before


def test_another_process_sees_the_same_stack(local: LocalStack, state_dir: Path) -> None:
    env = {
        **os.environ,
        "NGINX_KPI_STACK_DIR": str(state_dir),
        "NGINX_KPI_KAFKA_PORT": local.kafka_bootstrap.rsplit(":", 1)[1],
        "NGINX_KPI_PG_PORT": str(local.postgres.port),
    }
    out = subprocess.run(
        [sys.executable, "-m", "nginx_kpi.localstack", "status"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert out.count("running (pid ") == 2


def test_taken_kafka_port_is_a_clear_error(listener: int, tmp_path: Path) -> None:
    other = LocalStack(state_dir=tmp_path / ".stack", kafka_port=listener, postgres_port=free_port())
    with pytest.raises(
        StackError, match=rf"Kafka: port {listener} on 127.0.0.1 is already in use.*NGINX_KPI_KAFKA_PORT"
    ):
        other.up(timeout=10)


def test_taken_postgres_port_is_a_clear_error(listener: int, tmp_path: Path) -> None:
    node = postgres.PostgresNode(tmp_path / ".stack", listener)
    with pytest.raises(
        StackError, match=rf"PostgreSQL: port {listener} .* already in use.*NGINX_KPI_PG_PORT"
    ):
        node.prepare()


def test_down_stops_both_and_frees_the_ports(local: LocalStack) -> None:
    """Runs last in this module: it stops the shared stack."""
    kafka_port = int(local.kafka_bootstrap.rsplit(":", 1)[1])
    local.down()
    assert local.status() == {"kafka": "stopped", "postgres": "stopped"}
    for port in (kafka_port, kafka_port + 1, local.postgres.port):
        assert not procs.port_in_use(port), port
    local.down()  # idempotent


def _children() -> set[int]:
    me = os.getpid()
    kids: set[int] = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == me:
                kids.add(int(entry.name))
    return kids
