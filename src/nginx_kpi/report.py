"""`nginx-kpi report`: the stored KPIs as terminal tables, one per KPI declaration."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
from rich.console import Console
from rich.table import Table
from rich.text import Text

from nginx_kpi.kpis import KPIS, REJECTED_LINES, Kpi


@dataclass(frozen=True)
class Summary:
    """General statistics first, as GoAccess shows them."""

    requests: int
    rejected: int
    bytes: int
    first_minute: str | None
    last_minute: str | None


def summary(conn: psycopg.Connection[tuple[object, ...]]) -> Summary:
    """Totals over every stored KPI row."""
    row = conn.execute(
        """SELECT
             coalesce(sum(vcount) FILTER (WHERE kpi_key = 'requests_per_day'), 0),
             coalesce(sum(vcount) FILTER (WHERE kpi_key = %s), 0),
             coalesce(sum(vcount) FILTER (WHERE kpi_key = 'bytes_per_hour'), 0),
             min(kpi_value) FILTER (WHERE kpi_key = 'requests_per_minute'),
             max(kpi_value) FILTER (WHERE kpi_key = 'requests_per_minute')
           FROM kpis""",
        (REJECTED_LINES,),
    ).fetchone()
    assert row is not None
    requests, rejected, nbytes, first, last = row
    return Summary(int(requests), int(rejected), int(nbytes), first, last)  # type: ignore[call-overload, arg-type]


def kpi_rows(
    conn: psycopg.Connection[tuple[object, ...]], kpi: Kpi | str, limit: int
) -> list[tuple[str, int]]:
    """Rows of one KPI: the latest buckets of a time series, else the largest counts."""
    name = kpi if isinstance(kpi, str) else kpi.name
    time_series = not isinstance(kpi, str) and kpi.time_series
    order = "kpi_value DESC" if time_series else "vcount DESC, kpi_value"
    rows = conn.execute(
        f"SELECT kpi_value, vcount FROM kpis WHERE kpi_key = %s ORDER BY {order} LIMIT %s",  # noqa: S608 - fixed strings
        (name, limit),
    ).fetchall()
    pairs = [(str(v), int(c)) for v, c in rows]  # type: ignore[call-overload]
    return sorted(pairs) if time_series else pairs


def print_report(
    conn: psycopg.Connection[tuple[object, ...]], limit: int, only: str | None, console: Console
) -> None:
    """Print the summary and a table per KPI (or only the one named)."""
    s = summary(conn)
    if only is None:
        console.print(
            f"[bold]requests[/] {s.requests:,}   [bold]rejected lines[/] {s.rejected:,}   "
            f"[bold]bytes[/] {s.bytes:,}   "
            f"[bold]from[/] {s.first_minute or '-'} [bold]to[/] {s.last_minute or '-'} UTC"
        )
    targets: list[Kpi | str] = [*KPIS, REJECTED_LINES]
    for kpi in targets:
        name = kpi if isinstance(kpi, str) else kpi.name
        if only is not None and name != only:
            continue
        rows = kpi_rows(conn, kpi, limit)
        description = "" if isinstance(kpi, str) else f" — {kpi.description}"
        table = Table(title=f"{name}{description}", title_justify="left", show_edge=False, min_width=60)
        table.add_column("kpi_value", overflow="fold")
        table.add_column("vcount", justify="right")
        for value, count in rows:
            table.add_row(Text(value), f"{count:,}")  # Text: a path is not markup
        console.print(table)
