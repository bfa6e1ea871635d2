"""Smoke test of `nginx-kpi bench` on a tiny log: all eight parts run and report numbers, no timings."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from nginx_kpi.bench_parts import compare_totals
from nginx_kpi.localstack import LocalStack

PARTS = {"raw_consume", "consume", "naive", "ship", "end_to_end", "goaccess", "memory", "freshness"}


def _positive(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and value > 0


def test_bench_smoke_reports_all_eight_parts(stack: LocalStack, tmp_path: Path) -> None:
    results = tmp_path / "results"
    args = ["--lines", "3000", "--naive-subset", "300", "--freshness-seconds", "3", "--freshness-rate", "500"]
    args += ["--results-dir", str(results), "--work-dir", str(tmp_path / "work")]
    done = subprocess.run(
        [sys.executable, "-m", "nginx_kpi", "bench", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    result = json.loads((results / "latest.json").read_text())
    assert set(result["parts"]) == PARTS
    assert result["lines"] == 3000 and result["partitions"] == 3 and result["skipped"] == []
    assert list(results.glob("*-3000.json"))
    p = result["parts"]
    assert _positive(p["raw_consume"]["records_per_s"]) and len(p["raw_consume"]["runs"]) == 2
    assert _positive(p["consume"]["records_per_s"]) and _positive(p["consume"]["ratio_to_raw"])
    assert p["naive"]["records"] == 300 and p["naive"]["kpis_match"] is True
    assert _positive(p["naive"]["records_per_s"]) and _positive(p["naive"]["nginx_kpi_speedup"])
    assert _positive(p["ship"]["lines_per_s"]) and _positive(p["end_to_end"]["seconds"])
    assert _positive(p["goaccess"]["seconds"]) and _positive(p["goaccess"]["ratio_e2e_to_goaccess"])
    # The generated file's totals are exact: both tools must agree with it, line kind by line kind.
    rows = p["goaccess"]["comparison"]["rows"]
    assert [r["goaccess"] == r["nginx_kpi"] == r["from_file"] for r in rows] == [True] * 3
    assert rows[0]["nginx_kpi"] + rows[1]["nginx_kpi"] == 3000
    assert _positive(p["memory"]["consumer_rss_mb"]) and _positive(p["memory"]["shipper_rss_mb"])
    fresh = p["freshness"]
    assert fresh["lines"] == 1500 and 0 <= fresh["p50_s"] <= fresh["p99_s"] <= fresh["max_s"]

    assert [row["part"][:2] for row in result["table"]] == [f"{i}." for i in range(1, 9)]
    assert {row["verdict"] for row in result["table"]} <= {"met", "not met", "n/a"}
    markdown = (results / "latest.md").read_text()
    assert "8. Freshness" in markdown and "GoAccess vs nginx-kpi totals" in markdown
    assert "8. Freshness" in done.stdout


def test_goaccess_gap_is_explained_by_the_line_kinds_that_cause_it() -> None:
    kinds = Counter({"regular": 900, "tls": 40, "dash": 30, "unparsable": 20, "bad_date": 10})
    goaccess = {"valid_requests": 900, "failed_requests": 100, "bandwidth": 5}
    totals = {"requests_per_day": 970, "rejected_lines": 30, "bytes_per_hour": 5}
    comparison = compare_totals(goaccess, totals, kinds, file_bytes=5)
    explanation = comparison["explanation"]
    assert "GoAccess -70" in explanation and "GoAccess +70" in explanation
    assert "TLS-handshake requests" in explanation and '"-" requests' in explanation
    assert [r["equal"] for r in comparison["rows"]] == [False, False, True]
