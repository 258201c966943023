"""Similarity scores as the pages show them: cosine distances with as many digits as it
takes for different results to read differently.

With an untrained model every image's vector points almost the same way: similarities of
0.9991 and 0.9996 both print as "0.999" or "1.000" at three decimals. Distance (1 -
similarity) keeps the digits that differ in front, and the digits grow until they do.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

MIN_DIGITS = 3
MAX_DIGITS = 8


def distance_texts(similarities: Sequence[float]) -> list[str]:
    """Each cosine similarity as its distance, all with the fewest decimals (from 3 to 8)
    at which results whose distances differ by more than the last of them read apart."""
    distances = [max(0.0, 1.0 - s) for s in similarities]
    ordered = sorted(distances)
    digits = MIN_DIGITS
    while digits < MAX_DIGITS and any(
        f"{a:.{digits}f}" == f"{b:.{digits}f}" and b - a > 10.0**-MAX_DIGITS
        for a, b in itertools.pairwise(ordered)
    ):
        digits += 1
    return [f"{d:.{digits}f}" for d in distances]
