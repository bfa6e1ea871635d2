"""The Docker stack's PostgreSQL initialisation, run for real on the local PostgreSQL.

deploy/postgres/init.sh is run as the postgres image runs it (psql as the superuser), on a fresh database,
with the real src/nginx_kpi/schema.sql and deploy/postgres/grants.sql. Then the two roles it creates are
shown to do what the stack needs and nothing more: the writer runs the consumer's own store operations
but cannot drop, truncate or delete; the reader reads every table and view but cannot write.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from psycopg import errors, sql

from nginx_kpi import store
from nginx_kpi.kpis import kpi_deltas_for
from nginx_kpi.localstack import LocalStack
from nginx_kpi.localstack.postgres import SUPERUSER, find_bin_dir
from nginx_kpi.record import Columns, Request
from nginx_kpi.store import Batch, OffsetConflict, RejectedRecord

ROOT = Path(__file__).resolve().parents[2]
INIT_SCRIPT = ROOT / "deploy" / "postgres" / "init.sh"
SCHEMA = ROOT / "src" / "nginx_kpi" / "schema.sql"
GRANTS = ROOT / "deploy" / "postgres" / "grants.sql"
DB_PREFIX = "t_pg_roles_"


def _roles() -> tuple[str, str]:
    """(writer, reader), as init.sh creates them (role names are cluster-wide, so fixed names)."""
    writer, reader = re.findall(r"CREATE ROLE (\w+)", INIT_SCRIPT.read_text())
    return writer, reader


WRITER, READER = _roles()


@dataclass(frozen=True)
class InitialisedDb:
    """A database initialised by init.sh, and how to connect to it as each role."""

    name: str
    superuser_dsn: str
    writer_dsn: str
    reader_dsn: str


def _drop_everything(admin: psycopg.Connection[tuple[object, ...]]) -> None:
    """Remove this test's databases and the two roles, also after an interrupted earlier run."""
    rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (DB_PREFIX + "%",))
    for (name,) in rows.fetchall():
        admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(str(name))))
    for role in (WRITER, READER):
        admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@pytest.fixture
def initialised(stack: LocalStack, tmp_path: Path) -> Iterator[InitialisedDb]:
    """A fresh database on which deploy/postgres/init.sh ran, as in the postgres container."""
    info = psycopg.conninfo.conninfo_to_dict(stack.postgres_dsn)
    superuser = psycopg.conninfo.make_conninfo(stack.postgres_dsn, user=SUPERUSER, dbname="postgres")
    name = DB_PREFIX + uuid.uuid4().hex[:10]
    with psycopg.connect(superuser, autocommit=True) as admin:
        _drop_everything(admin)
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    # The container mounts both SQL files into one folder; so does this test, with links to the real files.
    sql_dir = tmp_path / "nginx-kpi"
    sql_dir.mkdir()
    (sql_dir / "schema.sql").symlink_to(SCHEMA)
    (sql_dir / "grants.sql").symlink_to(GRANTS)
    bin_dir = find_bin_dir()
    psql_path = os.pathsep.join(p for p in (str(bin_dir) if bin_dir else "", os.environ["PATH"]) if p)
    assert shutil.which("psql", path=psql_path), "psql is needed to run init.sh"
    env = {
        **os.environ,
        "PATH": psql_path,
        "PGHOST": str(info["host"]),
        "PGPORT": str(info["port"]),
        "POSTGRES_USER": SUPERUSER,
        "POSTGRES_DB": name,
        "NGINX_KPI_SQL_DIR": str(sql_dir),
        # Passwords with quotes and a backslash: init.sh must pass them through psql as literals.
        "NGINX_KPI_WRITER_PASSWORD": "w'r\\" + secrets.token_hex(8),
        "NGINX_KPI_READER_PASSWORD": 'r"e;' + secrets.token_hex(8),
    }
    try:
        result = subprocess.run(
            ["bash", str(INIT_SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False
        )
        assert result.returncode == 0, result.stderr
        yield InitialisedDb(
            name,
            psycopg.conninfo.make_conninfo(superuser, dbname=name),
            psycopg.conninfo.make_conninfo(stack.postgres_dsn, user=WRITER, dbname=name),
            psycopg.conninfo.make_conninfo(stack.postgres_dsn, user=READER, dbname=name),
        )
    finally:
        with psycopg.connect(superuser, autocommit=True) as admin:
            _drop_everything(admin)


def _relations(db: InitialisedDb, kind: str) -> list[str]:
    with psycopg.connect(db.superuser_dsn) as conn:
        rows = conn.execute(
            "SELECT table_name FROM information_schema.tables"
            " WHERE table_schema = 'public' AND table_type = %s ORDER BY 1",
            (kind,),
        ).fetchall()
    return [str(r[0]) for r in rows]


def _denied(dsn: str, statement: sql.Composable | str) -> bool:
    """True when the statement fails for lack of privilege (and nothing else)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(statement)  # type: ignore[arg-type]
        except errors.InsufficientPrivilege:
            return True
    return False


def test_init_creates_the_schema_at_the_consumers_version_and_two_plain_login_roles(
    initialised: InitialisedDb,
) -> None:
    with psycopg.connect(initialised.superuser_dsn) as conn:
        version = conn.execute("SELECT obj_description('kpis'::regclass, 'pg_class')").fetchone()
        roles = conn.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolpassword IS NOT NULL"
            " FROM pg_authid WHERE rolname IN (%s, %s) ORDER BY rolname",
            (WRITER, READER),
        ).fetchall()
        owners = conn.execute(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'"
        ).fetchall()
    assert version == (store.SCHEMA_VERSION,)
    assert sorted(roles) == sorted(
        [(WRITER, True, False, False, False, True), (READER, True, False, False, False, True)]
    )
    assert owners == [(SUPERUSER,)], "the roles own nothing, so they cannot alter or drop anything"


def test_the_reader_reads_every_table_and_view(initialised: InitialisedDb) -> None:
    relations = _relations(initialised, "BASE TABLE") + _relations(initialised, "VIEW")
    assert {"kpis", "requests_per_minute", "unique_visitors_per_day"} <= set(relations)
    with psycopg.connect(initialised.reader_dsn) as conn:
        for relation in relations:
            conn.execute(sql.SQL("SELECT * FROM {} LIMIT 1").format(sql.Identifier(relation)))


def test_the_reader_cannot_write_anything(initialised: InitialisedDb) -> None:
    dsn = initialised.reader_dsn
    for table in _relations(initialised, "BASE TABLE"):
        t = sql.Identifier(table)
        assert _denied(dsn, sql.SQL("INSERT INTO {} DEFAULT VALUES").format(t)), table
        column = sql.Identifier(min(_columns(initialised, table)))
        assert _denied(dsn, sql.SQL("UPDATE {} SET {} = {}").format(t, column, column)), table
        assert _denied(dsn, sql.SQL("DELETE FROM {}").format(t)), table
        assert _denied(dsn, sql.SQL("TRUNCATE {}").format(t)), table
    assert _denied(dsn, "CREATE TABLE public.sneaky (x int)")
    assert _denied(dsn, "CREATE TEMPORARY TABLE sneaky (x int)")


def _columns(db: InitialisedDb, table: str) -> set[str]:
    with psycopg.connect(db.superuser_dsn) as conn:
        rows = conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name = %s",
            (table,),
        ).fetchall()
    return {str(r[0]) for r in rows}


def test_the_writer_runs_the_consumers_store_operations(initialised: InitialisedDb) -> None:
    topic, group = "nginx-access", "nginx-kpi"
    day = 1_796_400_000  # 2026-12-04 UTC
    first = [
        Request(day, "203.0.113.7", "GET", "/", "200", 612),
        Request(day + 61, "198.51.100.2", "POST", "/api/orders", "201", 31),
    ]
    second = [Request(day + 120, "203.0.113.7", "GET", "/api/search", "500", 27)]
    rejected = [RejectedRecord(0, 2, "unparsed", "no match", "garbage line")]
    with store.connect(initialised.writer_dsn) as conn:
        store.init_schema(conn)  # the schema is current: no DDL, which the writer could not run
        assert store.stored_offsets(conn, group, topic, [0, 1]) == {0: store.OFFSET_BEGINNING, 1: -2}
        store.commit_batch(
            conn,
            group,
            Batch(topic, {0: (-2, 3)}, kpi_deltas_for(Columns.of(first), ["unparsed"]), rejected, records=3),
        )
        store.commit_batch(
            conn, group, Batch(topic, {1: (-2, 1)}, kpi_deltas_for(Columns.of(second)), records=1)
        )
        with pytest.raises(OffsetConflict):  # a zombie's batch: the compare-and-set refuses it
            store.commit_batch(
                conn, group, Batch(topic, {0: (-2, 3)}, kpi_deltas_for(Columns.of(first)), records=2)
            )
        assert store.stored_offsets(conn, group, topic, [0, 1]) == {0: 3, 1: 1}
    with psycopg.connect(initialised.reader_dsn) as conn:
        kpis = dict(conn.execute("SELECT kpi_key || '=' || kpi_value, vcount FROM kpis").fetchall())
        stored = conn.execute("SELECT kafka_offset, reason, raw FROM rejected_records").fetchall()
    assert kpis["requests_per_day=2026-12-04"] == 3
    assert kpis["unique_visitors_per_day=2026-12-04"] == 2  # 203.0.113.7 came back: counted once
    assert kpis["requests_by_status=500"] == 1
    assert kpis["rejected_lines=unparsed"] == 1
    assert stored == [(2, "unparsed", "garbage line")]


def test_the_writer_cannot_drop_truncate_delete_or_read_what_it_does_not_need(
    initialised: InitialisedDb,
) -> None:
    dsn = initialised.writer_dsn
    for table in _relations(initialised, "BASE TABLE"):
        t = sql.Identifier(table)
        assert _denied(dsn, sql.SQL("DROP TABLE {}").format(t)), table
        assert _denied(dsn, sql.SQL("TRUNCATE {}").format(t)), table
        assert _denied(dsn, sql.SQL("DELETE FROM {}").format(t)), table
    assert _denied(dsn, "ALTER TABLE kpis ADD COLUMN sneaky int")
    assert _denied(dsn, "CREATE TABLE public.sneaky (x int)")
    assert _denied(dsn, "SELECT raw FROM rejected_records")  # it only appends rejected lines
    assert _denied(dsn, "SELECT * FROM requests_per_day")
    with store.connect(dsn) as conn, pytest.raises(errors.InsufficientPrivilege):
        store.reset(conn)  # `nginx-kpi db reset` is an administrator's job


def test_tables_created_later_by_the_owner_are_readable_by_the_reader(initialised: InitialisedDb) -> None:
    with psycopg.connect(initialised.superuser_dsn) as conn:
        conn.execute("CREATE TABLE later (x int)")
    with psycopg.connect(initialised.reader_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM later").fetchone() == (0,)
    assert _denied(initialised.writer_dsn, "SELECT * FROM later")
