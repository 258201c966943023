"""Review by keyboard in a real browser: a curator opens the dataset's Review tab, starts
a queue, and reviews five entries with the keys alone (accept, reject with a reason picked
by its number and a note, skip), steps back and forth, undoes one and marks it corrected
instead; the queue's page then shows the progress and the reviewer's counts."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import User

from curation.models import Dataset, Item
from review.models import ReviewEntry, ReviewQueue
from review.services import queue_create
from tests.browser.support import axe_violations, describe_violations, log_in, screenshot


def _entry_url(page: Any) -> str:
    return str(page.url.split("/entries/")[1].rstrip("/"))


def _press_and_wait(page: Any, key: str) -> None:
    """Press a key that leaves the page, and wait for the next page to load."""
    before = page.url
    page.keyboard.press(key)
    page.wait_for_url(lambda url: url != before)
    page.wait_for_load_state()


def test_a_curator_reviews_five_entries_by_keyboard(
    page: Any, bob: User, alice: User, dataset: Dataset, scenes: list[Item]
) -> None:
    refs = [i.reference_id for i in scenes[:6]]
    queue = queue_create(
        dataset=dataset,
        user=alice,
        name="first look",
        source={"kind": "items", "reference_ids": refs, "with_annotations": True},
    )
    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    page.click("[data-testid=tab-review]")
    page.click("[data-testid=queue-link]")
    page.click("[data-testid=start-review]")
    page.wait_for_url(lambda url: "/entries/" in url)
    assert page.locator("[data-testid=entry-ref]").inner_text() == refs[0]
    # The annotations under review are drawn emphasised over the picture.
    entry = ReviewEntry.objects.get(queue=queue, position=0)
    assert page.locator("#item-overlay .shape-focus").count() == len(entry.annotations)
    found = axe_violations(page)
    assert not found, describe_violations(found)

    _press_and_wait(page, "a")  # 1: accept
    _press_and_wait(page, "a")  # 2: accept
    assert page.locator("[data-testid=entry-ref]").inner_text() == refs[2]
    page.keyboard.press("r")  # 3: reject, reason 2 (bad box), a note, Enter
    picker = page.locator("[data-reason-picker]")
    assert picker.is_visible()
    page.keyboard.press("2")
    assert picker.locator("input[value=bad_box]").is_checked()
    page.locator("[data-testid=note]").fill("box cuts the car's rear")
    page.locator("[data-testid=note]").press("Tab")
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "review-screen")
    _press_and_wait(page, "Enter")
    _press_and_wait(page, "s")  # 4: skip
    _press_and_wait(page, "ArrowRight")  # no later entry of bob's: claims the next open one
    assert page.locator("[data-testid=entry-ref]").inner_text() == refs[5]
    # Back through bob's entries (the one he passed, the skipped one) and forward again.
    _press_and_wait(page, "k")
    assert page.locator("[data-testid=entry-ref]").inner_text() == refs[4]
    _press_and_wait(page, "ArrowLeft")
    assert page.locator("[data-testid=entry-status]").inner_text() == "skipped"
    _press_and_wait(page, "j")
    _press_and_wait(page, "j")
    assert page.locator("[data-testid=entry-ref]").inner_text() == refs[5]
    _press_and_wait(page, "a")  # 5: accept the sixth: the last for bob
    decided = {
        e.item.reference_id: (e.status, e.reason.key if e.reason else None, e.note)
        for e in ReviewEntry.objects.filter(queue=queue).select_related("item", "reason")
    }
    assert decided == {
        refs[0]: ("accepted", None, ""),
        refs[1]: ("accepted", None, ""),
        refs[2]: ("rejected", "bad_box", "box cuts the car's rear"),
        refs[3]: ("skipped", None, ""),
        refs[4]: ("claimed", None, ""),
        refs[5]: ("accepted", None, ""),
    }
    # The last decision brought bob back to the queue page; u there is not bound, so go to
    # an entry and undo from it: the sixth is his again.
    page.goto(f"/datasets/{dataset.pk}/review/{queue.pk}/entries/{entry.pk}/")
    _press_and_wait(page, "u")
    assert page.locator("[data-testid=entry-ref]").inner_text() == refs[5]
    assert page.locator("[data-testid=entry-status]").inner_text() == "claimed"
    _press_and_wait(page, "c")  # corrected, this time
    assert ReviewEntry.objects.get(queue=queue, position=5).status == "corrected"

    page.goto(f"/datasets/{dataset.pk}/review/{queue.pk}/")
    assert page.locator("[data-testid=progress]").inner_text() == "5 / 6"
    row = page.locator('[data-testid=reviewer-stats] tr[data-reviewer="bob"] td')
    assert row.all_inner_texts()[:5] == ["bob", "2", "1", "1", "1"]
    objects = page.locator("[data-testid=entries] tbody tr").first.locator("td").nth(2)
    assert objects.inner_text() == str(len(entry.annotations))
    assert (
        page.locator('[data-testid=reason-stats] tr[data-reason="bad_box"] td').nth(1).inner_text()
        == "1"
    )
    screenshot(page, "review-queue", full_page=True)
    found = axe_violations(page)
    assert not found, describe_violations(found)


def test_review_selection_makes_a_queue_of_the_three_tiles_picked_in_the_grid(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    log_in(page, bob, "bob-password-1")
    page.goto(f"/datasets/{dataset.pk}/")
    tiles = page.locator(".tile")
    for index in (7, 2, 4):
        tiles.nth(index).click()
    assert page.locator("[data-sel-count]").inner_text() == "3 selected"
    page.fill("#selection-form input[name=name]", "grid picks")
    page.click("[data-testid=sel-review]")
    page.wait_for_url(lambda url: url.endswith("/review/from-selection"))
    form = page.locator("[data-testid=queue-form]")
    assert page.locator("[data-testid=queue-prefill]").is_visible()
    assert form.locator("input[name=name]").input_value() == "grid picks"
    assert form.locator("[data-source-kind]").input_value() == "items"
    assert form.locator("[data-testid=queue-reference-ids]").is_visible()  # its fieldset shown
    found = axe_violations(page)
    assert not found, describe_violations(found)
    form.locator("input[name=with_annotations]").check()
    form.locator("button[type=submit]").click()
    page.wait_for_url(lambda url: "/review/" in url and url.rstrip("/").split("/")[-1].isdigit())
    queue = ReviewQueue.objects.get(dataset=dataset)
    assert page.url.endswith(f"/review/{queue.pk}/")
    entries = ReviewEntry.objects.filter(queue=queue).order_by("position")
    assert [e.item_id for e in entries] == [scenes[i].pk for i in (7, 2, 4)]
    assert (queue.name, queue.source_kind) == ("grid picks", "items")
    assert page.locator("[data-testid=progress]").inner_text() == "0 / 3"
