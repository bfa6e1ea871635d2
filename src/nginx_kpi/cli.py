"""The `nginx-kpi` command line: every error reaches the user as one line, never as a traceback."""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import click
import psycopg
from rich.console import Console

from nginx_kpi import kafka, store
from nginx_kpi.bench import bench_command
from nginx_kpi.errors import ConfigError, NginxKpiError, first_line
from nginx_kpi.settings import Settings

log = logging.getLogger("nginx_kpi")


def _settings(**flags: Any) -> Settings:
    """Environment settings, overridden by the flags that were given."""
    try:
        return Settings(**{k: v for k, v in flags.items() if v is not None})
    except ValueError as exc:
        raise ConfigError(f"invalid setting: {exc}") from exc


brokers_option = click.option(
    "--brokers", help="Kafka bootstrap servers [env NGINX_KPI_BROKERS; 127.0.0.1:19092]"
)
topic_option = click.option("--topic", help="Kafka topic [env NGINX_KPI_TOPIC; nginx-access]")
dsn_option = click.option("--dsn", help="PostgreSQL connection string [env NGINX_KPI_DSN]")
metrics_option = click.option(
    "--metrics-port", type=click.IntRange(1, 65535), help="serve Prometheus /metrics"
)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
    default="info",
    show_default=True,
)
def cli(log_level: str) -> None:
    """Web-traffic KPIs from nginx access logs: Fluent Bit -> Kafka -> nginx-kpi -> PostgreSQL."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@brokers_option
@topic_option
@click.option("--partitions", type=click.IntRange(1), help="partitions when the topic is created [3]")
@click.option(
    "--follow", is_flag=True, help="tail one growing file (rotation-safe), like Fluent Bit's tail input"
)
@click.option(
    "--position-file", type=click.Path(dir_okay=False, path_type=Path), help="where --follow resumes"
)
@click.option(
    "--parsers-file", type=click.Path(dir_okay=False, path_type=Path), help="Fluent Bit parsers.conf"
)
@click.option("--parser", "parser_name", default="nginx_main", show_default=True, help="parser name in it")
@metrics_option
def ship(
    sources: tuple[str, ...],
    brokers: str | None,
    topic: str | None,
    partitions: int | None,
    follow: bool,
    position_file: Path | None,
    parsers_file: Path | None,
    parser_name: str,
    metrics_port: int | None,
) -> None:
    """Send nginx log lines to Kafka as Fluent Bit records. SOURCES: files, globs, .gz, or - for stdin."""
    from nginx_kpi.parse import load_parser  # noqa: PLC0415 - keeps `--help` fast
    from nginx_kpi.ship import ShipOptions, Shipper  # noqa: PLC0415

    settings = _settings(brokers=brokers, topic=topic, partitions=partitions)
    parser = load_parser(parsers_file, parser_name)
    _serve_metrics(metrics_port)
    options = ShipOptions(
        settings.brokers, settings.topic, settings.partitions, follow=follow, position_file=position_file
    )
    shipper = Shipper(options, parser)
    with _stopping_on_signals(shipper.stop):
        stats = shipper.ship(list(sources))
    log.info("shipped %d lines from %d files (%.0f lines/s)", stats.lines, stats.files, stats.rate())


@cli.command()
@brokers_option
@topic_option
@click.option("--group", help="consumer group [env NGINX_KPI_GROUP; nginx-kpi]")
@dsn_option
@click.option("--batch-size", type=click.IntRange(1, 1_000_000), default=10_000, show_default=True)
@click.option("--until-idle", "--once", "until_idle", is_flag=True, help="exit once the topic is drained")
@metrics_option
def consume(
    brokers: str | None,
    topic: str | None,
    group: str | None,
    dsn: str | None,
    batch_size: int,
    until_idle: bool,
    metrics_port: int | None,
) -> None:
    """Count Kafka records into KPIs in PostgreSQL, exactly once."""
    from nginx_kpi.consumer import ConsumerOptions, KpiConsumer  # noqa: PLC0415

    s = _settings(brokers=brokers, topic=topic, group=group, dsn=dsn)
    _serve_metrics(metrics_port)
    options = ConsumerOptions(
        s.brokers, s.topic, s.group, s.dsn, batch_size=batch_size, until_idle=until_idle
    )
    consumer = KpiConsumer(options)
    with _stopping_on_signals(consumer.stop):
        consumer.run()


@cli.group()
def db() -> None:
    """The PostgreSQL schema."""


@db.command("init")
@dsn_option
def db_init(dsn: str | None) -> None:
    """Create the tables and views (idempotent)."""
    with store.connect(_settings(dsn=dsn).dsn) as conn:
        store.init_schema(conn)
    log.info("schema ready")


@db.command("reset")
@dsn_option
@click.option("--yes", is_flag=True, required=True, help="confirm: every KPI and offset is deleted")
def db_reset(dsn: str | None, yes: bool) -> None:
    """Delete every KPI, rejected record and stored offset (for demos and replays)."""
    del yes
    with store.connect(_settings(dsn=dsn).dsn) as conn:
        store.init_schema(conn)
        store.reset(conn)
    log.info("KPIs, rejected records and offsets deleted")


@cli.group()
def topic() -> None:
    """The Kafka topic."""


@topic.command("create")
@brokers_option
@topic_option
@click.option("--partitions", type=click.IntRange(1), help="number of partitions [3]")
def topic_create(brokers: str | None, topic: str | None, partitions: int | None) -> None:
    """Create the topic when it does not exist."""
    s = _settings(brokers=brokers, topic=topic, partitions=partitions)
    count = kafka.ensure_topic(s.brokers, s.topic, s.partitions)
    log.info("topic %s has %d partitions", s.topic, count)


@topic.command("delete")
@brokers_option
@topic_option
@click.option("--yes", is_flag=True, required=True, help="confirm: the topic's records are deleted")
def topic_delete(brokers: str | None, topic: str | None, yes: bool) -> None:
    """Delete the topic when it exists."""
    del yes
    s = _settings(brokers=brokers, topic=topic)
    if kafka.delete_topic(s.brokers, s.topic):
        log.info("deleted topic %s", s.topic)


@cli.command()
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--lines", type=click.IntRange(1), default=100_000, show_default=True)
@click.option("--start", type=click.DateTime(["%Y-%m-%dT%H:%M:%S", "%Y-%m-%d"]), help="first request, UTC")
@click.option("--hours", type=click.FloatRange(min=0, min_open=True), default=2.0, show_default=True)
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--malformed-ratio", type=click.FloatRange(0, 1), default=0.002, show_default=True)
@click.option("--utc-offset", "utc_offset", type=click.IntRange(-720, 840), default=0, help="minutes")
def generate(
    output: Path,
    lines: int,
    start: datetime | None,
    hours: float,
    seed: int,
    malformed_ratio: float,
    utc_offset: int,
) -> None:
    """Write a realistic nginx access log (`main` format) to OUTPUT (.gz compresses)."""
    from nginx_kpi.generate import LogSpec, write_log  # noqa: PLC0415

    spec = LogSpec(
        lines=lines,
        span=timedelta(hours=hours),
        seed=seed,
        malformed_ratio=malformed_ratio,
        utc_offset_minutes=utc_offset,
        **({"start": start.replace(tzinfo=UTC)} if start else {}),
    )
    try:
        written = write_log(spec, output)
    except OSError as exc:
        raise NginxKpiError(f"cannot write {output}: {exc.strerror}") from exc
    log.info("wrote %d lines to %s", written, output)


@cli.command()
@dsn_option
@click.option("--kpi", help="show only this KPI")
@click.option("--limit", type=click.IntRange(1), default=15, show_default=True, help="rows per KPI")
def report(dsn: str | None, kpi: str | None, limit: int) -> None:
    """Print the KPIs stored in PostgreSQL as tables."""
    from nginx_kpi.kpis import KPI_NAMES  # noqa: PLC0415
    from nginx_kpi.report import print_report  # noqa: PLC0415

    if kpi is not None and kpi not in KPI_NAMES:
        raise ConfigError(f"unknown KPI {kpi!r}; known: {', '.join(KPI_NAMES)}")
    with store.connect(_settings(dsn=dsn).dsn) as conn:
        store.init_schema(conn)
        print_report(conn, limit, kpi, Console())


@cli.group()
def stack() -> None:
    """A local Kafka broker and PostgreSQL server, without Docker (state in .stack/)."""


@stack.command("up")
@click.option("--timeout", type=click.FloatRange(1), default=180.0, show_default=True)
def stack_up(timeout: float) -> None:
    """Install what is missing, start Kafka and PostgreSQL, wait until they answer."""
    from nginx_kpi.localstack import LocalStack  # noqa: PLC0415

    s = LocalStack()
    s.up(timeout=timeout)
    click.echo(f"NGINX_KPI_BROKERS={s.kafka_bootstrap}\nNGINX_KPI_DSN={s.postgres_dsn}")


@stack.command("down")
@click.option("--clean", is_flag=True, help="also delete the data")
def stack_down(clean: bool) -> None:
    """Stop the local services."""
    from nginx_kpi.localstack import LocalStack  # noqa: PLC0415

    s = LocalStack()
    s.clean() if clean else s.down()


@stack.command("status")
def stack_status() -> None:
    """Say what runs."""
    from nginx_kpi.localstack import LocalStack  # noqa: PLC0415

    for name, state in LocalStack().status().items():
        click.echo(f"{name}: {state}")


cli.add_command(bench_command)


def _serve_metrics(port: int | None) -> None:
    if port is not None:
        from nginx_kpi.metrics import serve  # noqa: PLC0415

        serve(port)


@contextmanager
def _stopping_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """SIGINT/SIGTERM call `stop` (finish the current batch, then exit 0) instead of raising."""

    def handler(signum: int, _: object) -> None:
        log.info("received %s: finishing the current batch", signal.Signals(signum).name)
        stop()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run a command, printing errors as `nginx-kpi: error: ...` on one line."""
    try:
        cli.main(args=argv, prog_name="nginx-kpi", standalone_mode=False)
    except click.UsageError as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx else ""
        _fail(f"{exc.format_message()}{hint}", 2)
    except click.ClickException as exc:
        _fail(exc.format_message(), exc.exit_code)
    except click.Abort:
        _fail("aborted", 130)
    except NginxKpiError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except psycopg.Error as exc:
        _fail(f"PostgreSQL: {first_line(exc)}", 1)
    except Exception as exc:
        # A bug, not bad input: still one line for the user, the traceback for whoever debugs it.
        log.debug("unexpected error", exc_info=True)
        _fail(f"unexpected {type(exc).__name__}: {exc} (run with --log-level debug for details)", 1)


def _fail(message: str, code: int) -> None:
    print(f"nginx-kpi: error: {message}", file=sys.stderr)
    sys.exit(code)
