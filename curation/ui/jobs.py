"""What the job page shows of a job: its parameters and result as labelled fields, how long
it ran, and links to what it made (JobLink, defined with the hook that lets other apps add
theirs in curation.ui.extensions). The view (curation.ui.views.job_detail) fetches and
checks access; this module only shapes a Job it is given (no queries)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.template.defaultfilters import filesizeformat
from django.urls import NoReverseMatch, reverse

from curation.models import Job, JobStatus
from curation.ui.extensions import JobLink, registered_job_links

# Result entries a person has no use for: where the file sits inside storage.
HIDDEN_RESULT_KEYS = frozenset({"key"})


@dataclass(frozen=True)
class Field:
    """One labelled value of a job's parameters or result."""

    label: str
    value: str


@dataclass(frozen=True)
class JobPage:
    """A job as ui/job.html shows it."""

    job: Job
    can_cancel: bool
    parameters: list[Field]
    result: list[Field]
    duration: str | None
    links: list[JobLink]


def duration_text(elapsed: timedelta) -> str:
    """A duration the way people say it: "850 ms", "4.2 s", "3 min 07 s", "2 h 05 min"."""
    seconds = max(elapsed.total_seconds(), 0.0)
    # Each unit is chosen by the value as it will be shown: 0.9996 s is "1.0 s", not
    # "1000 ms", and 59.96 s is "1 min 00 s", not "60.0 s".
    if round(seconds * 1000) < 1000:
        return f"{round(seconds * 1000)} ms"
    if round(seconds, 1) < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _value_text(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if key == "size" and isinstance(value, int):
        return str(filesizeformat(value))
    if isinstance(value, list):
        return ", ".join(_value_text(key, v) for v in value)
    return str(value)


def _fields(values: dict[str, Any], *, hidden: frozenset[str] = frozenset()) -> list[Field]:
    """`values` as fields, one level of nesting spelled `source.path`; empty ones left out."""
    fields: list[Field] = []
    for key, value in values.items():
        if key in hidden or value is None or value == "":
            continue
        if isinstance(value, dict):
            fields += [Field(f"{key}.{f.label}", f.value) for f in _fields(value, hidden=hidden)]
        else:
            fields.append(Field(key, _value_text(key, value)))
    return fields


def _reverse(name: str, *args: int) -> str | None:
    """The URL, or None where the app that serves it is not installed (embeddings)."""
    try:
        return reverse(name, args=args)
    except NoReverseMatch:
        return None


def job_links(job: Job) -> list[JobLink]:
    """Links to what a succeeded job made; none before it has succeeded. A kind another
    app registered (curation.ui.extensions.job_links_register) says its own."""
    if job.status != JobStatus.SUCCEEDED or job.dataset_id is None:
        return []
    registered = registered_job_links(job.kind)
    if registered is not None:
        return registered(job)
    dataset_id = job.dataset_id
    links: list[JobLink] = []
    if job.kind == "ingest":
        links.append(JobLink("Open the dataset", reverse("ui:grid", args=[dataset_id]), "dataset"))
    elif job.kind == "export":
        name = str(job.result.get("filename") or "the file")
        url = reverse("api-export-download", args=[dataset_id, job.pk])
        links.append(JobLink(f"Download {name}", url, "download"))
    elif job.kind == "duplicates":
        url_or_none = _reverse("embeddings-ui:duplicates-page", dataset_id)
        if url_or_none is not None:
            groups = job.result.get("groups", 0)
            label = f"{groups} duplicate group{'' if groups == 1 else 's'}"
            links.append(JobLink(label, url_or_none, "duplicates"))
    elif job.kind == "evaluate" and isinstance(job.result.get("run"), int):
        url_or_none = _reverse("evaluation-ui:run", dataset_id, job.result["run"])
        if url_or_none is not None:
            links.append(JobLink("The evaluation run", url_or_none, "evaluation"))
    elif job.kind in ("label_errors", "uncertainty"):
        url_or_none = _reverse("insights-ui:page", dataset_id)
        if url_or_none is not None:
            anchor = "label-errors" if job.kind == "label_errors" else "uncertainty"
            links.append(
                JobLink("The Insights page", f"{url_or_none}#insights-{anchor}", "insights")
            )
    elif job.kind == "embed":
        url = reverse("ui:stats", args=[dataset_id])
        links.append(JobLink("Embedding coverage", url, "stats"))
    return links


def job_page(job: Job, *, can_cancel: bool) -> JobPage:
    elapsed = job.duration
    return JobPage(
        job=job,
        can_cancel=can_cancel,
        parameters=_fields(job.params),
        result=_fields(job.result, hidden=HIDDEN_RESULT_KEYS),
        duration=duration_text(elapsed) if elapsed is not None else None,
        links=job_links(job),
    )
