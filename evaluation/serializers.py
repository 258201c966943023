"""The evaluation API's bodies."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from curation.models import JobStatus
from evaluation.engine import STAT_NAMES
from evaluation.models import (
    EvaluationMatch,
    EvaluationRun,
    Outcome,
    ScenarioEvaluation,
    ScenarioResult,
    ScenarioSuite,
    ScenarioTest,
    Task,
)


class EvaluationCreateSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200, help_text="Unique in the dataset.")
    model = serializers.IntegerField(help_text="The id of the model whose predictions to score.")
    slice = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="Score a slice's items only."
    )
    version = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        help_text="A version number of `slice`: score its frozen items and ground truth.",
    )
    query = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Score only the items (of the dataset, slice or version) this query "
        "matches when the run starts.",
    )
    task = serializers.ChoiceField(
        choices=Task.choices,
        required=False,
        default=Task.DETECTION,
        help_text="detection (boxes), segmentation (polygons and masks, COCO's segm) or "
        "classification (category annotations and predictions).",
    )
    options = serializers.JSONField(
        required=False,
        default=dict,
        help_text="Detection and segmentation: iou_thresholds, max_dets, area_ranges, "
        "class_agnostic, label_mapping, confidence_threshold, operating_iou; COCO's "
        "defaults. Classification: label_mapping, top_k (docs/evaluation.md).",
    )


class EvaluationRunSerializer(serializers.ModelSerializer[EvaluationRun]):
    model_name = serializers.CharField(source="model.name", read_only=True)
    status = serializers.SerializerMethodField(
        help_text="The job's status: queued, running, succeeded, failed or cancelled."
    )
    message = serializers.SerializerMethodField(help_text="Why the job failed, if it did.")
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True
    )
    options = serializers.JSONField()
    scope = serializers.JSONField()
    metrics = serializers.JSONField(
        help_text="Detection and segmentation: coco_stats (pycocotools' 12, in its order) "
        "and each by name, operating_point, best_f1, per_class, recall_thresholds, ignored, "
        "confusion, errors (TIDE's error types: counts and dAP), score_histograms (TP and FP "
        "confidences), subsets (per metadata value, tag, slice). Classification: accuracy, "
        "per_class, macro, weighted, confusion, top_k. Empty until the run finishes."
    )
    warnings = serializers.ListField(child=serializers.CharField())
    counts = serializers.JSONField(help_text="Items, ground truths, predictions, matches seen.")

    class Meta:
        model = EvaluationRun
        fields = [
            "id",
            "name",
            "task",
            "model",
            "model_name",
            "scope",
            "options",
            "job",
            "status",
            "message",
            "metrics",
            "warnings",
            "counts",
            "created_by",
            "created",
            "finished",
        ]

    def get_status(self, run: EvaluationRun) -> str:
        return run.job.status if run.job is not None else JobStatus.FAILED

    def get_message(self, run: EvaluationRun) -> str:
        return run.job.message if run.job is not None else ""


class EvaluationRunListSerializer(EvaluationRunSerializer):
    """A run in a listing: the summary numbers, without the per-class tables and curves."""

    metrics = serializers.SerializerMethodField(  # type: ignore[assignment]
        help_text="The 12 COCO numbers by name and coco_stats (classification: accuracy, "
        "macro, weighted, top_k); empty until the run finishes."
    )

    def get_metrics(self, run: EvaluationRun) -> dict[str, Any]:
        metrics = run.metrics or {}
        keys = ("coco_stats", *STAT_NAMES, "accuracy", "macro", "weighted", "top_k")
        return {k: metrics[k] for k in keys if k in metrics}


class EvaluationMatchSerializer(serializers.ModelSerializer[EvaluationMatch]):
    item = serializers.IntegerField(source="item_id")
    annotation = serializers.IntegerField(source="annotation_id", allow_null=True)
    prediction = serializers.IntegerField(source="prediction_id", allow_null=True)
    outcome = serializers.ChoiceField(choices=Outcome.choices)

    class Meta:
        model = EvaluationMatch
        fields = [
            "id",
            "item",
            "annotation",
            "prediction",
            "outcome",
            "label",
            "confidence",
            "iou",
            "error_type",
        ]


# ------------------------------------------------------------------------ scenario tests


class ScenarioSuiteCreateSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200, help_text="Unique in the dataset.")
    description = serializers.CharField(required=False, allow_blank=True, default="")


class ScenarioTestCreateSerializer(serializers.Serializer[dict[str, Any]]):
    name = serializers.CharField(max_length=200, help_text="Unique in the suite.")
    metric = serializers.CharField(
        max_length=300,
        help_text="map, map_50, ... (the 12 COCO names), precision, recall, f1 (at the "
        "operating point), or ap/ap50/ar/precision/recall/f1.<label>.",
    )
    slice = serializers.IntegerField(
        required=False, allow_null=True, default=None, help_text="Evaluate over this slice."
    )
    version = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        min_value=1,
        help_text="A version number of `slice`: its frozen items and ground truth.",
    )
    query = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        help_text="Evaluate only the items (of the dataset, slice or version) it matches.",
    )
    threshold = serializers.FloatField(
        required=False, allow_null=True, default=None, help_text="Pass when metric >= this."
    )
    baseline = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text="An evaluation run of the dataset: pass when metric >= its value - delta.",
    )
    delta = serializers.FloatField(required=False, default=0.0, help_text="With `baseline`.")
    options = serializers.JSONField(
        required=False, default=dict, help_text="The evaluation's options (as a run's)."
    )


class ScenarioEvaluateSerializer(serializers.Serializer[dict[str, Any]]):
    model = serializers.IntegerField(help_text="The id of the model to test.")


class ScenarioTestSerializer(serializers.ModelSerializer[ScenarioTest]):
    scope = serializers.JSONField()
    options = serializers.JSONField()

    class Meta:
        model = ScenarioTest
        fields = [
            "id",
            "name",
            "scope",
            "metric",
            "comparison",
            "threshold",
            "baseline",
            "delta",
            "options",
            "created",
        ]


class ScenarioSuiteSerializer(serializers.ModelSerializer[ScenarioSuite]):
    tests = ScenarioTestSerializer(many=True, read_only=True)
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True
    )

    class Meta:
        model = ScenarioSuite
        fields = ["id", "name", "description", "tests", "created_by", "created"]


class ScenarioResultSerializer(serializers.ModelSerializer[ScenarioResult]):
    class Meta:
        model = ScenarioResult
        fields = [
            "id",
            "test",
            "test_name",
            "metric",
            "comparison",
            "run",
            "value",
            "required",
            "passed",
            "message",
            "created",
        ]


class ScenarioEvaluationSerializer(serializers.ModelSerializer[ScenarioEvaluation]):
    model_name = serializers.CharField(source="model.name", read_only=True)
    status = serializers.SerializerMethodField(
        help_text="The job's status: queued, running, succeeded, failed or cancelled."
    )
    message = serializers.SerializerMethodField(help_text="Why the job failed, if it did.")
    passed = serializers.SerializerMethodField(
        help_text="True when the job succeeded and every test passed; null until it finishes."
    )
    results = ScenarioResultSerializer(many=True, read_only=True)
    created_by = serializers.CharField(
        source="created_by.username", read_only=True, allow_null=True
    )

    class Meta:
        model = ScenarioEvaluation
        fields = [
            "id",
            "suite",
            "model",
            "model_name",
            "job",
            "status",
            "message",
            "passed",
            "results",
            "created_by",
            "created",
            "finished",
        ]

    def get_status(self, evaluation: ScenarioEvaluation) -> str:
        return evaluation.job.status if evaluation.job is not None else JobStatus.FAILED

    def get_message(self, evaluation: ScenarioEvaluation) -> str:
        return evaluation.job.message if evaluation.job is not None else ""

    def get_passed(self, evaluation: ScenarioEvaluation) -> bool | None:
        status = self.get_status(evaluation)
        if status in (JobStatus.QUEUED, JobStatus.RUNNING):
            return None
        results = list(evaluation.results.all())
        return status == JobStatus.SUCCEEDED and bool(results) and all(r.passed for r in results)
