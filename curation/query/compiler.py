"""Compile a parsed query into a Django filter on Item: Q objects, Exists and subqueries.

No SQL text is ever built here: names from the query become lookup values, JSON keys
become function arguments and literals become bound parameters, so a query can only ever
say "which items", never "what SQL".

How each kind of condition reaches an index (see docs/query-language.md):
- equality on metadata is JSON containment, ``metadata @> {"key": value}``, served by the
  GIN (jsonb_path_ops) index on Item.metadata;
- label, kind and total counts of shapes are read from ShapeCount (kept by triggers):
  ``annotations.car >= 2`` is EXISTS on its (dataset, source, dim, key, n) index, a range
  scan the planner runs as a semi-join, and ``= 0`` / ``<= m`` the NOT EXISTS of the
  opposite range (an item without such shapes has no row: its count is 0). Arithmetic on
  counts alone (``annotations.truck + annotations.bus >= 3``) LEFT JOINs the dataset's
  items to each named count's rows (a range of the primary key in item order; no row:
  0), so a first page reads no further than its items;
- tags and slices are EXISTS on their link tables; exact duplicates use the
  (dataset_id, sha256) index.

One module of about a thousand lines on purpose: it is one concept, a walk over the parse
tree with one handler per kind of condition, and each handler's choice of index is easier
to check beside the others than spread over files. The fields other apps add (the
embeddings app's near duplicates) come in through `register_field`.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    DateTimeField,
    DecimalField,
    Exists,
    F,
    FloatField,
    Func,
    IntegerField,
    JSONField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.expressions import CombinedExpression, Expression, RawSQL
from django.db.models.functions import Coalesce
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IsNull,
    LessThan,
    LessThanOrEqual,
)
from django.utils.dateparse import parse_date, parse_datetime
from lark import Token, Tree

from curation.extensions import vectors
from curation.models import (
    Annotation,
    Dataset,
    GeometryKind,
    Item,
    ItemTag,
    Model,
    Prediction,
    ShapeCount,
    Slice,
    SliceItem,
    Tag,
)
from curation.quality import QUALITY_FIELDS
from curation.query.parser import QueryError, parse, quote_name, unquote

Scalar = str | int | float | bool | None
MAX_IN_VALUES = 1000
# Larger integers lose precision as floats and overflow PostgreSQL's bigint.
MAX_EXACT_INTEGER = 2**53
# Arithmetic runs on PostgreSQL's numeric, which holds numbers up to 10**131072; a query
# whose arithmetic could go past this bound is refused before it runs.
MAX_ARITHMETIC = 10**1000
# The largest value of each kind of arithmetic operand: width and height are integer
# columns, shape counts are bigint.
_COLUMN_MAX = 2**31 - 1
_COUNT_MAX = 2**63 - 1

# Always-false and always-true conditions. Q() cannot stand for "everything": Django treats
# an empty Q as "no condition" when combining, so `Q() | x` would become `x`.
NOTHING = Q(pk__in=[])
EVERYTHING = ~Q(pk__in=[])

_FLIPPED = {"=": "=", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}
_LOOKUPS: dict[str, type[Any]] = {
    "=": Exact,
    "<": LessThan,
    "<=": LessThanOrEqual,
    ">": GreaterThan,
    ">=": GreaterThanOrEqual,
}
_LOOKUP_NAMES = {"=": "exact", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
_ARITH_OPS = {"+": "+", "-": "-", "*": "*"}


# ------------------------------------------------------------------------ operand kinds


@dataclass(frozen=True)
class Span:
    start: int
    end: int


@dataclass(frozen=True)
class Segment:
    """One name in a field path; quoted names are never reserved words."""

    name: str
    quoted: bool
    bracket: bool
    span: Span

    def is_word(self, word: str) -> bool:
        return not self.quoted and not self.bracket and self.name == word


@dataclass(frozen=True)
class Literal:
    value: Scalar
    span: Span

    @property
    def type_name(self) -> str:
        if self.value is None:
            return "null"
        if isinstance(self.value, bool):
            return "a boolean"
        if isinstance(self.value, str):
            return "a string"
        return "a number"


@dataclass(frozen=True)
class BareWord:
    """A one-word path that names no field: a tag or slice name, or a mistake."""

    name: str
    span: Span


@dataclass(frozen=True)
class Source:
    """Where shapes come from: ground truth, or one model's predictions."""

    kind: str  # "annotations" or "predictions"
    model: Model | None = None

    def rows(self) -> QuerySet[Any]:
        if self.model is None:
            return Annotation.objects.filter(item=OuterRef("pk"))
        return Prediction.objects.filter(item=OuterRef("pk"), model_id=self.model.pk)

    def describe(self) -> str:
        return "annotations" if self.model is None else f"predictions[{self.model.name}]"


@dataclass(frozen=True)
class MetadataField:
    parts: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class ColumnField:
    name: str  # width, height, reference_id, created
    span: Span


@dataclass(frozen=True)
class CountField:
    source: Source
    label: str | None
    kind: str | None
    span: Span

    def key(self) -> tuple[int, int, str]:
        """(source, dim, key) of the ShapeCount rows that hold this count."""
        source = 0 if self.source.model is None else self.source.model.pk
        if self.label is not None:
            return source, ShapeCount.Dim.LABEL, self.label
        if self.kind is not None:
            return source, ShapeCount.Dim.KIND, self.kind
        return source, ShapeCount.Dim.TOTAL, ""

    def counted(self) -> Q:
        """The ShapeCount rows that hold this count, one per item that has any."""
        source, dim, key = self.key()
        return Q(source=source, dim=dim, key=key)


@dataclass(frozen=True)
class ShapeAttrField:
    source: Source
    label: str
    parts: tuple[str, ...]
    span: Span


@dataclass(frozen=True)
class ConfidenceField:
    source: Source
    label: str | None
    span: Span


@dataclass(frozen=True)
class NamedSetField:
    name: str  # "tag" or "slice"
    span: Span


@dataclass(frozen=True)
class DuplicateField:
    span: Span


@dataclass(frozen=True)
class Arith:
    op: str
    left: Numeric
    right: Numeric
    span: Span
    bound: int = field(default=0, compare=False)  # no value of it is larger (absolute)


Numeric = CountField | ColumnField | Arith | Literal


@dataclass(frozen=True)
class FieldCondition:
    """What a registered field's handler gets: `name.path... op value` on `dataset`."""

    name: str
    path: tuple[str, ...]
    op: str
    value: Scalar
    dataset: Dataset
    # What `name[<key>]` names, for a field registered with brackets (the evaluation
    # app's eval[<run>]); None otherwise.
    key: str | None = None


@dataclass(frozen=True)
class NameUse:
    """A name of the dataset that a query uses: a label, a metadata key path or a tag.

    Unknown ones are not errors (an unknown label counts 0, an unknown tag matches
    nothing); curation.vocabulary turns them into warnings.
    """

    kind: str  # "label", "metadata" or "tag"
    parts: tuple[str, ...]  # the label, tag or metadata key path
    span: Span
    model: Model | None = None  # a label of this model's predictions


@dataclass(frozen=True)
class CustomField:
    name: str
    path: tuple[str, ...]
    handler: FieldHandler
    span: Span
    key: str | None = None


@dataclass(frozen=True)
class FieldRef:
    """What a registered field's value handler gets: the field `name[key].path...` of
    `dataset`, named without a comparison (a sort key)."""

    name: str
    path: tuple[str, ...]
    dataset: Dataset
    key: str | None = None


FieldHandler = Callable[[FieldCondition], Q]
# A registered field's value per item: an expression on Item (correlated to the item
# with OuterRef("pk") where it is a subquery), or ValueError with a message for the user.
ValueHandler = Callable[[FieldRef], Any]
Operand = (
    MetadataField
    | ColumnField
    | CountField
    | ShapeAttrField
    | ConfidenceField
    | NamedSetField
    | DuplicateField
    | Arith
    | CustomField
    | Literal
    | BareWord
)

# Fields other apps add (the embeddings app's near-duplicates, for one): name -> handler.
# A handler returns a Q on Item or raises ValueError with a message for the user.
_REGISTERED: dict[str, FieldHandler] = {}
# Registered fields that take a name in brackets first, like predictions[<model>].
_BRACKETED: set[str] = set()
# Registered fields that have a value per item (a number), so they can sort the grid.
_VALUES: dict[str, ValueHandler] = {}
# Of those, the ones where the name may be left out (the handler then picks a default,
# as predictions without [<model>] takes the dataset's only model).
_BRACKET_OPTIONAL: set[str] = set()


@dataclass(frozen=True)
class FieldHelp:
    """What the query bar may suggest inside a registered field: the names that go in its
    brackets (`keys(dataset)`, the evaluation app's run names, listed with `key_kind`)
    and the words that may follow them (`eval[run].fp`), then, with `then_labels`, the
    dataset's labels (`eval[run].fp.car`)."""

    keys: Callable[[Any], Sequence[str]] | None = None
    key_kind: str = "key"
    words: Sequence[str] = ()
    then_labels: bool = False


_HELP: dict[str, FieldHelp] = {}

BUILTIN_FIELDS = (
    "metadata",
    "width",
    "height",
    "reference_id",
    "created",
    "annotations",
    "predictions",
    "tag",
    "slice",
    "duplicate",
    "quality",
)
# Item columns by the field name that reaches them: a built-in name, or quality.<signal>.
_COLUMNS = {"width": "number", "height": "number", "reference_id": "text", "created": "date"}
_COLUMNS |= {f.column: f.kind for f in QUALITY_FIELDS.values()}
_HEADS = ("width", "height", "reference_id", "created")


def register_field(
    name: str,
    handler: FieldHandler,
    *,
    bracket: bool = False,
    bracket_optional: bool = False,
    value: ValueHandler | None = None,
    completion: FieldHelp | None = None,
) -> None:
    """Add a field to the language, e.g. ``near_duplicate = true`` from the embeddings app.

    With `bracket`, the field names something first, as ``eval[<run>].fp >= 1`` does: the
    handler gets it as FieldCondition.key, and the field without it is an error. With
    `bracket_optional` too, the name may be left out (``uniqueness > 0.8`` as well as
    ``uniqueness["clip"] > 0.8``): the handler gets key None and picks a default. With
    `value`, the field also has a value per item, so it can sort (`sort_expression`).
    `completion` says what the query bar may complete in it (curation.query.hints).
    """
    if name in BUILTIN_FIELDS:
        raise ValueError(f"{name!r} is a built-in field")
    _REGISTERED[name] = handler
    if completion is not None:
        _HELP[name] = completion
    else:
        _HELP.pop(name, None)
    if bracket:
        _BRACKETED.add(name)
    else:
        _BRACKETED.discard(name)
    if bracket and bracket_optional:
        _BRACKET_OPTIONAL.add(name)
    else:
        _BRACKET_OPTIONAL.discard(name)
    if value is not None:
        _VALUES[name] = value
    else:
        _VALUES.pop(name, None)


def value_fields() -> list[str]:
    """Registered fields with a value per item that need no name in brackets (the
    insights app's `uniqueness`): sort keys a UI can suggest as they are."""
    return [n for n in _VALUES if n not in _BRACKETED or n in _BRACKET_OPTIONAL]


def field_help(name: str) -> FieldHelp | None:
    """What a registered field offers the query bar's completion (None: nothing)."""
    return _HELP.get(name)


def field_is_bracketed(name: str) -> bool:
    return name in _REGISTERED and name in _BRACKETED


def field_names() -> list[str]:
    """Every field the language has: the built-in ones, then those other apps registered."""
    return [*BUILTIN_FIELDS, *_REGISTERED]


# ----------------------------------------------------------------------- SQL fragments


class _CountAll(Func):
    """COUNT(*) that Django does not treat as an aggregate, so no GROUP BY is added."""

    template = "COUNT(*)"
    output_field = IntegerField()


class _JsonPath(Func):
    """jsonb_extract_path(column, 'k1', 'k2', ...): the JSON value at a key path or NULL."""

    function = "jsonb_extract_path"
    output_field = JSONField()


class _JsonType(Func):
    function = "jsonb_typeof"
    output_field = CharField()


def _json_value(parts: Sequence[str]) -> Expression:
    return _JsonPath(F("metadata"), *[Value(p, output_field=CharField()) for p in parts])


def _nested(parts: Sequence[str], value: Any) -> Any:
    for part in reversed(parts):
        value = {part: value}
    return value


def _count(rows: QuerySet[Any]) -> Subquery:
    return Subquery(
        rows.order_by().annotate(n=_CountAll()).values("n"), output_field=IntegerField()
    )


# --------------------------------------------------------------------------- compiler


# Dynamic slices being expanded (a slice's query may name other slices): finds cycles.
_EXPANDING: ContextVar[frozenset[int]] = ContextVar("nucleus_query_expanding", default=frozenset())


@dataclass
class Compiler:
    text: str
    dataset: Dataset
    _models: dict[str, Model] = field(default_factory=dict)
    _all_models: list[Model] | None = None
    uses: list[NameUse] = field(default_factory=list)

    # errors ---------------------------------------------------------------------------

    def error(self, message: str, span: Span, expected: Sequence[str] = ()) -> QueryError:
        return QueryError(
            message, text=self.text, offset=span.start, end_offset=span.end, expected=expected
        )

    def span(self, node: Tree[Token] | Token) -> Span:
        if isinstance(node, Token):
            return Span(node.start_pos or 0, node.end_pos or 0)
        return Span(node.meta.start_pos, node.meta.end_pos)

    def source_text(self, span: Span) -> str:
        shown = self.text[span.start : span.end]
        return shown if len(shown) <= 40 else shown[:37] + "..."

    # boolean structure ------------------------------------------------------------------

    def condition(self, node: Tree[Token]) -> Q:
        if node.data in ("and_", "or_"):
            # Walk the left-deep chain in a loop: a AND b AND c ... needs no recursion.
            operands: list[Tree[Token]] = []
            current = node
            while isinstance(current, Tree) and current.data == node.data:
                left, right = current.children
                operands.append(right)  # type: ignore[arg-type]
                current = left  # type: ignore[assignment]
            operands.append(current)
            parts = [self.condition(child) for child in reversed(operands)]
            result = parts[0]
            for part in parts[1:]:
                result = result & part if node.data == "and_" else result | part
            return result
        if node.data == "not_":
            return ~self.condition(node.children[0])  # type: ignore[arg-type]
        if node.data == "compare":
            left, op, right = node.children
            return self.compare(self.operand(left), _normal_op(str(op)), self.operand(right))
        if node.data in ("in_", "not_in"):
            left, values = node.children
            result = self.in_list(self.operand(left), values)  # type: ignore[arg-type]
            return result if node.data == "in_" else ~result
        raise AssertionError(f"the grammar has no condition {node.data!r}")

    # operands -------------------------------------------------------------------------

    def operand(self, node: Tree[Token] | Token) -> Operand:
        assert isinstance(node, Tree)
        kind = node.data
        span = self.span(node)
        if kind == "path":
            return self.path(node)
        if kind == "string":
            return Literal(unquote(node.children[0], self.text), span)  # type: ignore[arg-type]
        if kind == "number":
            return Literal(self.number(node.children[0]), span)  # type: ignore[arg-type]
        if kind in ("true", "false"):
            return Literal(kind == "true", span)
        if kind == "null":
            return Literal(None, span)
        if kind == "neg":
            inner = self.operand(node.children[1])
            if isinstance(inner, Literal) and _is_number(inner.value):
                return Literal(-inner.value, span)  # type: ignore[operator]
            numeric = self.numeric(inner)
            return self.arith("*", Literal(-1, span), numeric, span)
        if kind == "arith":
            left, op, right = node.children
            try:
                return self.arith(
                    str(op),
                    self.numeric(self.operand(left)),
                    self.numeric(self.operand(right)),
                    span,
                )
            except QueryError as exc:
                hint = self.dash_hint(left, op, right)  # type: ignore[arg-type]
                if hint is None:
                    raise
                raise QueryError(
                    exc.message + hint,
                    text=self.text,
                    offset=exc.position["offset"],
                    end_offset=exc.position["end_offset"],
                    expected=exc.expected,
                ) from None
        raise AssertionError(f"the grammar has no operand {kind!r}")

    def dash_hint(self, left: Tree[Token], op: Token, right: Tree[Token]) -> str | None:
        """ " Quote the name: ..." when `a.traffic-light` failed as `a.traffic - light`."""
        if not (isinstance(left, Tree) and isinstance(right, Tree)):
            return None
        if left.data != "path" or right.data != "path" or str(op) != "-":
            return None
        if left.meta.end_pos != op.start_pos or op.end_pos != right.meta.start_pos:
            return None
        last, head = left.children[-1], right.children[0]
        if len(left.children) < 2 or not isinstance(last, Token) or last.type != "NAME":
            return None
        assert isinstance(head, Token)
        prefix = self.text[left.meta.start_pos : last.start_pos]
        rest = self.text[head.end_pos : right.meta.end_pos]
        return f" Quote the name: {prefix}{quote_name(f'{last}-{head}')}{rest}."

    def number(self, token: Token) -> int | float:
        text = str(token)
        # Past ~300 digits an integer no longer fits a float (nor Python's int() limit).
        if len(text) > 300:
            raise self.error("Number at {where} is out of range.", self.span(token))
        value: int | float = float(text) if any(c in text for c in ".eE") else int(text)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.error(f"Number {text} at {{where}} is out of range.", self.span(token))
        return value

    def arith(self, op: str, left: Numeric, right: Numeric, span: Span) -> Arith:
        """`left op right`, refused when its value could grow past MAX_ARITHMETIC."""
        a, b = _bound(left), _bound(right)
        bound = a * b if op == "*" else a + b
        if bound > MAX_ARITHMETIC:
            raise self.error(
                "The arithmetic at {where} can reach numbers too large to compute; "
                "use smaller numbers.",
                span,
            )
        return Arith(op, left, right, span, bound)

    def numeric(self, operand: Operand) -> Numeric:
        """Check that an operand of + - * is a number: a count, width, height or a literal."""
        if isinstance(operand, Literal) and _is_number(operand.value):
            return operand
        if isinstance(operand, CountField | Arith):
            return operand
        if isinstance(operand, ColumnField) and _COLUMNS[operand.name] == "number":
            return operand
        span = operand.span
        raise self.error(
            f"'{self.source_text(span)}' at {{where}} cannot take part in arithmetic: "
            "+, - and * work on counts, width, height and numbers.",
            span,
        )

    def segments(self, node: Tree[Token]) -> tuple[Token, list[Segment]]:
        head, *rest = node.children
        segments: list[Segment] = []
        bracket = True
        for child in rest:
            assert isinstance(child, Token)
            if child.type == "DOT":
                bracket = False
                continue
            if child.type == "STRING":
                name, quoted = unquote(child, self.text), True
            elif child.type == "QUOTED_NAME":
                name, quoted = str(child)[1:-1], True
            else:
                name, quoted = str(child), False
            segments.append(Segment(name, quoted, bracket, self.span(child)))
            bracket = True
        return head, segments  # type: ignore[return-value]

    def path(self, node: Tree[Token]) -> Operand:
        head_token, segments = self.segments(node)
        head = str(head_token)
        span = self.span(node)
        bracketed = head == "predictions" or (head in _REGISTERED and head in _BRACKETED)
        for segment in segments:
            if segment.bracket and not (bracketed and segment is segments[0]):
                raise self.error(
                    "Brackets at {where} only name a model or a run: predictions[<model>]"
                    + "".join(f", {n}[...]" for n in sorted(_BRACKETED & set(_REGISTERED)))
                    + ".",
                    segment.span,
                )
        if head == "metadata":
            if not segments:
                raise self.error(
                    "Name a key at {where}: metadata.<key>, e.g. metadata.weather.", span
                )
            parts = tuple(s.name for s in segments)
            self.uses.append(
                NameUse("metadata", parts, Span(segments[0].span.start, segments[-1].span.end))
            )
            return MetadataField(parts, span)
        if head == "quality":
            return self.quality_path(segments, span)
        if head in _HEADS or head in ("tag", "slice", "duplicate"):
            if segments:
                raise self.error(f"'{head}' has no sub-fields (at {{where}}).", segments[0].span)
            if head in _COLUMNS:
                return ColumnField(head, span)
            if head == "duplicate":
                return DuplicateField(span)
            return NamedSetField(head, span)
        if head == "annotations":
            return self.shape_path(Source("annotations"), segments, span)
        if head == "predictions":
            if segments and segments[0].bracket:
                model = self.model(segments[0])
                segments = segments[1:]
            else:
                model = self.only_model(span)
            return self.shape_path(Source("predictions", model), segments, span)
        if head in _REGISTERED:
            key = None
            if head in _BRACKETED:
                if segments and segments[0].bracket:
                    key, segments = segments[0].name, segments[1:]
                elif head not in _BRACKET_OPTIONAL:
                    raise self.error(
                        f"Name what '{head}' is about at {{where}}: {head}[...].", span
                    )
            return CustomField(head, tuple(s.name for s in segments), _REGISTERED[head], span, key)
        if not segments:
            return BareWord(head, span)
        raise self.unknown_field(head, self.span(head_token))

    def quality_path(self, segments: list[Segment], span: Span) -> ColumnField:
        """quality.<signal>: one of the image quality columns (curation.quality)."""
        names = ", ".join(QUALITY_FIELDS)
        if not segments:
            raise self.error(
                f"Name a signal at {{where}}: quality.<{names.replace(', ', '|')}>.", span
            )
        first = segments[0]
        if first.name not in QUALITY_FIELDS:
            close = difflib.get_close_matches(first.name, list(QUALITY_FIELDS), n=1)
            hint = f" Did you mean 'quality.{close[0]}'?" if close else ""
            raise self.error(
                f"Unknown field 'quality.{first.name}' at {{where}}.{hint} "
                f"Quality fields are {names}.",
                first.span,
                expected=[f"quality.{n}" for n in QUALITY_FIELDS],
            )
        if len(segments) > 1:
            raise self.error(
                f"'quality.{first.name}' has no sub-fields (at {{where}}).", segments[1].span
            )
        return ColumnField(QUALITY_FIELDS[first.name].column, span)

    def unknown_field(self, name: str, span: Span) -> QueryError:
        close = difflib.get_close_matches(name, field_names(), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        return self.error(
            f"Unknown field '{name}' at {{where}}.{hint} Fields are metadata.<key>, width, "
            "height, reference_id, created, annotations.<...>, predictions[<model>].<...>, "
            "quality.<signal>, tag, slice and duplicate"
            + "".join(f", {n}" for n in _REGISTERED)
            + ".",
            span,
            expected=["a field"],
        )

    def shape_path(self, source: Source, segments: list[Segment], span: Span) -> Operand:
        name = source.describe()
        choices = (
            f"{name}.count, {name}.<label>, {name}.<label>.<attribute>, {name}.kind.<kind>.count"
            + (f", {name}.<label>.confidence" if source.model else "")
        )
        if not segments:
            raise self.error(f"'{name}' needs more at {{where}}: {choices}.", span)
        first, rest = segments[0], segments[1:]
        if first.is_word("count"):
            if rest:
                raise self.error(f"'{name}.count' has no sub-fields (at {{where}}).", rest[0].span)
            return CountField(source, None, None, span)
        if first.is_word("kind"):
            kinds = [k.value for k in GeometryKind]
            if not rest or rest[0].name not in kinds:
                where = rest[0].span if rest else first.span
                raise self.error(
                    f"Name a geometry kind at {{where}}: {name}.kind.<kind>.count with kind "
                    f"one of {', '.join(kinds)}.",
                    where,
                    expected=kinds,
                )
            if len(rest) > 2 or (len(rest) == 2 and not rest[1].is_word("count")):
                raise self.error(
                    f"Expected {name}.kind.{rest[0].name}.count at {{where}}.", rest[-1].span
                )
            return CountField(source, None, rest[0].name, span)
        if first.is_word("confidence") and source.model is not None:
            if rest:
                raise self.error("'confidence' has no sub-fields (at {where}).", rest[0].span)
            return ConfidenceField(source, None, span)
        label = first.name
        self.uses.append(NameUse("label", (label,), first.span, source.model))
        if not rest or (len(rest) == 1 and rest[0].is_word("count")):
            return CountField(source, label, None, span)
        if len(rest) == 1 and rest[0].is_word("confidence") and source.model is not None:
            return ConfidenceField(source, label, span)
        return ShapeAttrField(source, label, tuple(s.name for s in rest), span)

    def model(self, segment: Segment) -> Model:
        if segment.name not in self._models:
            model = Model.objects.filter(dataset=self.dataset, name=segment.name).first()
            if model is None:
                names = self.model_names()
                close = difflib.get_close_matches(segment.name, names, n=1)
                raise self.error(
                    f"No model named '{segment.name}' in this dataset (at {{where}})"
                    + (f"; models: {', '.join(names)}." if names else "; it has no models yet.")
                    + (f" Did you mean '{close[0]}'?" if close else ""),
                    segment.span,
                    expected=names,
                )
            self._models[segment.name] = model
        return self._models[segment.name]

    def model_names(self) -> list[str]:
        """The dataset's model names (the first 20, for error messages)."""
        if self._all_models is None:
            self._all_models = list(
                Model.objects.filter(dataset=self.dataset).order_by("name")[:20]
            )
        return [m.name for m in self._all_models]

    def only_model(self, span: Span) -> Model:
        """`predictions.car` without [model]: allowed while the dataset has one model."""
        names = self.model_names()
        if len(names) != 1:
            raise self.error(
                "Name the model at {where}: predictions[<model>]..."
                + (f" (models: {', '.join(names)})." if names else "; this dataset has no models."),
                span,
                expected=names,
            )
        assert self._all_models is not None
        return self._all_models[0]

    # comparisons ----------------------------------------------------------------------

    def compare(self, left: Operand, op: str, right: Operand) -> Q:
        if isinstance(left, Literal) and not isinstance(right, Literal | BareWord):
            left, right, op = right, left, _FLIPPED[op]
        if isinstance(left, BareWord):
            raise self.unknown_field(left.name, left.span)
        if isinstance(left, Literal):
            raise self.error(
                "Compare a field with a value at {where}, e.g. width > 100.",
                Span(left.span.start, right.span.end),
            )
        if isinstance(left, NamedSetField):
            return self.named_set(left, op, [right])
        if isinstance(right, BareWord):
            if isinstance(left, CustomField):
                right = Literal(right.name, right.span)
            else:
                raise self.error(
                    f"Unknown field '{right.name}' at {{where}}: quote text values, "
                    f'e.g. "{right.name}".',
                    right.span,
                    expected=["a value"],
                )
        if isinstance(left, CountField | Arith) or (
            isinstance(left, ColumnField) and _COLUMNS[left.name] == "number"
        ):
            if isinstance(right, Literal) and right.value is None and isinstance(left, ColumnField):
                return self.column_null(left, op, right)
            return self.numeric_compare(left, op, self.numeric_value(right, left, op))
        if not isinstance(right, Literal):
            raise self.error(
                f"Compare '{self.source_text(left.span)}' with a value at {{where}}, not with "
                "another field.",
                right.span,
                expected=["a value"],
            )
        if isinstance(left, MetadataField):
            return self.metadata(left.parts, op, right)
        if isinstance(left, ColumnField):
            return self.column(left, op, right)
        if isinstance(left, ShapeAttrField):
            rows = left.source.rows().filter(label=left.label)
            return Q(Exists(rows.filter(self.metadata(left.parts, op, right))))
        if isinstance(left, ConfidenceField):
            return self.confidence(left, op, right)
        if isinstance(left, DuplicateField):
            return self.duplicate(op, right)
        if isinstance(left, CustomField):
            return self.custom(left, op, right)
        raise AssertionError(f"unhandled operand {left!r}")

    def in_list(self, left: Operand, node: Tree[Token]) -> Q:
        values = [self.operand(child) for child in node.children]
        if len(values) > MAX_IN_VALUES:
            raise self.error(
                f"IN takes at most {MAX_IN_VALUES} values (at {{where}}).", self.span(node)
            )
        if isinstance(left, NamedSetField):
            return self.named_set(left, "=", values)
        conditions = []
        for value in values:
            if not isinstance(value, Literal | BareWord):
                raise self.error(
                    "IN lists hold values only (at {where}).", value.span, expected=["a value"]
                )
            conditions.append(self.compare(left, "=", value))
        result = conditions[0]
        for condition in conditions[1:]:
            result |= condition
        return result

    def type_error(self, left: Operand, op: str, right: Literal, wants: str) -> QueryError:
        return self.error(
            f"'{self.source_text(left.span)} {op}' needs {wants}, got {right.type_name} "
            "at {where}.",
            right.span,
            expected=[wants],
        )

    # metadata ----------------------------------------------------------------------------

    def metadata(self, parts: tuple[str, ...], op: str, right: Literal) -> Q:
        """A condition on the `metadata` JSON of the model being filtered (items or shapes).

        `=` is JSON containment, so the GIN index answers it; order comparisons hold only
        for values of the literal's JSON type (numbers with numbers, strings with strings).
        """
        value = right.value
        if op in ("=", "!="):
            if value is None:
                found = Q(IsNull(_json_value(parts), True)) | Q(
                    metadata__contains=_nested(parts, None)
                )
            else:
                found = Q(metadata__contains=_nested(parts, value))
            return found if op == "=" else ~found
        if isinstance(value, bool) or value is None:
            raise self.error(
                f"'{op}' compares numbers or strings; {right.type_name} can only be "
                "compared with = or != (at {where}).",
                right.span,
                expected=["a number", "a string"],
            )
        json_type = "string" if isinstance(value, str) else "number"
        target = _json_value(parts)
        # One CASE, false for a missing key or a value of another type (never NULL, so
        # that NOT of it is true: NOT inverts every condition exactly). As one opaque
        # boolean the planner estimates it at 50%; written as `jsonb_typeof(v) = 'number'
        # AND v > 100` it took the type test for an equality on an expression without
        # statistics (0.5%), guessed a few hundred rows where there were 57,000, and sorted
        # all of them instead of walking the id index for the first page (0.3 s at 1M).
        return Q(
            Case(
                When(
                    Exact(_JsonType(target), Value(json_type)),
                    then=_LOOKUPS[op](target, Value(value, output_field=JSONField())),
                ),
                default=Value(False),
                output_field=BooleanField(),
            )
        )

    # item columns --------------------------------------------------------------------------

    def column_null(self, left: ColumnField, op: str, right: Literal) -> Q:
        if op not in ("=", "!="):
            raise self.type_error(left, op, right, "a number")
        found = Q(**{f"{left.name}__isnull": True})
        return found if op == "=" else ~found

    def column(self, left: ColumnField, op: str, right: Literal) -> Q:
        kind = _COLUMNS[left.name]
        value: Any = right.value
        if kind == "boolean":
            if op not in ("=", "!=") or not isinstance(value, bool | None):
                raise self.type_error(left, op, right, "true or false with = or !=")
            found = Q(**{f"{left.name}__isnull": True} if value is None else {left.name: value})
            # Not yet computed is neither true nor false: != true leaves it out too.
            return found if op == "=" else ~found & Q(**{f"{left.name}__isnull": False})
        if kind == "text":
            if not isinstance(value, str):
                raise self.type_error(left, op, right, "a quoted string")
            expression = Value(value, output_field=CharField())
        else:  # date
            if not isinstance(value, str):
                raise self.type_error(left, op, right, 'a date such as "2024-06-30"')
            expression = Value(self.datetime(value, right.span), output_field=DateTimeField())
        if op == "!=":
            return ~Q(**{left.name: expression})
        return Q(**{f"{left.name}__{_LOOKUP_NAMES[op]}": expression})

    def datetime(self, text: str, span: Span) -> datetime:
        try:
            moment = parse_datetime(text)
            if moment is None:
                day = parse_date(text)
                moment = datetime.combine(day, time()) if day else None
        except ValueError:
            moment = None
        if moment is None:
            raise self.error(
                f"'{text}' at {{where}} is not a date: use ISO 8601, e.g. \"2024-06-30\" "
                'or "2024-06-30T12:00:00Z".',
                span,
                expected=["a date"],
            )
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)

    # counts and arithmetic ---------------------------------------------------------------

    def numeric_value(self, right: Operand, left: Operand, op: str) -> Numeric:
        if isinstance(right, Literal) and not _is_number(right.value):
            raise self.type_error(left, op, right, "a number")
        return self.numeric(right)

    def numeric_compare(self, left: Numeric, op: str, right: Numeric) -> Q:
        if isinstance(left, Literal):
            left, right, op = right, left, _FLIPPED[op]
        if isinstance(left, Literal):
            raise self.error("Compare a field with a value at {where}.", left.span)
        if isinstance(right, Literal):
            if isinstance(left, CountField):
                return self.stored_count(left, op, right.value)  # type: ignore[arg-type]
            if isinstance(left, ColumnField):
                value = Value(right.value, output_field=FloatField())
                if op == "!=":
                    return ~Q(**{left.name: value})
                return Q(**{f"{left.name}__{_LOOKUP_NAMES[op]}": value})
        in_left, in_right = _count_fields(left), _count_fields(right)
        if in_left is not None and in_right is not None:
            return self.counts_arith(sorted(in_left | in_right, key=repr), left, op, right)
        lhs, rhs = self.expression(left), self.expression(right)
        condition = Q(Exact(lhs, rhs)) if op == "!=" else Q(_LOOKUPS[op](lhs, rhs))
        if op == "!=":
            condition = ~condition
        # width and height may be unknown: "not known to be true" must stay false, so
        # that NOT (width * height > x) still means the opposite.
        for name in sorted(_nullable_columns(left) | _nullable_columns(right)):
            condition &= Q(**{f"{name}__isnull": False})
        return condition

    def count_rows(self, field: CountField) -> QuerySet[ShapeCount]:
        """The item's ShapeCount row for `field` (correlated with OuterRef("pk")); none
        when the count is 0."""
        return ShapeCount.objects.filter(
            field.counted(), item_id=OuterRef("pk"), dataset_id=self.dataset.pk
        )

    def has_count(self, field: CountField, **n: Any) -> Q:
        """EXISTS a ShapeCount row of the item for `field` whose n matches `n`."""
        return Q(Exists(self.count_rows(field).filter(**n)))

    def stored_count(self, field: CountField, op: str, value: float) -> Q:
        """`count op value` as lookups on ShapeCount, exactly as count_condition means it."""
        bound = _count_bound(op, value)
        if isinstance(bound, bool):
            return EVERYTHING if bound else NOTHING
        lookup, number = bound
        if number > _COLUMN_MAX:  # no count is that large (ShapeCount.n is an integer)
            return EVERYTHING if lookup in ("lte", "ne") else NOTHING
        if lookup == "gte":
            return self.has_count(field, n__gte=number)
        if lookup == "lte":
            return ~self.has_count(field, n__gt=number)
        if number == 0:
            found = self.has_count(field, n__gte=1)
            return ~found if lookup == "eq" else found
        found = self.has_count(field, n=number)
        return found if lookup == "eq" else ~found

    def counts_arith(self, fields: list[CountField], left: Numeric, op: str, right: Numeric) -> Q:
        """A comparison of arithmetic on counts and numbers: the dataset's items LEFT
        JOINed to the rows of each count (none: 0), in item order.

        Each count's rows are a range of ShapeCount's primary key in item order, so the
        joins can merge as they go: a first page reads no further than its items (1-3 ms
        at 1M). Grouping the counts' rows by item instead made a first page wait for all
        of them (0.5-1 s at 1M), and a sum of correlated lookups per item took 7.7-13 s."""
        names = {f: f"t{i}" for i, f in enumerate(fields)}
        params: list[Any] = []
        joins = []
        for f, alias in names.items():
            params += [self.dataset.pk, *f.key()]
            joins.append(
                "LEFT JOIN (SELECT item_id, n FROM curation_shapecount WHERE dataset_id = %s"
                f" AND source = %s AND dim = %s AND key = %s) {alias} ON {alias}.item_id = i.id"
            )
        lhs, lhs_params = _arith_sql(left, names)
        rhs, rhs_params = _arith_sql(right, names)
        sql = (
            f"SELECT i.id FROM curation_item i {' '.join(joins)}"
            f" WHERE i.dataset_id = %s AND {lhs} {_SQL_OPS[op]} {rhs}"
        )
        values = [*params, self.dataset.pk, *lhs_params, *rhs_params]
        # Only aliases and operators from fixed tables are in the text; values are parameters.
        return Q(pk__in=RawSQL(sql, values))  # noqa: S611

    def expression(self, operand: Numeric) -> Any:
        if isinstance(operand, Arith):
            # Every term of + - * is numeric: integer and bigint arithmetic overflow
            # (width * 9223372036854775807) and float8 overflows past 1e308, each an error
            # in the middle of the query; numeric is exact and MAX_ARITHMETIC bounds it.
            return CombinedExpression(
                _AsNumeric(self.expression(operand.left)),
                _ARITH_OPS[operand.op],
                _AsNumeric(self.expression(operand.right)),
                output_field=DecimalField(),
            )
        if isinstance(operand, Literal):
            value = operand.value
            if isinstance(value, float):
                # The shortest text of the float, as written in the query (0.1, not the
                # binary expansion).
                return Value(Decimal(repr(value)), output_field=DecimalField())
            return Value(value, output_field=IntegerField())
        if isinstance(operand, CountField):
            return self.stored(operand)
        return F(operand.name)

    def stored(self, field: CountField) -> Coalesce:
        """The item's count `field`, from its ShapeCount row (none: 0): one probe of the
        primary key, where counting the shapes reads every one of them."""
        rows = self.count_rows(field).values("n")
        return Coalesce(Subquery(rows, output_field=IntegerField()), 0)

    # values (sort keys) --------------------------------------------------------------------

    def value(self, operand: Operand) -> Any:
        """The value per item of a field or an arithmetic of fields, to sort by: counts,
        width, height, created, reference_id, a metadata value (JSON order: numbers by
        value, strings by text), the highest confidence of predictions, and registered
        fields that have a value."""
        if isinstance(operand, CountField | Arith) or (
            isinstance(operand, ColumnField) and _COLUMNS[operand.name] == "number"
        ):
            return self.expression(operand)
        if isinstance(operand, ColumnField):
            return F(operand.name)
        if isinstance(operand, MetadataField):
            return _json_value(operand.parts)
        if isinstance(operand, ConfidenceField):
            rows = operand.source.rows()
            if operand.label is not None:
                rows = rows.filter(label=operand.label)
            return Subquery(
                rows.order_by("-confidence").values("confidence")[:1], output_field=FloatField()
            )
        if isinstance(operand, CustomField) and operand.name in _VALUES:
            try:
                return _VALUES[operand.name](
                    FieldRef(operand.name, operand.path, self.dataset, operand.key)
                )
            except ValueError as exc:
                raise self.error(f"{exc} (at {{where}})", operand.span) from None
        if isinstance(operand, BareWord):
            raise self.unknown_field(operand.name, operand.span)
        raise self.error(
            f"Cannot sort by '{self.source_text(operand.span)}' (at {{where}}): sort by a "
            "count, width, height, created, reference_id, metadata.<key>, "
            "predictions[<model>].confidence"
            + "".join(f", {n}" for n in _VALUES)
            + " or arithmetic of numbers.",
            operand.span,
        )

    # predictions -------------------------------------------------------------------------

    def confidence(self, left: ConfidenceField, op: str, right: Literal) -> Q:
        if not _is_number(right.value):
            raise self.type_error(left, op, right, "a number between 0 and 1")
        rows = left.source.rows()
        if left.label is not None:
            rows = rows.filter(label=left.label)
        value = Value(right.value, output_field=FloatField())
        if op == "!=":
            rows = rows.exclude(confidence=value)
        else:
            rows = rows.filter(**{f"confidence__{_LOOKUP_NAMES[op]}": value})
        return Q(Exists(rows))

    # tags, slices, duplicates, registered fields ---------------------------------------

    def named_set(self, left: NamedSetField, op: str, values: Sequence[Operand]) -> Q:
        """Membership in tags or slices named by the values (unknown tags match nothing)."""
        if op not in ("=", "!="):
            raise self.error(
                f"'{left.name}' takes =, != or IN (at {{where}}).",
                left.span,
                expected=["=", "!=", "IN"],
            )
        names: list[str] = []
        for value in values:
            if isinstance(value, BareWord) or (
                isinstance(value, Literal) and isinstance(value.value, str)
            ):
                names.append(str(value.name if isinstance(value, BareWord) else value.value))
            else:
                raise self.error(
                    f"'{left.name}' needs a {left.name} name at {{where}}, e.g. "
                    f'{left.name} = "reviewed".',
                    value.span,
                    expected=[f"a {left.name} name"],
                )
        if left.name == "tag":
            self.uses += [
                NameUse("tag", (name,), value.span)
                for value, name in zip(values, names, strict=True)
            ]
            ids = list(
                Tag.objects.filter(dataset=self.dataset, name__in=names).values_list(
                    "pk", flat=True
                )
            )
            found = (
                Q(Exists(ItemTag.objects.filter(item=OuterRef("pk"), tag_id__in=ids)))
                if ids
                else NOTHING
            )
        else:
            slices = {s.name: s for s in Slice.objects.filter(dataset=self.dataset, name__in=names)}
            for value, name in zip(values, names, strict=True):
                if name not in slices:
                    # Only on this error path: read the names (the first 1,000) to suggest one.
                    known = Slice.objects.filter(dataset=self.dataset).order_by("name")
                    close = difflib.get_close_matches(
                        name, list(known.values_list("name", flat=True)[:1000]), n=1
                    )
                    raise self.error(
                        f"No slice named '{name}' in this dataset (at {{where}})."
                        + (f" Did you mean '{close[0]}'?" if close else ""),
                        value.span,
                        expected=["a slice name"],
                    )
            static = [s.pk for s in slices.values() if not s.is_dynamic]
            found = (
                Q(Exists(SliceItem.objects.filter(item=OuterRef("pk"), slice_id__in=static)))
                if static
                else NOTHING
            )
            for value, name in zip(values, names, strict=True):
                if slices[name].is_dynamic:
                    found |= self.dynamic_slice(slices[name], value.span)
        return found if op == "=" else ~found

    def dynamic_slice(self, slice: Slice, span: Span) -> Q:
        """A dynamic slice's own query (and similarity condition), compiled in place."""
        expanding = _EXPANDING.get()
        if slice.pk in expanding:
            raise self.error(
                f"Slice '{slice.name}' refers to itself through its query (at {{where}}).",
                span,
                expected=["a slice that does not contain this query"],
            )
        token = _EXPANDING.set(expanding | {slice.pk})
        try:
            return query_items_q(
                dataset=self.dataset, query=slice.query, similarity=slice.similarity
            )
        finally:
            _EXPANDING.reset(token)

    def duplicate(self, op: str, right: Literal) -> Q:
        if op not in ("=", "!=") or not isinstance(right.value, bool):
            raise self.error(
                "'duplicate' takes = true, = false or != (at {where}).",
                right.span,
                expected=["true", "false"],
            )
        # Exact duplicates: another item of the dataset with the same content hash.
        # Near-duplicates (by embedding) are a registered field of the embeddings app.
        same_content = Item.objects.filter(
            dataset_id=OuterRef("dataset_id"), sha256=OuterRef("sha256")
        ).exclude(pk=OuterRef("pk"))
        found = ~Q(sha256="") & Q(Exists(same_content))
        return found if (op == "=") == right.value else ~found

    def custom(self, left: CustomField, op: str, right: Literal) -> Q:
        try:
            return left.handler(
                FieldCondition(left.name, left.path, op, right.value, self.dataset, left.key)
            )
        except ValueError as exc:
            raise self.error(
                f"{exc} (at {{where}})", Span(left.span.start, right.span.end)
            ) from None


class _AsNumeric(Func):
    """`expression::numeric`. Not Cast(..., DecimalField()): without digits, Django would
    write numeric(None, None)."""

    template = "(%(expressions)s)::numeric"
    output_field = DecimalField()


def _bound(operand: Numeric) -> int:
    """The largest absolute value an arithmetic operand can have."""
    if isinstance(operand, Arith):
        return operand.bound
    if isinstance(operand, Literal):
        return math.ceil(abs(operand.value))  # type: ignore[arg-type]
    if isinstance(operand, ColumnField):
        return _COLUMN_MAX
    return _COUNT_MAX


def _normal_op(op: str) -> str:
    return {"==": "=", "<>": "!="}.get(op, op)


def _is_number(value: Scalar) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _nullable_columns(operand: Numeric) -> set[str]:
    if isinstance(operand, ColumnField):
        return {operand.name}
    if isinstance(operand, Arith):
        return _nullable_columns(operand.left) | _nullable_columns(operand.right)
    return set()


_SQL_OPS = {"=": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def _arith_sql(operand: Numeric, names: dict[CountField, str]) -> tuple[str, list[Any]]:
    """SQL and parameters of arithmetic on counts (table aliases `names`) and numbers, in
    numeric as Compiler.expression computes it (exact, no overflow mid-query)."""
    if isinstance(operand, Arith):
        a, a_params = _arith_sql(operand.left, names)
        b, b_params = _arith_sql(operand.right, names)
        return f"({a} {_ARITH_OPS[operand.op]} {b})", [*a_params, *b_params]
    if isinstance(operand, Literal):
        value = operand.value
        return "%s::numeric", [Decimal(repr(value)) if isinstance(value, float) else value]
    assert isinstance(operand, CountField)
    return f"coalesce({names[operand]}.n, 0)::numeric", []


def _count_fields(operand: Numeric) -> set[CountField] | None:
    """The counts an operand is made of, or None if it also has a column (width)."""
    if isinstance(operand, CountField):
        return {operand}
    if isinstance(operand, Literal):
        return set()
    if isinstance(operand, Arith):
        left, right = _count_fields(operand.left), _count_fields(operand.right)
        return None if left is None or right is None else left | right
    return None


def _count_bound(op: str, value: float) -> bool | tuple[str, int]:
    """`count op value` for a whole count >= 0, as True (every count), False (none) or
    (lookup, whole number) with lookup one of gte, lte, eq, ne."""
    whole = float(value).is_integer() and value >= 0
    if op in (">", ">="):
        least = max(0, math.floor(value) + 1 if op == ">" else math.ceil(value))
        if least == 0:
            return True
        return False if least > MAX_EXACT_INTEGER else ("gte", least)
    if op in ("<", "<="):
        most = math.ceil(value) - 1 if op == "<" else math.floor(value)
        if most < 0:
            return False
        return True if most > MAX_EXACT_INTEGER else ("lte", most)
    if not whole or value > MAX_EXACT_INTEGER:
        return op == "!="
    return ("eq" if op == "=" else "ne", int(value))


def count_condition(rows: QuerySet[Any], op: str, value: float) -> Q:
    """`count op value` for the count of `rows` (a queryset correlated to the item with
    OuterRef("pk")), which is a whole number >= 0: shapes here, and what registered fields
    count (the evaluation app's outcomes).

    "At least one" and "none" become EXISTS / NOT EXISTS, which the planner can run as
    a semi-join or anti-join; other thresholds use the correlated count, behind an EXISTS
    where zero cannot match so that items without such shapes are dismissed cheaply.
    """
    bound = _count_bound(op, value)
    if isinstance(bound, bool):
        return EVERYTHING if bound else NOTHING
    lookup, number = bound
    exists = Q(Exists(rows))
    if lookup == "gte":
        return (
            exists if number == 1 else exists & Q(GreaterThanOrEqual(_count(rows), Value(number)))
        )
    if lookup == "lte":
        return ~exists if number == 0 else Q(LessThanOrEqual(_count(rows), Value(number)))
    if number == 0:
        return ~exists if lookup == "eq" else exists
    if lookup == "eq":
        return exists & Q(Exact(_count(rows), Value(number)))
    return ~Q(Exact(_count(rows), Value(number)))


def compile_query(text: str, *, dataset: Dataset) -> Q:
    """Compile query text into a filter on Item limited to `dataset`; blank matches all."""
    scope = Q(dataset_id=dataset.pk)
    if not text.strip():
        return scope
    tree = parse(text)
    return scope & Compiler(text, dataset).condition(tree)


def sort_expression(text: str, *, dataset: Dataset) -> Any:
    """The value per item that `text` names (`annotations.car`, `width * height`,
    `metadata.score`, a registered field with a value): an expression on Item to order
    by. QueryError (a 400 naming `sort`) when it names no value."""
    try:
        compiler = Compiler(text, dataset)
        return compiler.value(compiler.operand(parse(text, start="sum")))
    except QueryError as exc:
        raise QueryError(
            exc.message.replace("query", "sort key"),
            text=text,
            offset=exc.position["offset"],
            end_offset=exc.position["end_offset"],
            expected=exc.expected,
            path="sort",
        ) from None


def query_names(text: str, *, dataset: Dataset) -> list[NameUse]:
    """The labels, metadata keys and tags a query names, in order; QueryError if it is wrong."""
    if not text.strip():
        return []
    compiler = Compiler(text, dataset)
    compiler.condition(parse(text))
    return compiler.uses


def query_items_q(*, dataset: Dataset, query: str, similarity: dict[str, Any] | None) -> Q:
    """A filter on Item for a query's matches, narrowed by a similarity condition (now).

    Here, beside the compiler, because compiling is recursive through it: a query naming
    a dynamic slice compiles that slice's saved query and similarity condition in place.
    """
    q = compile_query(query, dataset=dataset)
    if similarity is not None:
        within = q if query.strip() else None
        q &= Q(pk__in=vectors().similar_item_ids(dataset=dataset, spec=similarity, within=within))
    return q


__all__ = [
    "BUILTIN_FIELDS",
    "Compiler",
    "FieldCondition",
    "FieldHandler",
    "FieldHelp",
    "FieldRef",
    "NameUse",
    "ValueHandler",
    "compile_query",
    "count_condition",
    "field_help",
    "field_is_bracketed",
    "field_names",
    "query_items_q",
    "query_names",
    "register_field",
    "sort_expression",
    "value_fields",
]
