"""What reaches Kafka and PostgreSQL from real Fluent Bit messages, files, globs, .gz and stdin."""

from __future__ import annotations

import gzip
import subprocess
import sys
from pathlib import Path

from confluent_kafka import Producer

from tests.conftest import FLUENT_BIT_FIXTURES
from tests.integration.conftest import Pipeline
from tests.integration.oracle import expected_kpis


def test_real_fluent_bit_messages_are_counted_or_rejected_with_their_raw_text(pipeline: Pipeline) -> None:
    producer = Producer({"bootstrap.servers": pipeline.brokers})
    messages = (FLUENT_BIT_FIXTURES / "kafka-messages.jsonl").read_bytes().splitlines()
    for value in messages:
        producer.produce(pipeline.topic, value, partition=0)
    assert producer.flush(30) == 0
    pipeline.run("consume", "--until-idle")
    kpis = pipeline.kpis()
    assert kpis["rejected_lines", "unparsed"] == 1
    assert kpis["rejected_lines", "bad_time"] == 1
    assert kpis["rejected_lines", "bad_record"] == 2  # the recorded regex shifts TLS and "-" requests
    assert sum(n for (k, _), n in kpis.items() if k == "requests_per_day") == 9
    assert kpis["requests_per_day", "2023-12-31"] == 1
    rejected = pipeline.query(
        "SELECT kafka_partition, kafka_offset, reason, raw FROM rejected_records ORDER BY 2"
    )
    assert rejected[2] == (0, 8, "unparsed", "this is not an nginx log line at all")
    assert [r[1] for r in rejected] == [4, 5, 8, 10]


def test_ship_reads_globs_gzip_and_stdin(pipeline: Pipeline, tmp_path: Path) -> None:
    lines = (FLUENT_BIT_FIXTURES / "access.log").read_bytes().splitlines(keepends=True)
    (tmp_path / "a.log").write_bytes(b"".join(lines[:5]))
    with gzip.open(tmp_path / "b.log.gz", "wb") as f:
        f.write(b"".join(lines[5:9]))
    stdin = b"".join(lines[9:])
    subprocess.run(
        [sys.executable, "-m", "nginx_kpi", "ship", str(tmp_path / "*.log*"), "-"],
        input=stdin,
        env=pipeline.env(),
        check=True,
        capture_output=True,
    )
    values = pipeline.topic_values(len(lines))
    assert len(values) == len(lines) == 13
    recorded = set((FLUENT_BIT_FIXTURES / "kafka-messages.jsonl").read_bytes().splitlines())
    # All but the 4 stamped with the read time, and the TLS and "-" requests that deploy's regex fixes.
    assert len(set(values) & recorded) == 13 - 4


def test_demo_sized_log_in_gzip_gives_the_same_kpis_as_plain(pipeline: Pipeline, tmp_path: Path) -> None:
    plain = tmp_path / "access.log"
    pipeline.run("generate", str(plain), "--lines", "5000", "--seed", "3")
    with plain.open("rb") as src, gzip.open(tmp_path / "access.log.gz", "wb") as dst:
        dst.write(src.read())
    pipeline.run("ship", str(tmp_path / "access.log.gz"))
    pipeline.run("consume", "--until-idle")
    assert pipeline.kpis() == expected_kpis(plain)
