"""Tests for the synthetic nginx access-log generator."""

from __future__ import annotations

import gzip
import io
import ipaddress
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from nginx_kpi.generate import LogSpec, generate_lines, nginx_escape, write_log

# The recorded Fluent Bit parser (tests/fixtures/fluent-bit/parsers.conf), in Python's group syntax.
FLUENT_BIT = re.compile(
    r"^(?P<remote>[^ ]*) (?P<host>[^ ]*) (?P<user>[^ ]*) \[(?P<time>[^\]]*)\] "
    r'"(?P<method>\S+)(?: +(?P<path>[^\"]*?)(?: +\S*)?)?" (?P<code>[^ ]*) (?P<size>[^ ]*)'
    r'(?: "(?P<referer>[^\"]*)" "(?P<agent>[^\"]*)")?(?: "(?P<forwarded_for>[^\"]*)")?$'
)
# What a well-formed line of the `main` format must look like, field by field.
STRICT_MAIN = re.compile(
    r"^(?P<ip>[0-9a-f:.]+) - (?P<user>[^ \"]+) \[(?P<time>[^\]]+)\] "
    r'"(?P<method>[A-Z]+) (?P<target>/[^ "]*) (?P<proto>HTTP/1\.0|HTTP/1\.1|HTTP/2\.0)" '
    r'(?P<status>[1-5]\d\d) (?P<size>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)" "(?P<xff>[^"]*)"$'
)
TIME_FORMAT = "%d/%b/%Y:%H:%M:%S %z"
MALFORMED_KINDS = {"garbage", "bad_date", "tls", "dash", "combined"}


def parse_time(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, TIME_FORMAT)
    except ValueError:
        return None


def classify(line: str) -> str:
    """The kind of a generated line: "main" or one of MALFORMED_KINDS."""
    match = FLUENT_BIT.match(line)
    if match is None:
        return "garbage"
    # Like Fluent Bit (see kafka-messages.jsonl), the regex swallows the closing quote into the method here.
    if match["method"] == '-"':
        return "dash"
    if match["method"].startswith("\\x16\\x03"):
        return "tls"
    if parse_time(match["time"]) is None:
        return "bad_date"
    if match["forwarded_for"] is None:
        return "combined"
    return "main"


def line_times(lines: list[str]) -> list[datetime]:
    """Times of every line that has a valid one, in file order."""
    times = []
    for line in lines:
        match = FLUENT_BIT.match(line)
        parsed = parse_time(match["time"]) if match else None
        if parsed is not None:
            times.append(parsed)
    return times


@pytest.fixture(scope="module")
def default_lines() -> list[str]:
    return list(generate_lines(LogSpec(lines=50_000)))


def test_same_spec_gives_same_lines_and_other_seed_differs() -> None:
    spec = LogSpec(lines=3_000, seed=7)
    assert list(generate_lines(spec)) == list(generate_lines(spec))
    assert list(generate_lines(spec)) != list(generate_lines(LogSpec(lines=3_000, seed=8)))


@pytest.mark.parametrize("lines", [0, 1, 17, 8_192, 20_001])
def test_line_count_is_exact(lines: int) -> None:
    assert sum(1 for _ in generate_lines(LogSpec(lines=lines))) == lines
    assert write_log(LogSpec(lines=lines), io.StringIO()) == lines


def test_times_are_non_decreasing_and_within_span(default_lines: list[str]) -> None:
    spec = LogSpec()
    times = line_times(default_lines)
    assert times == sorted(times)
    assert spec.start <= times[0]
    assert times[-1] <= spec.start + spec.span
    # Spread over the span, and across midnight as the default is meant to be.
    assert times[-1] - times[0] > spec.span * 0.95
    assert {t.day for t in times} == {12, 13}


def test_traffic_varies_from_minute_to_minute(default_lines: list[str]) -> None:
    per_minute = Counter(t.replace(second=0) for t in line_times(default_lines))
    counts = sorted(per_minute.values())
    assert len(counts) == 121
    assert counts[-2] > 1.5 * counts[len(counts) // 2]


def test_long_span_and_zero_span() -> None:
    start = datetime(2024, 2, 28, 12, 0, tzinfo=UTC)
    week = line_times(list(generate_lines(LogSpec(lines=5_000, start=start, span=timedelta(days=7)))))
    assert week == sorted(week)
    assert start <= week[0] and week[-1] <= start + timedelta(days=7)
    assert len({t.date() for t in week}) == 8
    instant = line_times(list(generate_lines(LogSpec(lines=500, start=start, span=timedelta(0)))))
    assert set(instant) == {start}


@pytest.mark.parametrize(("offset", "zone"), [(120, "+0200"), (-330, "-0530"), (0, "+0000")])
def test_utc_offset_is_written_and_times_stay_correct(offset: int, zone: str) -> None:
    spec = LogSpec(lines=2_000, utc_offset_minutes=offset, malformed_ratio=0.0)
    lines = list(generate_lines(spec))
    assert all(f" {zone}] " in line for line in lines)
    times = line_times(lines)
    assert spec.start <= times[0] and times[-1] <= spec.start + spec.span
    assert times[0].utcoffset() == timedelta(minutes=offset)


def test_every_malformed_kind_appears_at_the_default_ratio() -> None:
    kinds = Counter(classify(line) for line in generate_lines(LogSpec(lines=20_000)))
    assert set(kinds) >= MALFORMED_KINDS


@pytest.mark.parametrize(("lines", "ratio"), [(50_000, 0.002), (20_000, 0.05), (5_000, 0.5)])
def test_malformed_share_is_close_to_the_ratio(lines: int, ratio: float) -> None:
    kinds = Counter(classify(line) for line in generate_lines(LogSpec(lines=lines, malformed_ratio=ratio)))
    share = (lines - kinds["main"]) / lines
    assert share == pytest.approx(ratio, rel=0.1)


def test_no_malformed_lines_at_ratio_zero() -> None:
    assert {classify(line) for line in generate_lines(LogSpec(lines=20_000, malformed_ratio=0.0))} == {"main"}


def test_main_lines_are_well_formed(default_lines: list[str]) -> None:
    for line in default_lines:
        if classify(line) == "main":
            match = STRICT_MAIN.match(line)
            assert match is not None, line
            ipaddress.ip_address(match["ip"])
            for address in match["xff"].split(", ") if match["xff"] != "-" else ():
                ipaddress.ip_address(address)


def test_lines_are_printable_ascii_without_raw_quotes_in_fields(default_lines: list[str]) -> None:
    for line in default_lines:
        assert line.isascii() and line.isprintable(), line
        assert "\n" not in line
    # A raw quote inside a field would shift the fields; STRICT_MAIN forbids quotes inside fields.
    assert any("\\x22" in line for line in default_lines)


def test_realistic_mix(default_lines: list[str]) -> None:
    fields = [m for line in default_lines if (m := STRICT_MAIN.match(line))]
    methods = Counter(m["method"] for m in fields)
    statuses = Counter(m["status"] for m in fields)
    ips = {m["ip"] for m in fields}
    assert methods.most_common(2)[0][0] == "GET" and methods["GET"] > 0.8 * len(fields)
    assert set(methods) >= {"POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"}
    assert statuses.most_common(1)[0][0] == "200"
    expected_statuses = {"304", "301", "302", "404", "400", "401", "403", "499", "500", "502", "503", "504"}
    assert set(statuses) >= expected_statuses
    assert {m["proto"] for m in fields} == {"HTTP/1.0", "HTTP/1.1", "HTTP/2.0"}
    assert len(ips) > 1_000
    assert 0.03 < sum(":" in m["ip"] for m in fields) / len(fields) < 0.25
    assert any(m["user"] != "-" for m in fields)
    assert {"-"} < {m["size"] for m in fields}
    assert any(m["referer"] != "-" for m in fields) and any(m["xff"] != "-" for m in fields)
    assert any("," in m["xff"] for m in fields)
    assert any("\\x" in m["target"] for m in fields) and any("?" in m["target"] for m in fields)
    assert any(m["target"] in ("/wp-login.php", "/.env") for m in fields)
    # nginx logs no body for 304 answers and HEAD requests.
    assert all(m["size"] in ("0", "-") for m in fields if m["status"] == "304" or m["method"] == "HEAD")


def test_write_log_to_stream_matches_generate_lines() -> None:
    spec = LogSpec(lines=10_000)
    out = io.StringIO()
    assert write_log(spec, out) == 10_000
    assert out.getvalue() == "".join(f"{line}\n" for line in generate_lines(spec))


def test_gzip_output_round_trips_and_is_reproducible(tmp_path: Path) -> None:
    spec = LogSpec(lines=10_000)
    first, second, plain = tmp_path / "a.log.gz", tmp_path / "b.log.gz", tmp_path / "a.log"
    assert write_log(spec, first) == 10_000
    write_log(spec, second)
    write_log(spec, plain)
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes()[:2] == b"\x1f\x8b"
    assert gzip.decompress(first.read_bytes()) == plain.read_bytes()
    assert plain.read_text(encoding="ascii").splitlines() == list(generate_lines(spec))


def test_empty_log(tmp_path: Path) -> None:
    path = tmp_path / "empty.log"
    assert write_log(LogSpec(lines=0), path) == 0
    assert path.read_bytes() == b""


def test_nginx_escape() -> None:
    assert nginx_escape('/caf\u00e9 "a\\b"\t\x7f~') == "/caf\\xC3\\xA9 \\x22a\\x5Cb\\x22\\x09\\x7F~"
    assert nginx_escape(b"\x16\x03\x01") == "\\x16\\x03\\x01"


@pytest.mark.parametrize(
    "changes",
    [
        {"lines": -1},
        {"start": datetime(2023, 8, 12)},
        {"span": timedelta(seconds=-1)},
        {"malformed_ratio": 1.5},
        {"utc_offset_minutes": 24 * 60},
    ],
)
def test_invalid_specs_are_rejected(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LogSpec(**changes)  # type: ignore[arg-type]
