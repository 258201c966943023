"""Insights: what the service computes to point at the data that matters (label-error
candidates, uniqueness, uncertainty, leaks between splits). Models arrive with the
signals that need them; see docs/insights.md."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from curation.models import Annotation, Dataset, Item, Job, Model, Prediction
from evaluation.models import EvaluationRun


class CandidateType(models.TextChoices):
    WRONG_LABEL = "wrong_label", "Wrong label"
    BAD_BOX = "bad_box", "Badly placed box"
    MISSING = "missing", "Missing annotation"
    SPURIOUS = "spurious", "Spurious annotation"
    NEIGHBOUR = "neighbour", "Neighbour disagreement"


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
