"""Help for people typing queries: warnings about names a dataset does not have, and
completions for the name under the cursor.

Pure functions over `Names` (the names a dataset uses); curation.vocabulary reads them
from the database, each kind only when asked for, and calls these.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from curation.models import GeometryKind
from curation.quality import QUALITY_FIELDS
from curation.query.compiler import NameUse, field_help, field_is_bracketed, field_names
from curation.query.parser import quote_name

MAX_SUGGESTIONS = 20
_NAME_REST = re.compile(r"[A-Za-z0-9_]*")
WINDOW = 300  # characters before the cursor that completion reads
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_KEYWORDS = {"and", "or", "not", "in", "true", "false", "null"}
# The path being typed, up to the cursor: a field, then .name, ."quoted", [model] parts;
# the last part may be unfinished (an open quote or bracket).
_PATH = re.compile(
    r"""(?<![A-Za-z0-9_."'`\]])(?P<head>[A-Za-z_][A-Za-z0-9_]*)"""
    r"""(?P<rest>(?:\.(?:[A-Za-z0-9_]*|"[^"\n]*"?|'[^'\n]*'?|`[^`\n]*`?)"""
    r"""|\[(?:[A-Za-z0-9_]*|"[^"\n]*"?|'[^'\n]*'?|`[^`\n]*`?)\]?)*)$"""
)
_PART = re.compile(
    r"""(?P<sep>[.\[])(?P<name>[A-Za-z0-9_]*|"[^"\n]*"?|'[^'\n]*'?|`[^`\n]*`?)(?P<close>\]?)"""
)
# A tag or slice name being typed as a value: `tag = rev`, `slice IN (train, "va`.
_NAMED_VALUE = re.compile(
    r"""(?i)(?<![A-Za-z0-9_.])(?P<field>tag|slice)\s*"""
    r"""(?:=|==|!=|<>|(?:not\s+)?in\s*\((?:[^()]*,)?)\s*(?P<value>"[^"\n]*|'[^'\n]*|[A-Za-z0-9_]*)$"""
)


class Names(Protocol):
    """The names a dataset uses, as far as bounded reads can see them; each kind is read
    only when asked for (curation.vocabulary.DatasetNames)."""

    def labels(self) -> Sequence[str]:
        """Annotation labels."""

    def present_labels(self, names: set[str]) -> set[str]:
        """Which of `names` some annotation has, exactly."""

    def prediction_labels(self, model: str) -> Sequence[str]:
        """Labels of the model's predictions (maybe from a sample)."""

    def metadata_keys(self) -> Sequence[str]:
        """Dotted metadata key paths, one level of nesting (maybe from a sample)."""

    def models(self) -> Sequence[str]: ...

    def tags(self) -> Sequence[str]: ...

    def present_tags(self, names: set[str]) -> set[str]:
        """Which of `names` are tags, exactly."""

    def slices(self) -> Sequence[str]: ...

    def field_keys(self, field: str) -> Sequence[str]:
        """The names that go in a registered field's brackets (eval[<run>]: run names)."""

    def sampled_items(self) -> int | None:
        """The size of the sample that metadata keys and prediction labels come from, or
        None when they were read from every item."""


@dataclass(frozen=True)
class FixedNames:
    """Names given as lists (for tests, and anything that has them at hand)."""

    label_names: Sequence[str] = ()
    prediction_label_names: Mapping[str, Sequence[str]] = field(default_factory=dict)
    metadata_key_names: Sequence[str] = ()
    model_names: Sequence[str] = ()
    tag_names: Sequence[str] = ()
    slice_names: Sequence[str] = ()
    sample: int | None = None
    field_key_names: Mapping[str, Sequence[str]] = field(default_factory=dict)

    def labels(self) -> Sequence[str]:
        return self.label_names

    def present_labels(self, names: set[str]) -> set[str]:
        return names & set(self.label_names)

    def prediction_labels(self, model: str) -> Sequence[str]:
        return self.prediction_label_names.get(model, ())

    def metadata_keys(self) -> Sequence[str]:
        return self.metadata_key_names

    def models(self) -> Sequence[str]:
        return self.model_names

    def tags(self) -> Sequence[str]:
        return self.tag_names

    def present_tags(self, names: set[str]) -> set[str]:
        return names & set(self.tag_names)

    def slices(self) -> Sequence[str]:
        return self.slice_names

    def field_keys(self, field: str) -> Sequence[str]:
        return self.field_key_names.get(field, ())

    def sampled_items(self) -> int | None:
        return self.sample


@dataclass(frozen=True)
class QueryWarning:
    """A name the query uses that the dataset does not have (not an error: it may come)."""

    message: str
    offset: int
    end_offset: int
    suggestion: str | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            "message": self.message,
            "offset": self.offset,
            "end_offset": self.end_offset,
            "suggestion": self.suggestion,
        }


@dataclass(frozen=True)
class Suggestion:
    text: str  # what replaces the span
    label: str  # what the list shows
    kind: str  # field, label, key, model, tag, slice, word


@dataclass(frozen=True)
class Completion:
    start: int
    end: int
    suggestions: list[Suggestion]


def closest(name: str, names: Iterable[str]) -> str | None:
    """The name most like `name` (difflib, as the compiler's "Did you mean"), if any is."""
    found = difflib.get_close_matches(name, list(names), n=1)
    return found[0] if found else None


def _mean(close: str | None) -> str:
    return f" Did you mean '{close}'?" if close else ""


def warnings_for(uses: Sequence[NameUse], names: Names) -> list[QueryWarning]:
    """A warning for each label, metadata key and tag that the dataset does not have."""
    labels = names.present_labels({u.parts[0] for u in uses if u.kind == "label"})
    tags = names.present_tags({u.parts[0] for u in uses if u.kind == "tag"})
    found: list[QueryWarning] = []
    for use in uses:
        name = use.parts[0]
        if use.kind == "label" and name not in labels:
            if use.model is None:
                close = closest(name, names.labels())
                message = f"No annotation in this dataset is labelled '{name}', so it counts 0."
            else:
                model = use.model.name
                predicted = names.prediction_labels(model)
                if name in predicted:
                    continue
                close = closest(name, [*predicted, *names.labels()])
                message = (
                    f"No prediction of '{model}' nor annotation is labelled "
                    f"'{name}'{_sample(names)}, so it counts 0."
                )
            found.append(QueryWarning(message + _mean(close), use.span.start, use.span.end, close))
        elif use.kind == "tag" and name not in tags:
            close = closest(name, names.tags())
            message = f"No tag named '{name}' in this dataset, so it matches nothing."
            found.append(QueryWarning(message + _mean(close), use.span.start, use.span.end, close))
        elif use.kind == "metadata":
            warning = _metadata_warning(use, names)
            if warning is not None:
                found.append(warning)
    return found


def _sample(names: Names) -> str:
    sampled = names.sampled_items()
    return f" (in a sample of {sampled:,} items)" if sampled is not None else ""


def _metadata_warning(use: NameUse, names: Names) -> QueryWarning | None:
    """A key path whose first key no item has, or whose second key no such object has."""
    keys = names.metadata_keys()
    tops = {k.partition(".")[0] for k in keys}
    first = use.parts[0]
    if first not in tops:
        close = closest(first, tops)
        message = f"No item has the metadata key '{first}'{_sample(names)}." + _mean(close)
        return QueryWarning(message, use.span.start, use.span.end, close)
    nested = [k.partition(".")[2] for k in keys if k.startswith(first + ".")]
    if len(use.parts) >= 2 and nested and use.parts[1] not in nested:
        path = f"{first}.{use.parts[1]}"
        close = closest(use.parts[1], nested)
        message = f"No item has the metadata key '{path}'{_sample(names)}." + _mean(
            f"{first}.{close}" if close else None
        )
        return QueryWarning(message, use.span.start, use.span.end, close)
    return None


# ---------------------------------------------------------------------------- completion


def name_text(name: str) -> str:
    """A name as the query language writes it: bare when it is a plain word, else quoted."""
    if _WORD.fullmatch(name) and name.lower() not in _KEYWORDS:
        return name
    return quote_name(name)


def _matching(typed: str, names: Iterable[str], kind: str) -> list[Suggestion]:
    """Names that start with `typed` (any case), then names that contain it."""
    lowered = typed.lower()
    unique = sorted(set(names))
    first = [n for n in unique if n.lower().startswith(lowered)]
    then = [n for n in unique if lowered in n.lower() and n not in first]
    return [Suggestion(name_text(n), n, kind) for n in [*first, *then]]


def _typed(raw: str) -> str:
    """The name typed so far in a path part, without its opening quote."""
    return raw[1:] if raw[:1] in "\"'`" else raw


def complete(text: str, position: int, names: Names) -> Completion:
    """Suggestions for the name at `position`: what replaces text[start:end] (the name
    typed up to the cursor, and the rest of its word after it)."""
    position = max(0, min(position, len(text)))
    word_end = _NAME_REST.match(text, position).end()  # type: ignore[union-attr]
    # The patterns look back from the cursor; a window keeps them linear on long queries.
    window = max(0, position - WINDOW)
    before = text[window:position]
    value = _NAMED_VALUE.search(before)
    if value is not None:
        kind = value["field"].lower()
        found = names.tags() if kind == "tag" else names.slices()
        start = window + value.start("value")
        end = position if value["value"][:1] in "\"'" else word_end
        return _done(start, end, _matching(_typed(value["value"]), found, kind))
    path = _PATH.search(before)
    if path is None:
        return Completion(position, position, [])
    head = path["head"]
    parts = [(m.start(), m) for m in _PART.finditer(path["rest"])]
    if not parts:
        return _done(window + path.start(), word_end, _matching(head, field_names(), "field"))
    offset = window + path.start("rest")
    last_at, last = parts[-1]
    if last["close"]:  # `predictions[m]` with the cursor after the bracket: nothing to add
        return Completion(position, position, [])
    start = offset + last_at + 1
    typed = _typed(last["name"])
    before_names = [_typed(m["name"]).rstrip("\"'`") for _, m in parts[:-1]]
    bracketed = parts[0][1]["sep"] == "["
    suggestions = _path_suggestions(head, before_names, last["sep"], typed, bracketed, names)
    end = position if last["name"][:1] in "\"'`" else word_end
    if last["sep"] == "[" and not text[end:].startswith("]"):
        suggestions = [Suggestion(s.text + "]", s.label, s.kind) for s in suggestions]
    return _done(start, end, suggestions)


def _path_suggestions(
    head: str,
    before: list[str],
    sep: str,
    typed: str,
    bracketed: bool,
    names: Names,
) -> list[Suggestion]:
    """What may come next in `head.before...` given the name typed so far."""
    if field_is_bracketed(head):
        return _registered_suggestions(head, before, sep, typed, bracketed, names)
    if head == "predictions" and sep == "[" and not before:
        return _matching(typed, names.models(), "model")
    if head == "quality":
        return [] if before else _matching(typed, list(QUALITY_FIELDS), "field")
    if head == "metadata":
        if not before:
            tops = [k.partition(".")[0] for k in names.metadata_keys()]
            return _matching(typed, tops, "key")
        if len(before) == 1:
            prefix = before[0] + "."
            nested = [k[len(prefix) :] for k in names.metadata_keys() if k.startswith(prefix)]
            return _matching(typed, nested, "key")
        return []
    if head not in ("annotations", "predictions"):
        return []
    words = ["count", "kind"]
    if head == "predictions":
        if bracketed:
            model, before = before[0], before[1:]
        else:  # predictions.<label> names the dataset's only model
            models = names.models()
            model = models[0] if len(models) == 1 else ""
        words.append("confidence")
    if not before:
        labels = [*names.labels()]
        if head == "predictions":
            labels += names.prediction_labels(model)
        return _matching(typed, labels, "label") + _matching(typed, words, "word")
    if before == ["kind"]:
        return _matching(typed, [k.value for k in GeometryKind], "word")
    if len(before) == 1:
        after_label = ["count", "confidence"] if head == "predictions" else ["count"]
        return _matching(typed, after_label, "word")
    return []


def _registered_suggestions(
    head: str, before: list[str], sep: str, typed: str, bracketed: bool, names: Names
) -> list[Suggestion]:
    """In a field another app registered with brackets (eval[<run>].fp.<label>): what its
    FieldHelp offers, names from `names.field_keys`."""
    found = field_help(head)
    if found is None or not bracketed:
        return []
    if sep == "[" and not before:
        return _matching(typed, names.field_keys(head), found.key_kind) if found.keys else []
    if sep == "." and len(before) == 1:
        return _matching(typed, found.words, "word")
    if sep == "." and len(before) == 2 and found.then_labels and before[1] in found.words:
        return _matching(typed, names.labels(), "label")
    return []


def _done(start: int, end: int, suggestions: list[Suggestion]) -> Completion:
    return Completion(start, end, suggestions[:MAX_SUGGESTIONS])
