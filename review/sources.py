"""Where a queue's entries come from: a slice, a query, a list of reference ids (what a
selection produces), label-error candidates, or an evaluation run's false positives or
false negatives.

Each source checks its parameters (a 400 naming `source.<field>`) and gives the SQL of
its entries' rows, in order: (item_id, position, annotations, predictions, evidence). The
queue service inserts them with one INSERT ... SELECT, so a queue of 100,000 items is one
statement, not a loop per item.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from curation.errors import NotFound, invalid_field, unknown_items
from curation.itemsets import ItemSet, item_ids_sql, sql_of
from curation.models import Dataset, Item
from curation.params import fraction_value, int_value
from curation.query import QueryError, compile_query
from curation.selectors import slice_of
from evaluation.models import Outcome
from evaluation.selectors import matches_of, run_of
from insights.label_error_selectors import TYPES, candidates_of, scan_of
from review.models import SourceKind

MAX_ENTRIES = 1_000_000
MAX_REFERENCE_IDS = 200_000
EMPTY = "'{}'::bigint[]"


@dataclass
class EntryRows:
    """The SQL of a source's entry rows and the parameters the queue records."""

    sql: str
    params: list[Any]
    recorded: dict[str, Any] = field(default_factory=dict)


def _path(name: str) -> str:
    return f"source.{name}"


def _int(raw: Any, name: str, *, low: int, high: int | None = None) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise invalid_field(_path(name), "must be a whole number")
    return int_value(str(raw), _path(name), low=low, high=high)


def _limit(params: Mapping[str, Any]) -> int:
    raw = params.get("limit")
    return MAX_ENTRIES if raw in (None, "") else _int(raw, "limit", low=1, high=MAX_ENTRIES)


def _text(params: Mapping[str, Any], name: str) -> str:
    raw = params.get(name, "")
    if raw is None:
        return ""
    if not isinstance(raw, str):
        raise invalid_field(_path(name), "must be a string")
    return raw.strip()


def _labels(params: Mapping[str, Any]) -> list[str]:
    raw = params.get("labels") or []
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if not isinstance(raw, list) or not all(isinstance(x, str) for x in raw):
        raise invalid_field(_path("labels"), "must be a list of labels")
    return list(dict.fromkeys(raw))


def _with_annotations(params: Mapping[str, Any]) -> bool:
    raw = params.get("with_annotations", False)
    if isinstance(raw, str):
        return raw.lower() in ("1", "true", "on", "yes")
    if not isinstance(raw, bool):
        raise invalid_field(_path("with_annotations"), "must be true or false")
    return raw


def _annotations_of(column: str, labels: list[str], wanted: bool) -> tuple[str, list[Any]]:
    """The array of an item's annotations to check (of `labels` when given), or none."""
    if not wanted:
        return EMPTY, []
    label_sql = " AND a.label = ANY(%s::text[])" if labels else ""
    return (
        f"ARRAY(SELECT a.id FROM curation_annotation a WHERE a.item_id = {column}"
        f"{label_sql} ORDER BY a.id)",
        [labels] if labels else [],
    )


def _item_rows(items: QuerySet[Item], params: Mapping[str, Any]) -> EntryRows:
    """Entries for the items of a set, by item id, each with its annotations to check
    when `with_annotations` (those of `labels` when given)."""
    labels = _labels(params)
    wanted = _with_annotations(params)
    ids_sql, ids_params = item_ids_sql(items)
    annotations, annotation_params = _annotations_of("s.id", labels, wanted)
    limit = _limit(params)
    sql = (
        f"SELECT s.id, row_number() OVER (ORDER BY s.id) - 1, {annotations}, {EMPTY}, "
        f"'{{}}'::jsonb FROM ({ids_sql}) AS s(id) ORDER BY s.id LIMIT %s"
    )
    recorded = {"with_annotations": wanted, "labels": labels}
    if limit != MAX_ENTRIES:
        recorded["limit"] = limit
    return EntryRows(sql, [*annotation_params, *ids_params, limit], recorded)


def from_slice(dataset: Dataset, params: Mapping[str, Any]) -> EntryRows:
    slice_id = _int(params.get("slice"), "slice", low=1)
    try:
        found = slice_of(dataset=dataset, slice_id=slice_id)
    except NotFound:
        raise invalid_field(_path("slice"), f"no slice {slice_id} in this dataset") from None
    rows = _item_rows(ItemSet(dataset=dataset, slice=found).queryset(), params)
    rows.recorded = {"slice": found.pk, "slice_name": found.name, **rows.recorded}
    return rows


def from_query(dataset: Dataset, params: Mapping[str, Any]) -> EntryRows:
    query = _text(params, "query")
    if not query:
        raise invalid_field(_path("query"), "is required")
    try:
        matches = compile_query(query, dataset=dataset)
    except QueryError as exc:  # the same 400, under this field's name
        raise invalid_field(_path("query"), exc.message) from None
    rows = _item_rows(Item.objects.filter(dataset=dataset).filter(matches), params)
    rows.recorded = {"query": query, **rows.recorded}
    return rows


def _unknown_references(dataset: Dataset, refs: list[str]) -> list[str]:
    """The reference ids that are no item of the dataset, in one query: one array
    parameter, where `reference_id IN (...)` with 100,000 literals took 4.5 s to plan and
    run here against 0.3 s for this."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r.ref FROM unnest(%s::text[]) AS r(ref) WHERE NOT EXISTS ("
            "SELECT 1 FROM curation_item i WHERE i.dataset_id = %s AND i.reference_id = r.ref)",
            [refs, dataset.pk],
        )
        return [row[0] for row in cursor.fetchall()]


def from_items(dataset: Dataset, params: Mapping[str, Any]) -> EntryRows:
    """Entries for reference ids in the order given (a selection); unknown ids are a 400
    naming each one."""
    raw = params.get("reference_ids")
    if not isinstance(raw, list) or not raw or not all(isinstance(r, str) for r in raw):
        raise invalid_field(_path("reference_ids"), "must be a non-empty list of reference ids")
    if len(raw) > MAX_REFERENCE_IDS:
        raise invalid_field(_path("reference_ids"), f"at most {MAX_REFERENCE_IDS} ids")
    refs = list(dict.fromkeys(raw))
    missing = set(_unknown_references(dataset, refs))
    unknown = [(i, repr(r)) for i, r in enumerate(raw) if r in missing]
    if unknown:
        raise unknown_items(unknown, path=_path("reference_ids"), noun="reference ids")
    labels = _labels(params)
    wanted = _with_annotations(params)
    annotations, annotation_params = _annotations_of("i.id", labels, wanted)
    sql = (
        f"SELECT i.id, row_number() OVER (ORDER BY r.n) - 1, {annotations}, {EMPTY}, "
        "'{}'::jsonb FROM unnest(%s::text[]) WITH ORDINALITY AS r(ref, n) "
        "JOIN curation_item i ON i.dataset_id = %s AND i.reference_id = r.ref ORDER BY r.n"
    )
    return EntryRows(
        sql,
        [*annotation_params, refs, dataset.pk],
        {"count": len(refs), "with_annotations": wanted, "labels": labels},
    )


def _object_arrays(alias: str) -> str:
    return (
        f"CASE WHEN {alias}.annotation_id IS NULL THEN {EMPTY} "
        f"ELSE ARRAY[{alias}.annotation_id] END, "
        f"CASE WHEN {alias}.prediction_id IS NULL THEN {EMPTY} "
        f"ELSE ARRAY[{alias}.prediction_id] END"
    )


def from_label_errors(dataset: Dataset, params: Mapping[str, Any]) -> EntryRows:
    """One entry per candidate of a scan (the newest finished one unless `scan` names
    one), best first, with its annotation or prediction and its evidence."""
    scan_id = params.get("scan")
    if scan_id not in (None, ""):
        scan_id = _int(scan_id, "scan", low=1)
    try:
        scan = scan_of(dataset=dataset, scan_id=scan_id or None)
    except NotFound as exc:
        raise invalid_field(_path("scan"), exc.message) from None
    type_ = _text(params, "type") or None
    if type_ is not None and type_ not in TYPES:
        raise invalid_field(_path("type"), f"must be one of {', '.join(TYPES)}")
    min_score = None
    if params.get("min_score") not in (None, ""):
        min_score = fraction_value(str(params["min_score"]), _path("min_score"))
    limit = _limit(params)
    rows = candidates_of(scan=scan, type=type_, min_score=min_score).filter(item__dataset=dataset)
    sql, sql_params = sql_of(
        rows.values("id", "item_id", "annotation_id", "prediction_id", "type", "score", "evidence")[
            :limit
        ]
    )
    return EntryRows(
        "SELECT c.item_id, row_number() OVER (ORDER BY c.score DESC, c.id) - 1, "
        f"{_object_arrays('c')}, jsonb_build_object('candidate', c.id, 'scan', %s::bigint, "
        "'type', c.type, 'score', c.score, 'evidence', c.evidence) "
        f"FROM ({sql}) AS c(id, item_id, annotation_id, prediction_id, type, score, evidence) "
        "ORDER BY c.score DESC, c.id",
        [scan.pk, *sql_params],
        {"scan": scan.pk, "run": scan.run_id, "type": type_, "min_score": min_score},
    )


OUTCOMES = {Outcome.FP.value: "-confidence", Outcome.FN.value: "item_id"}


def from_evaluation(dataset: Dataset, params: Mapping[str, Any]) -> EntryRows:
    """One entry per false positive (most confident first: the prediction to check) or
    false negative (by item: the annotation the model missed) of a finished run."""
    run_id = _int(params.get("run"), "run", low=1)
    try:
        run = run_of(dataset=dataset, run_id=run_id)
    except NotFound:
        raise invalid_field(_path("run"), f"no evaluation run {run_id} in this dataset") from None
    if run.finished is None:
        raise invalid_field(_path("run"), f"run {run.name!r} has not finished")
    outcome = _text(params, "outcome")
    if outcome not in OUTCOMES:
        raise invalid_field(_path("outcome"), "must be fp or fn")
    label = _text(params, "label") or None
    limit = _limit(params)
    order = "m.confidence DESC NULLS LAST, m.id" if outcome == "fp" else "m.item_id, m.id"
    rows = matches_of(run=run, outcome=outcome, label=label).filter(item__dataset=dataset)
    sql, sql_params = sql_of(
        rows.order_by(OUTCOMES[outcome], "id").values(
            "id",
            "item_id",
            "annotation_id",
            "prediction_id",
            "label",
            "confidence",
            "iou",
            "error_type",
        )[:limit]
    )
    return EntryRows(
        f"SELECT m.item_id, row_number() OVER (ORDER BY {order}) - 1, {_object_arrays('m')}, "
        "jsonb_build_object('run', %s::bigint, 'match', m.id, 'outcome', %s::text, "
        "'label', m.label, 'confidence', m.confidence, 'iou', m.iou, "
        "'error_type', m.error_type) "
        f"FROM ({sql}) AS m(id, item_id, annotation_id, prediction_id, label, confidence, "
        f"iou, error_type) ORDER BY {order}",
        [run.pk, outcome, *sql_params],
        {"run": run.pk, "run_name": run.name, "outcome": outcome, "label": label},
    )


SOURCES: dict[str, Callable[[Dataset, Mapping[str, Any]], EntryRows]] = {
    SourceKind.SLICE: from_slice,
    SourceKind.QUERY: from_query,
    SourceKind.ITEMS: from_items,
    SourceKind.LABEL_ERRORS: from_label_errors,
    SourceKind.EVALUATION: from_evaluation,
}


def entry_rows(dataset: Dataset, source: Any) -> tuple[str, EntryRows]:
    """The kind of `source` (a mapping with `kind` and its parameters) and its rows."""
    if not isinstance(source, Mapping):
        raise invalid_field("source", "must be an object with a kind and its parameters")
    kind = source.get("kind")
    if kind not in SOURCES:
        raise invalid_field(_path("kind"), f"must be one of {', '.join(SOURCES)}")
    return str(kind), SOURCES[str(kind)](dataset, source)
