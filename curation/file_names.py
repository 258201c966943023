"""An item's file name as it was ingested, for exports that name image files (COCO's
`file_name`, YOLO's label files).

The reference id is not always a file name: the demo's items are `scene-00144`, read from
`images/scene-00144.jpg`. The name comes from the item's `source_uri` (where ingest read
the image: a path under an import root, an http(s) or s3 URL): its last path segment,
without a URL's query or fragment. When the reference id already ends with that name
(`car/0001.jpg`, as folder and COCO ingests make them), the reference id is kept, so a
relative path survives and a COCO file exported again names its images as it did. Items
with no source (pushed by the API without an image) fall back to the reference id.

It is one SQL expression, used both by live exports and when a slice version is frozen
(curation.versions): a version stores the name it was frozen with, so its exports stay
the same bytes even if this rule or the item changes later.
"""

from __future__ import annotations

# A scheme, as in "https://", "s3://": only URLs have a query or fragment to strip.
_URL = "'^[A-Za-z][A-Za-z0-9+.-]*://'"


def file_name_sql(alias: str) -> str:
    """SQL for the file name of the item row `alias` (a curation_item)."""
    path = (
        f"(CASE WHEN {alias}.source_uri ~ {_URL}"
        f" THEN regexp_replace({alias}.source_uri, '[?#].*$', '')"
        f" ELSE {alias}.source_uri END)"
    )
    base = f"regexp_replace({path}, '^.*/', '')"
    ref = f"{alias}.reference_id"
    return (
        f"(CASE WHEN {base} = '' THEN {ref}"
        f" WHEN {ref} = {base} OR right({ref}, length({base}) + 1) = '/' || {base} THEN {ref}"
        f" ELSE {base} END)"
    )


def frozen_file_name_sql(alias: str) -> str:
    """SQL for the file name of the slice version row `alias`: the one frozen with it, or
    NULL for versions frozen before names were kept (they export as they did then)."""
    return f"NULLIF({alias}.file_name, '')"


def file_stem(file_name: str) -> str:
    """The last segment of `file_name` without its extension ("car/0001.jpg" -> "0001");
    a name that is all extension (".hidden") keeps it. Matches stem_sql."""
    base = file_name.rsplit("/", 1)[-1]
    dot = base.rfind(".")
    return base[:dot] if dot > 0 else base


def stem_sql(file_name: str) -> str:
    """SQL for file_stem of the SQL expression `file_name`."""
    return f"regexp_replace(regexp_replace({file_name}, '^.*/', ''), '^(.+?)\\.[^.]*$', '\\1')"
