"""The KPIs, each declared once, and the pure step from a batch of requests to KPI deltas."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from nginx_kpi.record import Request

REJECTED_LINES = "rejected_lines"


@lru_cache(maxsize=16_384)
def time_buckets(minute: int) -> tuple[str, str, str]:
    """UTC ('YYYY-MM-DD HH:MM', 'YYYY-MM-DD HH', 'YYYY-MM-DD') of a minute since the epoch."""
    t = time.gmtime(minute * 60)
    day = f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}"
    hour = f"{day} {t.tm_hour:02d}"
    return f"{hour}:{t.tm_min:02d}", hour, day


def _minute(r: Request) -> str:
    return time_buckets(r.epoch // 60)[0]


def _hour(r: Request) -> str:
    return time_buckets(r.epoch // 60)[1]


def _day(r: Request) -> str:
    return time_buckets(r.epoch // 60)[2]


def _one(_: Request) -> int:
    return 1


@dataclass(frozen=True)
class Kpi:
    """A KPI row family: `kpi_value` is `value_of(request)`; `vcount` sums `amount_of(request)`.

    With `distinct_of`, `vcount` is instead the number of distinct `distinct_of(request)` per value.
    """

    name: str
    description: str
    value_of: Callable[[Request], str]
    amount_of: Callable[[Request], int] = _one
    distinct_of: Callable[[Request], str] | None = None
    time_series: bool = False  # values are time buckets: shown in time order rather than by count


KPIS: tuple[Kpi, ...] = (
    Kpi("requests_per_minute", "requests per UTC minute", _minute, time_series=True),
    Kpi("requests_per_hour", "requests per UTC hour", _hour, time_series=True),
    Kpi("requests_per_day", "requests per UTC day", _day, time_series=True),
    Kpi(
        "status_class_per_minute",
        "requests per UTC minute and status class",
        lambda r: f"{_minute(r)}|{r.status[0]}xx",
        time_series=True,
    ),
    Kpi("requests_by_status", "requests per HTTP status", lambda r: r.status),
    Kpi("requests_by_method", "requests per HTTP method", lambda r: r.method),
    Kpi("requests_by_path", "requests per path, query string removed", lambda r: r.path),
    Kpi(
        "bytes_per_hour",
        "response body bytes per UTC hour",
        _hour,
        amount_of=lambda r: r.size,
        time_series=True,
    ),
    Kpi(
        "unique_visitors_per_day",
        "distinct client addresses per UTC day",
        _day,
        distinct_of=lambda r: r.remote,
        time_series=True,
    ),
)
KPI_NAMES: tuple[str, ...] = (*(k.name for k in KPIS), REJECTED_LINES)


@dataclass
class KpiDeltas:
    """What a batch adds: counts per (kpi_key, kpi_value), and members of distinct-count KPIs."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    members: set[tuple[str, str, str]] = field(default_factory=set)


def kpi_deltas_for(requests: Iterable[Request], rejected_reasons: Iterable[str] = ()) -> KpiDeltas:
    """Aggregate a batch into deltas; distinct members are counted later, against what is stored."""
    deltas = KpiDeltas()
    counts, members = deltas.counts, deltas.members
    for r in requests:
        for kpi in KPIS:
            value = kpi.value_of(r)
            if kpi.distinct_of is None:
                counts[kpi.name, value] += kpi.amount_of(r)
            else:
                members.add((kpi.name, value, kpi.distinct_of(r)))
    for reason in rejected_reasons:
        counts[REJECTED_LINES, reason] += 1
    return deltas
