"""`nginx-kpi ship`: replay nginx log files into Kafka as exactly the records Fluent Bit would send."""

from __future__ import annotations

import glob
import gzip
import logging
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from confluent_kafka import KafkaError, Producer

from nginx_kpi import kafka
from nginx_kpi.errors import BrokerError, InputError
from nginx_kpi.metrics import SHIPPED_LINES
from nginx_kpi.parse import LineParser
from nginx_kpi.record import encode_record
from nginx_kpi.tail import FileTail, PositionFile, line_chunks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShipOptions:
    """What `nginx-kpi ship` was asked to do."""

    brokers: str
    topic: str
    partitions: int = 3
    follow: bool = False
    position_file: Path | None = None
    poll_interval: float = 0.2
    progress_every: float = 5.0


@dataclass
class ShipStats:
    """Lines shipped so far, and how fast."""

    lines: int = 0
    files: int = 0
    failed: int = 0
    started: float = field(default_factory=time.monotonic)
    last_report: float = field(default_factory=time.monotonic)

    def rate(self) -> float:
        """Lines per second since the start."""
        return self.lines / max(time.monotonic() - self.started, 1e-9)


# Fluent Bit's tail skips a line longer than Buffer_Max_Size (256k in deploy/fluent-bit) minus 2.
MAX_LINE_BYTES = 256 * 1024 - 2


def records_of(
    lines: Iterable[bytes],
    parser: LineParser,
    clock: Callable[[], float] = time.time,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[bytes]:
    """The Kafka record value of each line, as Fluent Bit's tail input and regex parser make it.

    Unlike Fluent Bit, a line over `max_line_bytes` is not dropped: its start is sent as unparsed,
    so the consumer rejects it visibly.
    """
    for raw in lines:
        if len(raw) > max_line_bytes:
            yield encode_record(None, raw[:max_line_bytes].decode("utf-8", "surrogateescape"), clock)
            continue
        # Fluent Bit strips one CR before parsing, but an unparsed line is sent with it.
        stripped = raw[:-1] if len(raw) > 1 and raw[-1] == 13 else raw
        line = stripped.decode("utf-8", "surrogateescape")
        parsed = parser.parse(line)
        if parsed is None and stripped is not raw:
            line = raw.decode("utf-8", "surrogateescape")
        yield encode_record(parsed, line, clock)


def expand_sources(sources: list[str]) -> list[str]:
    """Files named, glob matches sorted, and `-` for stdin; a missing file is an error."""
    expanded: list[str] = []
    for source in sources:
        if source == "-" or Path(source).exists():
            expanded.append(source)
            continue
        matches = sorted(glob.glob(source))
        if not matches:
            raise InputError(f"no such file: {source}")
        expanded.extend(matches)
    return expanded


class Shipper:
    """Produces records to Kafka, counting lines and failing loudly if any record is not delivered."""

    def __init__(self, options: ShipOptions, parser: LineParser) -> None:
        self.options = options
        self.parser = parser
        self.stats = ShipStats()
        self.stopping = False
        kafka.ensure_topic(options.brokers, options.topic, options.partitions)
        self._errors: list[str] = []
        self.producer: Producer = kafka.new_producer(options.brokers, self._on_delivery)

    def ship(self, sources: list[str]) -> ShipStats:
        """Ship every source once, or follow the single source when `follow` is set."""
        paths = expand_sources(sources)
        if self.options.follow:
            if len(paths) != 1 or paths[0] == "-":
                raise InputError("--follow takes exactly one file")
            self._follow(Path(paths[0]))
        else:
            for path in paths:
                self._ship_all(path)
                self.stats.files += 1
        self._flush()
        return self.stats

    def stop(self) -> None:
        """Stop after the current chunk (its position is saved once delivered)."""
        self.stopping = True

    def _ship_all(self, source: str) -> None:
        with _open_source(source) as f:
            # final=True: Fluent Bit would wait forever for a last line's newline; a replay sends it.
            for lines, _ in line_chunks(f, final=True):
                if self.stopping:
                    break
                self._produce(lines)

    def _follow(self, path: Path) -> None:
        positions = PositionFile(self.options.position_file or path.with_name(path.name + ".nginx-kpi.pos"))
        tail = FileTail(path, positions.load(), self.options.poll_interval, lambda: self.stopping)
        for lines, position in tail.chunks():
            self._produce(lines)
            self._flush()  # delivered before the position moves past them: no gap after a crash
            positions.save(position)

    def _produce(self, lines: list[bytes]) -> None:
        produce, topic = self.producer.produce, self.options.topic
        for value in records_of(lines, self.parser):
            while True:
                try:
                    produce(topic, value)
                    break
                except BufferError:
                    self.producer.poll(0.05)  # queue full: let librdkafka send
        self.producer.poll(0)
        self.stats.lines += len(lines)
        SHIPPED_LINES.inc(len(lines))
        self._report_progress()

    def _flush(self) -> None:
        while self.producer.flush(1.0):
            log.info("waiting for Kafka to acknowledge %d records", len(self.producer))
        if self._errors:
            raise BrokerError(
                f"{len(self._errors)} records were not delivered; first error: {self._errors[0]}"
            )

    def _on_delivery(self, err: KafkaError | None, _: object) -> None:
        if err is not None:
            self._errors.append(err.str())

    def _report_progress(self) -> None:
        now = time.monotonic()
        if now - self.stats.last_report >= self.options.progress_every:
            self.stats.last_report = now
            log.info("shipped %d lines (%.0f lines/s)", self.stats.lines, self.stats.rate())


def _open_source(source: str) -> BinaryIO:
    try:
        if source == "-":
            return sys.stdin.buffer
        if source.endswith(".gz"):
            return gzip.open(source, "rb")  # type: ignore[return-value]
        return open(source, "rb")
    except OSError as exc:
        raise InputError(f"cannot read {source}: {exc.strerror}") from exc
