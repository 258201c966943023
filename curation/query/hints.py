"""Help for people typing queries: warnings about names a dataset does not have, and
completions for the name under the cursor.

Pure functions over a `Vocabulary` (the names a dataset uses); curation.vocabulary reads
one from the database and calls these.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from curation.models import GeometryKind
from curation.query.compiler import NameUse, field_names

MAX_SUGGESTIONS = 20
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


@dataclass(frozen=True)
class Vocabulary:
    """The names a dataset uses, as far as bounded reads could see them."""

    labels: Sequence[str] = ()  # of annotations
    prediction_labels: Mapping[str, Sequence[str]] = field(default_factory=dict)  # by model name
    metadata_keys: Sequence[str] = ()  # dotted paths, one level of nesting
    models: Sequence[str] = ()
    tags: Sequence[str] = ()
    slices: Sequence[str] = ()
    sampled_items: int | None = None  # metadata keys and prediction labels come from a sample


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


def warnings_for(uses: Sequence[NameUse], vocabulary: Vocabulary) -> list[QueryWarning]:
    """A warning for each label, metadata key and tag that the vocabulary does not have."""
    sample = (
        f" (in a sample of {vocabulary.sampled_items:,} items)"
        if vocabulary.sampled_items is not None
        else ""
    )
    found: list[QueryWarning] = []
    for use in uses:
        name = use.parts[0]
        if use.kind == "label" and use.model is None:
            if name not in vocabulary.labels:
                close = closest(name, vocabulary.labels)
                message = (
                    f"No annotation in this dataset is labelled '{name}', so it counts 0."
                    + _mean(close)
                )
                found.append(QueryWarning(message, use.span.start, use.span.end, close))
        elif use.kind == "label" and use.model is not None:
            known = [*vocabulary.prediction_labels.get(use.model.name, ()), *vocabulary.labels]
            if name not in known:
                close = closest(name, known)
                message = (
                    f"No prediction of '{use.model.name}' nor annotation is labelled "
                    f"'{name}'{sample}, so it counts 0." + _mean(close)
                )
                found.append(QueryWarning(message, use.span.start, use.span.end, close))
        elif use.kind == "tag":
            if name not in vocabulary.tags:
                close = closest(name, vocabulary.tags)
                message = f"No tag named '{name}' in this dataset, so it matches nothing." + _mean(
                    close
                )
                found.append(QueryWarning(message, use.span.start, use.span.end, close))
        elif use.kind == "metadata":
            warning = _metadata_warning(use, vocabulary, sample)
            if warning is not None:
                found.append(warning)
    return found


def _metadata_warning(use: NameUse, vocabulary: Vocabulary, sample: str) -> QueryWarning | None:
    """A key path whose first key no item has, or whose second key no such object has."""
    keys = vocabulary.metadata_keys
    tops = {k.partition(".")[0] for k in keys}
    first = use.parts[0]
    if first not in tops:
        close = closest(first, tops)
        message = f"No item has the metadata key '{first}'{sample}." + _mean(close)
        return QueryWarning(message, use.span.start, use.span.end, close)
    nested = [k.partition(".")[2] for k in keys if k.startswith(first + ".")]
    if len(use.parts) >= 2 and nested and use.parts[1] not in nested:
        path = f"{first}.{use.parts[1]}"
        close = closest(use.parts[1], nested)
        message = f"No item has the metadata key '{path}'{sample}." + _mean(
            f"{first}.{close}" if close else None
        )
        return QueryWarning(message, use.span.start, use.span.end, close)
    return None


# ---------------------------------------------------------------------------- completion


def name_text(name: str) -> str:
    """A name as the query language writes it: bare when it is a plain word, else quoted."""
    if _WORD.fullmatch(name) and name.lower() not in _KEYWORDS:
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


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


def complete(text: str, position: int, vocabulary: Vocabulary) -> Completion:
    """Suggestions for the name that ends at `position`: what replaces text[start:end]."""
    position = max(0, min(position, len(text)))
    # The patterns look back from the cursor; a window keeps them linear on long queries.
    window = max(0, position - WINDOW)
    before = text[window:position]
    value = _NAMED_VALUE.search(before)
    if value is not None:
        names = vocabulary.tags if value["field"].lower() == "tag" else vocabulary.slices
        start = window + value.start("value")
        kind = value["field"].lower()
        return _done(start, position, _matching(_typed(value["value"]), names, kind))
    path = _PATH.search(before)
    if path is None:
        return Completion(position, position, [])
    head = path["head"]
    parts = [(m.start(), m) for m in _PART.finditer(path["rest"])]
    if not parts:
        return _done(window + path.start(), position, _matching(head, field_names(), "field"))
    offset = window + path.start("rest")
    last_at, last = parts[-1]
    if last["close"]:  # `predictions[m]` with the cursor after the bracket: nothing to add
        return Completion(position, position, [])
    start = offset + last_at + 1
    typed = _typed(last["name"])
    names = [_typed(m["name"]).rstrip("\"'`") for _, m in parts[:-1]]
    bracketed = parts[0][1]["sep"] == "["
    suggestions = _path_suggestions(head, names, last["sep"], typed, bracketed, vocabulary)
    if last["sep"] == "[" and not text[position:].startswith("]"):
        suggestions = [Suggestion(s.text + "]", s.label, s.kind) for s in suggestions]
    return _done(start, position, suggestions)


def _path_suggestions(
    head: str,
    before: list[str],
    sep: str,
    typed: str,
    bracketed: bool,
    vocabulary: Vocabulary,
) -> list[Suggestion]:
    """What may come next in `head.before...` given the name typed so far."""
    if head == "predictions" and sep == "[" and not before:
        return _matching(typed, vocabulary.models, "model")
    if head == "metadata":
        if not before:
            tops = [k.partition(".")[0] for k in vocabulary.metadata_keys]
            return _matching(typed, tops, "key")
        if len(before) == 1:
            prefix = before[0] + "."
            nested = [k[len(prefix) :] for k in vocabulary.metadata_keys if k.startswith(prefix)]
            return _matching(typed, nested, "key")
        return []
    if head not in ("annotations", "predictions"):
        return []
    labels: Sequence[str] = vocabulary.labels
    words = ["count", "kind"]
    if head == "predictions":
        if bracketed:
            model, before = before[0], before[1:]
        else:  # predictions.<label> names the dataset's only model
            model = vocabulary.models[0] if len(vocabulary.models) == 1 else ""
        labels = [*vocabulary.prediction_labels.get(model, ()), *vocabulary.labels]
        words.append("confidence")
    if not before:
        return _matching(typed, labels, "label") + _matching(typed, words, "word")
    if before == ["kind"]:
        return _matching(typed, [k.value for k in GeometryKind], "word")
    if len(before) == 1:
        after_label = ["count", "confidence"] if head == "predictions" else ["count"]
        return _matching(typed, after_label, "word")
    return []


def _done(start: int, end: int, suggestions: list[Suggestion]) -> Completion:
    return Completion(start, end, suggestions[:MAX_SUGGESTIONS])
