"""Label colours: distinct for any number of labels a dataset has, safe for the common
colour-vision deficiencies where the palette can be, and the same for a label every time."""

from __future__ import annotations

import itertools
import math

import pytest

from curation.ui.palette import (
    MAX_COLOURS,
    OKABE_ITO,
    LabelColours,
    colour_at,
    contrast,
    distance,
    linear_rgb,
    oklab_of_linear,
    sequence,
    text_on,
)

OLD_PALETTE = ("#f43f5e", "#22c55e", "#3b82f6", "#f59e0b", "#a855f7", "#14b8a6", "#ec4899")

# Machado, Oliveira & Fernandes (2009), severity 1.0, on linear sRGB.
DEFICIENCIES = {
    "protanopia": (
        (0.152286, 1.052583, -0.204868),
        (0.114503, 0.786281, 0.099216),
        (-0.003882, -0.048116, 1.051998),
    ),
    "deuteranopia": (
        (0.367322, 0.860646, -0.227968),
        (0.280085, 0.672501, 0.047413),
        (-0.011820, 0.042940, 0.968881),
    ),
    "tritanopia": (
        (1.255528, -0.076749, -0.178779),
        (-0.078411, 0.930809, 0.147602),
        (0.004733, 0.691367, 0.303900),
    ),
}


def smallest_distance(colours: list[str]) -> float:
    return min(distance(a, b) for a, b in itertools.combinations(colours, 2))


def seen_with(matrix: tuple[tuple[float, ...], ...], colour: str) -> tuple[float, float, float]:
    rgb = linear_rgb(colour)
    r, g, b = (
        min(1.0, max(0.0, sum(m * c for m, c in zip(row, rgb, strict=True)))) for row in matrix
    )
    return oklab_of_linear(r, g, b)


# A floor per number of labels: what a reader can still tell apart shrinks as colours
# must share the gamut with more of them.
@pytest.mark.parametrize(
    ("most", "floor"), [(7, 0.15), (12, 0.15), (20, 0.12), (32, 0.095), (64, 0.055)]
)
def test_it_keeps_every_pair_of_label_colours_apart(most: int, floor: float) -> None:
    for n in range(2, most + 1):
        colours = LabelColours(f"label-{i:03d}" for i in range(n))
        assert smallest_distance([colours(label) for label in colours.labels]) > floor, n


def test_the_old_collisions_are_gone() -> None:
    colours = LabelColours(["bicycle", "bus", "car", "person", "sign", "traffic_light", "truck"])
    assert colours("car") != colours("bus")
    assert colours("sign") != colours("bicycle")
    assert distance(colours("truck"), colours("traffic_light")) > 0.15


@pytest.mark.parametrize("deficiency", sorted(DEFICIENCIES))
def test_the_first_seven_stay_apart_for_colour_blind_readers(deficiency: str) -> None:
    matrix = DEFICIENCIES[deficiency]

    def smallest_seen(colours: tuple[str, ...]) -> float:
        seen = [seen_with(matrix, c) for c in colours]
        return min(math.dist(a, b) for a, b in itertools.combinations(seen, 2))

    assert smallest_seen(OKABE_ITO) > 0.07
    # The check can fail: the first seven colours of the palette before this one (blue and
    # purple, green and teal) run together for these readers.
    assert smallest_seen(OLD_PALETTE) < 0.07


def test_a_label_keeps_its_colour_while_the_labels_before_it_stay() -> None:
    first = LabelColours(["car", "person", "bicycle"])
    again = LabelColours(["person", "bicycle", "car", "bicycle"])
    more = LabelColours(["bicycle", "car", "person", "zebra"])
    for label in ("bicycle", "car", "person"):
        assert first(label) == again(label) == more(label)
    assert first.labels == ["bicycle", "car", "person"]
    assert [first(label) for label in first.labels] == list(OKABE_ITO[:3])


def test_the_sequence_is_the_same_every_time() -> None:
    sequence.cache_clear()
    once = sequence()
    sequence.cache_clear()
    assert sequence() == once
    assert len(set(once)) == len(once)
    assert colour_at(len(once)) == once[0]


def test_a_label_outside_the_list_gets_a_colour_past_it_the_same_every_time() -> None:
    colours = LabelColours(["car", "person"])
    assert colours("bus") == LabelColours(["car", "person"])("bus")
    assert colours("bus") not in (colours("car"), colours("person"))


def test_label_text_is_dark_on_light_colours_and_light_on_dark_ones() -> None:
    assert text_on("#f0e442") == "#111827"  # yellow
    assert text_on("#0072b2") == "#ffffff"  # blue
    assert text_on("#009e73") == "#111827"  # bluish green: white reads at only 3.4:1


def test_label_text_reads_at_4_5_to_1_on_every_label_colour() -> None:
    for index in range(MAX_COLOURS):
        colour = colour_at(index)
        assert contrast(text_on(colour), colour) >= 4.5, colour
