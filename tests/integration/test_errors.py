"""Bad input gets a one-line error and a non-zero exit, never a traceback."""

from __future__ import annotations

import pytest

from tests.integration.conftest import Pipeline


def _assert_one_line_error(result: object, *, code: int, mentions: str) -> None:
    stderr = result.stderr.strip()  # type: ignore[attr-defined]
    assert result.returncode == code, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    last = stderr.splitlines()[-1]
    assert last.startswith("nginx-kpi: error: "), stderr
    assert mentions in last
    assert all("error" not in line.lower() for line in stderr.splitlines()[:-1]), stderr


def test_wrong_broker_address(pipeline: Pipeline) -> None:
    result = pipeline.run(
        "ship", "--brokers", "127.0.0.1:1", "tests/fixtures/fluent-bit/access.log", check=False
    )
    _assert_one_line_error(result, code=1, mentions="cannot reach Kafka at 127.0.0.1:1")


def test_unreachable_database(pipeline: Pipeline) -> None:
    result = pipeline.run("consume", "--dsn", "postgresql://nobody@127.0.0.1:1/none", check=False)
    _assert_one_line_error(result, code=1, mentions="cannot connect to PostgreSQL")


def test_missing_database(pipeline: Pipeline) -> None:
    dsn = pipeline.dsn.rsplit("/", 1)[0] + "/no_such_database"
    result = pipeline.run("report", "--dsn", dsn, check=False)
    _assert_one_line_error(result, code=1, mentions="no_such_database")


def test_missing_topic_for_the_consumer(pipeline: Pipeline) -> None:
    result = pipeline.run("consume", "--topic", "no-such-topic", check=False)
    _assert_one_line_error(result, code=1, mentions="topic 'no-such-topic' does not exist")


def test_missing_file(pipeline: Pipeline) -> None:
    result = pipeline.run("ship", "/nonexistent/access.log", check=False)
    _assert_one_line_error(result, code=1, mentions="no such file: /nonexistent/access.log")


@pytest.mark.parametrize(
    ("args", "mentions"),
    [
        (["consume", "--batch-size", "0"], "--batch-size"),
        (["ship", "--folow", "x.log"], "--folow"),
        (["frobnicate"], "frobnicate"),
        (["report", "--kpi", "nope"], "unknown KPI 'nope'"),
        (["generate", "x.log", "--lines", "many"], "--lines"),
    ],
)
def test_invalid_flags(pipeline: Pipeline, args: list[str], mentions: str) -> None:
    result = pipeline.run(*args, check=False)
    _assert_one_line_error(result, code=2, mentions=mentions)
