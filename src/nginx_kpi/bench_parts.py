"""The measurements of `nginx-kpi bench`, one function per part, run against the local stack.

nginx-kpi itself always runs as a user runs it: `python -m nginx_kpi ...` subprocesses configured by
NGINX_KPI_* variables, timed by wall clock, their peak RSS read exactly from `wait4`.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import combinations
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from nginx_kpi import kafka
from nginx_kpi.errors import NginxKpiError
from nginx_kpi.generate import LogSpec, generate_lines, write_log
from nginx_kpi.record import Rejection, decode_request

PARTITIONS = 3  # the project default (NGINX_KPI_PARTITIONS)
POLL_SECONDS = 0.02  # how often PostgreSQL is asked how many records are counted
SLOWEST_RATE = 5_000  # records/s below which a step is considered stuck: its timeout is 60 s + N / this


def _timeout(records: int) -> float:
    return 60 + records / SLOWEST_RATE


COUNTED_SQL = "SELECT coalesce(sum(greatest(next_offset, 0)), 0) FROM consumer_offsets"
Json = dict[str, Any]


class BenchError(NginxKpiError):
    """A benchmark step failed; the message says which and why."""


# ---------------------------------------------------------------------------------------------------------
# Where a run lives: fresh topics and databases, dropped at the end


@dataclass
class Lab:
    """The stack's addresses, this run's unique name prefix, and the topics and databases it made."""

    brokers: str
    admin_dsn: str
    work: Path
    prefix: str = field(default_factory=lambda: f"bench_{uuid.uuid4().hex[:10]}")
    topics: list[str] = field(default_factory=list)
    databases: list[str] = field(default_factory=list)

    def topic(self, name: str) -> str:
        """A fresh topic with the default number of partitions."""
        topic = f"{self.prefix}_{name}"
        admin = AdminClient({"bootstrap.servers": self.brokers})
        new = NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)
        admin.create_topics([new])[topic].result(30)
        self.topics.append(topic)
        return topic

    def database(self, name: str) -> str:
        """A fresh, empty database; returns its DSN."""
        db = f"{self.prefix}_{name}"
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{db}"')
        self.databases.append(db)
        return psycopg.conninfo.make_conninfo(self.admin_dsn, dbname=db)

    def env(self, topic: str, dsn: str = "", group: str = "") -> dict[str, str]:
        """Environment for an nginx-kpi subprocess on this topic, database and group."""
        return {
            **os.environ,
            "NGINX_KPI_BROKERS": self.brokers,
            "NGINX_KPI_TOPIC": topic,
            "NGINX_KPI_GROUP": group or f"{topic}_group",
            "NGINX_KPI_DSN": dsn or self.admin_dsn,
        }

    def cleanup(self) -> None:
        """Drop every topic and database this run made."""
        if self.topics:
            admin = AdminClient({"bootstrap.servers": self.brokers})
            for future in admin.delete_topics(self.topics).values():
                future.result(30)
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            for db in self.databases:
                conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        self.topics.clear()
        self.databases.clear()


# ---------------------------------------------------------------------------------------------------------
# Subprocesses: wall time and exact peak RSS


@dataclass(frozen=True)
class Finished:
    """A subprocess that ended: its wall time from start, and its peak RSS."""

    seconds: float
    rss_mb: float


class Child:
    """A started subprocess whose output goes to a log file in the work dir."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], work: Path) -> None:
        self.name = name
        self.finished: Finished | None = None
        self.log = work / "logs" / f"{name}.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as out:
            self.started = time.monotonic()
            self.proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)

    @classmethod
    def cli(cls, name: str, args: list[str], env: dict[str, str], work: Path) -> Child:
        """`python -m nginx_kpi ARGS`, as a user runs it."""
        return cls(name, [sys.executable, "-m", "nginx_kpi", *args], env, work)

    def wait(self, timeout: float) -> Finished:
        """Reap the process (killed after `timeout` s) and read its peak RSS from the kernel."""
        if self.finished is not None:
            return self.finished
        watchdog = threading.Timer(timeout, self.proc.kill)
        watchdog.start()
        try:
            _, status, usage = os.wait4(self.proc.pid, 0)
        finally:
            watchdog.cancel()
        return self._reaped(status, usage)

    def poll(self) -> Finished | None:
        """The result if the process has ended, without waiting."""
        if self.finished is None:
            pid, status, usage = os.wait4(self.proc.pid, os.WNOHANG)
            if pid != 0:
                self._reaped(status, usage)
        return self.finished

    def stop(self, timeout: float = 60.0) -> Finished:
        """SIGTERM (the CLI finishes its current batch and exits 0), then reap."""
        if self.finished is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def kill(self) -> None:
        """End it if it still runs (after a failure elsewhere)."""
        if self.proc.returncode is None:
            self.proc.kill()
            os.waitpid(self.proc.pid, 0)
            self.proc.returncode = -signal.SIGKILL

    def _reaped(self, status: int, usage: Any) -> Finished:
        seconds = time.monotonic() - self.started
        self.proc.returncode = code = os.waitstatus_to_exitcode(status)
        if code != 0:
            what = "was killed (timeout)" if code == -signal.SIGKILL else f"exited {code}"
            raise BenchError(f"{self.name} {what}: {self.last_line()} (log: {self.log})")
        self.finished = Finished(seconds, usage.ru_maxrss / 1024)  # ru_maxrss is in KiB on Linux
        return self.finished

    def last_line(self) -> str:
        """The last line of its output: the CLI's one-line error, usually."""
        lines = self.log.read_text(errors="replace").strip().splitlines()
        return lines[-1] if lines else "no output"


def counted(conn: psycopg.Connection[tuple[Any, ...]]) -> int:
    """Records counted so far in a database (0 before the consumer created its tables)."""
    try:
        row = conn.execute(COUNTED_SQL).fetchone()
    except psycopg.errors.UndefinedTable:
        return 0
    return int(row[0]) if row else 0


def kpi_totals(dsn: str) -> dict[str, int]:
    """Sum of vcount per kpi_key (requests_per_day is the number of counted requests)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT kpi_key, sum(vcount)::bigint FROM kpis GROUP BY 1").fetchall()
    return {str(k): int(n) for k, n in rows}


def requests_and_rejected(dsn: str) -> int:
    """Counted requests plus rejected lines: every record, exactly once."""
    totals = kpi_totals(dsn)
    return totals.get("requests_per_day", 0) + totals.get("rejected_lines", 0)


class CountPoller:
    """Samples the counted total every POLL_SECONDS in a thread, keeping (time, count) at each change."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.times: list[float] = []
        self.counts: list[int] = []
        self.error: Exception | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> CountPoller:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def latest(self) -> int:
        """The last count seen."""
        return self.counts[-1] if self.counts else 0

    def wait_for(self, total: int, timeout: float, *watched: Child) -> float:
        """Block until `total` records are counted; returns when that was first seen."""
        deadline = time.monotonic() + timeout
        while self.latest < total:
            if self.error is not None:
                raise BenchError(f"cannot read the counted total: {self.error}")
            for child in watched:
                if child.proc.returncode is None:
                    child.poll()  # raises if it died
            if time.monotonic() > deadline:
                raise BenchError(f"only {self.latest:,} of {total:,} records counted after {timeout:.0f} s")
            time.sleep(POLL_SECONDS / 2)
        return self.times[bisect_left(self.counts, total)]

    def first_seen(self, total: int) -> float | None:
        """When the count first reached `total`, if it did."""
        i = bisect_left(self.counts, total)
        return self.times[i] if i < len(self.counts) else None

    def _run(self) -> None:
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                while not self._stop.is_set():
                    n = counted(conn)
                    now = time.monotonic()
                    if n != self.latest or not self.counts:
                        self.times.append(now)
                        self.counts.append(n)
                    self._stop.wait(POLL_SECONDS)
        except psycopg.Error as exc:
            self.error = exc


# ---------------------------------------------------------------------------------------------------------
# The input log


def log_file(work: Path, lines: int) -> Path:
    """The benchmark's log: N lines over 24 hours in nginx's main format, generated once per size."""
    path = work / f"access-{lines}.log"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        write_log(LogSpec(lines=lines, span=timedelta(hours=24)), tmp)
        tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------------------
# 4. ship, 1. raw consume, 2. nginx-kpi consume


def ship_part(lab: Lab, log: Path, lines: int) -> tuple[Json, str]:
    """`nginx-kpi ship FILE` into a fresh topic; returns the figures and the topic (now full)."""
    topic = lab.topic("shipped")
    run = Child.cli("ship", ["ship", str(log)], lab.env(topic), lab.work).wait(_timeout(lines))
    figures = {"lines": lines, "seconds": run.seconds, "lines_per_s": lines / run.seconds}
    return {**figures, "rss_mb": run.rss_mb}, topic


def raw_consume_part(lab: Lab, topic: str, records: int) -> Json:
    """The ceiling: a plain consumer that does nothing with the records, with librdkafka's defaults and
    with nginx-kpi's client settings (fetch sizes matter); the faster of the two runs."""
    runs = {
        "librdkafka defaults": _raw_consume(lab, topic, records, "defaults", {}),
        "nginx-kpi's client settings": _raw_consume(lab, topic, records, "settings", kafka.CONSUMER_SETTINGS),
    }
    best = max(runs, key=lambda name: float(runs[name]["records_per_s"]))
    return {**runs[best], "settings": best, "runs": runs}


def _raw_consume(lab: Lab, topic: str, records: int, name: str, settings: Json) -> Json:
    env = {**lab.env(topic, group=f"{topic}_raw_{name}"), "BENCH_RECORDS": str(records)}
    env["BENCH_SETTINGS"] = json.dumps(settings)
    code = "from nginx_kpi.bench_parts import raw_consumer_main; raw_consumer_main()"
    child = Child(f"raw-consume-{name}", [sys.executable, "-c", code], env, lab.work)
    run = child.wait(_timeout(records))
    inner = json.loads(child.log.read_text().strip().splitlines()[-1])
    return {
        "records": records,
        "seconds": run.seconds,
        "records_per_s": records / run.seconds,
        "steady_records_per_s": _steady(inner["records_after_first"], inner["first_to_last_s"]),
        "rss_mb": run.rss_mb,
    }


def _steady(records: int, seconds: float) -> float | None:
    """Records per second after the first batch; None when everything came in one batch."""
    return records / seconds if records > 0 and seconds > 0 else None


def raw_consumer_main() -> None:
    """The ceiling: subscribe, read every record of NGINX_KPI_TOPIC, print timings as JSON, exit."""
    expected = int(os.environ["BENCH_RECORDS"])
    consumer = Consumer(
        {
            "bootstrap.servers": os.environ["NGINX_KPI_BROKERS"],
            "group.id": os.environ["NGINX_KPI_GROUP"],
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            **json.loads(os.environ.get("BENCH_SETTINGS", "{}")),
        }
    )
    consumer.subscribe([os.environ["NGINX_KPI_TOPIC"]])
    seen = first_batch = 0
    first = last = 0.0
    deadline = time.monotonic() + _timeout(expected)
    while seen < expected and time.monotonic() < deadline:
        got = sum(1 for m in consumer.consume(10_000, 0.5) if m.error() is None)
        if got:
            last = time.monotonic()
            if not seen:
                first, first_batch = last, got  # the steady rate counts what arrives after the first batch
            seen += got
    consumer.close()
    if seen < expected:
        sys.exit(f"read only {seen:,} of {expected:,} records")
    print(json.dumps({"records_after_first": seen - first_batch, "first_to_last_s": last - first}))


def consume_part(lab: Lab, topic: str, records: int) -> tuple[Json, str]:
    """`nginx-kpi consume --until-idle` on the shipped topic into a fresh database; returns its DSN too."""
    dsn = lab.database("consume")
    child = Child.cli("consume", ["consume", "--until-idle"], lab.env(topic, dsn, f"{topic}_kpi"), lab.work)
    with CountPoller(dsn) as poller:
        run = child.wait(_timeout(records))
        last_time = poller.wait_for(records, 10)  # the poller's view of the last commit
    _check_counted(dsn, records, "nginx-kpi consume")
    # Steady rate: from the first committed batch to the last, as seen in PostgreSQL.
    first = next(i for i, n in enumerate(poller.counts) if n > 0)
    first_time, first_count = poller.times[first], poller.counts[first]
    steady = _steady(records - first_count, last_time - first_time)
    figures = {"records": records, "seconds": run.seconds, "records_per_s": records / run.seconds}
    return {**figures, "steady_records_per_s": steady, "rss_mb": run.rss_mb}, dsn


def _check_counted(dsn: str, records: int, what: str) -> None:
    with psycopg.connect(dsn) as conn:
        stored = counted(conn)
    total = requests_and_rejected(dsn)
    if stored != records or total != records:
        raise BenchError(
            f"{what}: {records:,} records, but {stored:,} offsets and {total:,} requests + rejected lines"
        )


# ---------------------------------------------------------------------------------------------------------
# 3. The naive baseline: what a tutorial consumer does


_UPSERT = """INSERT INTO kpis (kpi_key, kpi_value, vcount) VALUES (%s, %s, %s)
             ON CONFLICT (kpi_key, kpi_value) DO UPDATE SET vcount = kpis.vcount + EXCLUDED.vcount"""
_ADD_MEMBER = """INSERT INTO kpi_distinct_members (kpi_key, kpi_value, member) VALUES (%s, %s, %s)
                 ON CONFLICT DO NOTHING"""


def naive_kpis(value: bytes | None) -> tuple[list[tuple[str, str, int]], tuple[str, str, str] | None]:
    """The KPI increments of one record, and its unique-visitor member, computed one record at a time.

    Decodes with nginx-kpi's own single-record decoder: what the baseline measures is the storage.
    """
    request = decode_request(value)
    if isinstance(request, Rejection):
        return [("rejected_lines", request.reason, 1)], None
    when = time.gmtime(request.epoch)
    minute, hour, day = (time.strftime(f, when) for f in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H", "%Y-%m-%d"))
    rows = [
        ("requests_per_minute", minute, 1),
        ("requests_per_hour", hour, 1),
        ("requests_per_day", day, 1),
        ("status_class_per_minute", f"{minute}|{request.status[0]}xx", 1),
        ("requests_by_status", request.status, 1),
        ("requests_by_method", request.method, 1),
        ("requests_by_path", request.path, 1),
        ("bytes_per_hour", hour, request.size),
    ]
    return rows, ("unique_visitors_per_day", day, request.remote)


def count_naively(conn: psycopg.Connection[tuple[Any, ...]], value: bytes | None) -> None:
    """One record, one autocommitted statement per KPI: a tutorial's consumer loop body."""
    rows, member = naive_kpis(value)
    for row in rows:
        conn.execute(_UPSERT, row)
    if member is not None and conn.execute(_ADD_MEMBER, member).rowcount == 1:
        conn.execute(_UPSERT, (member[0], member[1], 1))


def naive_part(lab: Lab, topic: str, subset: int) -> Json:
    """A naive consumer on the first `subset` records it receives; its KPIs checked against nginx-kpi."""
    dsn = lab.database("naive")
    Child.cli("naive-db-init", ["db", "init"], lab.env(topic, dsn), lab.work).wait(60)
    consumer = Consumer(
        {"bootstrap.servers": lab.brokers, "group.id": f"{topic}_naive", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    values: list[bytes | None] = []
    started, deadline = 0.0, time.monotonic() + 60
    with psycopg.connect(dsn, autocommit=True) as conn:
        while len(values) < subset:
            msg = consumer.poll(1.0)
            if msg is None or msg.error() is not None:
                if not values and time.monotonic() > deadline:
                    raise BenchError(f"naive baseline: no record from {topic} within 60 s")
                continue
            started = started or time.monotonic()
            count_naively(conn, msg.value())
            values.append(msg.value())
        seconds = time.monotonic() - started
    consumer.close()
    differing, requests = _compare_with_nginx_kpi(lab, values, dsn)
    return {
        "records": subset,
        "seconds": seconds,
        "records_per_s": subset / seconds,
        "requests": requests,
        "kpis_match": differing == 0,
        "differing_rows": differing,
    }


def _compare_with_nginx_kpi(lab: Lab, values: list[bytes | None], naive_dsn: str) -> tuple[int, int]:
    """Count the same records with `nginx-kpi consume`; (KPI rows that differ, requests counted)."""
    topic, dsn = lab.topic("naive_check"), lab.database("naive_check")
    producer = Producer({"bootstrap.servers": lab.brokers, "linger.ms": 20})
    for value in values:
        producer.produce(topic, value)
    if producer.flush(60):
        raise BenchError("naive baseline check: Kafka did not acknowledge the copied records")
    Child.cli("naive-check", ["consume", "--until-idle"], lab.env(topic, dsn), lab.work).wait(300)
    sql = "SELECT kpi_key, kpi_value, vcount FROM kpis WHERE vcount <> 0"
    rows = []
    for db in (naive_dsn, dsn):
        with psycopg.connect(db) as conn:
            rows.append(set(conn.execute(sql).fetchall()))
    return len(rows[0] ^ rows[1]), kpi_totals(naive_dsn).get("requests_per_day", 0)


# ---------------------------------------------------------------------------------------------------------
# 5. End to end


def end_to_end_part(lab: Lab, log: Path, lines: int) -> tuple[Json, str]:
    """Consumer started, then ship: wall time from the ship's start until all lines are counted."""
    topic, dsn = lab.topic("e2e"), lab.database("e2e")
    env = lab.env(topic, dsn)
    consumer = Child.cli("e2e-consume", ["consume"], env, lab.work)
    ship = None
    try:
        with CountPoller(dsn) as poller:
            ship = Child.cli("e2e-ship", ["ship", str(log)], env, lab.work)
            done = poller.wait_for(lines, _timeout(lines), consumer, ship)
        shipped = ship.wait(60)
        consumed = consumer.stop()
    finally:
        for child in (consumer, ship):
            if child is not None:
                child.kill()
    _check_counted(dsn, lines, "end to end")
    seconds = done - ship.started
    figures = {"lines": lines, "seconds": seconds, "lines_per_s": lines / seconds}
    return {**figures, "ship_seconds": shipped.seconds, "consumer_rss_mb": consumed.rss_mb}, dsn


# ---------------------------------------------------------------------------------------------------------
# 6. GoAccess


# Panels with no nginx-kpi equivalent: GoAccess does not compute them, so its time is not inflated.
GOACCESS_IGNORED_PANELS = (
    "HOSTS",
    "OS",
    "BROWSERS",
    "REFERRERS",
    "REFERRING_SITES",
    "KEYPHRASES",
    "GEO_LOCATION",
    "REMOTE_USER",
    "VIRTUAL_HOSTS",
)


def goaccess_executable() -> str:
    """GoAccess on PATH, installed from Debian's package when missing."""
    found = shutil.which("goaccess")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=True, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "goaccess"], env=env, capture_output=True, check=True, timeout=600
        )
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchError(
            f"GoAccess is not installed and `apt-get install goaccess` failed ({type(exc).__name__}); "
            "install it, or leave the peer out with --skip goaccess"
        ) from exc
    return shutil.which("goaccess") or "goaccess"


def goaccess_part(lab: Lab, log: Path, lines: int) -> Json:
    """GoAccess on the same file with --log-format=COMBINED and JSON output: wall time, RSS, totals."""
    exe = goaccess_executable()
    out = lab.work / "goaccess.json"
    ignored = [f"--ignore-panel={p}" for p in GOACCESS_IGNORED_PANELS]
    argv = [exe, str(log), "--log-format=COMBINED", "-o", str(out), "--no-global-config", "--no-progress"]
    run = Child("goaccess", [*argv, *ignored], dict(os.environ), lab.work).wait(_timeout(lines))
    general = json.loads(out.read_text())["general"]
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    return {
        "version": (version.split() or ["?"])[2].rstrip(".") if "GoAccess" in version else "?",
        "seconds": run.seconds,
        "rss_mb": run.rss_mb,
        "command": " ".join([Path(exe).name, log.name, *argv[2:4], out.name, *argv[5:], *ignored]),
        "valid_requests": int(general["valid_requests"]),
        "failed_requests": int(general["failed_requests"]),
        "bandwidth": int(general["bandwidth"]),
    }


_LINE = re.compile(
    rb'(\S+) - (\S+) \[([^\]]*)\] "([^"]*)" (\d{3}) (\d+|-) "([^"]*)" "([^"]*)"(?P<xff> "[^"]*")?'
)
LINE_KINDS = {
    "regular": "regular lines",
    "no_forwarded": "combined-format lines (no x_forwarded_for)",
    "tls": "TLS-handshake requests (status 400)",
    "dash": '"-" requests (status 400)',
    "bad_date": "lines with an impossible date",
    "unparsable": "unparsable lines (cut short, error log, other text)",
}
COUNTED_KINDS = ("regular", "no_forwarded", "tls", "dash")


@lru_cache(maxsize=65_536)
def _valid_time(text: bytes) -> bool:
    try:
        datetime.strptime(text.decode(), "%d/%b/%Y:%H:%M:%S %z")
    except ValueError:
        return False
    return True


def classify_log(path: Path) -> tuple[Counter[str], int]:
    """Lines of the log by kind (see LINE_KINDS), and the body bytes of the lines that count as requests."""
    kinds: Counter[str] = Counter()
    size = 0
    with path.open("rb") as f:
        for line in f:
            m = _LINE.fullmatch(line.rstrip(b"\n"))
            if m is None:
                kinds["unparsable"] += 1
                continue
            if not _valid_time(m[3]):
                kinds["bad_date"] += 1
                continue
            request = m[4]
            kind = "tls" if request.startswith(b"\\x16") else "dash" if request == b"-" else "regular"
            kinds["no_forwarded" if kind == "regular" and m["xff"] is None else kind] += 1
            size += 0 if m[6] == b"-" else int(m[6])
    return kinds, size


def compare_totals(goaccess: Json, totals: dict[str, int], kinds: Counter[str], file_bytes: int) -> Json:
    """GoAccess's totals against nginx-kpi's and against what the file holds, with the reasons for any gap."""
    from_file = {
        "requests": sum(kinds[k] for k in COUNTED_KINDS),
        "rejected": kinds["bad_date"] + kinds["unparsable"],
        "bytes": file_bytes,
    }
    rows = []
    for label, ga_key, nk_key, file_key in (
        ("valid requests / requests", "valid_requests", "requests_per_day", "requests"),
        ("failed requests / rejected lines", "failed_requests", "rejected_lines", "rejected"),
        ("bandwidth / bytes", "bandwidth", "bytes_per_hour", "bytes"),
    ):
        ga, nk = goaccess[ga_key], totals.get(nk_key, 0)
        row = {"total": label, "goaccess": ga, "nginx_kpi": nk, "from_file": from_file[file_key]}
        rows.append({**row, "equal": ga == nk})
    return {"rows": rows, "kinds": dict(kinds), "explanation": _explain(rows, kinds)}


def _explain(rows: list[Json], kinds: Counter[str]) -> str:
    counted = ", ".join(f"{kinds[k]:,} {LINE_KINDS[k]}" for k in ("tls", "dash", "no_forwarded"))
    refused = ", ".join(f"{kinds[k]:,} {LINE_KINDS[k]}" for k in ("unparsable", "bad_date"))
    if all(r["equal"] and r["nginx_kpi"] == r["from_file"] for r in rows):
        return (
            f"Equal, and equal to what the file holds. Both count as requests {counted}; "
            f'both refuse {refused}. COMBINED ignores the trailing "$http_x_forwarded_for".'
        )
    notes = []
    for r in rows[:2]:
        gap = r["goaccess"] - r["nginx_kpi"]
        if gap:
            found = _kinds_summing_to(abs(gap), kinds)
            why = " + ".join(LINE_KINDS[k] for k in found) if found else "no kind of line in the file"
            notes.append(f"{r['total']}: GoAccess {gap:+,} vs nginx-kpi, matching {why}")
    for r in rows:
        if r["nginx_kpi"] != r["from_file"]:
            notes.append(f"{r['total']}: nginx-kpi {r['nginx_kpi']:,} but the file says {r['from_file']:,}")
    if rows[2]["goaccess"] != rows[2]["nginx_kpi"]:
        notes.append("bandwidth differs by the bytes of the lines counted differently")
    return "; ".join(notes) + f". The file holds {counted}, {refused}."


def _kinds_summing_to(total: int, kinds: Counter[str]) -> tuple[str, ...]:
    names = [k for k in LINE_KINDS if kinds[k] and k != "regular"]
    for n in range(1, len(names) + 1):
        for combo in combinations(names, n):
            if sum(kinds[k] for k in combo) == total:
                return combo
    return ()


# ---------------------------------------------------------------------------------------------------------
# 8. Freshness


def freshness_part(lab: Lab, seconds: float, rate: int) -> Json:
    """Lines appended at a steady rate to a file that `ship --follow` tails: delay until each is counted."""
    topic, dsn = lab.topic("fresh"), lab.database("fresh")
    env = lab.env(topic, dsn)
    folder = lab.work / "freshness"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    path = folder / "access.log"
    path.touch()
    per_batch = max(1, round(rate * 0.02))  # a write every 20 ms
    warm = max(per_batch, rate // 10)
    blocks = _blocks(warm + round(seconds * rate), per_batch, warm)
    consumer = Child.cli("fresh-consume", ["consume"], env, lab.work)
    shipper = Child.cli("fresh-ship", ["ship", "--follow", str(path)], env, lab.work)
    try:
        with CountPoller(dsn) as poller, path.open("ab", buffering=0) as out:
            out.write(blocks[0])  # warm-up: both processes running and connected before the clock starts
            poller.wait_for(warm, 120, consumer, shipper)
            written = _write_paced(out, blocks[1:], per_batch / rate)
            total = warm + (len(blocks) - 1) * per_batch
            poller.wait_for(total, 120, consumer, shipper)
        shipper.stop()
        consumer.stop()
    finally:
        shipper.kill()
        consumer.kill()
    delays = sorted(
        (poller.first_seen(warm + j * per_batch + i + 1) or written[j]) - written[j]
        for j in range(len(written))
        for i in range(per_batch)
    )
    elapsed = written[-1] - written[0] if len(written) > 1 else 0.0
    return {
        "lines": len(delays),
        "rate": rate,
        "achieved_rate": (len(delays) - per_batch) / elapsed if elapsed else 0.0,
        "seconds": seconds,
        "p50_s": _percentile(delays, 0.50),
        "p99_s": _percentile(delays, 0.99),
        "max_s": delays[-1],
    }


def _blocks(lines: int, per_batch: int, warm: int) -> list[bytes]:
    """The warm-up block, then blocks of `per_batch` lines, from the generator (times need not be now)."""
    spec = LogSpec(lines=lines, start=datetime.now(UTC).replace(microsecond=0), span=timedelta(hours=1))
    it = (line.encode() + b"\n" for line in generate_lines(spec))
    blocks = [b"".join(next(it) for _ in range(warm))]
    blocks.extend(_batched(it, per_batch))
    return blocks


def _batched(lines: Iterator[bytes], n: int) -> Iterator[bytes]:
    while block := [line for _, line in zip(range(n), lines, strict=False)]:
        if len(block) < n:
            return  # a short last block would break the one-index-per-line arithmetic
        yield b"".join(block)


def _write_paced(out: Any, blocks: list[bytes], interval: float) -> list[float]:
    """Write one block every `interval` s on an absolute schedule; returns when each was written."""
    written = []
    start = time.monotonic()
    for i, block in enumerate(blocks):
        pause = start + i * interval - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        out.write(block)
        written.append(time.monotonic())
    return written


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    return sorted_values[max(0, math.ceil(len(sorted_values) * q) - 1)] if sorted_values else 0.0
