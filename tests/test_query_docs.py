"""docs/query-language.md stays true: every ```query example in it runs.

Examples marked ``expect=a,b`` (or ``expect=none``) must return exactly those items of
the example dataset; examples marked ``error`` must be refused, with the message of the
```error block that follows them when there is one; all others must compile and execute.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from curation.models import Dataset, Item
from curation.query import QueryError, filter_items
from tests.query_dataset import matching, module_dataset

DOC = Path(__file__).resolve().parent.parent / "docs" / "query-language.md"
FENCE = re.compile(r"^```(?P<lang>\w*)(?P<info>[^\n]*)\n(?P<body>.*?)^```[ \t]*$", re.M | re.S)


@dataclass
class Example:
    text: str
    line: int
    expect: list[str] | None = None
    error: bool = False
    message: str | None = None


def examples() -> list[Example]:
    source = DOC.read_text(encoding="utf-8")
    found: list[Example] = []
    for block in FENCE.finditer(source):
        lang, info, body = block["lang"], block["info"].strip(), block["body"].rstrip("\n")
        if lang == "error" and found and found[-1].error:
            found[-1].message = body.strip()
            continue
        if lang != "query":
            continue
        example = Example(body, source.count("\n", 0, block.start()) + 1)
        for word in info.split():
            if word == "error":
                example.error = True
            elif word.startswith("expect="):
                value = word.removeprefix("expect=")
                example.expect = [] if value == "none" else sorted(value.split(","))
            else:
                raise AssertionError(f"line {example.line}: unknown example option {word!r}")
        found.append(example)
    return found


EXAMPLES = examples()


@pytest.fixture(scope="module")
def shared_dataset(django_db_blocker: Any) -> Iterator[Dataset]:
    with module_dataset(django_db_blocker) as dataset:
        yield dataset


@pytest.fixture
def dataset(db: None, shared_dataset: Dataset) -> Dataset:
    return shared_dataset


def test_it_finds_every_example() -> None:
    source = DOC.read_text(encoding="utf-8")
    assert len(EXAMPLES) == source.count("```query")
    assert len(EXAMPLES) >= 60
    assert sum(e.expect is not None for e in EXAMPLES) >= 50
    assert sum(e.error for e in EXAMPLES) >= 5


@pytest.mark.parametrize("example", EXAMPLES, ids=[f"line {e.line}" for e in EXAMPLES])
def test_it_runs_the_example(dataset: Dataset, example: Example) -> None:
    if example.error:
        with pytest.raises(QueryError) as caught:
            list(filter_items(Item.objects.all(), example.text, dataset=dataset))
        if example.message is not None:
            assert caught.value.message == example.message
        return
    result = matching(dataset, example.text)
    if example.expect is not None:
        assert result == example.expect, f"docs line {example.line}: {example.text}"
