"""Insights: what the service computes to point at the data that matters (label-error
candidates, uniqueness, uncertainty, leaks between splits). Models arrive with the
signals that need them; see docs/insights.md."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from curation.models import Annotation, Dataset, Item, Job, Model, Prediction
from embeddings.models import EmbeddingModel
from evaluation.models import EvaluationRun

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


class CandidateType(models.TextChoices):
    WRONG_LABEL = "wrong_label", "Wrong label"
    BAD_BOX = "bad_box", "Badly placed box"
    MISSING = "missing", "Missing annotation"
    SPURIOUS = "spurious", "Spurious annotation"
    NEIGHBOUR = "neighbour", "Neighbour disagreement"
    ODD_LABEL = "odd_label", "Label unlike its look"


class LabelErrorScan(models.Model):
    """One computation of label-error candidates from a finished evaluation run (its
    model's predictions against the ground truth it saw). The newest succeeded scan of a
    dataset is what the query language's `label_error` fields read."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(EvaluationRun, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    # How many candidates of each type it found, and the calibration it scored them with.
    counts = models.JSONField(default=dict, blank=True)
    calibration = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"label errors of run {self.run_id}"


class LabelErrorCandidate(models.Model):
    """One suspected label error: a ground-truth annotation (wrong label, bad box,
    spurious) or a prediction without ground truth (missing annotation), its score in
    [0, 1] and the evidence (the prediction involved, IoU, confidence).

    Items, annotations and predictions are kept by id without constraints, as an
    evaluation run's matches are: the scan is a record of what it saw."""

    scan = models.ForeignKey(
        LabelErrorScan, on_delete=models.CASCADE, related_name="candidates", db_index=False
    )
    item = models.ForeignKey(
        Item, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    annotation = models.ForeignKey(
        Annotation,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
    )
    prediction = models.ForeignKey(
        Prediction,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        null=True,
        blank=True,
        related_name="+",
    )
    type = models.CharField(max_length=16, choices=CandidateType.choices)
    score = models.FloatField()
    evidence = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(type__in=[t.value for t in CandidateType]), name="labelerror_type"
            ),
            models.CheckConstraint(
                condition=Q(score__gte=0) & Q(score__lte=1), name="labelerror_score_range"
            ),
        ]
        indexes = [
            # "The top N of a type" and "items whose score of a type passes x".
            models.Index(
                "scan", "type", models.F("score").desc(), "id", name="labelerror_scan_type_score"
            ),
            models.Index(fields=["scan", "item"], name="labelerror_scan_item"),
        ]

    def __str__(self) -> str:
        return f"{self.type}:{self.score:.2f}"


class ItemUncertainty(models.Model):
    """How unsure one model is about one item, from its predictions there (see
    docs/insights.md, "Model uncertainty"). Written by the uncertainty job per model."""

    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="+", db_index=False)
    item = models.ForeignKey(
        Item, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    predictions = models.IntegerField()
    entropy_mean = models.FloatField()
    entropy_max = models.FloatField()
    margin = models.FloatField()  # the smallest margin among its predictions
    least_confidence = models.FloatField()  # the largest 1 - top score
    low_confidence = models.IntegerField()  # predictions below the low-confidence threshold

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["model", "item"], name="itemuncertainty_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.model_id}/{self.item_id}"
