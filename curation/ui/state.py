"""The state of a grid view, read from and written to its URL, so any view can be shared
by link.

Parameters (all optional):

- ``query``: a query in the query language (curation.query);
- ``label``: items with at least one annotation of this label (repeatable: any of them);
- ``quality``: an image quality facet (curation.quality.FLAGS: blurry, dark, ...;
  repeatable: any of them; unknown names are ignored);
- ``score.<field>``: a range of a score facet (curation.score_facets), ``<low>,<high>``
  (``<low>,`` for at or above): items with ``<field> >= <low> AND <field> < <high>``,
  where ``<field>`` is a value of the query language (``score.uniqueness["clip"]=0.8,0.9``);
  repeatable (any of the ranges); several fields all apply;
- ``query``, ``metadata.<key>[__<op>]``, ``tag``, ``slice``: the REST API's item filters,
  with the same names, applied by the same function, except that repeated values of one
  equality, tag or slice parameter match any of them (facets: rain or fog) where the API
  wants all of them;
- ``text``, ``like`` (an item id), ``image`` (an uploaded query image): similarity search
  within the filtered items, best first, paged with ``page``;
- ``sort``: a value per item to list by (a sort key of the query language: a count,
  ``width * height``, ``metadata.<key>``, ``predictions[<model>].confidence``, a score
  another app registers), ``order``: ``asc`` (the default) or ``desc``; items without a
  value come last, ties in id order. Without ``sort``, items are in id order;
- ``after`` / ``before``: keyset cursors (item ids) of the listing;
- ``model``: draw that model's predictions in the grid; ``conf``: draw predictions (the
  grid's and the item page's) at or above that confidence, 0 to 1, 0.5 when absent;
- ``run``: an evaluation run: boxes coloured by their outcome in it (its model's
  predictions are drawn); ``match_order``: with a run, items ordered by their matches in
  it (curation.ui.outcomes: an index walk, where ``sort`` is a pass over the view), paged
  with the ``at`` cursor ("<value>,<item id>");
- ``size``: tile size (s, m, l); ``limit``: items per page.
"""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlencode

from django.db.models import Q, QuerySet
from django.http import QueryDict

from curation import paging, selectors
from curation.errors import CurationError, invalid_field
from curation.filters import OPERATORS, parse_value
from curation.models import Dataset, Item, Slice
from curation.params import fraction_value, int_value
from curation.quality import FLAGS_BY_KEY
from curation.query import compile_query, sort_expression
from curation.query.parser import QueryError, parse
from curation.score_facets import parse_range, range_query
from curation.ui.palette import LabelColours, dataset_colours

FILTER_NAMES = ("tag", "slice")  # with metadata.* and query: the API's item filters
CURSOR_NAMES = ("after", "before", "page", "at")
SEARCH_NAMES = ("text", "like", "image")
TILE_SIZES = {"s": 128, "m": 184, "l": 264}
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
# Predictions below this confidence are not drawn (grid and item page) unless `conf` says.
DEFAULT_CONFIDENCE = 0.5
_IMAGE_KEY = re.compile(r"^[0-9a-f]{64}$")
SCORE_PREFIX = "score."


def label_clause(label: str) -> str:
    """The query-language condition for "has an annotation labelled `label`"."""
    escaped = label.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'annotations."{escaped}" >= 1'


_COMPARISONS = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<=", "ne": "!="}


def _literal(raw: str) -> str:
    """A filter parameter's value (curation.filters.parse_value) as a query literal;
    ValueError for one the language has no literal for (null matches a missing key in a
    query but not in a filter; a number beyond float range)."""
    value = parse_value(raw)
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(raw)
    return json.dumps(value, ensure_ascii=False)


def _equality(path: str, raw: str) -> str:
    """The query for ``metadata.<key>=<raw>``: a number or boolean there also matches the
    same text stored as a string, as the filter does."""
    literal = _literal(raw)
    if isinstance(parse_value(raw), str):
        return f"{path} = {literal}"
    return f"({path} = {literal} OR {path} = {json.dumps(raw, ensure_ascii=False)})"


def _any_of(conditions: list[str]) -> str:
    return conditions[0] if len(conditions) == 1 else f"({' OR '.join(conditions)})"


def _int(raw: str | None, name: str, *, minimum: int = 0) -> int | None:
    """An optional integer parameter of the view: absent or empty is None."""
    if raw in (None, ""):
        return None
    return int_value(raw, name, low=minimum)


def _sort_cursor(raw: str | None) -> tuple[float, int] | None:
    """The `at` cursor of an order by matches: "<value>,<item id>"."""
    if raw in (None, ""):
        return None
    value, _, item = str(raw).partition(",")
    try:
        number = float(value)
    except ValueError:
        raise invalid_field("at", "expected <value>,<item id>") from None
    if not math.isfinite(number):
        raise invalid_field("at", "expected <value>,<item id>")
    return number, int_value(item, "at", low=1)


def confidence_of(params: QueryDict) -> float:
    """The view's `conf`: the lowest confidence of a prediction that is drawn."""
    raw = params.get("conf")
    return DEFAULT_CONFIDENCE if raw in (None, "") else fraction_value(raw, "conf")


def _score_ranges(params: dict[str, list[str]]) -> dict[str, list[tuple[float, float | None]]]:
    """The `score.<field>` parameters: each field's ranges, by field; a 400 naming the
    parameter when its field is not a value of the query language or a range is not
    "<low>,<high>"."""
    found: dict[str, list[tuple[float, float | None]]] = {}
    for name, values in params.items():
        values = [v for v in values if v != ""]
        if not name.startswith(SCORE_PREFIX) or not values:
            continue
        field = name.removeprefix(SCORE_PREFIX)
        try:
            parse(field, start="sum")  # a value, never a condition: nothing else gets in
        except QueryError:
            raise invalid_field(name, "expected score.<a value of the query language>") from None
        try:
            found[field] = [parse_range(v) for v in values]
        except ValueError:
            raise invalid_field(name, "expected <low>,<high> (or <low>,), low < high") from None
    return found


class GridState:
    """One grid view: what it filters, searches, shows and where it is."""

    def __init__(self, params: QueryDict, *, dataset: Dataset, base_slice: Slice | None = None):
        self.dataset = dataset
        self.base_slice = base_slice
        # `refresh` asks for facets to be counted again once; links must not repeat it.
        self.params: dict[str, list[str]] = {
            k: list(vs) for k, vs in params.lists() if k != "refresh"
        }
        self.q = params.get("query", "")
        self.labels = [v for v in params.getlist("label") if v]
        self.quality = [v for v in params.getlist("quality") if v in FLAGS_BY_KEY]
        self.score_ranges = _score_ranges(self.params)
        self.text = params.get("text", "").strip()
        self.like = _int(params.get("like"), "like", minimum=1)
        image = params.get("image", "")
        self.image = image if _IMAGE_KEY.match(image) else ""
        self.after = _int(params.get("after"), "after")
        self.before = _int(params.get("before"), "before")
        self.page = _int(params.get("page"), "page") or 0
        self.sort = params.get("sort", "").strip()
        order = params.get("order", "") or "asc"
        if order not in ("asc", "desc"):
            raise invalid_field("order", f"must be asc or desc, not {order!r}.")
        self.descending = order == "desc"
        self.model_id = _int(params.get("model"), "model", minimum=1)
        self.conf = confidence_of(params)
        self.run_id = _int(params.get("run"), "run", minimum=1)
        self.match_order = params.get("match_order", "").strip()
        self.at = _sort_cursor(params.get("at"))
        size = params.get("size", "m")
        self.size = size if size in TILE_SIZES else "m"
        self.limit = min(_int(params.get("limit"), "limit", minimum=1) or DEFAULT_LIMIT, MAX_LIMIT)

    @functools.cached_property
    def colours(self) -> LabelColours:
        """The dataset's label colours (read once per view)."""
        return dataset_colours(self.dataset)

    # ------------------------------------------------------------------------- filters

    def filter_params(self) -> QueryDict:
        """The REST API's item filter parameters of this view (metadata.*, tag, slice, query)."""
        out = QueryDict(mutable=True)
        for name, values in self.params.items():
            if name.startswith("metadata.") or name in FILTER_NAMES:
                out.setlist(name, [v for v in values if v != ""])
        if self.q.strip():
            out.setlist("query", [self.q])
        return out

    @property
    def metadata_filters(self) -> list[tuple[str, str]]:
        return [
            (name, value)
            for name, values in self.params.items()
            if name.startswith("metadata.")
            for value in values
            if value != ""
        ]

    @property
    def tags(self) -> list[str]:
        return [v for v in self.params.get("tag", []) if v]

    @property
    def slice_ids(self) -> list[str]:
        return [v for v in self.params.get("slice", []) if v]

    @property
    def is_filtered(self) -> bool:
        return bool(
            self.q.strip()
            or self.labels
            or self.quality
            or self.score_ranges
            or self.filter_params()
            or self.base_slice is not None
        )

    def query_condition(self) -> Q:
        """The query bar's condition; QueryError (with a position) if it does not compile."""
        return compile_query(self.q, dataset=self.dataset)

    def items(self) -> QuerySet[Item]:
        """The items this view filters to, unordered: the API's filters and query language.

        As in FiftyOne's sidebar, several values of one facet match any of them (labels
        car or bus, weather rain or fog, tags, slices), and different facets all apply.
        """
        facets = [q for q in self.facet_queries() if q]
        return selectors.items_of(
            dataset=self.dataset,
            params=self.filter_params(),
            within=self.base_slice,
            conditions=[compile_query(q, dataset=self.dataset) for q in facets],
            any_of=True,
        )

    def facet_items(self) -> QuerySet[Item] | None:
        """The items the sidebar's facets count: the view's (a search ranks the same
        filtered items), or None for the whole dataset when nothing filters it or its
        query does not compile (the grid then shows the query's error, and the sidebar
        the dataset)."""
        if not self.is_filtered:
            return None
        try:
            return self.items()
        except CurationError:
            return None

    def sort_order(self) -> paging.SortOrder | None:
        """The order `sort` names; QueryError (a 400 naming `sort`) when it names no value."""
        if not self.sort:
            return None
        value = sort_expression(self.sort, dataset=self.dataset)
        return paging.SortOrder(value, self.descending)

    def labels_query(self) -> str:
        """The label facets as one query: items with any of the labels."""
        clauses = [label_clause(label) for label in self.labels]
        if len(clauses) > 1:
            return "(" + " OR ".join(clauses) + ")"
        return clauses[0] if clauses else ""

    def quality_query(self) -> str:
        """The image quality facets as one query: items in any of them."""
        clauses = [FLAGS_BY_KEY[key].query for key in self.quality]
        if len(clauses) > 1:
            return "(" + " OR ".join(clauses) + ")"
        return clauses[0] if clauses else ""

    def score_query(self) -> str:
        """The score facets' ranges as one query: within each field any of its ranges,
        and every field."""
        clauses = [
            _any_of([range_query(field, low, high) for low, high in ranges])
            for field, ranges in self.score_ranges.items()
        ]
        return " AND ".join(clauses)

    def facet_queries(self) -> tuple[str, str, str]:
        return self.labels_query(), self.quality_query(), self.score_query()

    def effective_query(self) -> str:
        """The labels, quality and score facets and the query bar as one query, for display
        and for the API."""
        parts = [q for q in self.facet_queries() if q]
        if self.q.strip():
            parts.append(f"({self.q.strip()})" if parts else self.q.strip())
        return " AND ".join(parts)

    def without_param(self, name: str) -> GridState:
        """This view without the parameter `name` (a facet group's own filter)."""
        params = QueryDict(mutable=True)
        for key, values in self.params.items():
            if key != name:
                params.setlist(key, values)
        return GridState(params, dataset=self.dataset, base_slice=self.base_slice)

    def view_query(self) -> tuple[str, str]:
        """The whole view as one query of the query language, to save as a dynamic slice,
        or ("", why not). Each facet becomes the condition that matches what its filter
        parameter matches (curation.filters), so the slice holds what the grid showed."""
        if self.search_mode:
            return "", (
                "A similarity search ranks items by their vectors and has no query form: "
                "select all and make a static slice of the results instead."
            )
        if self.base_slice is not None:
            return "", "This slice is saved already; open the dataset's grid to save a new view."
        parts = [q for q in self.facet_queries() if q]
        for name, values in self.params.items():
            values = [v for v in values if v != ""]
            if not values or not name.startswith("metadata."):
                continue
            key, _, op = name.removeprefix("metadata.").rpartition("__")
            if not key or op not in OPERATORS:  # as curation.filters reads the name
                key, op = name.removeprefix("metadata."), "eq"
            if op == "exists":
                return "", f"The filter {name} has no form in the query language."
            path = "metadata." + ".".join(json.dumps(p, ensure_ascii=False) for p in key.split("."))
            try:
                if op == "eq":  # facets: any of the values
                    parts.append(_any_of([_equality(path, raw) for raw in values]))
                elif op == "in":  # each parameter: any of its values; all parameters
                    parts += [_any_of([_equality(path, v) for v in r.split(",")]) for r in values]
                else:
                    parts += [f"{path} {_COMPARISONS[op]} {_literal(raw)}" for raw in values]
            except ValueError:
                return "", f"The filter {name} has a value the query language cannot write."
        if self.tags:
            tags = ", ".join(json.dumps(t, ensure_ascii=False) for t in self.tags)
            parts.append(f"tag IN ({tags})")
        if self.slice_ids:
            names = selectors.slice_names(dataset=self.dataset, slice_ids=self.slice_ids)
            if len(names) != len(set(self.slice_ids)):
                return "", "A slice this view filters by no longer exists."
            listed = ", ".join(json.dumps(n, ensure_ascii=False) for n in names.values())
            parts.append(f"slice IN ({listed})")
        if self.q.strip():
            parts.append(f"({self.q.strip()})" if parts else self.q.strip())
        if not parts:
            return "", "Nothing filters this view: it is the whole dataset."
        return " AND ".join(parts), ""

    # ------------------------------------------------------------------------ listing

    @property
    def search_mode(self) -> str | None:
        if self.like is not None:
            return "like"
        if self.image:
            return "image"
        if self.text:
            return "text"
        return None

    # --------------------------------------------------------------------------- links

    def url(self, path: str, changes: Mapping[str, Any] | None = None) -> str:
        """`path` with this view's parameters, changed: None drops one, a list repeats it."""
        params = {k: list(v) for k, v in self.params.items()}
        for name, value in (changes or {}).items():
            if value is None:
                params.pop(name, None)
            elif isinstance(value, list | tuple):
                params[name] = [str(v) for v in value]
            else:
                params[name] = [str(value)]
        pairs = [(k, v) for k, vs in params.items() for v in vs if v != ""]
        return f"{path}?{urlencode(pairs)}" if pairs else path

    def refilter(self, path: str, changes: Mapping[str, Any]) -> str:
        """A link to this view with other filters, back at its first page."""
        return self.url(path, {**dict.fromkeys(CURSOR_NAMES), **changes})

    def toggled(self, path: str, name: str, value: str) -> str:
        """A link with `value` added to or removed from the repeatable parameter `name`."""
        current = list(self.params.get(name, []))
        updated = [v for v in current if v != value] if value in current else [*current, value]
        return self.refilter(path, {name: updated or None})

    def without(self, path: str, names: Iterable[str]) -> str:
        """A link to this view without the parameters `names`, back at its first page."""
        return self.refilter(path, dict.fromkeys(names))

    def querystring(self, *, drop: Iterable[str] = ()) -> str:
        dropped = set(drop)
        return urlencode([(k, v) for k, vs in self.params.items() if k not in dropped for v in vs])
