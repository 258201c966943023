"""The grid's and the item page's view of a run (curation.ui.extensions.RunOutcomes):
the finished runs to pick from, each object's outcome to colour its box by, and the
orders of items by their matches. EvaluationConfig.ready registers it; curation never
imports this app.

Sort keys (docs/ui.md, docs/evaluation.md): each lists the items that have a match of
its outcome, by their best such match, and only those.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.db.models import QuerySet

from curation.models import Dataset, Item
from curation.ui.extensions import ObjectOutcomes, RunChoice, SortedPage, SortKey
from evaluation.selectors import finished_runs, items_by_match, object_outcomes


@dataclass(frozen=True)
class Order:
    key: str
    title: str
    outcome: str
    column: str  # "confidence" or "iou"
    descending: bool


ORDERS = (
    Order("fp-confidence", "most confident false positive first", "fp", "confidence", True),
    Order("tp-iou", "worst-placed true positive first (lowest IoU)", "tp", "iou", False),
    Order("tp-confidence", "least confident true positive first", "tp", "confidence", False),
)
ORDERS_BY_KEY = {o.key: o for o in ORDERS}


class EvaluationOutcomes:
    def runs(self, dataset: Dataset) -> list[RunChoice]:
        return [
            RunChoice(pk, name, model_id, float(options.get("confidence_threshold", 0.0)))
            for pk, name, model_id, options in finished_runs(dataset=dataset)
        ]

    def outcomes(self, run: RunChoice, item_ids: Sequence[int]) -> ObjectOutcomes:
        found = ObjectOutcomes()
        for annotation_id, prediction_id, outcome in object_outcomes(
            run_id=run.id, item_ids=item_ids
        ):
            if annotation_id is not None:
                found.annotations[annotation_id] = outcome
            if prediction_id is not None:
                found.predictions[prediction_id] = outcome
        return found

    def sort_keys(self) -> list[SortKey]:
        return [SortKey(o.key, o.title) for o in ORDERS]

    def sorted_page(
        self,
        run: RunChoice,
        key: str,
        items: QuerySet[Item] | None,
        after: tuple[float, int] | None,
        limit: int,
    ) -> SortedPage:
        order = ORDERS_BY_KEY[key]
        rows, has_next = items_by_match(
            run_id=run.id,
            outcome=order.outcome,
            column=order.column,
            descending=order.descending,
            items=items,
            after=after,
            limit=limit,
        )
        return SortedPage(rows, has_next)
