"""Evaluation runs (one model's predictions against the ground truth) and their matches."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q

from curation.models import Annotation, Dataset, Item, Job, Model, Prediction, Slice, SliceVersion


class Task(models.TextChoices):
    DETECTION = "detection", "Detection (boxes)"
    SEGMENTATION = "segmentation", "Instance segmentation (polygons and masks)"
    CLASSIFICATION = "classification", "Classification (whole-image categories)"


class EvaluationRun(models.Model):
    """One evaluation of `model` on the dataset, a slice (its items when the run started)
    or a frozen slice version, with the options it ran with and the metrics it found.

    The run is a record: it keeps its options, its scope and, once finished, its metrics
    and matches, whatever happens to the data afterwards.
    """

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="evaluations")
    # The model is the run's subject: deleting it deletes its runs.
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="evaluations")
    name = models.CharField(max_length=200)
    task = models.CharField(max_length=16, choices=Task.choices, default=Task.DETECTION)
    options = models.JSONField(default=dict, blank=True)
    # Scope: both null = the whole dataset; a slice = its items when the job ran; a version
    # = that frozen version's items and ground truth.
    slice = models.ForeignKey(
        Slice, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    version = models.ForeignKey(
        SliceVersion, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The scope as the run was asked for it ({"kind": "dataset" | "slice" | "version",
    # "slice": id, "slice_name", "version": number}): it stays when the slice is deleted.
    scope = models.JSONField(default=dict, blank=True)
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    metrics = models.JSONField(default=dict, blank=True)
    warnings = models.JSONField(default=list, blank=True)
    # What the run saw: item, ground-truth and prediction counts (filled by the job).
    counts = models.JSONField(default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="evaluationrun_unique_name"),
            models.CheckConstraint(condition=~Q(name=""), name="evaluationrun_name_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.model_id})"


class Outcome(models.TextChoices):
    TP = "tp", "True positive"
    FP = "fp", "False positive"
    FN = "fn", "False negative"


class ErrorType(models.TextChoices):
    CLASSIFICATION = "classification", "Classification"
    LOCALIZATION = "localization", "Localization"
    BOTH = "both", "Classification and localization"
    DUPLICATE = "duplicate", "Duplicate"
    BACKGROUND = "background", "Background"
    MISSED = "missed", "Missed"


class EvaluationMatch(models.Model):
    """One object's outcome at the run's operating point (operating IoU, confidence
    threshold): a TP pairs a prediction with the ground truth it matched (and their IoU),
    an FP is a prediction that matched nothing, an FN a ground truth nothing matched.

    The item, annotation and prediction are kept by id without database constraints: a
    run is a record, and its matches still say what it saw after those rows are deleted
    or edited (a version's run sees frozen ground truth). They go with their run.
    """

    run = models.ForeignKey(
        EvaluationRun, on_delete=models.CASCADE, related_name="matches", db_index=False
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
    outcome = models.CharField(max_length=2, choices=Outcome.choices)
    # The ground truth's label for TP and FN, the prediction's (after the label mapping)
    # for FP.
    label = models.CharField(max_length=256)
    confidence = models.FloatField(null=True, blank=True)
    iou = models.FloatField(null=True, blank=True)
    # TIDE's error type of an FP (classification, localization, both, duplicate,
    # background) or an FN (missed, or blank when a confident FP's error explains it);
    # blank for a TP (evaluation.tide).
    error_type = models.CharField(max_length=16, choices=ErrorType.choices, blank=True, default="")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(outcome__in=[o.value for o in Outcome]), name="evaluationmatch_outcome"
            ),
            models.CheckConstraint(
                # A version's ground truth may since have been deleted: annotation
                # is then null on its TP and FN rows.
                condition=(
                    Q(outcome="tp", prediction__isnull=False)
                    | Q(outcome="fp", annotation__isnull=True, prediction__isnull=False)
                    | Q(outcome="fn", prediction__isnull=True)
                ),
                name="evaluationmatch_objects_fit_outcome",
            ),
        ]
        indexes = [
            models.Index(fields=["run", "outcome", "label"], name="evalmatch_run_outcome_label"),
            models.Index(fields=["run", "item"], name="evalmatch_run_item"),
            # The grid's orders by a run's matches (evaluation.outcomes): walked in
            # order, so a page reads about its own rows whatever the run's size.
            models.Index(
                fields=["run", "outcome", "confidence", "item"],
                name="evalmatch_run_outcome_conf",
                condition=Q(confidence__isnull=False),
            ),
            models.Index(
                fields=["run", "iou", "item"],
                name="evalmatch_run_tp_iou",
                condition=Q(outcome="tp"),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.outcome}:{self.label}"


class ScenarioSuite(models.Model):
    """A named set of scenario tests on a dataset: the gates a model must pass (a training
    pipeline runs `nucleus test --suite S --model M` and stops on a failure)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="scenario_suites")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="scenariosuite_unique_name"),
            models.CheckConstraint(condition=~Q(name=""), name="scenariosuite_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class Comparison(models.TextChoices):
    AT_LEAST = "at_least", "Metric >= threshold"
    BASELINE = "baseline", "No worse than a baseline run by more than delta"


class ScenarioTest(models.Model):
    """One gate: `metric` of an evaluation over `slice` (or one of its frozen versions, or
    the whole dataset when no slice), narrowed by `query` when given, compared with a
    threshold or with a baseline run.

    The baseline's value is read from the baseline run's metrics when the suite runs;
    deleting the baseline run (or the slice) leaves the test, which then fails saying why.
    """

    suite = models.ForeignKey(ScenarioSuite, on_delete=models.CASCADE, related_name="tests")
    name = models.CharField(max_length=200)
    slice = models.ForeignKey(
        Slice, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    version = models.PositiveIntegerField(null=True, blank=True)
    # Narrows the scope to the items it matches when the suite runs.
    query = models.TextField(blank=True, default="")
    # The scope as it was asked for: it says which slice was meant after the slice is gone.
    scope = models.JSONField(default=dict, blank=True)
    metric = models.CharField(max_length=300)
    comparison = models.CharField(max_length=16, choices=Comparison.choices)
    threshold = models.FloatField(null=True, blank=True)
    baseline = models.ForeignKey(
        EvaluationRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    delta = models.FloatField(default=0.0)
    options = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["suite", "name"], name="scenariotest_unique_name"),
            models.CheckConstraint(condition=~Q(name=""), name="scenariotest_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class ScenarioEvaluation(models.Model):
    """One evaluation of a suite against a model: a job that runs each test's evaluation
    in turn and records a ScenarioResult per test. The suite's history is these rows."""

    suite = models.ForeignKey(ScenarioSuite, on_delete=models.CASCADE, related_name="evaluations")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="+")
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.suite_id} on {self.model_id}"


class ScenarioResult(models.Model):
    """A test's outcome in one suite evaluation: the run it used, the value it read, the
    value it compared with, and whether it passed (with why not, when it could not run).

    The test's name, metric and comparison are copied: the history stays readable after
    the test is edited or deleted."""

    evaluation = models.ForeignKey(
        ScenarioEvaluation, on_delete=models.CASCADE, related_name="results"
    )
    test = models.ForeignKey(
        ScenarioTest, on_delete=models.SET_NULL, null=True, blank=True, related_name="results"
    )
    test_name = models.CharField(max_length=200)
    metric = models.CharField(max_length=300)
    comparison = models.CharField(max_length=16, choices=Comparison.choices)
    run = models.ForeignKey(
        EvaluationRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    value = models.FloatField(null=True, blank=True)
    # What `value` had to reach: the threshold, or the baseline's value minus delta.
    required = models.FloatField(null=True, blank=True)
    passed = models.BooleanField()
    message = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["evaluation", "test"], name="scenarioresult_one_per_test"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.test_name}: {'pass' if self.passed else 'fail'}"
