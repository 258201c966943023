"""The evaluation API's bodies."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from curation.models import JobStatus
from evaluation.engine import STAT_NAMES
from evaluation.models import EvaluationMatch, EvaluationRun, Outcome


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
    options = serializers.JSONField(
        required=False,
        default=dict,
        help_text="iou_thresholds, max_dets, area_ranges, class_agnostic, label_mapping, "
        "confidence_threshold, operating_iou; COCO's defaults (docs/evaluation.md).",
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
        help_text="coco_stats (pycocotools' 12, in its order) and each by name, "
        "operating_point, best_f1, per_class, recall_thresholds, ignored; empty until the "
        "run finishes."
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
        help_text="The 12 COCO numbers by name and coco_stats; empty until the run finishes."
    )

    def get_metrics(self, run: EvaluationRun) -> dict[str, Any]:
        metrics = run.metrics or {}
        return {k: metrics[k] for k in ("coco_stats", *STAT_NAMES) if k in metrics}


class EvaluationMatchSerializer(serializers.ModelSerializer[EvaluationMatch]):
    item = serializers.IntegerField(source="item_id")
    annotation = serializers.IntegerField(source="annotation_id", allow_null=True)
    prediction = serializers.IntegerField(source="prediction_id", allow_null=True)
    outcome = serializers.ChoiceField(choices=Outcome.choices)

    class Meta:
        model = EvaluationMatch
        fields = ["id", "item", "annotation", "prediction", "outcome", "label", "confidence", "iou"]
