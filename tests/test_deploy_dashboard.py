"""The Grafana dashboard loads, has its panels, and queries only metrics the code exports."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from pixelplan.distributed.metrics import METRICS, MetricsExporter

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana" / "pixelplan.json"
REQUIRED_PANELS = ("Env steps/s", "Episodes per minute", "Achievement rate", "Replay size",
                   "Replay insert/sample rate", "Learner updates/s", "Learner losses", "Weight lag",
                   "Planner batch size", "Planner latency p50/p99", "Worker liveness")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or",
             "unless", "atan2", "inf", "nan"}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers that are not functions, keywords or labels."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)  # string literals
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range selectors
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", expr)  # label lists
    expr = re.sub(r"\$\w+", "", expr)  # Grafana variables
    names = set()
    for match in re.finditer(r"(?<![\w.])([A-Za-z_:][A-Za-z0-9_:]*)(\s*\()?", expr):
        if not match[2] and match[1].lower() not in _KEYWORDS:
            names.add(match[1])
    return names


def exported_sample_names() -> set[str]:
    """What the exporter really serves: counters as <name>_total, histograms as _bucket/_sum/_count."""
    names = set()
    for family in MetricsExporter().registry.collect():
        if family.type == "counter":
            names.add(family.name + "_total")
        elif family.type == "histogram":
            names.update(family.name + suffix for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, PromQL) for every panel target and every variable's label_values() metric."""
    found = [(p["title"], t["expr"]) for p in dashboard["panels"] for t in p.get("targets", [])]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            match = re.fullmatch(r"label_values\((.+),\s*\w+\)", query)
            assert match, f"variable {var['name']}: expected label_values(METRIC, LABEL), got {query}"
            found.append((f"variable {var['name']}", match[1]))
    return found


def test_parser_finds_metric_names_and_nothing_else():
    expr = ('histogram_quantile(0.99, sum by (le, instance) (rate(pixelplan_planner_latency_seconds_bucket'
            '{sweep=~"$sweep", job="x"}[$__rate_interval]))) / on (instance) group_left foo:bar_total offset 5m '
            '> bool 1e3 and 60 * pixelplan_episodes_total')
    assert promql_metric_names(expr) == {"pixelplan_planner_latency_seconds_bucket", "foo:bar_total",
                                         "pixelplan_episodes_total"}


def test_dashboard_loads_with_its_panels(dashboard):
    titles = [p["title"] for p in dashboard["panels"]]
    assert dashboard["uid"] and len(set(titles)) == len(titles)
    for title in REQUIRED_PANELS:
        assert title in titles, f"missing panel {title!r}"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in dashboard["panels"]:
        assert set(panel["gridPos"]) == {"x", "y", "w", "h"} and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] != "row":
            assert panel["targets"], f"panel {panel['title']!r} queries nothing"
            assert all(promql_metric_names(t["expr"]) for t in panel["targets"]), panel["title"]
            assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def test_latency_panel_shows_p50_and_p99(dashboard):
    panel = next(p for p in dashboard["panels"] if p["title"] == "Planner latency p50/p99")
    exprs = " ".join(t["expr"] for t in panel["targets"])
    for q in ("0.5", "0.99"):
        assert f"histogram_quantile({q}, sum by (le" in exprs
    assert promql_metric_names(exprs) == {"pixelplan_planner_latency_seconds_bucket"}


def test_every_queried_metric_is_exported(dashboard):
    exported = exported_sample_names()
    for where, expr in queries(dashboard):
        unknown = promql_metric_names(expr) - exported
        assert not unknown, f"{where} queries {sorted(unknown)}, which distributed/metrics.py does not export"


def test_every_exported_metric_is_on_the_dashboard(dashboard):
    queried = set().union(*(promql_metric_names(expr) for _, expr in queries(dashboard)))
    for name, definition in METRICS.items():
        served = {name + "_bucket", name + "_sum", name + "_count"} if definition.kind == "histogram" else {name}
        assert served & queried, f"{name} is exported but no dashboard panel shows it"
