"""The review pages: a dataset's queues (and the form that makes one, also opened from the
grid's selection bar with the selected items as its source), a queue's page
(progress, per-reviewer counts, acceptance rate, reasons, entries) and the review screen
(keyboard first: review/static/review/review.js). Views fetch, check access, call one
service or selector and render; they never query."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_POST, require_safe

from curation.errors import CurationError
from curation.models import Dataset, Role
from curation.params import int_value
from curation.ui.http import back_with_error, dataset_or_404, html_errors
from curation.ui.selection import selection_reference_ids
from review import selectors
from review.claims import entry_claim_next
from review.decisions import entry_decide_and_claim_next, entry_undo
from review.models import ReviewEntry, ReviewQueue, SourceKind, Status
from review.screen import entry_url, review_screen
from review.services import queue_create, queue_delete, reason_add

ENTRIES_SHOWN = 200
MAX_NAME = 200  # the queue form's name field


def _can_review(dataset: Dataset) -> bool:
    return dataset.user_role in (Role.CURATOR, Role.ADMIN)


def _queue_url(queue: ReviewQueue) -> str:
    return reverse("review-ui:queue", args=[queue.dataset_id, queue.pk])


@dataclass(frozen=True)
class Prefill:
    """The new-queue form filled from the grid's selection: a source of kind `items`."""

    name: str
    reference_ids: str
    count: int


def _queues_render(
    request: HttpRequest, dataset: Dataset, prefill: Prefill | None = None
) -> HttpResponse:
    queues = list(selectors.queues_of(dataset=dataset).order_by("-id"))
    done = selectors.queues_done(queues=queues)
    return render(
        request,
        "review/queues.html",
        {
            "dataset": dataset,
            "tab": "review",
            "queues": [(q, (done.get(q.pk, 0), q.entry_count)) for q in queues],
            "choices": selectors.form_choices(dataset=dataset),
            "reasons": selectors.reasons_of(dataset=dataset),
            "kinds": SourceKind.choices,
            "can_review": _can_review(dataset),
            "prefill": prefill,
        },
    )


@require_safe
@login_required
@html_errors
def queues_page(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """A dataset's queues, with their progress, and the form that makes one."""
    return _queues_render(request, dataset_or_404(request, dataset_id))


@require_POST
@login_required
@html_errors
def queue_from_selection(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """The new-queue form with the grid's selection as its items (the selection bar's
    "Review selection"); the curator names the queue and says what to check."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    refs = selection_reference_ids(dataset, request.POST)
    name = request.POST.get("name", "").strip()[:MAX_NAME]
    return _queues_render(request, dataset, Prefill(name, "\n".join(refs), len(refs)))


def _source(post: Any) -> dict[str, Any]:
    """The source of the create form: its kind and that kind's fields."""
    kind = post.get("kind", "")
    source: dict[str, Any] = {"kind": kind}
    fields = {
        "slice": ["slice", "with_annotations", "labels", "limit"],
        "query": ["query", "with_annotations", "labels", "limit"],
        "items": ["with_annotations", "labels"],
        "label_errors": ["scan", "type", "min_score", "limit"],
        "evaluation": ["run", "outcome", "label", "limit"],
    }.get(kind, [])
    for name in fields:
        value = post.get(name, "")
        if value != "":
            source[name] = value
    if kind == "items":
        source["reference_ids"] = [
            line.strip() for line in post.get("reference_ids", "").splitlines() if line.strip()
        ]
    return source


@require_POST
@login_required
@html_errors
def queue_create_view(request: HttpRequest, dataset_id: int) -> HttpResponse:
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    back = reverse("review-ui:queues", args=[dataset.pk])
    try:
        queue = queue_create(
            dataset=dataset,
            user=request.user,
            name=request.POST.get("name", ""),
            description=request.POST.get("description", ""),
            source=_source(request.POST),
            assignment=request.POST.get("assignment", "claim"),
            assignees=[
                a.strip() for a in request.POST.get("assignees", "").split(",") if a.strip()
            ],
            claim_minutes=int_value(
                request.POST.get("claim_minutes") or "30", "claim_minutes", low=1
            ),
        )
    except CurationError as exc:
        return back_with_error(request, back, exc)
    messages.success(request, f"Queue “{queue.name}” made with {queue.entry_count} entries.")
    return HttpResponseRedirect(_queue_url(queue))


@require_POST
@login_required
@html_errors
def reason_add_view(request: HttpRequest, dataset_id: int) -> HttpResponse:
    """Add a reject reason to the dataset's list (curators); a bad or taken label comes
    back to the page with the field's reason."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    back = reverse("review-ui:queues", args=[dataset.pk]) + "#reasons"
    try:
        reason = reason_add(dataset=dataset, label=request.POST.get("label", ""))
    except CurationError as exc:
        return back_with_error(request, back, exc)
    messages.success(request, f"Added the reason “{reason.label}” ({reason.key}).")
    return HttpResponseRedirect(back)


@require_safe
@login_required
@html_errors
def queue_page(request: HttpRequest, dataset_id: int, queue_id: int) -> HttpResponse:
    """A queue: progress, per-reviewer counts, acceptance rate, reasons and entries."""
    dataset = dataset_or_404(request, dataset_id)
    queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
    status = request.GET.get("status") or None
    raw_after = request.GET.get("after")
    after = None if raw_after in (None, "") else int_value(raw_after, "after", low=0)
    page = list(selectors.entries_of(queue=queue, status=status, after=after)[: ENTRIES_SHOWN + 1])
    entries, more = page[:ENTRIES_SHOWN], len(page) > ENTRIES_SHOWN
    return render(
        request,
        "review/queue.html",
        {
            "dataset": dataset,
            "tab": "review",
            "queue": queue,
            "stats": selectors.queue_stats(queue=queue),
            "entries": entries,
            "status": status or "",
            "statuses": Status.values,
            "assignees": selectors.usernames(queue.assignees),
            "can_review": _can_review(dataset),
            "shown": ENTRIES_SHOWN,
            "after": after,
            "next_after": entries[-1].position if more else None,
        },
    )


@require_POST
@login_required
@html_errors
def claim_view(request: HttpRequest, dataset_id: int, queue_id: int) -> HttpResponse:
    """Claim the reviewer's next entry (past `after`, the entry the screen showed) and
    open it."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
    raw_after = request.POST.get("after")
    try:
        after = int_value(raw_after, "after", low=0) if raw_after else None
        claimed = entry_claim_next(queue=queue, user=request.user, after=after)
    except CurationError as exc:
        return back_with_error(request, _queue_url(queue), exc)
    if not claimed:
        messages.info(request, "Nothing left for you to review in this queue.")
        return HttpResponseRedirect(_queue_url(queue))
    return HttpResponseRedirect(entry_url(claimed[0], dataset.pk))


@require_safe
@login_required
@html_errors
def entry_page(request: HttpRequest, dataset_id: int, queue_id: int, entry_id: int) -> HttpResponse:
    """The review screen of one entry."""
    dataset = dataset_or_404(request, dataset_id)
    queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
    entry = selectors.entry_of(queue=queue, entry_id=entry_id)
    screen = review_screen(
        dataset=dataset, queue=queue, entry=entry, user=request.user, here=request.path
    )
    return render(
        request,
        "review/entry.html",
        {
            "dataset": dataset,
            "tab": "review",
            "screen": screen,
            "queue": queue,
            "entry": entry,
            "can_review": _can_review(dataset),
        },
    )


def _objects(post: Any, entry: ReviewEntry, decision: str) -> list[dict[str, Any]] | None:
    """Per-object decisions from the screen's form: accept + add writes the predictions
    as annotations; a rejection with some objects unticked accepts those."""
    if post.get("add_annotations") and decision == Status.ACCEPTED:
        return [
            {"prediction": pk, "decision": decision, "add_annotation": True}
            for pk in entry.predictions
        ]
    if decision != Status.REJECTED or "reject_objects" not in post:
        return None
    ticked = set(post.getlist("reject_objects"))
    listed = [("annotation", f"a{pk}", pk) for pk in entry.annotations]
    listed += [("prediction", f"p{pk}", pk) for pk in entry.predictions]
    return [
        {kind: pk, "decision": Status.ACCEPTED} for kind, key, pk in listed if key not in ticked
    ]


@require_POST
@login_required
@html_errors
def decide_view(
    request: HttpRequest, dataset_id: int, queue_id: int, entry_id: int
) -> HttpResponse:
    """Decide the entry (the screen's accept, reject, skip), then open the next one."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
    entry = selectors.entry_of(queue=queue, entry_id=entry_id)
    decision = request.POST.get("decision", "")
    objects = _objects(request.POST, entry, decision)
    try:
        _, following = entry_decide_and_claim_next(
            entry=entry,
            user=request.user,
            decision=decision,
            reason=request.POST.get("reason") or None,
            note=request.POST.get("note", ""),
            objects=objects,
        )
    except CurationError as exc:
        return back_with_error(request, entry_url(entry, dataset.pk), exc)
    if following is None:
        messages.success(request, "That was the last entry for you in this queue.")
        return HttpResponseRedirect(_queue_url(queue))
    return HttpResponseRedirect(entry_url(following, dataset.pk))


@require_POST
@login_required
@html_errors
def undo_view(request: HttpRequest, dataset_id: int, queue_id: int) -> HttpResponse:
    """Undo the reviewer's last decision in the queue and open that entry again."""
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
    try:
        undone = entry_undo(queue=queue, user=request.user)
    except CurationError as exc:
        return back_with_error(request, _queue_url(queue), exc)
    messages.info(request, f"Undid the decision on entry {undone.position + 1}.")
    return HttpResponseRedirect(entry_url(undone, dataset.pk))


@require_POST
@login_required
@html_errors
def queue_delete_view(request: HttpRequest, dataset_id: int, queue_id: int) -> HttpResponse:
    dataset = dataset_or_404(request, dataset_id, Role.CURATOR)
    queue = selectors.queue_of(dataset=dataset, queue_id=queue_id)
    queue_delete(queue=queue)
    messages.success(request, f"Deleted the queue “{queue.name}”.")
    return HttpResponseRedirect(reverse("review-ui:queues", args=[dataset.pk]))
