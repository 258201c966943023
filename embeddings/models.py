"""Embedding models, the vectors they produce for items, and duplicate groups.

Vector storage layout: one table for every model and every dimension. The `vector` column
is an untyped pgvector `vector`, so a 512-d CLIP model and a 768-d custom model can live
side by side. HNSW indexes are not declared here: each (model, dataset) pair gets its own
partial expression index, built at run time by `embeddings.vectors.vector_index_ensure`:

    CREATE INDEX emb_hnsw_m{model}_d{dataset} ON embeddings_embedding
    USING hnsw ((vector::halfvec(D)) halfvec_cosine_ops) WHERE model_id = M AND dataset_id = S

(`vector::vector(D)` with `vector_cosine_ops` on pgvector < 0.7; see embeddings/vectors.py)

The cast gives the index the fixed dimension HNSW needs, the predicate keeps one graph per
dataset (so a dataset-wide search is an unfiltered index scan, not a filtered one over
every dataset's vectors), and queries cast the same way so the planner matches the index.
One table per dimension was the alternative; it needs DDL per new dimension anyway and
spreads every query over a family of tables, for no gain over a partial index.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from pgvector.django import VectorField

from curation.models import Dataset, Item, Job

MAX_INDEXED_DIMENSION = 2000  # pgvector's HNSW limit for `vector`


class ModelKind(models.TextChoices):
    OPEN_CLIP = "open_clip", "open_clip (image and text towers)"
    CUSTOM = "custom", "Custom (vectors uploaded by the user)"


class EmbeddingModel(models.Model):
    """A source of vectors: an open_clip architecture + weights, or a user's own model.

    open_clip models are shared by all datasets (`dataset` is null): the same weights give
    the same vectors everywhere. Custom models belong to one dataset.
    """

    name = models.CharField(max_length=200)
    dataset = models.ForeignKey(
        Dataset,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="embedding_models",
    )
    kind = models.CharField(max_length=16, choices=ModelKind.choices)
    architecture = models.CharField(max_length=200, blank=True, default="")
    weights = models.CharField(
        max_length=1024,
        blank=True,
        default="",
        help_text="A pretrained tag, a checkpoint file path, or 'random'.",
    )
    dimension = models.PositiveIntegerField()
    random_weights = models.BooleanField(
        default=False, help_text="Randomly initialised: similarity is not semantic."
    )
    description = models.TextField(blank=True, default="")
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["name"], condition=Q(dataset__isnull=True), name="embmodel_shared_name"
            ),
            models.UniqueConstraint(
                fields=["dataset", "name"],
                condition=Q(dataset__isnull=False),
                name="embmodel_dataset_name",
            ),
            models.UniqueConstraint(
                fields=["architecture", "weights"],
                condition=Q(kind=ModelKind.OPEN_CLIP),
                name="embmodel_open_clip_unique",
            ),
            models.CheckConstraint(condition=~Q(name=""), name="embmodel_name_set"),
            models.CheckConstraint(
                condition=Q(dimension__gte=1) & Q(dimension__lte=MAX_INDEXED_DIMENSION),
                name="embmodel_dimension_range",
            ),
            models.CheckConstraint(
                condition=(
                    Q(kind=ModelKind.OPEN_CLIP) & Q(dataset__isnull=True) & ~Q(architecture="")
                )
                | (Q(kind=ModelKind.CUSTOM) & Q(dataset__isnull=False)),
                name="embmodel_kind_shape",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_open_clip(self) -> bool:
        return self.kind == ModelKind.OPEN_CLIP


class Embedding(models.Model):
    """One item's L2-normalised vector under one model.

    `dataset` repeats the item's dataset so that the per-dataset partial HNSW index can
    exist; every writer copies it from the item in the same statement.
    """

    model = models.ForeignKey(
        EmbeddingModel, on_delete=models.CASCADE, related_name="embeddings", db_index=False
    )
    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="+", db_index=False)
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="embeddings")
    vector = VectorField()
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model", "item"], name="embedding_unique_item"),
        ]
        indexes = [
            # keyset walks of a dataset's vectors (duplicates job, exact scans)
            models.Index(fields=["dataset", "model", "item"], name="embedding_dataset_model"),
        ]

    def __str__(self) -> str:
        return f"{self.model_id}:{self.item_id}"


class DatasetSearchDefault(models.Model):
    """Which embedding model a dataset's searches use when none is named."""

    dataset = models.OneToOneField(
        Dataset, on_delete=models.CASCADE, primary_key=True, related_name="search_default"
    )
    model = models.ForeignKey(EmbeddingModel, on_delete=models.CASCADE, related_name="+")
    updated = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.dataset_id} -> {self.model_id}"


class DuplicateRun(models.Model):
    """One duplicate search over a dataset; the newest finished run is the current one."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="duplicate_runs")
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    model = models.ForeignKey(
        EmbeddingModel, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    threshold = models.FloatField()
    neighbors = models.PositiveSmallIntegerField()
    hash_distance = models.PositiveSmallIntegerField(
        default=52, help_text="Largest perceptual-hash distance (of 256 bits) of a near pair."
    )
    embedding_signal = models.BooleanField(
        default=False, help_text="Whether embedding similarity was a signal (real weights)."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    group_count = models.PositiveIntegerField(default=0)
    item_count = models.PositiveIntegerField(default=0)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold__gt=0) & Q(threshold__lte=1), name="duprun_threshold_range"
            ),
        ]

    def __str__(self) -> str:
        return f"duplicates of {self.dataset_id} #{self.pk}"


class DuplicateEdge(models.Model):
    """A pair of items found similar enough; scratch data of a running duplicates job,
    kept so that an interrupted job resumes without redoing its neighbour queries."""

    run = models.ForeignKey(
        DuplicateRun, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    item_a = models.BigIntegerField()
    item_b = models.BigIntegerField()
    signal = models.CharField(max_length=16, default="embedding")
    distance = models.FloatField(default=0.0)
    similarity = models.FloatField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "item_a", "item_b"], name="dupedge_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.item_a}~{self.item_b} ({self.signal} {self.distance:g})"


class GroupKind(models.TextChoices):
    EXACT = "exact", "Exact (same content hash)"
    NEAR = "near", "Near (perceptual hash or embedding)"


class Signal(models.TextChoices):
    """What found a duplicate, and what its distance is measured in."""

    EXACT = "exact", "Same content hash"
    PHASH = "phash", "Perceptual hash"  # Hamming distance of 256-bit pHashes
    EMBEDDING = "embedding", "Embedding similarity"  # cosine distance


class DuplicateGroup(models.Model):
    run = models.ForeignKey(DuplicateRun, on_delete=models.CASCADE, related_name="groups")
    kind = models.CharField(max_length=8, choices=GroupKind.choices)
    signal = models.CharField(max_length=16, choices=Signal.choices, default=Signal.EMBEDDING)
    distance = models.FloatField(
        default=0.0,
        help_text="Largest distance of a member to the representative, in the signal's unit.",
    )
    representative = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    size = models.PositiveIntegerField()

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.kind} group of {self.size}"


class DuplicateMember(models.Model):
    group = models.ForeignKey(DuplicateGroup, on_delete=models.CASCADE, related_name="members")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    is_representative = models.BooleanField(default=False)
    same_hash = models.BooleanField(
        default=False, help_text="Same content hash as the representative (an exact copy)."
    )
    similarity = models.FloatField(
        null=True, blank=True, help_text="Cosine similarity to the representative."
    )
    signal = models.CharField(max_length=16, choices=Signal.choices, default=Signal.EXACT)
    distance = models.FloatField(
        default=0.0, help_text="Distance to the representative, in the signal's unit."
    )

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["group", "item"], name="dupmember_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} in group {self.group_id}"


class Projection(models.Model):
    """A 2-D layout of a dataset's vectors under one model (the embedding map).

    Fitted on a sample of `sample_size` vectors (PCA or UMAP), then applied to the rest in
    chunks by the projection job (embeddings/projection.py); the coordinates are
    ProjectionPoint rows. The newest finished projection of a dataset is the one its map shows.
    """

    class Method(models.TextChoices):
        PCA = "pca", "PCA (fast, linear)"
        UMAP = "umap", "UMAP (neighbourhoods kept)"

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        FINISHED = "finished", "Finished"

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="projections")
    model = models.ForeignKey(EmbeddingModel, on_delete=models.CASCADE, related_name="+")
    method = models.CharField(max_length=8, choices=Method.choices)
    params = models.JSONField(default=dict, blank=True)
    sample_size = models.PositiveIntegerField(default=0)
    point_count = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    x_min = models.FloatField(default=0.0)
    x_max = models.FloatField(default=0.0)
    y_min = models.FloatField(default=0.0)
    y_max = models.FloatField(default=0.0)
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"{self.method} map of {self.dataset_id} #{self.pk}"


class ProjectionPoint(models.Model):
    """One item's place on a projection. Read all at once, in item order, by the map: the
    (projection, item) index includes x and y, so that read is an index-only scan."""

    projection = models.ForeignKey(
        Projection, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    x = models.FloatField()
    y = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["projection", "item"],
                name="projpoint_unique",
                include=["x", "y"],
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item_id} at ({self.x:g}, {self.y:g})"


# ----------------------------------------------------------------------------- autotag


class Autotag(models.Model):
    """A named linear classifier over one model's vectors, trained in rounds from a
    curator's examples (embeddings/autotag.py). Its scores are those of `scored_round`,
    the newest round whose scoring job finished; a query field (`autotag.<name> > 0.8`)."""

    dataset = models.ForeignKey(Dataset, on_delete=models.CASCADE, related_name="autotags")
    model = models.ForeignKey(EmbeddingModel, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=200)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    scored_round = models.ForeignKey(
        "AutotagRound", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["dataset", "name"], name="autotag_dataset_name"),
            models.CheckConstraint(condition=~Q(name=""), name="autotag_name_set"),
        ]

    def __str__(self) -> str:
        return self.name


class AutotagExample(models.Model):
    """An item the curator marked positive or negative, and the round that first used it."""

    autotag = models.ForeignKey(Autotag, on_delete=models.CASCADE, related_name="examples")
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    positive = models.BooleanField()
    round_number = models.PositiveIntegerField()
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["autotag", "item"], name="autotag_example_unique"),
        ]

    def __str__(self) -> str:
        return f"{'+' if self.positive else '-'}{self.item_id}"


class AutotagRound(models.Model):
    """One training of an autotag: the examples it saw, the negatives it drew at random
    from the dataset, the weights and bias it learnt, its metrics, and its scoring job."""

    class Status(models.TextChoices):
        SCORING = "scoring", "Scoring"
        SCORED = "scored", "Scored"

    autotag = models.ForeignKey(Autotag, on_delete=models.CASCADE, related_name="rounds")
    number = models.PositiveIntegerField()
    positives = ArrayField(models.BigIntegerField(), default=list)
    negatives = ArrayField(models.BigIntegerField(), default=list)
    # Items drawn at random as "not the tag" (unlabelled background; a few may be the tag).
    sampled_negatives = ArrayField(models.BigIntegerField(), default=list)
    weights = ArrayField(models.FloatField(), default=list)
    bias = models.FloatField(default=0.0)
    metrics = models.JSONField(default=dict, blank=True)
    random_weights = models.BooleanField(default=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.SCORING)
    job = models.ForeignKey(Job, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    item_count = models.PositiveIntegerField(default=0)
    # Items per tenth of [0, 1], counted once when the scores are complete (a pass over
    # 1M rows took 1.7 s: too slow for every view of the page).
    histogram = ArrayField(models.PositiveIntegerField(), default=list)
    seconds = models.FloatField(default=0.0)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created = models.DateTimeField(auto_now_add=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["autotag", "number"]
        constraints = [
            models.UniqueConstraint(fields=["autotag", "number"], name="autotag_round_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.autotag_id} round {self.number}"

    @property
    def positive_count(self) -> int:
        return len(self.positives)

    @property
    def negative_count(self) -> int:
        return len(self.negatives)

    @property
    def sampled_count(self) -> int:
        return len(self.sampled_negatives)


class AutotagScore(models.Model):
    """An item's score in [0, 1] under one round, written set-based by the scoring job.

    (round, item) serves the query field's EXISTS per item; (round, score, item) serves
    sorting, thresholds, the histogram and the borderline list."""

    round = models.ForeignKey(
        AutotagRound, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    # Indexed: deleting items looks their scores up by item.
    item = models.ForeignKey(Item, on_delete=models.CASCADE, related_name="+")
    score = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["round", "item"], name="autotag_score_unique"),
        ]
        indexes = [models.Index(fields=["round", "score", "item"], name="autotag_score_order")]

    def __str__(self) -> str:
        return f"{self.item_id}: {self.score:.3f}"
