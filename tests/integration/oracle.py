"""Expected KPIs computed straight from a log file, without any of nginx-kpi's code.

Plain string splitting, which works on generated lines because nginx escapes every '"' inside fields.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path


def expected_kpis(log: Path) -> dict[tuple[str, str], int]:
    """{(kpi_key, kpi_value): vcount} that a correct pipeline stores for `log`."""
    counts: Counter[tuple[str, str]] = Counter()
    visitors: dict[str, set[str]] = {}
    for line in log.read_text(encoding="ascii").splitlines():
        request = _request_of(line)
        if isinstance(request, str):
            counts["rejected_lines", request] += 1
            continue
        when, remote, method, path, status, size = request
        minute, hour, day = (
            when.strftime("%Y-%m-%d %H:%M"),
            when.strftime("%Y-%m-%d %H"),
            when.strftime("%Y-%m-%d"),
        )
        for key, value, amount in (
            ("requests_per_minute", minute, 1),
            ("requests_per_hour", hour, 1),
            ("requests_per_day", day, 1),
            ("status_class_per_minute", f"{minute}|{status[0]}xx", 1),
            ("requests_by_status", status, 1),
            ("requests_by_method", method, 1),
            ("requests_by_path", path, 1),
            ("bytes_per_hour", hour, size),
        ):
            counts[key, value] += amount
        visitors.setdefault(day, set()).add(remote)
    for day, members in visitors.items():
        counts["unique_visitors_per_day", day] = len(members)
    return dict(counts)


def _request_of(line: str) -> tuple[datetime, str, str, str, str, int] | str:
    """The fields of a valid line, or the reason it is rejected."""
    if " [" not in line or '] "' not in line:
        return "unparsed"
    remote = line.split(" ", 1)[0]
    stamp = line.split(" [", 1)[1].split("] ", 1)[0]
    after_time = line.split('] "', 1)[1]
    request, rest = after_time.split('" ', 1)
    status, size = rest.split(" ")[:2]
    try:
        when = datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z").astimezone(UTC)
    except ValueError:
        return "bad_time"
    parts = request.split(" ")
    method = parts[0]
    path = parts[1].split("?", 1)[0] if len(parts) > 1 else "-"
    return when, remote, method, path, status, 0 if size == "-" else int(size)
