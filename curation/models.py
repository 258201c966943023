"""The curation domain: datasets and their members, items, annotations, models,
predictions, slices, tags, jobs and API tokens.

One module on purpose: it is the app's schema, whose models point at each other (every
table hangs off Dataset and Item) and whose indexes and constraints are easiest to check
side by side; Django finds an app's models here. Other apps keep their own models."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Q


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    CURATOR = "curator", "Curator"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.VIEWER: 1, Role.CURATOR: 2, Role.ADMIN: 3}


class DatasetQuerySet(models.QuerySet["Dataset"]):
    def visible_to(self, user: Any) -> DatasetQuerySet:
        """Datasets on which `user` has any role (owner or member)."""
        if not user.is_authenticated:
            return self.none()
        return self.filter(Q(owner=user) | Q(memberships__user=user)).distinct()


class Dataset(models.Model):
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_datasets"
    )
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    objects = DatasetQuerySet.as_manager()

    # The requesting user's role, not a column: set by the reads that fetch a dataset for
    # a user (curation.access.dataset_for, selectors.datasets_for_user).
    user_role: str

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="dataset_unique_name_per_owner"),
            models.CheckConstraint(condition=~Q(name=""), name="dataset_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name

    def role_of(self, user: Any) -> str | None:
        """The role `user` holds on this dataset, or None. The owner is always admin."""
        if not user.is_authenticated:
            return None
        if self.owner_id == user.pk:
            return Role.ADMIN
        # The role alone, not a Membership: a model instance deferred to `role` was given
        # its dataset by the related manager, which read the deferred dataset_id back in
        # a second query, on every request of every member.
        role: str | None = self.memberships.filter(user=user).values_list("role", flat=True).first()
        return role


class Membership(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=16, choices=Role.choices)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "user"], name="membership_unique_user"),
            models.CheckConstraint(
                condition=Q(role__in=[r.value for r in Role]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} is {self.role} of {self.dataset}"


class Item(models.Model):
    # db_index=False: the unique (dataset, reference_id) index serves dataset lookups.
    dataset = models.ForeignKey(
        Dataset, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    reference_id = models.CharField(max_length=512)
    media_key = models.CharField(max_length=1024, blank=True, default="")
    thumbnail_key = models.CharField(max_length=1024, blank=True, default="")
    source_uri = models.TextField(blank=True, default="")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    byte_size = models.BigIntegerField(null=True, blank=True)
    # Perceptual hashes of the image (curation.phash), null until computed: at ingest, or
    # by the duplicates job for items ingested before there were any.
    phash = models.BigIntegerField(null=True, blank=True)
    phash_detail = models.BinaryField(null=True, blank=True)
    # Image quality signals (curation.quality; meanings in docs/insights.md), null until
    # computed: at ingest, or by the "quality" job for items ingested before there were
    # any. Typed columns, not JSON, so that filters, facets and histograms over a million
    # items read plain floats.
    quality_brightness = models.FloatField(null=True, blank=True)
    quality_contrast = models.FloatField(null=True, blank=True)
    quality_saturation = models.FloatField(null=True, blank=True)
    quality_blur = models.FloatField(null=True, blank=True)
    quality_entropy = models.FloatField(null=True, blank=True)
    quality_aspect = models.FloatField(null=True, blank=True)
    quality_uniform = models.BooleanField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "reference_id"], name="item_unique_reference_id"
            ),
            models.CheckConstraint(condition=~Q(reference_id=""), name="item_reference_id_set"),
            models.CheckConstraint(
                condition=Q(width__isnull=True) | Q(width__gt=0), name="item_width_positive"
            ),
            models.CheckConstraint(
                condition=Q(height__isnull=True) | Q(height__gt=0), name="item_height_positive"
            ),
            models.CheckConstraint(
                condition=Q(sha256="") | Q(sha256__regex=r"^[0-9a-f]{64}$"),
                name="item_sha256_hex",
            ),
        ]
        indexes = [
            GinIndex(fields=["metadata"], name="item_metadata_gin", opclasses=["jsonb_path_ops"]),
            # Keyset pages of one dataset (WHERE dataset_id = ? AND id > ? ORDER BY id) in a
            # table that holds many datasets.
            models.Index(fields=["dataset", "id"], name="item_dataset_id"),
            models.Index(fields=["dataset", "sha256"], name="item_dataset_sha256"),
        ]

    def __str__(self) -> str:
        return self.reference_id


class GeometryKind(models.TextChoices):
    BOX = "box", "Box"
    POLYGON = "polygon", "Polygon"
    LINE = "line", "Line"
    KEYPOINTS = "keypoints", "Keypoints"
    CATEGORY = "category", "Category"
    SEGMENTATION = "segmentation", "Segmentation mask"


class Annotation(models.Model):
    """Ground truth on an item. `annotation_id` is the client's id, unique per dataset, so
    re-uploading the same annotations updates them instead of adding copies."""

    # `dataset` repeats item.dataset so ids can be unique per dataset and label facets need
    # no join. No FK constraint on it (item's FK already ties it to the dataset): the
    # deferred check would cost one lookup per row at commit, a third of a bulk write.
    # FK indexes off: (dataset, annotation_id) and (item, label) cover them, and every
    # extra index slows bulk writes.
    dataset = models.ForeignKey(
        Dataset,
        on_delete=models.CASCADE,
        related_name="annotations",
        db_index=False,
        db_constraint=False,
    )
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="annotations", db_index=False
    )
    annotation_id = models.CharField(max_length=512)
    kind = models.CharField(max_length=16, choices=GeometryKind.choices)
    label = models.CharField(max_length=256)
    geometry = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # Bumped by every change (curation.annotations, the bulk upsert): a writer sends the
    # version it read, and a stale one is refused (409) instead of overwriting silently.
    # db_default too, so the bulk COPY paths, which name their columns, start new rows at 1.
    version = models.PositiveIntegerField(default=1, db_default=1)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["dataset", "annotation_id"], name="annotation_unique_client_id"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=[k.value for k in GeometryKind]), name="annotation_kind_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["item", "label"], name="annotation_item_label"),
            models.Index(fields=["dataset", "label"], name="annotation_dataset_label"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.label}"


class Model(models.Model):
    """A model whose predictions are stored for a dataset's items."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="model_unique_name"),
            models.CheckConstraint(condition=~Q(name=""), name="model_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class Prediction(models.Model):
    # FK indexes off: (model, prediction_id) and (item, model, label) cover them.
    model = models.ForeignKey(
        Model, on_delete=models.CASCADE, related_name="predictions", db_index=False
    )
    item = models.ForeignKey(
        Item, on_delete=models.CASCADE, related_name="predictions", db_index=False
    )
    prediction_id = models.CharField(max_length=512)
    kind = models.CharField(max_length=16, choices=GeometryKind.choices)
    label = models.CharField(max_length=256)
    confidence = models.FloatField()
    geometry = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["model", "prediction_id"], name="prediction_unique_client_id"
            ),
            models.CheckConstraint(
                condition=Q(confidence__gte=0) & Q(confidence__lte=1),
                name="prediction_confidence_range",
            ),
            models.CheckConstraint(
                condition=Q(kind__in=[k.value for k in GeometryKind]), name="prediction_kind_valid"
            ),
        ]
        indexes = [
            models.Index(fields=["item", "model", "label"], name="prediction_item_model_label"),
            # Confidence conditions of the query language
            # (`predictions[detector].car.confidence > 0.9`): a range of this index, read
            # alone. Through the (item, model, label) index every prediction of the model
            # and label was fetched from the table to check its confidence: a full count
            # at 1M items (3M predictions) took 283-296 ms, 117 ms with this index.
            models.Index(
                fields=["model", "label", "confidence"],
                include=["item"],
                name="prediction_model_label_conf",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.label}@{self.confidence:.2f}"


class ShapeCount(models.Model):
    """How many shapes an item has, per label, per geometry kind and in all: of its
    annotations (`source` 0) or of one model's predictions (`source` = the model's id).

    Written only by PostgreSQL triggers on Annotation and Prediction (curation.shape_counts),
    in the statement that changes the shapes, so every write path (API, bulk COPY, the
    ORM's cascades, raw SQL) keeps it true; a row whose count reaches 0 is deleted. The
    query language reads it for count conditions (``annotations.car >= 2`` is a range
    scan of its primary key), the facet sidebar for boxes per item.
    """

    class Dim(models.IntegerChoices):
        TOTAL = 0  # key ""
        LABEL = 1  # key: the label
        KIND = 2  # key: the geometry kind

    # The primary key is the one index (every index costs bulk writes): count conditions
    # scan a (dataset, source, dim, key) range in item order, index-only, merge-joining
    # with the dataset's items without a sort; per-item lookups name the key too (or let
    # PostgreSQL skip over the few keys). Migration 0010 adds INCLUDE (n) to it, so that
    # `n >= 2` is checked in the index.
    pk = models.CompositePrimaryKey("dataset", "source", "dim", "key", "item")
    # No FK constraints (like Annotation.dataset): the triggers keep the rows in step with
    # the shapes, and a deferred check per row would cost bulk writes a lookup each.
    item = models.ForeignKey(
        Item, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="+"
    )
    dataset = models.ForeignKey(
        Dataset,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        db_index=False,
        related_name="+",
    )
    source = models.BigIntegerField()  # 0: annotations; else a Model's id
    dim = models.SmallIntegerField(choices=Dim.choices)
    key = models.CharField(max_length=256)
    n = models.IntegerField()

    def __str__(self) -> str:
        return f"{self.item_id}:{self.source}:{self.key}={self.n}"


class Slice(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="slices")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    items = models.ManyToManyField(Item, through="SliceItem", related_name="slices")
    # A dynamic slice is a saved query (and optionally a similarity condition) evaluated
    # when it is read; its SliceItem rows are ignored. Blank query and null similarity:
    # a static slice, whose items are its SliceItem rows. See curation.itemsets.
    query = models.TextField(blank=True, default="")
    similarity = models.JSONField(null=True, blank=True, default=None)
    created = models.DateTimeField(auto_now_add=True)
    updated = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="slice_unique_name"),
            models.CheckConstraint(condition=~Q(name=""), name="slice_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_dynamic(self) -> bool:
        return bool(self.query.strip()) or self.similarity is not None


class SliceItem(models.Model):
    slice = models.ForeignKey(
        Slice, on_delete=models.CASCADE, related_name="memberships", db_index=False
    )
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="slice_memberships")
    added = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["slice", "item"], name="sliceitem_unique"),
        ]

    def __str__(self) -> str:
        return f"item {self.item_id} in slice {self.slice_id}"


class SliceVersion(models.Model):
    """A frozen slice: its exact items, with their metadata and annotations at that moment.

    Immutable once written; later edits to items or annotations (or their deletion) do not
    change it. `number` counts 1, 2, ... per slice.
    """

    # FK index off: the unique (slice, number) index serves lookups by slice.
    slice = models.ForeignKey(
        Slice, on_delete=models.CASCADE, related_name="versions", db_index=False
    )
    number = models.PositiveIntegerField()
    note = models.TextField(blank=True, default="")
    query = models.TextField(blank=True, default="")  # the slice's query when frozen
    similarity = models.JSONField(null=True, blank=True, default=None)
    item_count = models.PositiveIntegerField(default=0)
    annotation_count = models.PositiveIntegerField(default=0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    # The newest annotation change (curation.history) when it was frozen: the changes
    # between two versions are those between their marks, read by id, not by clock. Null
    # in versions frozen before history was kept.
    history_mark = models.BigIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["slice", "number"]
        constraints = [
            models.UniqueConstraint(fields=["slice", "number"], name="sliceversion_unique_number"),
            models.CheckConstraint(condition=Q(number__gte=1), name="sliceversion_number_ge1"),
        ]

    def __str__(self) -> str:
        return f"{self.slice} v{self.number}"


class SliceVersionItem(models.Model):
    """One item of a slice version, as it was when the version was frozen."""

    # FK index off: the unique (version, item_id) index serves lookups and keyset paging.
    version = models.ForeignKey(
        SliceVersion, on_delete=models.CASCADE, related_name="items", db_index=False
    )
    # Not a foreign key: the snapshot outlives the item.
    item_id = models.BigIntegerField()
    reference_id = models.CharField(max_length=512)
    # The image's file name as ingested (curation.file_names) when the version was frozen;
    # empty in versions frozen before it was kept (their exports use the reference id).
    file_name = models.TextField(blank=True, default="")
    media_key = models.CharField(max_length=1024, blank=True, default="")
    thumbnail_key = models.CharField(max_length=1024, blank=True, default="")
    width = models.PositiveIntegerField(null=True, blank=True)
    height = models.PositiveIntegerField(null=True, blank=True)
    sha256 = models.CharField(max_length=64, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    # [{"id", "kind", "label", "geometry", "metadata"}, ...] ordered by id
    annotations = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["version", "item_id"], name="sliceversionitem_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.version}: {self.reference_id}"


class Tag(models.Model):
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=200)
    items = models.ManyToManyField(Item, through="ItemTag", related_name="tags")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="tag_unique_name"),
            models.CheckConstraint(condition=~Q(name=""), name="tag_name_not_empty"),
        ]

    def __str__(self) -> str:
        return self.name


class ItemTag(models.Model):
    tag = models.ForeignKey(
        Tag, on_delete=models.CASCADE, related_name="item_links", db_index=False
    )
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="tag_links")
    added = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tag", "item"], name="itemtag_unique"),
        ]

    def __str__(self) -> str:
        return f"tag {self.tag_id} on item {self.item_id}"


class JobStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


FINISHED_JOB_STATUSES = (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED)
ACTIVE_JOB_STATUSES = (JobStatus.QUEUED, JobStatus.RUNNING)


class JobQuerySet(models.QuerySet["Job"]):
    def active(self) -> JobQuerySet:
        """Jobs queued or running: not yet finished, failed or cancelled."""
        return self.filter(status__in=ACTIVE_JOB_STATUSES)


class Job(models.Model):
    """A long-running piece of work (ingest, embedding, ...) with progress and errors.

    The work itself runs on a procrastinate worker; this row is what users see. `state`
    holds what the job needs to resume after a crash (e.g. how far an ingest got).
    """

    kind = models.CharField(max_length=64)
    dataset = models.ForeignKey(
        Dataset, on_delete=models.CASCADE, related_name="jobs", null=True, blank=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    status = models.CharField(max_length=16, choices=JobStatus.choices, default=JobStatus.QUEUED)
    params = models.JSONField(default=dict, blank=True)
    state = models.JSONField(default=dict, blank=True)
    result = models.JSONField(default=dict, blank=True)
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(null=True, blank=True)
    error_count = models.BigIntegerField(default=0)
    errors = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True, default="")
    attempts = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    objects = JobQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in JobStatus]), name="job_status_valid"
            ),
            models.CheckConstraint(condition=Q(progress_done__gte=0), name="job_progress_done_ge0"),
            models.CheckConstraint(
                condition=Q(progress_total__isnull=True) | Q(progress_total__gte=0),
                name="job_progress_total_ge0",
            ),
        ]
        indexes = [models.Index(fields=["dataset", "-created"], name="job_dataset_created")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_JOB_STATUSES

    @property
    def progress_percent(self) -> int | None:
        """How full its progress bar is; None while running with no total (indeterminate).

        A queued job has done nothing yet: 0, never a guess.
        """
        if self.status == JobStatus.QUEUED:
            return 0
        if self.progress_total:
            return min(100, self.progress_done * 100 // self.progress_total)
        if self.status == JobStatus.SUCCEEDED:
            return 100
        if self.status == JobStatus.RUNNING:
            return None
        return 0

    @property
    def duration(self) -> timedelta | None:
        """How long it ran, from its own timestamps (None until it has started and ended)."""
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started


class ApiToken(models.Model):
    """An API token. Only a SHA-256 of the secret is stored; the secret is shown once."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=200)
    prefix = models.CharField(max_length=16)
    key_hash = models.CharField(max_length=64, unique=True)
    created = models.DateTimeField(auto_now_add=True)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"


# The history models live beside their services (curation/history/); imported here so that
# Django registers them with the app.
from curation.history.models import AnnotationChange, AnnotationEvent  # noqa: E402

__all__ = [
    "ROLE_RANK",
    "Annotation",
    "AnnotationChange",
    "AnnotationEvent",
    "ApiToken",
    "Dataset",
    "GeometryKind",
    "Item",
    "ItemTag",
    "Job",
    "JobStatus",
    "Membership",
    "Model",
    "Prediction",
    "Role",
    "Slice",
    "SliceItem",
    "SliceVersion",
    "SliceVersionItem",
    "Tag",
]
