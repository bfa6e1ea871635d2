"""The KPIs, each declared once, and the pure step from a batch of requests to KPI deltas.

A batch is held as columns (one list per field) so that counting runs in C (`Counter` over a
column) rather than one Python call per KPI per request.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache
from itertools import groupby
from operator import itemgetter
from typing import Any

from nginx_kpi.record import Columns

REJECTED_LINES = "rejected_lines"
_MINUTES_PER_DAY = 1440


@lru_cache(maxsize=16_384)
def time_buckets(minute: int) -> tuple[str, str, str]:
    """UTC ('YYYY-MM-DD HH:MM', 'YYYY-MM-DD HH', 'YYYY-MM-DD') of a minute since the epoch."""
    t = time.gmtime(minute * 60)
    day = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    hour = f"{day} {t.tm_hour:02d}"
    return f"{hour}:{t.tm_min:02d}", hour, day


def _minute_label(minute: int) -> str:
    return time_buckets(minute)[0]


def _hour_label(minute: int) -> str:
    return time_buckets(minute)[1]


def _day_label(day: int) -> str:
    return time_buckets(day * _MINUTES_PER_DAY)[2]


def _status_class_label(key: tuple[int, str]) -> str:
    minute, status = key
    return f"{time_buckets(minute)[0]}|{status[0]}xx"


def _same(value: Any) -> str:
    return str(value)


def _minutes(c: Columns) -> list[int]:
    return c.minute


def _days(c: Columns) -> list[int]:
    return [m // _MINUTES_PER_DAY for m in c.minute]


@dataclass(frozen=True)
class Kpi:
    """A family of KPI rows: requests are grouped by `key_of(columns)`, each key named by `label`.

    `vcount` counts the requests of a group, sums `weight_of(columns)` over it, or, with
    `distinct_of`, counts the distinct members it holds.
    """

    name: str
    description: str
    key_of: Callable[[Columns], Iterable[Hashable]]
    label: Callable[[Any], str] = _same
    weight_of: Callable[[Columns], list[int]] | None = None
    distinct_of: Callable[[Columns], Iterable[str]] | None = None
    time_series: bool = False  # labels are time buckets: shown in time order rather than by count


KPIS: tuple[Kpi, ...] = (
    Kpi("requests_per_minute", "requests per UTC minute", _minutes, _minute_label, time_series=True),
    Kpi("requests_per_hour", "requests per UTC hour", _minutes, _hour_label, time_series=True),
    Kpi("requests_per_day", "requests per UTC day", _minutes, lambda m: time_buckets(m)[2], time_series=True),
    Kpi(
        "status_class_per_minute",
        "requests per UTC minute and status class",
        lambda c: zip(c.minute, c.status, strict=True),
        _status_class_label,
        time_series=True,
    ),
    Kpi("requests_by_status", "requests per HTTP status", lambda c: c.status),
    Kpi("requests_by_method", "requests per HTTP method", lambda c: c.method),
    Kpi("requests_by_path", "requests per path, query string removed", lambda c: c.path),
    Kpi(
        "bytes_per_hour",
        "response body bytes per UTC hour",
        _minutes,
        _hour_label,
        weight_of=lambda c: c.size,
        time_series=True,
    ),
    Kpi(
        "unique_visitors_per_day",
        "distinct client addresses per UTC day",
        _days,
        _day_label,
        distinct_of=lambda c: c.remote,
        time_series=True,
    ),
)
KPI_NAMES: tuple[str, ...] = (*(k.name for k in KPIS), REJECTED_LINES)


@dataclass
class KpiDeltas:
    """What a batch adds: counts per (kpi_key, kpi_value), and members of distinct-count KPIs."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    members: set[tuple[str, str, str]] = field(default_factory=set)


def kpi_deltas_for(columns: Columns, rejected_reasons: Iterable[str] = ()) -> KpiDeltas:
    """Aggregate a batch into deltas; distinct members are counted later, against what is stored."""
    deltas = KpiDeltas()
    counted: dict[int, Counter[Hashable]] = {}  # several KPIs group by the same column: count it once
    for kpi in KPIS:
        keys = kpi.key_of(columns)
        if kpi.distinct_of is not None:
            pairs = set(zip(keys, kpi.distinct_of(columns), strict=True))
            deltas.members.update((kpi.name, kpi.label(key), member) for key, member in pairs)
            continue
        if kpi.weight_of is not None:
            per_key = _weighted(keys, kpi.weight_of(columns))
        else:
            per_key = counted.get(id(keys)) or counted.setdefault(id(keys), Counter(keys))
        for key, n in per_key.items():
            deltas.counts[kpi.name, kpi.label(key)] += n
    deltas.counts.update((REJECTED_LINES, reason) for reason in rejected_reasons)
    return deltas


def _weighted(keys: Iterable[Hashable], weights: list[int]) -> Counter[Hashable]:
    sums: Counter[Hashable] = Counter()
    # Keys come in runs (a batch is in log order), so summing a run at a time stays in C.
    for key, run in groupby(zip(keys, weights, strict=True), key=itemgetter(0)):
        sums[key] += sum(map(itemgetter(1), run))  # a group of zero weights still gets its row
    return sums
