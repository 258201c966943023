"""The item view's annotation editor in a real browser: draw a box, move it, relabel it,
undo and save; accept a prediction with the keyboard and go back to `next`; draw a
polygon and edit its vertices; two browsers editing one annotation get the conflict
dialog; a viewer gets no editor."""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import User

from curation.models import Annotation, Dataset, Item, Prediction
from tests.browser.conftest import VIEWPORT
from tests.browser.support import log_in, screenshot

W, H = 320, 240  # tests.ui_factories.SIZE
SAVED = re.compile(r"^Saved$")  # not "Unsaved changes"


def at(page: Any, x: float, y: float) -> tuple[float, float]:
    """Where image pixel (x, y) is on the page, in the editor's canvas as it is now."""
    box = page.locator("[data-testid=editor-svg]").bounding_box()
    return box["x"] + x / W * box["width"], box["y"] + y / H * box["height"]


def drag(page: Any, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*at(page, *start))
    page.mouse.down()
    page.mouse.move(*at(page, *end), steps=6)
    page.mouse.up()


def saved(page: Any) -> None:
    page.click("[data-testid=editor-save]")
    page.locator("[data-editor-status]", has_text=SAVED).wait_for()


def open_editor(page: Any, dataset: Dataset, item: Item, query: str = "") -> None:
    page.goto(f"/datasets/{dataset.pk}/items/{item.pk}{query}")
    if "edit=1" not in query:
        page.click("[data-testid=edit-button]")
    page.locator("[data-testid=editor-svg]").wait_for()


def close_to(value: float, expected: float) -> bool:
    return abs(value - expected) <= 0.6  # one screen pixel is a third of an image pixel


def test_a_curator_draws_moves_relabels_undoes_and_saves_a_box(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    item = scenes[5]
    before = set(Annotation.objects.filter(item=item).values_list("pk", flat=True))
    log_in(page, bob, "bob-password-1")
    open_editor(page, dataset, item)
    page.keyboard.press("b")
    drag(page, (20, 10), (80, 50))  # the sky: nothing else is drawn there
    drag(page, (50, 30), (70, 40))  # moved by (20, 10)
    page.fill("#editor-label", "bus")
    page.press("#editor-label", "Enter")
    assert page.locator(".ed-ann.is-selected").get_attribute("data-label") == "bus"
    drag(page, (90, 40), (110, 60))  # moved again, and undone
    page.keyboard.press("Control+z")
    assert page.locator("[data-editor-status]").inner_text() == "Unsaved changes"
    screenshot(page, "item-editor")
    saved(page)

    new = Annotation.objects.filter(item=item).exclude(pk__in=before).get()
    g = new.geometry
    assert (new.label, new.kind, new.version) == ("bus", "box", 1)
    assert close_to(g["x"], 40) and close_to(g["y"], 20), g
    assert close_to(g["width"], 60) and close_to(g["height"], 40), g
    # Undo and redo after saving: undoing the relabel and saving changes the label back.
    page.keyboard.press("Control+z")
    saved(page)
    new.refresh_from_db()
    assert (new.label, new.version) == (Annotation.objects.get(pk=min(before)).label, 2)
    # Undoing the move and the drawing itself: saved, the box is deleted.
    page.keyboard.press("Control+z")
    page.keyboard.press("Control+z")
    saved(page)
    assert not Annotation.objects.filter(pk=new.pk).exists()
    assert set(Annotation.objects.filter(item=item).values_list("pk", flat=True)) == before


def test_resizing_a_box_by_its_corner_and_deleting_another(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    item = scenes[3]
    first, *rest = list(Annotation.objects.filter(item=item).order_by("pk"))
    log_in(page, bob, "bob-password-1")
    open_editor(page, dataset, item, "?edit=1")
    page.click("[data-select='k1']")  # the first annotation, from the objects list
    g = first.geometry
    corner = (g["x"] + g["width"], g["y"] + g["height"])
    drag(page, corner, (corner[0] + 10, corner[1] + 5))
    page.keyboard.press("ArrowLeft")  # and nudged one pixel left
    page.keyboard.press("Alt+ArrowDown")  # and one pixel taller
    if rest:
        page.click("[data-select='k2']")
        page.keyboard.press("Delete")
    saved(page)
    first.refresh_from_db()
    assert close_to(first.geometry["width"], g["width"] + 10), first.geometry
    assert close_to(first.geometry["height"], g["height"] + 6), first.geometry
    assert close_to(first.geometry["x"], g["x"] - 1)
    assert first.version == 2
    if rest:
        assert not Annotation.objects.filter(pk=rest[0].pk).exists()


def test_accepting_a_prediction_with_the_keyboard_and_going_back_to_next(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    item = scenes[7]
    count = Annotation.objects.filter(item=item).count()
    top = Prediction.objects.filter(item=item, confidence__gte=0.5).get()
    log_in(page, bob, "bob-password-1")
    back = f"/datasets/{dataset.pk}/?label=car"
    open_editor(page, dataset, item, f"?edit=1&next={back.replace('?', '%3F').replace('=', '%3D')}")
    for _ in range(count + 1):  # past the annotations, to the prediction drawn
        page.keyboard.press("]")
    assert page.locator(".ed-pred.is-selected").count() == 1
    page.keyboard.press("a")
    page.keyboard.press("Control+s")
    page.wait_for_url(lambda url: url.endswith(back))
    accepted = Annotation.objects.filter(item=item).order_by("-pk").first()
    assert accepted is not None and accepted.label == top.label
    assert accepted.geometry == top.geometry
    assert Annotation.objects.filter(item=item).count() == count + 1


def test_drawing_while_zoomed_in_and_panned_lands_on_the_same_pixels(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    item = scenes[8]
    before = set(Annotation.objects.filter(item=item).values_list("pk", flat=True))
    log_in(page, bob, "bob-password-1")
    open_editor(page, dataset, item, "?edit=1")
    pointer = at(page, 60, 40)
    page.mouse.move(*pointer)
    for _ in range(4):
        page.mouse.wheel(0, -100)  # zoom in at the pointer
    zoom = page.locator("[data-editor-zoom]")
    assert zoom.inner_text() == "207%"  # 1.2 ** 4
    # the pixel under the pointer stayed under it
    assert all(abs(a - b) < 1.5 for a, b in zip(at(page, 60, 40), pointer, strict=True))
    frame = page.locator(".item-figure .frame").bounding_box()
    shift = page.locator("[data-testid=editor-svg]").bounding_box()["x"]
    page.keyboard.down(" ")
    page.mouse.move(frame["x"] + 300, frame["y"] + 300)
    page.mouse.down()
    page.mouse.move(frame["x"] + 250, frame["y"] + 300, steps=4)  # pan 50 px left
    page.mouse.up()
    page.keyboard.up(" ")
    assert abs(page.locator("[data-testid=editor-svg]").bounding_box()["x"] - (shift - 50)) < 1
    page.keyboard.press("b")
    drag(page, (40, 30), (70, 50))
    saved(page)
    new = Annotation.objects.filter(item=item).exclude(pk__in=before).get()
    g = new.geometry
    assert close_to(g["x"], 40) and close_to(g["y"], 30), g
    assert close_to(g["width"], 30) and close_to(g["height"], 20), g
    page.keyboard.press("0")
    assert zoom.inner_text() == "100%"


def test_a_box_drawn_with_the_keyboard_alone(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    item = scenes[9]
    before = set(Annotation.objects.filter(item=item).values_list("pk", flat=True))
    log_in(page, bob, "bob-password-1")
    open_editor(page, dataset, item, "?edit=1")
    page.keyboard.press("n")  # 48 x 48 in the middle: (136, 96)
    page.keyboard.press("Shift+ArrowLeft")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("Alt+Shift+ArrowRight")
    page.keyboard.press("l")
    page.keyboard.type("sign")
    page.keyboard.press("Enter")
    page.keyboard.press("Control+s")
    page.locator("[data-editor-status]", has_text=SAVED).wait_for()
    new = Annotation.objects.filter(item=item).exclude(pk__in=before).get()
    assert new.label == "sign"
    assert new.geometry == {"x": 126.0, "y": 95.0, "width": 58.0, "height": 48.0}


def test_a_next_that_leaves_the_site_is_ignored(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    log_in(page, bob, "bob-password-1")
    open_editor(page, dataset, scenes[1], "?edit=1&next=https://example.com/x")
    data = page.evaluate("JSON.parse(document.getElementById('editor-data').textContent)")
    assert data["next"] == ""


def test_drawing_a_polygon_and_editing_its_vertices(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    item = scenes[2]
    before = set(Annotation.objects.filter(item=item).values_list("pk", flat=True))
    log_in(page, bob, "bob-password-1")
    open_editor(page, dataset, item, "?edit=1")
    page.keyboard.press("h")  # predictions hidden: nothing but the image under the clicks
    page.keyboard.press("p")
    for x, y in ((20, 10), (100, 10), (100, 60), (20, 60)):
        page.mouse.click(*at(page, x, y))
    page.keyboard.press("Enter")
    page.mouse.click(*at(page, 60, 10))  # on the top edge: a vertex there
    drag(page, (60, 10), (60, 4))  # moved up
    page.mouse.move(*at(page, 100, 60))
    page.keyboard.down("Alt")
    page.mouse.click(*at(page, 100, 60))  # Alt+click deletes a vertex
    page.keyboard.up("Alt")
    saved(page)
    new = Annotation.objects.filter(item=item).exclude(pk__in=before).get()
    assert new.kind == "polygon"
    vertices = new.geometry["vertices"]
    assert len(vertices) == 4, vertices
    assert [round(v) for v in vertices[0]] == [20, 10]
    assert close_to(vertices[1][0], 60) and close_to(vertices[1][1], 4), vertices
    assert [round(v) for v in vertices[3]] == [20, 60]


def test_a_category_label_is_added_and_removed(
    page: Any, bob: User, dataset: Dataset, scenes: list[Item]
) -> None:
    item = scenes[4]
    log_in(page, bob, "bob-password-1")
    open_editor(page, dataset, item, "?edit=1")
    page.keyboard.press("c")
    page.keyboard.type("night")
    page.keyboard.press("Enter")
    saved(page)
    made = Annotation.objects.get(item=item, kind="category")
    assert made.label == "night"
    page.click("[aria-label='Remove category night']")
    saved(page)
    assert not Annotation.objects.filter(item=item, kind="category").exists()
    page.click("#editor-bar [data-action=close]")  # nothing unsaved: no question
    page.wait_for_url(lambda url: "edit=1" not in url)
    assert page.locator("[data-testid=edit-button]").is_visible()
    assert page.locator("#editor-bar").is_hidden()


def test_two_browsers_editing_one_annotation_get_a_conflict(
    page: Any,
    browser: Any,
    live_server: Any,
    alice: User,
    bob: User,
    dataset: Dataset,
    scenes: list[Item],
) -> None:
    item = scenes[6]
    target = Annotation.objects.filter(item=item).order_by("pk").first()
    assert target is not None
    other = browser.new_context(viewport=VIEWPORT, base_url=live_server.url)
    other.set_default_timeout(15_000)
    try:
        second = other.new_page()
        log_in(page, bob, "bob-password-1")
        log_in(second, alice, "alice-password-1")
        open_editor(page, dataset, item, "?edit=1")
        open_editor(second, dataset, item, "?edit=1")
        for each, label in ((page, "bus"), (second, "truck")):
            each.click("[data-select='k1']")
            each.fill("#editor-label", label)
            each.press("#editor-label", "Enter")
        saved(page)  # bob first
        second.click("[data-testid=editor-save]")
        dialog = second.locator("[data-testid=conflict-dialog]")
        dialog.wait_for()
        rows = dialog.locator("[data-conflict-rows]").inner_text()
        assert "bus" in rows and "truck" in rows
        screenshot(second, "item-editor-conflict")
        target.refresh_from_db()
        assert (target.label, target.version) == ("bus", 2)
        second.click("[data-conflict=overwrite]")
        second.locator("[data-editor-status]", has_text=SAVED).wait_for()
        target.refresh_from_db()
        assert (target.label, target.version) == ("truck", 3)

        # bob saves again from his stale copy and takes theirs this time
        page.fill("#editor-label", "van")
        page.press("#editor-label", "Enter")
        page.click("[data-testid=editor-save]")
        page.locator("[data-testid=conflict-dialog]").wait_for()
        page.click("[data-conflict=reload]")
        page.locator("[data-editor-status]", has_text="Reloaded").wait_for()
        assert page.locator(".ed-ann.is-selected").get_attribute("data-label") == "truck"
        target.refresh_from_db()
        assert (target.label, target.version) == ("truck", 3)
    finally:
        other.close()


def test_a_viewer_gets_no_editor(
    page: Any, victor: User, dataset: Dataset, scenes: list[Item]
) -> None:
    log_in(page, victor, "victor-password-1")
    page.goto(f"/datasets/{dataset.pk}/items/{scenes[0].pk}?edit=1")
    page.locator("#item-overlay").wait_for()
    assert page.locator("[data-testid=edit-button]").count() == 0
    assert page.locator("#editor-bar").count() == 0
    assert page.locator("#editor-data").count() == 0
