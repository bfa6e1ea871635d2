"""`nginx-kpi bench`: the pipeline measured against a raw consumer, a naive consumer and GoAccess.

One command starts the local stack, generates the log, runs the eight parts (bench_parts.py) and
prints one table, saved as JSON and Markdown under benchmarks/results/.
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

import click
import confluent_kafka
import psycopg
from rich.console import Console
from rich.table import Table

from nginx_kpi import bench_parts as bp
from nginx_kpi.bench_parts import Json

T = TypeVar("T")

PARTS = ("raw", "consume", "naive", "ship", "e2e", "goaccess", "memory", "freshness")
ONE_MILLION, TEN_MILLION = 1_000_000, 10_000_000
CONSUME_MIN_RATE, CONSUME_MIN_RATIO = 250_000, 0.5
SHIP_MIN_RATE = 150_000
E2E_MAX_RATIO = 0.2  # end to end at least 5x faster than GoAccess
RSS_MAX_MB = 200
RSS_SAME_MB = 20  # "the same at 1M and 10M": within 20 MB or 10%
FRESHNESS_MAX_P99 = 2.0


def _repo_root() -> Path:
    here = Path(__file__).resolve()
    for candidate in (*here.parents, Path.cwd()):
        if (candidate / "deploy/local/kafka/pom.xml").is_file():
            return candidate
    return Path.cwd()


@click.command("bench")
@click.option("--lines", type=click.IntRange(1), default=ONE_MILLION, show_default=True, help="log size")
@click.option("--ten-million", is_flag=True, help="shortcut for --lines 10000000")
@click.option(
    "--naive-subset", type=click.IntRange(1), default=20_000, show_default=True, help="naive baseline records"
)
@click.option("--freshness-seconds", type=click.FloatRange(1), default=60.0, show_default=True)
@click.option("--freshness-rate", type=click.IntRange(1), default=5_000, show_default=True, help="lines/s")
@click.option(
    "--skip",
    type=click.Choice(PARTS),
    multiple=True,
    help="leave a part out (repeatable; parts that need the shipped topic still ship it)",
)
@click.option("--keep", is_flag=True, help="keep the benchmark's topics and databases")
@click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), help="[benchmarks/work]")
@click.option("--results-dir", type=click.Path(file_okay=False, path_type=Path), help="[benchmarks/results]")
def bench_command(
    lines: int,
    ten_million: bool,
    naive_subset: int,
    freshness_seconds: float,
    freshness_rate: int,
    skip: tuple[str, ...],
    keep: bool,
    work_dir: Path | None,
    results_dir: Path | None,
) -> None:
    """Benchmark ship, consume, end to end, memory and freshness on the local stack; save the results."""
    from nginx_kpi.localstack import LocalStack  # noqa: PLC0415

    lines = TEN_MILLION if ten_million else lines
    root = _repo_root()
    work = (work_dir or root / "benchmarks" / "work").resolve()
    results_dir = (results_dir or root / "benchmarks" / "results").resolve()
    work.mkdir(parents=True, exist_ok=True)
    err = Console(stderr=True)
    started = datetime.now(UTC)
    step = _stepper(err)

    stack = LocalStack()
    step("starting the local stack", lambda: stack.up(timeout=300))
    lab = bp.Lab(stack.kafka_bootstrap, stack.postgres_dsn, work)
    parts: dict[str, Json] = {}
    try:
        log = step(f"generating {lines:,} lines", lambda: bp.log_file(work, lines))
        topic = ""
        if {"ship", "raw", "consume", "naive", "memory"} - set(skip):
            parts["ship"], topic = step("4. ship", lambda: bp.ship_part(lab, log, lines))
        if "raw" not in skip:
            parts["raw_consume"] = step("1. raw consume", lambda: bp.raw_consume_part(lab, topic, lines))
        consume_dsn = e2e_dsn = ""
        if {"consume", "memory"} - set(skip):
            parts["consume"], consume_dsn = step("2. consume", lambda: bp.consume_part(lab, topic, lines))
        if "naive" not in skip:
            subset = min(naive_subset, lines)
            parts["naive"] = step(f"3. naive on {subset:,}", lambda: bp.naive_part(lab, topic, subset))
        if "e2e" not in skip:
            parts["end_to_end"], e2e_dsn = step("5. end to end", lambda: bp.end_to_end_part(lab, log, lines))
        if "goaccess" not in skip:
            parts["goaccess"] = step(
                "6. GoAccess", lambda: _goaccess(lab, log, lines, e2e_dsn or consume_dsn)
            )
        if "freshness" not in skip:
            parts["freshness"] = step(
                f"8. freshness ({freshness_rate:,} lines/s for {freshness_seconds:g} s)",
                lambda: bp.freshness_part(lab, freshness_seconds, freshness_rate),
            )
    finally:
        if not keep:
            lab.cleanup()
    if "memory" not in skip:
        parts["memory"] = _memory(parts, lines, results_dir)
    result = {
        "started_utc": started.isoformat(timespec="seconds"),
        "lines": lines,
        "partitions": bp.PARTITIONS,
        "naive_subset": min(naive_subset, lines),
        "machine": _machine(root, stack.postgres_dsn, parts),
        "skipped": sorted(set(skip) - _ran(parts)),
        "parts": parts,
    }
    _derive_ratios(parts)
    result["table"] = table_rows(result)
    paths = save(result, results_dir, started)
    out = Console()
    out = out if out.is_terminal else Console(width=200)  # a log file gets the wide table
    out.print(_rich_table(result))
    if "goaccess" in parts and "comparison" in parts["goaccess"]:
        out.print(_comparison_table(parts["goaccess"]["comparison"]))
    err.print(f"saved {', '.join(str(p) for p in paths)}")


def _stepper(err: Console) -> Callable[[str, Callable[[], T]], T]:
    def step(what: str, action: Callable[[], T]) -> T:
        err.print(f"[dim]{datetime.now().strftime('%H:%M:%S')}[/dim] {what}...")
        return action()

    return step


def _ran(parts: dict[str, Json]) -> set[str]:
    keys = {"raw_consume": "raw", "end_to_end": "e2e"}
    return {keys.get(k, k) for k in parts}


def _goaccess(lab: bp.Lab, log: Path, lines: int, dsn: str) -> Json:
    """GoAccess's run, and its totals compared with nginx-kpi's and with the file's content."""
    figures = bp.goaccess_part(lab, log, lines)
    if dsn:
        kinds, file_bytes = bp.classify_log(log)
        figures["comparison"] = bp.compare_totals(figures, bp.kpi_totals(dsn), kinds, file_bytes)
    return figures


def _memory(parts: dict[str, Json], lines: int, results_dir: Path) -> Json:
    """Peak RSS of the consumer and the shipper at this size, and at the other size from an earlier run."""
    memory: Json = {
        "lines": lines,
        "consumer_rss_mb": parts.get("consume", {}).get("rss_mb"),
        "shipper_rss_mb": parts.get("ship", {}).get("rss_mb"),
        "other": None,
    }
    other = {ONE_MILLION: TEN_MILLION, TEN_MILLION: ONE_MILLION}.get(lines)
    earlier = sorted(results_dir.glob(f"*-{other}.json")) if other else []
    for path in reversed(earlier):
        previous = json.loads(path.read_text()).get("parts", {}).get("memory") or {}
        if previous.get("consumer_rss_mb") is not None:
            memory["other"] = {**{k: v for k, v in previous.items() if k != "other"}, "file": path.name}
            break
    return memory


def _machine(root: Path, dsn: str, parts: dict[str, Json]) -> Json:
    """What the figures were measured on."""
    pom = (root / "deploy/local/kafka/pom.xml").read_text() if (root / "deploy").is_dir() else ""
    kafka = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SHOW server_version").fetchone()
    cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text(errors="replace"))
    return {
        "cores": os.cpu_count(),
        "cpu": cpu[1].strip() if cpu else platform.processor(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "kafka": kafka[1] if kafka else "?",
        "librdkafka": confluent_kafka.libversion()[0],
        "postgresql": str(row[0]).split()[0] if row else "?",
        "goaccess": parts.get("goaccess", {}).get("version"),
        "git_commit": _git_commit(root),
    }


def _git_commit(root: Path) -> str:
    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, check=False)
        return done.stdout.strip()

    commit = git("rev-parse", "--short=12", "HEAD") or "unknown"
    return commit + ("-dirty" if git("status", "--porcelain", "--untracked-files=no") else "")


# ---------------------------------------------------------------------------------------------------------
# The table


def _derive_ratios(p: dict[str, Json]) -> None:
    """The ratios between parts, stored with the part they qualify."""
    if "consume" in p and "raw_consume" in p:
        p["consume"]["ratio_to_raw"] = p["consume"]["records_per_s"] / p["raw_consume"]["records_per_s"]
    if "naive" in p and "consume" in p:
        p["naive"]["nginx_kpi_speedup"] = p["consume"]["records_per_s"] / p["naive"]["records_per_s"]
    if "goaccess" in p and "end_to_end" in p:
        p["goaccess"]["ratio_e2e_to_goaccess"] = p["end_to_end"]["seconds"] / p["goaccess"]["seconds"]


def _n(x: float | None) -> str:
    return "n/a" if x is None else f"{x:,.0f}"


def _per_s(x: float | None) -> str:
    return "n/a (one batch)" if x is None else f"{x:,.0f}/s"


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "met" if ok else "not met"


def _row(part: str, figure: str, target: str, ok: bool | None, notes: str) -> dict[str, str]:
    return {"part": part, "figure": figure, "target": target, "verdict": _verdict(ok), "notes": notes}


def table_rows(result: Json) -> list[dict[str, str]]:
    """One row per part: part, figure, target, verdict (met / not met / n/a), notes."""
    p = result["parts"]
    builders = (
        ("1. Ceiling: raw consume", "raw_consume", _raw_row),
        ("2. nginx-kpi consume", "consume", _consume_row),
        ("3. Naive baseline", "naive", _naive_row),
        ("4. ship", "ship", _ship_row),
        ("5. End to end", "end_to_end", _e2e_row),
        ("6. Peer: GoAccess", "goaccess", _goaccess_row),
        ("7. Memory (peak RSS)", "memory", _memory_row),
        ("8. Freshness", "freshness", _freshness_row),
    )
    rows = []
    for title, key, build in builders:
        if key in p:
            rows.append(build(title, p, result))
        else:
            rows.append(_row(title, "skipped", "", None, ""))
    return rows


def _raw_row(title: str, p: Json, r: Json) -> dict[str, str]:
    raw = p["raw_consume"]
    runs = "; ".join(f"{name} {_n(run['records_per_s'])}/s" for name, run in raw["runs"].items())
    notes = (
        f"plain confluent-kafka consumer doing nothing, {r['partitions']} partitions, process wall time "
        f"{raw['seconds']:.2f} s, steady {_per_s(raw['steady_records_per_s'])}; the faster of: {runs}"
    )
    return _row(title, f"{_n(raw['records_per_s'])} records/s", "(reference)", None, notes)


def _consume_row(title: str, p: Json, r: Json) -> dict[str, str]:
    c = p["consume"]
    ratio = c.get("ratio_to_raw")
    figure = f"{_n(c['records_per_s'])} records/s" + (f", {ratio:.0%} of raw" if ratio is not None else "")
    ok = c["records_per_s"] >= CONSUME_MIN_RATE and (ratio is None or ratio >= CONSUME_MIN_RATIO)
    notes = (
        f"consume --until-idle, exactly once into PostgreSQL, process wall time {c['seconds']:.2f} s; "
        f"steady {_per_s(c['steady_records_per_s'])} (first to last committed batch)"
    )
    return _row(
        title, figure, f">= {CONSUME_MIN_RATIO:.0%} of raw and >= {_n(CONSUME_MIN_RATE)}/s", ok, notes
    )


def _naive_row(title: str, p: Json, r: Json) -> dict[str, str]:
    naive = p["naive"]
    speedup = naive.get("nginx_kpi_speedup")
    figure = f"{_n(naive['records_per_s'])} records/s" + (f"; nginx-kpi {speedup:,.0f}x" if speedup else "")
    check = (
        "its KPIs equal nginx-kpi's on the same records"
        if naive["kpis_match"]
        else f"its KPIs DIFFER from nginx-kpi's on {naive['differing_rows']} rows: baseline invalid"
    )
    notes = f"{_n(naive['records'])} records, one autocommitted upsert per KPI per record; {check}"
    return _row(title, figure, "", None, notes)


def _ship_row(title: str, p: Json, r: Json) -> dict[str, str]:
    s = p["ship"]
    notes = f"parse + produce of the {_n(s['lines'])}-line file, process wall time {s['seconds']:.2f} s"
    return _row(
        title,
        f"{_n(s['lines_per_s'])} lines/s",
        f">= {_n(SHIP_MIN_RATE)}/s",
        s["lines_per_s"] >= SHIP_MIN_RATE,
        notes,
    )


def _e2e_row(title: str, p: Json, r: Json) -> dict[str, str]:
    e = p["end_to_end"]
    notes = (
        f"consume started, then ship; from ship start until all lines are counted in PostgreSQL "
        f"({_n(e['lines_per_s'])} lines/s)"
    )
    return _row(title, f"{e['seconds']:.2f} s", "see 6", None, notes)


def _goaccess_row(title: str, p: Json, r: Json) -> dict[str, str]:
    g = p["goaccess"]
    ratio = g.get("ratio_e2e_to_goaccess")
    figure = f"{g['seconds']:.2f} s"
    if ratio:
        faster = f"{1 / ratio:.1f}x faster" if ratio < 1 else f"{ratio:.1f}x slower"
        figure += f"; nginx-kpi e2e / GoAccess = {ratio:.2f} ({faster})"
    comparison = g.get("comparison")
    totals = "totals equal" if comparison and all(x["equal"] for x in comparison["rows"]) else "totals differ"
    notes = f"GoAccess {g['version']}, COMBINED, JSON output; {totals} (see below)" if comparison else ""
    target = f"nginx-kpi e2e <= {E2E_MAX_RATIO:g}x GoAccess"
    return _row(title, figure, target, None if ratio is None else ratio <= E2E_MAX_RATIO, notes)


def _memory_row(title: str, p: Json, r: Json) -> dict[str, str]:
    m = p["memory"]
    here = _sizes(m)
    other = m.get("other")
    figure = here + (f"; {_sizes(other)}" if other else "")
    consumer = m.get("consumer_rss_mb")
    ok: bool | None = None if consumer is None else consumer <= RSS_MAX_MB
    notes = "exact peak RSS of the processes (wait4)"
    if ok and other:
        flat = abs(consumer - other["consumer_rss_mb"]) <= max(RSS_SAME_MB, 0.1 * consumer)
        ok = flat
        notes += (
            "; consumer " + ("flat" if flat else "NOT flat") + f" between the sizes (from {other['file']})"
        )
    elif ok:
        ok = None
        notes += "; needs a run at the other size (1M / 10M) to judge 'the same at both'"
    return _row(title, figure, f"consumer <= {RSS_MAX_MB} MB, same at 1M and 10M", ok, notes)


def _sizes(m: Json) -> str:
    def mb(x: float | None) -> str:
        return "-" if x is None else f"{x:.0f} MB"

    return f"{_short(m['lines'])}: consumer {mb(m['consumer_rss_mb'])}, shipper {mb(m['shipper_rss_mb'])}"


def _short(lines: int) -> str:
    return f"{lines // ONE_MILLION}M" if lines % ONE_MILLION == 0 else f"{lines:,}"


def _freshness_row(title: str, p: Json, r: Json) -> dict[str, str]:
    f = p["freshness"]
    figure = f"p50 {f['p50_s']:.2f} s, p99 {f['p99_s']:.2f} s, max {f['max_s']:.2f} s"
    notes = (
        f"{_n(f['lines'])} lines written at {_n(f['achieved_rate'])} lines/s for {f['seconds']:g} s "
        "to a file followed by ship --follow; counted total polled every 20 ms"
    )
    return _row(title, figure, f"p99 <= {FRESHNESS_MAX_P99:g} s", f["p99_s"] <= FRESHNESS_MAX_P99, notes)


def _header(result: Json) -> str:
    m = result["machine"]
    return (
        f"nginx-kpi bench, {result['lines']:,} lines, topic with {result['partitions']} partitions - "
        f"{result['started_utc']} - {m['cores']} cores ({m['cpu']}), Python {m['python']}, "
        f"Kafka {m['kafka']}, PostgreSQL {m['postgresql']}, GoAccess {m['goaccess'] or '-'}, "
        f"commit {m['git_commit']}"
    )


def _rich_table(result: Json) -> Table:
    table = Table(title=_header(result), show_lines=True)
    for column in ("part", "figure", "target", "verdict", "notes"):
        table.add_column(column, overflow="fold", ratio=3 if column == "notes" else None)
    styles = {"met": "green", "not met": "red", "n/a": "dim"}
    for row in result["table"]:
        verdict = f"[{styles[row['verdict']]}]{row['verdict']}[/]"
        table.add_row(row["part"], row["figure"], row["target"], verdict, row["notes"])
    return table


def _comparison_table(comparison: Json) -> Table:
    table = Table(title="GoAccess vs nginx-kpi totals", caption=comparison["explanation"])
    for column in ("total", "GoAccess", "nginx-kpi", "from the file", "equal"):
        table.add_column(column, justify="left" if column == "total" else "right")
    for row in comparison["rows"]:
        numbers = (_n(row["goaccess"]), _n(row["nginx_kpi"]), _n(row["from_file"]))
        table.add_row(row["total"], *numbers, "yes" if row["equal"] else "NO")
    return table


def markdown(result: Json) -> str:
    """The results as a Markdown page."""
    out = [
        f"# {_header(result)}",
        "",
        "| part | figure | target | verdict | notes |",
        "|---|---|---|---|---|",
    ]
    out += [
        f"| {r['part']} | {r['figure']} | {r['target']} | {r['verdict']} | {r['notes']} |"
        for r in result["table"]
    ]
    comparison = result["parts"].get("goaccess", {}).get("comparison")
    if comparison:
        out += ["", "## GoAccess vs nginx-kpi totals", "", "| total | GoAccess | nginx-kpi | from the file |"]
        out.append("|---|---:|---:|---:|")
        for row in comparison["rows"]:
            numbers = " | ".join(_n(row[k]) for k in ("goaccess", "nginx_kpi", "from_file"))
            out.append(f"| {row['total']} | {numbers} |")
        out += ["", comparison["explanation"]]
        out += ["", f"GoAccess command: `{result['parts']['goaccess']['command']}`"]
    return "\n".join(out).replace("<=", "≤").replace(">=", "≥") + "\n"


def save(result: Json, results_dir: Path, started: datetime) -> list[Path]:
    """latest.json, latest.md, and a timestamped copy of the JSON."""
    results_dir.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2, sort_keys=False) + "\n"
    stamped = results_dir / f"{started.strftime('%Y%m%dT%H%M%SZ')}-{result['lines']}.json"
    paths = [results_dir / "latest.json", results_dir / "latest.md", stamped]
    paths[0].write_text(text)
    paths[1].write_text(markdown(result))
    paths[2].write_text(text)
    return paths
