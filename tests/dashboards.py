"""The Grafana dashboard's PromQL against a real Prometheus text scrape: every selector of every panel's query
must match series the scrape holds (its metric name and label matchers), and every label a query groups by must
be on those series, so that no panel of docker/grafana/dashboards/ is empty or misnamed."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser as promql
from prometheus_client.parser import text_string_to_metric_families

Series = tuple[str, dict[str, str]]


def series(scrape: str) -> list[Series]:
    return [(s.name, dict(s.labels)) for family in text_string_to_metric_families(scrape) for s in family.samples]


def queries(dashboard: Path) -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel."""
    panels = json.loads(dashboard.read_text())["panels"]
    return [(p["title"], t["expr"]) for p in panels for t in p.get("targets", [])]


def _walk(node: Any) -> Iterator[Any]:
    yield node
    children: list[Any] = []
    if isinstance(node, promql.MatrixSelector):
        children = [node.vector_selector]
    elif isinstance(node, promql.Call):
        children = list(node.args)
    elif isinstance(node, promql.AggregateExpr):
        children = [node.expr, *([node.param] if node.param is not None else [])]
    elif isinstance(node, promql.BinaryExpr):
        children = [node.lhs, node.rhs]
    elif isinstance(node, (promql.ParenExpr, promql.UnaryExpr, promql.SubqueryExpr)):
        children = [node.expr]
    for child in children:
        yield from _walk(child)


def _matches(matcher: Any, labels: dict[str, str]) -> bool:
    value, op = labels.get(matcher.name, ""), str(matcher.op).rsplit(".", 1)[-1]
    return {"Equal": value == matcher.value, "NotEqual": value != matcher.value,
            "Re": re.fullmatch(matcher.value, value) is not None,
            "NotRe": re.fullmatch(matcher.value, value) is None}[op]  # fmt: skip


def problems(expr: str, scraped: list[Series]) -> list[str]:
    """What in `expr` the scrape cannot answer (empty: every selector has series and every grouping label)."""
    found = []
    tree = promql.parse(expr)
    selected: list[Series] = []
    for node in _walk(tree):
        if isinstance(node, promql.VectorSelector):
            hits = [(n, labels) for n, labels in scraped
                    if n == node.name and all(_matches(m, labels) for m in node.matchers.matchers)]  # fmt: skip
            if not hits:
                found.append(f"no series for {node.prettify()}")
            selected += hits
    for node in _walk(tree):
        if isinstance(node, promql.AggregateExpr) and node.modifier is not None and str(node.modifier).startswith("by"):
            for label in node.modifier.labels:
                if selected and not any(label in labels for _, labels in selected):
                    found.append(f"no series of {expr!r} has the label {label!r}")
    return found
