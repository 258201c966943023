"""Insights: what the service computes to point at the data that matters (label-error
candidates, uniqueness, uncertainty, leaks between splits). Models arrive with the
signals that need them; see docs/insights.md."""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models

from curation.models import Dataset, Item, Job
from embeddings.models import EmbeddingModel

# ------------------------------------------------- uniqueness, representativeness, outliers


class ScoreRun(models.Model):
    """One computation of the embedding scores of a (dataset, model) (insights/uniqueness.py).

    The newest run's rows are the scores; a new run replaces them."""

    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(EmbeddingModel, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    neighbors = models.PositiveIntegerField()
    centroids = models.PositiveIntegerField(default=0)
    # The k-means centres (pgvector literals), fitted once per run so a resumed job keeps them.
    centres = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    # The weights were random when the run computed: the scores are not semantic.
    random_weights = models.BooleanField(default=False)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)
    item_count = models.PositiveIntegerField(default=0)
    seconds = models.FloatField(default=0.0)

    class Meta:
        indexes = [models.Index(fields=["dataset", "model", "-id"], name="scorerun_ds_model")]

    def __str__(self) -> str:
        return f"scores of model {self.model_id} in dataset {self.dataset_id} (#{self.pk})"


class ItemScore(models.Model):
    """An item's embedding scores under one model: the raw measures and their [0, 1] ranks.

    uniqueness: the rank (percentile) of the mean cosine distance to the k nearest
    neighbours; representativeness: the rank of the cosine similarity to the nearest
    k-means centre; outlier: the rank of a simplified local outlier factor (the item's
    mean k-NN distance over its neighbours' mean). See docs/insights.md."""

    run = models.ForeignKey(ScoreRun, on_delete=models.CASCADE, related_name="scores")
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    model = models.ForeignKey(EmbeddingModel, on_delete=models.CASCADE, related_name="+")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+", db_index=False)
    knn_distance = models.FloatField()
    centroid_similarity = models.FloatField()
    lof = models.FloatField(null=True)
    neighbors = ArrayField(models.BigIntegerField(), default=list)
    uniqueness = models.FloatField(null=True)
    representativeness = models.FloatField(null=True)
    outlier = models.FloatField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "item"], name="itemscore_model_item"),
        ]
        indexes = [
            models.Index(fields=["item"], name="itemscore_item"),
            models.Index(fields=["run", "item"], name="itemscore_run_item"),
            models.Index(fields=["model", "dataset", "uniqueness"], name="itemscore_uniqueness"),
            models.Index(
                fields=["model", "dataset", "representativeness"], name="itemscore_represent"
            ),
            models.Index(fields=["model", "dataset", "outlier"], name="itemscore_outlier"),
        ]

    def __str__(self) -> str:
        return f"scores of item {self.item_id} under model {self.model_id}"


# ------------------------------------------------------------------ leaks between splits


class LeakReport(models.Model):
    """Items of one side (a slice or a tag) that duplicate items of another (insights/leaks.py)."""

    class Status(models.TextChoices):
        RUNNING = "running"
        FINISHED = "finished"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    a_kind = models.CharField(max_length=8)  # "slice" or "tag"
    a_name = models.CharField(max_length=200)
    b_kind = models.CharField(max_length=8)
    b_name = models.CharField(max_length=200)
    model = models.ForeignKey(
        EmbeddingModel, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    hash_distance = models.PositiveIntegerField()
    embedding_distance = models.FloatField(null=True)  # null: no embedding evidence
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)
    pair_count = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"leaks {self.a_kind}:{self.a_name} / {self.b_kind}:{self.b_name} (#{self.pk})"


class LeakPair(models.Model):
    """An item of side A and an item of side B that are the same picture, or nearly."""

    class Evidence(models.TextChoices):
        SAME_ITEM = "same_item", "Same item"  # the very item is on both sides
        EXACT = "exact", "Same content hash"
        PHASH = "phash", "Perceptual hash"
        EMBEDDING = "embedding", "Embedding"

    report = models.ForeignKey(LeakReport, on_delete=models.CASCADE, related_name="pairs")
    item_a = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+", db_index=False)
    item_b = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+", db_index=False)
    evidence = models.CharField(max_length=16, choices=Evidence.choices)
    distance = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["report", "item_a", "item_b"], name="leakpair_unique"),
        ]
        indexes = [models.Index(fields=["item_a"], name="leakpair_a")]

    def __str__(self) -> str:
        return f"{self.evidence} leak {self.item_a_id} / {self.item_b_id}"
