"""A selection: the slice a recipe made (what to label next), with the recipe itself.

The recipe (strategies, weights, pool, budget, seed) is stored as given and cleaned, so a
selection can be read back, shown on its slice's page and in the API, and run again. The
slice is an ordinary static slice of curation; its first version (frozen at once) is what
goes to labelling.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from curation.models import Dataset, Job, Slice, SliceVersion


class Selection(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    # Null while its job runs; the slice, version and figures are written together at the end.
    slice = models.OneToOneField(
        Slice, on_delete=models.CASCADE, null=True, blank=True, related_name="selection"
    )
    version = models.ForeignKey(
        SliceVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    recipe = models.JSONField()
    figures = models.JSONField(default=dict, blank=True)  # per-strategy contribution, timings
    item_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["dataset", "-id"], name="selection_dataset")]

    def __str__(self) -> str:
        return f"selection {self.pk} of dataset {self.dataset_id}"
