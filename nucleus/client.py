"""A small Python client for the Nucleus REST API (/api/v1/), built on `requests` alone.

    from nucleus.client import NucleusClient
    client = NucleusClient("http://127.0.0.1:8000", token="nuc_...")
    ds = client.dataset("street scenes")
    client.items_upsert(ds, ({"reference_id": f"img-{i}"} for i in range(100_000)))
    for item in client.items(ds, filters={"metadata.weather": "rain"}):
        print(item["reference_id"])

Datasets, slices and jobs come back as small typed records (Dataset, Slice, Job) that the
other methods accept; every other object is the API's JSON as a dict, documented in
docs/api.md. Lists are iterated lazily page by page. Bulk writes are sent in chunks and a
chunk is re-sent after a connection error, which is safe because the server's bulk writes
are idempotent upserts. Errors raise NucleusAPIError with the server's status, code,
message and the field list.

One module of over a thousand lines on purpose: it is one concept, the client a pipeline
imports, and it is meant to be copied into a project as a single file with no dependency
but `requests`.
"""

from __future__ import annotations

import io
import itertools
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, urlsplit

import requests

__all__ = [
    "Dataset",
    "FieldError",
    "Job",
    "NucleusAPIError",
    "NucleusClient",
    "NucleusConnectionError",
    "NucleusError",
    "SearchHit",
    "SearchResult",
    "Slice",
]

JSON = dict[str, Any]
Filters = Mapping[str, Any]

DEFAULT_CHUNK_SIZE = 5_000
# The server takes up to 100,000 reference ids per slice or tag call; smaller calls keep
# each request quick and each retry cheap.
REFERENCE_ID_CHUNK = 10_000
_RETRY_STATUSES = frozenset({502, 503, 504})
_ROW_PATH = re.compile(r"^(\w+)\[(\d+)\]")


# ----------------------------------------------------------------------------- errors


class NucleusError(Exception):
    """Base class of the client's errors."""


class NucleusConnectionError(NucleusError):
    """The server could not be reached, even after retries."""


@dataclass(frozen=True)
class FieldError:
    """One problem in a request, named by its path (`items[12].geometry.width`)."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}" if self.path else self.message


class NucleusAPIError(NucleusError):
    """The server refused a request; carries the API's error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        fields: Sequence[FieldError] = (),
        body: JSON | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)
        # The whole answer: a 409 of a stale annotation change has `current` beside `error`.
        self.body = body or {}

    def __str__(self) -> str:
        lines = [f"{self.status} {self.code}: {self.message}"]
        lines.extend(f"  {f}" for f in self.fields[:20])
        if len(self.fields) > 20:
            lines.append(f"  ... and {len(self.fields) - 20} more")
        return "\n".join(lines)

    @classmethod
    def from_response(cls, response: requests.Response) -> NucleusAPIError:
        """Read the API's `{"error": {...}}` body, or make one from a body that is not."""
        try:
            body = response.json()
            error = body["error"]
            return cls(
                response.status_code,
                str(error["code"]),
                str(error["message"]),
                [FieldError(str(f["path"]), str(f["message"])) for f in error.get("fields", [])],
                body,
            )
        except (ValueError, KeyError, TypeError):
            text = response.text.strip()[:200] or response.reason or "no body"
            return cls(response.status_code, f"http_{response.status_code}", text)


# ---------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Dataset:
    """A dataset, as the API describes it to you (with your role)."""

    id: int
    name: str
    description: str
    role: str
    item_count: int
    data: JSON = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: JSON) -> Dataset:
        return cls(
            id=int(data["id"]),
            name=str(data["name"]),
            description=str(data.get("description") or ""),
            role=str(data.get("role") or ""),
            item_count=int(data.get("item_count") or 0),
            data=data,
        )


@dataclass(frozen=True)
class Slice:
    """A named set of a dataset's items."""

    id: int
    dataset_id: int
    name: str
    description: str
    item_count: int
    data: JSON = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, data: JSON, dataset_id: int) -> Slice:
        return cls(
            id=int(data["id"]),
            dataset_id=dataset_id,
            name=str(data["name"]),
            description=str(data.get("description") or ""),
            item_count=int(data.get("item_count") or 0),
            data=data,
        )


FINISHED = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class Job:
    """A background job (ingest, embedding, export) and its progress."""

    id: int
    dataset_id: int
    kind: str
    status: str
    done: int
    total: int | None
    error_count: int
    message: str
    data: JSON = field(repr=False, compare=False)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED

    @property
    def errors(self) -> list[JSON]:
        """The first errors the job kept (each with `reference_id` and `message`)."""
        return list(self.data.get("errors") or [])

    @property
    def result(self) -> Any:
        return self.data.get("result")

    @classmethod
    def from_json(cls, data: JSON) -> Job:
        progress = data.get("progress") or {}
        total = progress.get("total")
        return cls(
            id=int(data["id"]),
            dataset_id=int(data["dataset"]),
            kind=str(data["kind"]),
            status=str(data["status"]),
            done=int(progress.get("done") or 0),
            total=None if total is None else int(total),
            error_count=int(data.get("error_count") or 0),
            message=str(data.get("message") or ""),
            data=data,
        )


@dataclass(frozen=True)
class SearchHit:
    """One search result: an item (as the item list shows it) and its cosine similarity."""

    score: float
    item: JSON

    @property
    def reference_id(self) -> str:
        return str(self.item["reference_id"])


@dataclass(frozen=True)
class SearchResult:
    """Search hits, best first, and the model that ranked them.

    `random_weights` is True when the model was randomly initialised: the ranking is then
    not semantic (a server without downloaded CLIP weights).
    """

    hits: list[SearchHit]
    model: str
    random_weights: bool
    strategy: str
    data: JSON = field(repr=False, compare=False)

    def __iter__(self) -> Iterator[SearchHit]:
        return iter(self.hits)

    def __len__(self) -> int:
        return len(self.hits)


DatasetRef = Dataset | int | str
SliceRef = Slice | int | str
JobRef = Job | int


# ----------------------------------------------------------------------------- client


class NucleusClient:
    """A connection to one Nucleus server, authenticated with an API token."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        timeout: float = 300.0,
        retries: int = 4,
        backoff: float = 0.5,
        session: requests.Session | None = None,
    ) -> None:
        """Connect to `url` (e.g. http://127.0.0.1:8000) with an API token (`nuc_...`).

        `retries` is how many times a safe request is re-sent after a connection error or a
        502/503/504, waiting `backoff` seconds, doubled each time.
        """
        base = url.rstrip("/")
        if not base.endswith("/api/v1"):
            base += "/api/v1"
        self.base_url = base
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.session = session or requests.Session()
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def close(self) -> None:
        """Close the pooled HTTP connections."""
        # urllib3 2.8's PoolManager.clear() (which Session.close() calls) forgets its pools
        # without closing them; their sockets then stay open until garbage collection, which
        # an exception kept by the caller delays indefinitely.
        for adapter in self.session.adapters.values():
            pools = getattr(getattr(adapter, "poolmanager", None), "pools", None)
            if pools is None:
                continue
            for key in list(pools.keys()):
                pool = pools.get(key)
                if pool is not None:
                    pool.close()
        self.session.close()

    def __enter__(self) -> NucleusClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ plumbing

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None,
        json_body: Any = None,
        data: Mapping[str, Any] | None = None,
        files: Mapping[str, tuple[str, BinaryIO]] | None = None,
        stream: bool = False,
        retry: bool | None = None,
    ) -> requests.Response:
        """Send a request to `path` (relative to /api/v1/) and return the good response.

        `retry` defaults to True for GET and DELETE; writes pass it when they are idempotent.
        Raises NucleusAPIError for a 4xx/5xx answer, NucleusConnectionError when unreachable.
        """
        url = path if path.startswith(("http://", "https://")) else f"{self.base_url}/{path}"
        safe = method in ("GET", "HEAD", "DELETE") if retry is None else retry
        retries = self.retries if safe else 0
        attempt = 0
        while True:
            if files:
                for _, fileobj in files.values():
                    fileobj.seek(0)  # a retried upload must send the whole file again
            try:
                response = self.session.request(
                    method,
                    url,
                    params=params,
                    json=json_body,
                    data=data,
                    files=files,
                    stream=stream,
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt >= retries:
                    raise NucleusConnectionError(f"{method} {url}: {exc}") from exc
            else:
                if response.status_code not in _RETRY_STATUSES or attempt >= retries:
                    break
                response.close()
            time.sleep(self.backoff * 2**attempt)
            attempt += 1
        if method == "DELETE" and attempt > 0 and response.status_code == 404:
            # The first attempt deleted it and only its answer was lost.
            return response
        if response.status_code >= 400:
            raise NucleusAPIError.from_response(response)
        return response

    def _get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.request("GET", path, params=params).json()

    def _post(self, path: str, body: Any = None, *, retry: bool = False) -> Any:
        response = self.request("POST", path, json_body=body, retry=retry)
        return response.json() if response.content else None

    def pages(
        self, path: str, params: Mapping[str, Any] | Sequence[tuple[str, Any]] | None = None
    ) -> Iterator[JSON]:
        """Yield every result of a cursor-paginated list, fetching one page at a time."""
        query: Any = params
        while True:
            page = self.request("GET", path, params=query).json()
            yield from page["results"]
            if not page.get("next"):
                return
            # Keep our own base URL and take only the cursor from `next`: behind a proxy
            # the server may not know the host name the client used.
            query = parse_qsl(urlsplit(page["next"]).query, keep_blank_values=True)

    def _send_chunks(
        self, path: str, key: str, rows: Iterable[JSON], chunk_size: int
    ) -> dict[str, int]:
        """POST rows as {key: [...]} in chunks; return the summed counts of the answers."""
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        totals: dict[str, int] = {}
        offset = 0
        rows_iter = iter(rows)
        while chunk := list(itertools.islice(rows_iter, chunk_size)):
            try:
                answer = self._post(path, {key: chunk}, retry=True)
            except NucleusAPIError as exc:
                raise _shifted(exc, key, offset) from None
            for name, value in answer.items():
                if isinstance(value, int) and not isinstance(value, bool):
                    totals[name] = totals.get(name, 0) + value
            offset += len(chunk)
        return totals

    # ------------------------------------------------------------------ datasets

    def datasets(self) -> list[Dataset]:
        """The datasets you have a role on."""
        return [Dataset.from_json(d) for d in self.pages("datasets", {"limit": 1000})]

    def dataset(self, ref: DatasetRef) -> Dataset:
        """Get a dataset by id or by name (a name shared by two datasets you see is an error)."""
        if isinstance(ref, Dataset):
            ref = ref.id
        if isinstance(ref, int):
            return Dataset.from_json(self._get(f"datasets/{ref}"))
        found = [d for d in self.datasets() if d.name == ref]
        if len(found) == 1:
            return found[0]
        if not found and ref.isdigit():
            return self.dataset(int(ref))
        if not found:
            raise NucleusAPIError(404, "not_found", f"No dataset named {ref!r} that you can see.")
        ids = ", ".join(str(d.id) for d in found)
        raise NucleusAPIError(
            409, "ambiguous", f"{len(found)} datasets are named {ref!r} (ids {ids}); use an id."
        )

    def dataset_create(self, name: str, *, description: str = "") -> Dataset:
        """Create a dataset; you become its owner."""
        body = {"name": name, "description": description}
        return Dataset.from_json(self._post("datasets", body))

    def dataset_update(
        self, dataset: DatasetRef, *, name: str | None = None, description: str | None = None
    ) -> Dataset:
        """Rename a dataset or change its description."""
        body = {k: v for k, v in (("name", name), ("description", description)) if v is not None}
        ds_id = self._dataset_id(dataset)
        return Dataset.from_json(self.request("PATCH", f"datasets/{ds_id}", json_body=body).json())

    def dataset_delete(self, dataset: DatasetRef) -> None:
        """Delete a dataset with everything in it (owner only; it cannot be undone)."""
        self.request("DELETE", f"datasets/{self._dataset_id(dataset)}")

    def _dataset_id(self, dataset: DatasetRef) -> int:
        if isinstance(dataset, Dataset):
            return dataset.id
        if isinstance(dataset, int):
            return dataset
        return self.dataset(dataset).id

    # --------------------------------------------------------------------- items

    def items(
        self,
        dataset: DatasetRef,
        *,
        query: str | None = None,
        filters: Filters | None = None,
        page_size: int = 500,
    ) -> Iterator[JSON]:
        """Yield a dataset's items in id order, fetching page by page.

        `query` is a query-language condition (docs/query-language.md), e.g.
        `'metadata.weather = "rain" AND annotations.car >= 2'`. `filters` are the item
        list's other query parameters (docs/api.md), e.g. `{"metadata.speed__gt": 10,
        "tag": ["night", "blurry"]}`; a list value repeats the parameter.
        """
        params = [("limit", page_size), *_query(filters)]
        if query:
            params.append(("query", query))
        return self.pages(f"datasets/{self._dataset_id(dataset)}/items", params)

    def query_check(self, dataset: DatasetRef, query: str) -> list[JSON]:
        """Check a query: NucleusAPIError (400, with where) if it is wrong, else its
        warnings about labels, metadata keys and tags the dataset does not have."""
        found = self._get(f"datasets/{self._dataset_id(dataset)}/query/check", {"query": query})
        return list(found["warnings"])

    def item(self, dataset: DatasetRef, item_id: int, *, include_predictions: bool = False) -> JSON:
        """Get one item with its tags, annotations and (optionally) predictions."""
        params = {"include": "predictions"} if include_predictions else None
        return dict(self._get(f"datasets/{self._dataset_id(dataset)}/items/{item_id}", params))

    def items_upsert(
        self, dataset: DatasetRef, rows: Iterable[JSON], *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> dict[str, int]:
        """Upsert item rows by reference_id, `chunk_size` rows per request; return the counts.

        Rows are read lazily, so a generator of millions of rows is fine. The answer sums
        the server's counts (items_created, items_updated, items_unchanged, ...). A bad row
        stops at its chunk: earlier chunks have landed, and sending everything again is safe.
        """
        path = f"datasets/{self._dataset_id(dataset)}/items/bulk"
        return self._send_chunks(path, "items", rows, chunk_size)

    def items_delete(self, dataset: DatasetRef, reference_ids: Iterable[str]) -> dict[str, Any]:
        """Delete items by reference_id; returns `deleted` and the `missing` ids."""
        path = f"datasets/{self._dataset_id(dataset)}/items/delete"
        deleted, missing = 0, []
        for chunk in _chunks(reference_ids, REFERENCE_ID_CHUNK):
            answer = self._post(path, {"reference_ids": chunk}, retry=True)
            deleted += answer["deleted"]
            missing.extend(answer["missing"])
        return {"deleted": deleted, "missing": missing}

    # ------------------------------------------------------ annotations, models

    def annotations_upload(
        self, dataset: DatasetRef, rows: Iterable[JSON], *, chunk_size: int = DEFAULT_CHUNK_SIZE
    ) -> dict[str, int]:
        """Upsert annotation rows (each naming its item's reference_id) in chunks.

        Returns the summed `received` and `written` counts; re-sending is a no-op.
        """
        path = f"datasets/{self._dataset_id(dataset)}/annotations/bulk"
        return self._send_chunks(path, "annotations", rows, chunk_size)

    def annotations(self, dataset: DatasetRef, item_id: int) -> list[JSON]:
        """The annotations of one item."""
        ds_id = self._dataset_id(dataset)
        return list(self._get(f"datasets/{ds_id}/items/{item_id}/annotations")["results"])

    def annotation_create(
        self,
        dataset: DatasetRef,
        item_id: int,
        *,
        label: str,
        kind: str = "box",
        geometry: JSON | None = None,
        metadata: JSON | None = None,
        id: str | None = None,
    ) -> JSON:
        """Add one annotation to an item; returns it with its `pk` and `version`.

        Idempotent by `id` (derived from the content when left out), so it is retried."""
        body: JSON = {"label": label, "kind": kind}
        for name, value in (("geometry", geometry), ("metadata", metadata), ("id", id)):
            if value is not None:
                body[name] = value
        path = f"datasets/{self._dataset_id(dataset)}/items/{item_id}/annotations"
        return dict(self._post(path, body, retry=True))

    def annotation(self, dataset: DatasetRef, pk: int) -> JSON:
        """One annotation by its `pk`, with its `version`."""
        return dict(self._get(f"datasets/{self._dataset_id(dataset)}/annotations/{pk}"))

    def annotation_update(
        self,
        dataset: DatasetRef,
        pk: int,
        *,
        version: int,
        label: str | None = None,
        geometry: JSON | None = None,
        metadata: JSON | None = None,
    ) -> JSON:
        """Change an annotation read at `version`; returns it with its new version.

        If someone changed it since, raises NucleusAPIError with status 409 and the
        annotation as it is now in `error.body["current"]`: send its version to overwrite."""
        body: JSON = {"version": version}
        for name, value in (("label", label), ("geometry", geometry), ("metadata", metadata)):
            if value is not None:
                body[name] = value
        path = f"datasets/{self._dataset_id(dataset)}/annotations/{pk}"
        return dict(self.request("PATCH", path, json_body=body).json())

    def annotation_delete(self, dataset: DatasetRef, pk: int, *, version: int) -> None:
        """Delete an annotation read at `version` (409 as for annotation_update)."""
        path = f"datasets/{self._dataset_id(dataset)}/annotations/{pk}"
        self.request("DELETE", path, params={"version": version})

    def annotations_delete(self, dataset: DatasetRef, ids: Iterable[str]) -> dict[str, Any]:
        """Delete annotations by their ids; returns `deleted` and the `missing` ids."""
        path = f"datasets/{self._dataset_id(dataset)}/annotations/delete"
        deleted, missing = 0, []
        for chunk in _chunks(ids, REFERENCE_ID_CHUNK):
            answer = self._post(path, {"ids": chunk}, retry=True)
            deleted += answer["deleted"]
            missing.extend(answer["missing"])
        return {"deleted": deleted, "missing": missing}

    # ------------------------------------------------------------ annotation history

    def item_history(self, dataset: DatasetRef, item_id: int, *, limit: int = 200) -> list[JSON]:
        """An item's annotation changes, newest first: who, when, through what, before
        and after."""
        path = f"datasets/{self._dataset_id(dataset)}/items/{item_id}/history"
        return list(self._get(path, {"limit": limit})["results"])

    def history(
        self,
        dataset: DatasetRef,
        *,
        user: str | None = None,
        source: str | None = None,
        annotation_id: str | None = None,
        item_id: int | None = None,
        job_id: int | None = None,
        since: int | None = None,
    ) -> Iterator[JSON]:
        """Yield a dataset's annotation changes, newest first, filtered; `since`: only
        those after that change id (pass the newest id seen to follow the history)."""
        filters = {
            "user": user,
            "source": source,
            "annotation_id": annotation_id,
            "item_id": item_id,
            "job_id": job_id,
            "since": since,
        }
        params = {k: v for k, v in filters.items() if v is not None} | {"limit": 1000}
        yield from self.pages(f"datasets/{self._dataset_id(dataset)}/history", params)

    def change_revert(self, dataset: DatasetRef, change_id: int) -> JSON:
        """Revert an annotation change (the latest of its annotation); returns the change
        the revert made. Not retried: a second revert of the same change is a 409."""
        path = f"datasets/{self._dataset_id(dataset)}/history/{change_id}/revert"
        return dict(self._post(path))

    def models(self, dataset: DatasetRef) -> list[JSON]:
        """The dataset's models, each with its prediction_count."""
        return list(self.pages(f"datasets/{self._dataset_id(dataset)}/models", {"limit": 1000}))

    def model(self, dataset: DatasetRef, ref: int | str) -> JSON:
        """Get a model by id or by name."""
        ds_id = self._dataset_id(dataset)
        if isinstance(ref, int):
            return dict(self._get(f"datasets/{ds_id}/models/{ref}"))
        for found in self.models(ds_id):
            if found["name"] == ref:
                return found
        raise NucleusAPIError(404, "not_found", f"No model named {ref!r} in dataset {ds_id}.")

    def model_create(
        self,
        dataset: DatasetRef,
        name: str,
        *,
        description: str = "",
        metadata: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Create a model to attach predictions to (names are unique per dataset)."""
        body = {"name": name, "description": description, "metadata": dict(metadata or {})}
        return dict(self._post(f"datasets/{self._dataset_id(dataset)}/models", body))

    def model_delete(self, dataset: DatasetRef, ref: int | str) -> None:
        """Delete a model and its predictions."""
        ds_id = self._dataset_id(dataset)
        model_id = ref if isinstance(ref, int) else int(self.model(ds_id, ref)["id"])
        self.request("DELETE", f"datasets/{ds_id}/models/{model_id}")

    def predictions_upload(
        self,
        dataset: DatasetRef,
        model: int | str,
        rows: Iterable[JSON],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> dict[str, int]:
        """Upsert a model's prediction rows (annotation rows plus `confidence`) in chunks."""
        ds_id = self._dataset_id(dataset)
        model_id = model if isinstance(model, int) else int(self.model(ds_id, model)["id"])
        path = f"datasets/{ds_id}/models/{model_id}/predictions/bulk"
        return self._send_chunks(path, "predictions", rows, chunk_size)

    # -------------------------------------------------------------------- slices

    def slices(self, dataset: DatasetRef) -> list[Slice]:
        """The dataset's slices with their item counts."""
        ds_id = self._dataset_id(dataset)
        return [
            Slice.from_json(s, ds_id)
            for s in self.pages(f"datasets/{ds_id}/slices", {"limit": 1000})
        ]

    def slice(self, dataset: DatasetRef, ref: SliceRef) -> Slice:
        """Get a slice by id or by name."""
        if isinstance(ref, Slice):
            return ref
        ds_id = self._dataset_id(dataset)
        if isinstance(ref, int):
            return Slice.from_json(self._get(f"datasets/{ds_id}/slices/{ref}"), ds_id)
        for found in self.slices(ds_id):
            if found.name == ref:
                # The detail has what the list may not: a dynamic slice's evaluated count.
                return self.slice(ds_id, found.id)
        raise NucleusAPIError(404, "not_found", f"No slice named {ref!r} in dataset {ds_id}.")

    def slice_create(
        self,
        dataset: DatasetRef,
        name: str,
        *,
        reference_ids: Iterable[str] = (),
        description: str = "",
    ) -> Slice:
        """Create a slice holding the items with these reference ids."""
        ds_id = self._dataset_id(dataset)
        chunks = _chunks(reference_ids, REFERENCE_ID_CHUNK)
        first = next(chunks, [])
        body = {"name": name, "description": description, "reference_ids": first}
        created = Slice.from_json(self._post(f"datasets/{ds_id}/slices", body), ds_id)
        changed = 0
        for chunk in chunks:
            changed += self._slice_change(created, "append", chunk)
        return self.slice(ds_id, created.id) if changed else created

    def slice_append(
        self, dataset: DatasetRef, slice: SliceRef, reference_ids: Iterable[str]
    ) -> int:
        """Add items to a slice; returns how many were not in it already."""
        found = self.slice(dataset, slice)
        return sum(
            self._slice_change(found, "append", c)
            for c in _chunks(reference_ids, REFERENCE_ID_CHUNK)
        )

    def slice_remove(
        self, dataset: DatasetRef, slice: SliceRef, reference_ids: Iterable[str]
    ) -> int:
        """Take items out of a slice; returns how many were in it."""
        found = self.slice(dataset, slice)
        return sum(
            self._slice_change(found, "remove", c)
            for c in _chunks(reference_ids, REFERENCE_ID_CHUNK)
        )

    def _slice_change(self, found: Slice, action: str, reference_ids: list[str]) -> int:
        path = f"datasets/{found.dataset_id}/slices/{found.id}/{action}"
        return int(self._post(path, {"reference_ids": reference_ids}, retry=True)["changed"])

    def slice_items(
        self, dataset: DatasetRef, slice: SliceRef, *, page_size: int = 500
    ) -> Iterator[JSON]:
        """Yield a slice's items in id order, page by page."""
        found = self.slice(dataset, slice)
        path = f"datasets/{found.dataset_id}/slices/{found.id}/items"
        return self.pages(path, {"limit": page_size})

    def slice_delete(self, dataset: DatasetRef, slice: SliceRef) -> None:
        """Delete a slice; its items stay in the dataset."""
        found = self.slice(dataset, slice)
        self.request("DELETE", f"datasets/{found.dataset_id}/slices/{found.id}")

    def slice_create_from_query(
        self,
        dataset: DatasetRef,
        name: str,
        query: str,
        *,
        dynamic: bool = True,
        description: str = "",
    ) -> Slice:
        """Create a slice from a query (docs/query-language.md).

        Dynamic (the default): the query is saved and evaluated on every read. Static
        (`dynamic=False`): the slice holds the items that match now.
        """
        ds_id = self._dataset_id(dataset)
        body = {"name": name, "query": query, "dynamic": dynamic, "description": description}
        answer = self._post(f"datasets/{ds_id}/slices/from-query", body)
        return Slice.from_json(answer["slice"], ds_id)

    def slice_sample(
        self,
        dataset: DatasetRef,
        name: str,
        size: int,
        *,
        seed: int = 0,
        stratify_by: str | None = None,
        source: SliceRef | None = None,
        version: int | None = None,
        query: str = "",
        description: str = "",
    ) -> Slice:
        """Create a static slice with a reproducible sample of `size` items.

        It samples the dataset, or the `source` slice (or that slice's `version`), narrowed
        by `query`. The same seed over the same items picks the same sample.
        `stratify_by` is `label` or `metadata.<key>`: each stratum keeps its share.
        """
        ds_id = self._dataset_id(dataset)
        item_set: JSON = {"query": query}
        if source is not None:
            item_set["slice"] = self.slice(ds_id, source).id
        if version is not None:
            item_set["version"] = version
        body = {
            "name": name,
            "description": description,
            "size": size,
            "seed": seed,
            "stratify_by": stratify_by,
            "source": item_set,
        }
        answer = self._post(f"datasets/{ds_id}/slices/sample", body)
        return Slice.from_json(answer["slice"], ds_id)

    # ------------------------------------------------------------ slice versions

    def _slice_path(self, dataset: DatasetRef, slice: SliceRef) -> str:
        found = self.slice(dataset, slice)
        return f"datasets/{found.dataset_id}/slices/{found.id}"

    def slice_freeze(self, dataset: DatasetRef, slice: SliceRef, *, note: str = "") -> JSON:
        """Freeze the slice as a new numbered version; returns the version (its `number`).

        A version keeps its items, their metadata and annotations as they are now; later
        edits do not change what it exports.
        """
        path = f"{self._slice_path(dataset, slice)}/versions"
        return dict(self._post(path, {"note": note}))

    def slice_versions(self, dataset: DatasetRef, slice: SliceRef) -> list[JSON]:
        """A slice's versions, oldest first."""
        return list(self._get(f"{self._slice_path(dataset, slice)}/versions")["results"])

    def slice_version(self, dataset: DatasetRef, slice: SliceRef, number: int) -> JSON:
        """One version of a slice."""
        return dict(self._get(f"{self._slice_path(dataset, slice)}/versions/{number}"))

    def slice_diff(
        self,
        dataset: DatasetRef,
        slice: SliceRef,
        from_version: int,
        to_version: int,
        *,
        limit: int | None = None,
    ) -> JSON:
        """What changed between two versions: `counts` and the `added`, `removed` and
        `changed` items (each list holds at most `limit` entries; `truncated` says so)."""
        params: JSON = {"from": from_version, "to": to_version}
        if limit is not None:
            params["limit"] = limit
        return dict(self._get(f"{self._slice_path(dataset, slice)}/versions/diff", params))

    def slice_restore(self, dataset: DatasetRef, slice: SliceRef, number: int) -> JSON:
        """Make a version's items the slice's current items; returns what changed."""
        path = f"{self._slice_path(dataset, slice)}/versions/{number}/restore"
        return dict(self._post(path, retry=True))

    def slice_records(
        self,
        dataset: DatasetRef,
        slice: SliceRef,
        *,
        version: int | None = None,
        predictions: str | None = None,
        page_size: int = 500,
    ) -> Iterator[JSON]:
        """Yield a slice's (or a version's) records page by page, annotations inlined.

        A record is what an export's JSONL line holds: id, reference_id, width, height,
        metadata, annotations, a signed media_url, and `predictions` of the named model.
        A version's pages are exact; the live slice's never repeat an item.
        """
        base = self._slice_path(dataset, slice)
        path = f"{base}/versions/{version}/items" if version is not None else f"{base}/records"
        params: JSON = {"limit": page_size}
        if predictions:
            params["predictions"] = predictions
        return self.pages(path, params)

    # ---------------------------------------------------------------------- tags

    def tags(self, dataset: DatasetRef) -> list[JSON]:
        """The dataset's tags with their item counts."""
        return list(self._get(f"datasets/{self._dataset_id(dataset)}/tags")["results"])

    def tag_add(self, dataset: DatasetRef, name: str, reference_ids: Iterable[str]) -> int:
        """Tag items (the tag is created if needed); returns how many gained it."""
        return self._tag_change(dataset, "add", name, reference_ids)

    def tag_remove(self, dataset: DatasetRef, name: str, reference_ids: Iterable[str]) -> int:
        """Untag items; returns how many lost the tag."""
        return self._tag_change(dataset, "remove", name, reference_ids)

    def _tag_change(
        self, dataset: DatasetRef, action: str, name: str, reference_ids: Iterable[str]
    ) -> int:
        path = f"datasets/{self._dataset_id(dataset)}/tags/{action}"
        return sum(
            int(self._post(path, {"name": name, "reference_ids": c}, retry=True)["changed"])
            for c in _chunks(reference_ids, REFERENCE_ID_CHUNK)
        )

    # ---------------------------------------------------------------------- jobs

    def jobs(self, dataset: DatasetRef) -> Iterator[Job]:
        """Yield a dataset's jobs, newest first."""
        for data in self.pages(f"datasets/{self._dataset_id(dataset)}/jobs", {"limit": 100}):
            yield Job.from_json(data)

    def job(self, dataset: DatasetRef, job: JobRef) -> Job:
        """Get a job's current status and progress."""
        job_id = job.id if isinstance(job, Job) else job
        return Job.from_json(self._get(f"datasets/{self._dataset_id(dataset)}/jobs/{job_id}"))

    def job_cancel(self, dataset: DatasetRef, job: JobRef) -> Job:
        """Ask a job to stop at its next checkpoint."""
        job_id = job.id if isinstance(job, Job) else job
        path = f"datasets/{self._dataset_id(dataset)}/jobs/{job_id}/cancel"
        return Job.from_json(self._post(path, retry=True))

    def job_wait(
        self,
        dataset: DatasetRef,
        job: JobRef,
        *,
        poll: float = 1.0,
        timeout: float | None = None,
        progress: Callable[[Job], None] | None = None,
    ) -> Job:
        """Poll a job until it finishes and return it (check `status` for the outcome).

        `progress` is called with the job after every poll. Raises TimeoutError after
        `timeout` seconds (the job keeps running on the server).
        """
        ds_id = self._dataset_id(dataset)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            current = self.job(ds_id, job)
            if progress is not None:
                progress(current)
            if current.finished:
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {current.id} still {current.status} after {timeout}s")
            time.sleep(poll)

    # -------------------------------------------------------------------- ingest

    def ingest(self, dataset: DatasetRef, source: Mapping[str, Any]) -> Job:
        """Start ingesting a source on the server (under an import root); returns the job.

        e.g. `{"type": "folder", "path": "dashcam/2026-11"}`,
        `{"type": "manifest", "path": "items.jsonl"}` or
        `{"type": "coco", "path": "coco/instances_val.json", "images_root": "coco/val"}`.
        """
        path = f"datasets/{self._dataset_id(dataset)}/ingest"
        return Job.from_json(self._post(path, {"source": dict(source)}))

    def ingest_file(
        self,
        dataset: DatasetRef,
        file: str | Path,
        *,
        type: str = "manifest",
        images_root: str | None = None,
    ) -> Job:
        """Upload a JSONL manifest (`type="manifest"`) or a COCO JSON file and ingest it.

        `images_root` says where relative image paths in the file point: a folder under an
        import root on the server, or an http(s)/s3 URL prefix.
        """
        path = f"datasets/{self._dataset_id(dataset)}/ingest"
        form = {"type": type}
        if images_root:
            form["images_root"] = images_root
        with open(file, "rb") as fileobj:
            # Not retried: each upload starts a job. The ingest itself is idempotent, so
            # running it again after an unclear failure only costs time.
            response = self.request(
                "POST", path, data=form, files={"file": (Path(file).name, fileobj)}, retry=False
            )
        return Job.from_json(response.json())

    # -------------------------------------------------------------------- export

    def _export_request(
        self,
        dataset: DatasetRef,
        *,
        slice: SliceRef | None,
        version: int | None,
        format: str,
        predictions: str | None,
        url_ttl: int | None,
        include_media: bool,
        media_urls: str | None = None,
    ) -> requests.Response:
        ds_id = self._dataset_id(dataset)
        if slice is None:
            if version is not None:
                raise ValueError("a version belongs to a slice: give slice= too")
            path = f"datasets/{ds_id}/export"
        else:
            path = f"{self._slice_path(ds_id, slice)}/export"
        params: JSON = {"format": format}
        if version is not None:
            params["version"] = version
        if predictions:
            params["predictions"] = predictions
        if url_ttl is not None:
            params["url_ttl"] = url_ttl
        if media_urls is not None:
            params["media_urls"] = media_urls
        if include_media:
            params["include_media"] = "true"
        return self.request("GET", path, params=params, stream=True)

    def export(
        self,
        dataset: DatasetRef,
        *,
        slice: SliceRef | None = None,
        version: int | None = None,
        format: str = "jsonl",
        predictions: str | None = None,
        url_ttl: int | None = None,
        media_urls: str | None = None,
    ) -> Iterator[JSON]:
        """Yield the records of a dataset, a slice or a slice version as the export streams.

        Only JSONL can be read record by record (`format="jsonl"`); memory stays flat at any
        size. Save COCO or YOLO with export_to_file. The request is sent at once, so a
        refusal raises here; records are read as you iterate. Each record has its item's id,
        reference_id, width, height, metadata, annotations, a media_url (signed, expiring
        after `url_ttl` seconds, or with `media_urls="plain"`, the default for a version, a
        URL that needs the token and never changes), and `predictions` of the named model.
        """
        if format != "jsonl":
            raise ValueError(
                f"only jsonl is read record by record; save {format} with export_to_file"
            )
        response = self._export_request(
            dataset,
            slice=slice,
            version=version,
            format=format,
            predictions=predictions,
            url_ttl=url_ttl,
            media_urls=media_urls,
            include_media=False,
        )
        return _jsonl_records(response)

    def export_to_file(
        self,
        dataset: DatasetRef,
        path: str | Path,
        *,
        slice: SliceRef | None = None,
        version: int | None = None,
        format: str = "jsonl",
        predictions: str | None = None,
        url_ttl: int | None = None,
        media_urls: str | None = None,
        include_media: bool = False,
    ) -> Path:
        """Stream an export into a file and return its path.

        `format` is jsonl, coco (one JSON file), yolo (a tar of labels/, data.yaml and
        media.csv; the images too with `include_media`) or coco_results (the predictions of
        the model named by `predictions`, as a COCO results array). The file appears only
        once it is complete: the download goes to `<path>.part` first.
        """
        response = self._export_request(
            dataset,
            slice=slice,
            version=version,
            format=format,
            predictions=predictions,
            url_ttl=url_ttl,
            media_urls=media_urls,
            include_media=include_media,
        )
        return _save(response, Path(path))

    def export_write(
        self,
        dataset: DatasetRef,
        out: BinaryIO,
        *,
        slice: SliceRef | None = None,
        version: int | None = None,
        format: str = "jsonl",
        predictions: str | None = None,
        url_ttl: int | None = None,
        media_urls: str | None = None,
        include_media: bool = False,
    ) -> int:
        """Stream an export into an open binary file (e.g. stdout); returns the bytes written."""
        response = self._export_request(
            dataset,
            slice=slice,
            version=version,
            format=format,
            predictions=predictions,
            url_ttl=url_ttl,
            media_urls=media_urls,
            include_media=include_media,
        )
        return _copy(response, out)

    def export_job_start(
        self,
        dataset: DatasetRef,
        *,
        slice: SliceRef | None = None,
        version: int | None = None,
        format: str = "jsonl",
        predictions: str | None = None,
        url_ttl: int | None = None,
        media_urls: str | None = None,
        include_media: bool = False,
    ) -> Job:
        """Start an export job that writes the file into the server's storage.

        For very large exports: wait for the job (job_wait), then export_job_download.
        """
        ds_id = self._dataset_id(dataset)
        body: JSON = {"format": format, "include_media": include_media}
        if slice is not None:
            body["slice"] = self.slice(ds_id, slice).id
        if version is not None:
            body["version"] = version
        if predictions:
            body["predictions"] = predictions
        if url_ttl is not None:
            body["url_ttl"] = url_ttl
        if media_urls is not None:
            body["media_urls"] = media_urls
        return Job.from_json(self._post(f"datasets/{ds_id}/exports", body))

    def export_job_download(self, dataset: DatasetRef, job: JobRef, path: str | Path) -> Path:
        """Download the file a finished export job wrote."""
        job_id = job.id if isinstance(job, Job) else job
        url = f"datasets/{self._dataset_id(dataset)}/exports/{job_id}/download"
        return _save(self.request("GET", url, stream=True), Path(path))

    # --------------------------------------------------------------- evaluations

    def evaluation_start(
        self,
        dataset: DatasetRef,
        model: int | str,
        *,
        name: str,
        slice: SliceRef | None = None,
        version: int | None = None,
        query: str = "",
        options: Mapping[str, Any] | None = None,
        task: str = "detection",
        wait: bool = False,
        poll: float = 1.0,
        timeout: float | None = None,
        progress: Callable[[Job], None] | None = None,
    ) -> JSON:
        """Start an evaluation run of `model` (id or name) on the dataset, a slice, or a
        slice's frozen `version`, narrowed to the items `query` matches; returns the run.
        `task`: "detection" (boxes), "segmentation" (polygons and masks) or
        "classification" (categories).
        With `wait`, waits for its job (as job_wait) and returns the finished run with its
        metrics (check its `status`)."""
        ds_id = self._dataset_id(dataset)
        body: JSON = {
            "name": name,
            "model": model if isinstance(model, int) else int(self.model(ds_id, model)["id"]),
            "options": dict(options or {}),
            "task": task,
        }
        if slice is not None:
            body["slice"] = self.slice(ds_id, slice).id
        if version is not None:
            body["version"] = version
        if query:
            body["query"] = query
        run = dict(self._post(f"datasets/{ds_id}/evaluations", body))
        if not wait:
            return run
        return self.evaluation_wait(ds_id, run, poll=poll, timeout=timeout, progress=progress)

    def evaluation_wait(
        self,
        dataset: DatasetRef,
        run: int | JSON,
        *,
        poll: float = 1.0,
        timeout: float | None = None,
        progress: Callable[[Job], None] | None = None,
    ) -> JSON:
        """Wait for a run's job to finish and return the run (TimeoutError as job_wait)."""
        ds_id = self._dataset_id(dataset)
        found = self.evaluation(ds_id, run)
        if found.get("job") is not None:
            self.job_wait(ds_id, found["job"], poll=poll, timeout=timeout, progress=progress)
        return self.evaluation(ds_id, found["id"])

    def evaluations(self, dataset: DatasetRef) -> Iterator[JSON]:
        """Yield a dataset's evaluation runs, newest first (metrics: the 12 numbers only)."""
        yield from self.pages(f"datasets/{self._dataset_id(dataset)}/evaluations", {"limit": 100})

    def evaluation(self, dataset: DatasetRef, run: int | JSON) -> JSON:
        """Get an evaluation run with all its metrics."""
        run_id = run["id"] if isinstance(run, dict) else run
        return dict(self._get(f"datasets/{self._dataset_id(dataset)}/evaluations/{run_id}"))

    def evaluation_compare(
        self, dataset: DatasetRef, a: int | str | JSON, b: int | str | JSON
    ) -> JSON:
        """Compare two finished runs (each an id, a name or a run): `summary` and
        `per_class` hold each metric for a and b with its delta (b - a), `errors` the
        TIDE error types', `items` the items right in one run and wrong in the other
        (`right_in_a_only`, `right_in_b_only`, `wrong_in_both`), each a count and a query."""
        ds_id = self._dataset_id(dataset)
        ids = [self._run_id(ds_id, ref) for ref in (a, b)]
        path = f"datasets/{ds_id}/evaluations/compare"
        return dict(self._get(path, {"a": ids[0], "b": ids[1]}))

    def _run_id(self, ds_id: int, ref: int | str | JSON) -> int:
        if isinstance(ref, dict):
            return int(ref["id"])
        if isinstance(ref, int):
            return ref
        for run in self.evaluations(ds_id):
            if run["name"] == ref:
                return int(run["id"])
        raise NucleusError(f"No evaluation run named {ref!r} in dataset {ds_id}.")

    def evaluation_delete(self, dataset: DatasetRef, run: int | JSON) -> None:
        """Delete a run and its matches (its job is cancelled if it is not done)."""
        run_id = run["id"] if isinstance(run, dict) else run
        self.request("DELETE", f"datasets/{self._dataset_id(dataset)}/evaluations/{run_id}")

    def evaluation_matches(
        self,
        dataset: DatasetRef,
        run: int | JSON,
        *,
        outcome: str | None = None,
        label: str | None = None,
        error_type: str | None = None,
    ) -> Iterator[JSON]:
        """Yield a run's matches (each object's outcome at the operating point), narrowed
        to one `outcome` (tp, fp, fn), one `label` and one TIDE `error_type`
        (classification, localization, both, duplicate, background, missed) when given."""
        run_id = run["id"] if isinstance(run, dict) else run
        params: JSON = {"limit": 1000}
        if outcome is not None:
            params["outcome"] = outcome
        if label is not None:
            params["label"] = label
        if error_type is not None:
            params["error_type"] = error_type
        path = f"datasets/{self._dataset_id(dataset)}/evaluations/{run_id}/matches"
        yield from self.pages(path, params)

    # -------------------------------------------------------------------- review

    def _review_path(self, dataset: DatasetRef, queue: int | str | None = None) -> str:
        """The review API's path of a dataset, or of one queue (by id or by name)."""
        ds_id = self._dataset_id(dataset)
        base = f"datasets/{ds_id}/review"
        if queue is None:
            return base
        if isinstance(queue, str):
            found = [q for q in self._get(f"{base}/queues") if q["name"] == queue]
            if not found:
                raise NucleusAPIError(404, "not_found", f"No review queue named {queue!r}.")
            queue = int(found[0]["id"])
        return f"{base}/queues/{queue}"

    def review_queues(self, dataset: DatasetRef) -> list[JSON]:
        """A dataset's review queues."""
        return list(self._get(f"{self._review_path(dataset)}/queues"))

    def review_queue(self, dataset: DatasetRef, queue: int | str) -> JSON:
        """A review queue by id or name."""
        return dict(self._get(self._review_path(dataset, queue)))

    def review_queue_create(
        self,
        dataset: DatasetRef,
        name: str,
        source: Mapping[str, Any],
        *,
        assignment: str = "claim",
        assignees: Iterable[str] = (),
        claim_minutes: int = 30,
        description: str = "",
    ) -> JSON:
        """Make a review queue from a source: {"kind": "slice", "slice": id}, {"kind":
        "query", "query": ...}, {"kind": "items", "reference_ids": [...]}, {"kind":
        "label_errors", ...} or {"kind": "evaluation", "run": id, "outcome": "fp"}."""
        body = {
            "name": name,
            "description": description,
            "source": dict(source),
            "assignment": assignment,
            "assignees": list(assignees),
            "claim_minutes": claim_minutes,
        }
        return dict(self._post(f"{self._review_path(dataset)}/queues", body))

    def review_queue_delete(self, dataset: DatasetRef, queue: int | str) -> None:
        self.request("DELETE", self._review_path(dataset, queue))

    def review_claim(self, dataset: DatasetRef, queue: int | str, *, count: int = 1) -> list[JSON]:
        """Claim up to `count` entries (the ones you hold first); [] when none is left. A
        retry is safe: held claims come back."""
        path = f"{self._review_path(dataset, queue)}/claim"
        return list(self._post(path, {"count": count}, retry=True))

    def review_entries(
        self, dataset: DatasetRef, queue: int | str, *, status: str | None = None
    ) -> Iterator[JSON]:
        """Every entry of a queue in order (of one status when given), page by page."""
        params = {"status": status} if status else None
        yield from self.pages(f"{self._review_path(dataset, queue)}/entries", params)

    def review_decide(
        self,
        dataset: DatasetRef,
        queue: int | str,
        entry: int,
        decision: str,
        *,
        reason: str | None = None,
        note: str = "",
        objects: Iterable[Mapping[str, Any]] | None = None,
    ) -> JSON:
        """Decide an entry: accepted, corrected, rejected (with a reason key) or skipped;
        per object with `objects` ([{"annotation": id, "decision": ...}]). Idempotent:
        sending it again is a no-op, so it is retried."""
        body: JSON = {"decision": decision, "note": note}
        if reason is not None:
            body["reason"] = reason
        if objects is not None:
            body["objects"] = [dict(o) for o in objects]
        path = f"{self._review_path(dataset, queue)}/entries/{entry}/decide"
        return dict(self._post(path, body, retry=True))

    def review_undo(self, dataset: DatasetRef, queue: int | str) -> JSON:
        """Undo your last decision in the queue; returns the entry, yours again."""
        return dict(self._post(f"{self._review_path(dataset, queue)}/undo"))

    def review_stats(self, dataset: DatasetRef, queue: int | str) -> JSON:
        """Progress, per-reviewer counts, acceptance rate and rejections per reason."""
        return dict(self._get(f"{self._review_path(dataset, queue)}/stats"))

    def review_reasons(self, dataset: DatasetRef) -> list[JSON]:
        """The dataset's reject reasons (key, label)."""
        return list(self._get(f"{self._review_path(dataset)}/reasons"))

    # ------------------------------------------------------------------ insights

    def label_error_scan(self, dataset: DatasetRef, run: int | JSON, *, look: bool = True) -> JSON:
        """Start finding label-error candidates from a finished evaluation run (a job);
        returns the scan (its `job` to follow with job_wait). `look=False` reads no image
        (no odd_label, odd_box): fast at a million items."""
        run_id = run["id"] if isinstance(run, dict) else run
        ds_id = self._dataset_id(dataset)
        return dict(
            self._post(f"datasets/{ds_id}/label-errors/scans", {"run": run_id, "look": look})
        )

    def label_error_scans(self, dataset: DatasetRef) -> list[JSON]:
        """A dataset's label-error scans, newest first."""
        return list(self._get(f"datasets/{self._dataset_id(dataset)}/label-errors/scans"))

    def label_errors(
        self,
        dataset: DatasetRef,
        *,
        type: str | None = None,
        scan: int | None = None,
        limit: int = 50,
    ) -> JSON:
        """The best label-error candidates of the newest finished scan (or `scan`), of one
        `type` when given (wrong_label, bad_box, missing, spurious): {"scan", "neighbours",
        "results"}."""
        params: JSON = {"limit": limit}
        if type is not None:
            params["type"] = type
        if scan is not None:
            params["scan"] = scan
        return dict(self._get(f"datasets/{self._dataset_id(dataset)}/label-errors", params))

    def uncertainty_start(self, dataset: DatasetRef, model: int | str) -> JSON:
        """Start computing a model's (id or name) uncertainty per item (a job)."""
        ds_id = self._dataset_id(dataset)
        model_id = model if isinstance(model, int) else int(self.model(ds_id, model)["id"])
        return dict(self._post(f"datasets/{ds_id}/uncertainty", {"model": model_id}))

    def uncertainty(
        self, dataset: DatasetRef, model: int | str, *, sort: str = "entropy_max", limit: int = 50
    ) -> list[JSON]:
        """Items by a model's uncertainty, most uncertain by `sort` first."""
        ds_id = self._dataset_id(dataset)
        model_id = model if isinstance(model, int) else int(self.model(ds_id, model)["id"])
        params = {"model": model_id, "sort": sort, "limit": limit}
        return list(self._get(f"datasets/{ds_id}/uncertainty", params))

    # ---------------------------------------------------------------- selection

    def _selection_body(
        self,
        ds_id: int,
        strategies: Sequence[JSON],
        budget: int,
        weights: Mapping[str, float] | None,
        seed: int,
        pool: JSON | None,
    ) -> JSON:
        body: JSON = {"strategies": list(strategies), "budget": budget, "seed": seed}
        if weights:
            body["weights"] = dict(weights)
        if pool:
            pool = dict(pool)
            if isinstance(pool.get("slice"), str):  # a slice's name: the API takes its id
                pool["slice"] = self.slice(ds_id, pool["slice"]).id
            body["pool"] = pool
        return body

    def selection_preview(
        self,
        dataset: DatasetRef,
        *,
        strategies: Sequence[JSON],
        budget: int,
        weights: Mapping[str, float] | None = None,
        seed: int = 0,
        pool: JSON | None = None,
    ) -> JSON:
        """What a recipe would select, without saving: {"item_count", "figures", "items"}
        (the first 50 picks). Strategies are {"name", ...options} (docs/selection.md);
        `pool` is {"slice": id or name, "version", "query"}; weights by strategy name."""
        ds_id = self._dataset_id(dataset)
        body = self._selection_body(ds_id, strategies, budget, weights, seed, pool)
        return dict(self._post(f"datasets/{ds_id}/selections/preview", body))

    def selection_create(
        self,
        dataset: DatasetRef,
        *,
        name: str,
        strategies: Sequence[JSON],
        budget: int,
        weights: Mapping[str, float] | None = None,
        seed: int = 0,
        pool: JSON | None = None,
        description: str = "",
        wait: bool = False,
        timeout: float | None = None,
    ) -> JSON:
        """Select `budget` items into a new slice `name` (and its frozen version 1). A big
        pool is selected by a job: with `wait`, wait for it and return the finished
        selection; else the answer's `status` is the job's and `slice` null until it ends."""
        ds_id = self._dataset_id(dataset)
        body = self._selection_body(ds_id, strategies, budget, weights, seed, pool)
        body["name"] = name
        if description:
            body["description"] = description
        made = dict(self._post(f"datasets/{ds_id}/selections", body))
        if wait and made.get("slice") is None and made.get("job"):
            self.job_wait(ds_id, int(made["job"]["id"]), timeout=timeout)
            made = self.selection(ds_id, int(made["id"]))
        return made

    def selections(self, dataset: DatasetRef) -> list[JSON]:
        """A dataset's selections, newest first, each with its recipe and slice."""
        return list(self._get(f"datasets/{self._dataset_id(dataset)}/selections"))

    def selection(self, dataset: DatasetRef, selection_id: int) -> JSON:
        """One selection: recipe, slice, version, figures, job."""
        ds_id = self._dataset_id(dataset)
        return dict(self._get(f"datasets/{ds_id}/selections/{int(selection_id)}"))

    # ------------------------------------------------------------ scenario tests

    def scenario_suites(self, dataset: DatasetRef) -> list[JSON]:
        """The dataset's scenario suites, each with its tests."""
        path = f"datasets/{self._dataset_id(dataset)}/scenario-suites"
        return list(self.pages(path, {"limit": 1000}))

    def scenario_suite(self, dataset: DatasetRef, ref: int | str | JSON) -> JSON:
        """Get a scenario suite (with its tests) by id or by name."""
        ds_id = self._dataset_id(dataset)
        if isinstance(ref, dict):
            ref = int(ref["id"])
        if isinstance(ref, int):
            return dict(self._get(f"datasets/{ds_id}/scenario-suites/{ref}"))
        for found in self.scenario_suites(ds_id):
            if found["name"] == ref:
                return found
        message = f"No scenario suite named {ref!r} in dataset {ds_id}."
        raise NucleusAPIError(404, "not_found", message)

    def scenario_suite_create(
        self, dataset: DatasetRef, name: str, *, description: str = ""
    ) -> JSON:
        """Create a scenario suite (names are unique per dataset)."""
        path = f"datasets/{self._dataset_id(dataset)}/scenario-suites"
        return dict(self._post(path, {"name": name, "description": description}))

    def scenario_suite_delete(self, dataset: DatasetRef, suite: int | str | JSON) -> None:
        """Delete a suite, its tests and its history (the evaluation runs stay)."""
        ds_id = self._dataset_id(dataset)
        suite_id = self.scenario_suite(ds_id, suite)["id"]
        self.request("DELETE", f"datasets/{ds_id}/scenario-suites/{suite_id}")

    def scenario_test_create(
        self,
        dataset: DatasetRef,
        suite: int | str | JSON,
        name: str,
        metric: str,
        *,
        threshold: float | None = None,
        baseline: int | JSON | None = None,
        delta: float = 0.0,
        slice: SliceRef | None = None,
        version: int | None = None,
        query: str = "",
        options: Mapping[str, Any] | None = None,
    ) -> JSON:
        """Add a test to a suite: `metric` (map, ap.car, recall, ...) over the dataset or
        a slice (or its frozen `version`), narrowed by `query`, >= `threshold`, or, with
        `baseline` (a run), at least the baseline run's value minus `delta`."""
        ds_id = self._dataset_id(dataset)
        suite_id = self.scenario_suite(ds_id, suite)["id"]
        body: JSON = {"name": name, "metric": metric, "delta": delta}
        if threshold is not None:
            body["threshold"] = threshold
        if baseline is not None:
            body["baseline"] = baseline["id"] if isinstance(baseline, dict) else baseline
        if slice is not None:
            body["slice"] = self.slice(ds_id, slice).id
        if version is not None:
            body["version"] = version
        if query:
            body["query"] = query
        if options is not None:
            body["options"] = dict(options)
        return dict(self._post(f"datasets/{ds_id}/scenario-suites/{suite_id}/tests", body))

    def scenario_test_delete(
        self, dataset: DatasetRef, suite: int | str | JSON, test_id: int
    ) -> None:
        """Delete a test (its past results stay in the suite's history)."""
        ds_id = self._dataset_id(dataset)
        suite_id = self.scenario_suite(ds_id, suite)["id"]
        self.request("DELETE", f"datasets/{ds_id}/scenario-suites/{suite_id}/tests/{test_id}")

    def scenario_evaluate(
        self,
        dataset: DatasetRef,
        suite: int | str | JSON,
        model: int | str,
        *,
        wait: bool = False,
        poll: float = 1.0,
        timeout: float | None = None,
        progress: Callable[[Job], None] | None = None,
    ) -> JSON:
        """Evaluate every test of a suite for `model` (id or name); returns the suite
        evaluation. With `wait`, waits for its job and returns it finished, with each
        test's result and `passed` (true when every test passed)."""
        ds_id = self._dataset_id(dataset)
        suite_id = self.scenario_suite(ds_id, suite)["id"]
        model_id = model if isinstance(model, int) else int(self.model(ds_id, model)["id"])
        path = f"datasets/{ds_id}/scenario-suites/{suite_id}/evaluations"
        started = dict(self._post(path, {"model": model_id}))
        if not wait:
            return started
        self.job_wait(ds_id, started["job"], poll=poll, timeout=timeout, progress=progress)
        return self.scenario_evaluation(ds_id, suite_id, started["id"])

    def scenario_evaluations(self, dataset: DatasetRef, suite: int | str | JSON) -> Iterator[JSON]:
        """Yield a suite's history: its evaluations with their results, newest first."""
        ds_id = self._dataset_id(dataset)
        suite_id = self.scenario_suite(ds_id, suite)["id"]
        path = f"datasets/{ds_id}/scenario-suites/{suite_id}/evaluations"
        yield from self.pages(path, {"limit": 100})

    def scenario_evaluation(
        self, dataset: DatasetRef, suite: int | str | JSON, evaluation_id: int
    ) -> JSON:
        """Get one evaluation of a suite with each test's result."""
        ds_id = self._dataset_id(dataset)
        suite_id = self.scenario_suite(ds_id, suite)["id"]
        path = f"datasets/{ds_id}/scenario-suites/{suite_id}/evaluations/{evaluation_id}"
        return dict(self._get(path))

    # -------------------------------------------------------------------- search

    def search(
        self,
        dataset: DatasetRef,
        *,
        text: str | None = None,
        item: str | int | None = None,
        image: str | Path | bytes | None = None,
        vector: Sequence[float] | None = None,
        k: int = 50,
        offset: int = 0,
        model: str | None = None,
        query: str | None = None,
        slice: SliceRef | None = None,
        tags: Sequence[str] = (),
        metadata: Sequence[Mapping[str, Any]] = (),
    ) -> SearchResult:
        """The `k` items most similar to one query, best first.

        Give exactly one of `text` (a prompt), `item` (a reference_id, or an item id as an
        int), `image` (a file path or the image's bytes) or `vector`. Filters narrow the
        candidates and still return `k` hits whenever that many items match: `query`
        (query language), `slice`, `tags` (all of them) and `metadata` conditions
        (`{"key": "weather", "op": "eq", "value": "rain"}`). `model` names the embedding
        model (default: the dataset's). `offset` skips the first hits, for paging.
        """
        given = [v is not None for v in (text, item, image, vector)]
        if sum(given) != 1:
            raise ValueError("give exactly one of text=, item=, image= or vector=")
        ds_id = self._dataset_id(dataset)
        search_filter: JSON = {}
        if query:
            search_filter["query"] = query
        if slice is not None:
            search_filter["slice"] = self.slice(ds_id, slice).id
        if tags:
            search_filter["tags"] = list(tags)
        if metadata:
            search_filter["metadata"] = [dict(m) for m in metadata]
        body: JSON = {"limit": k, "offset": offset}
        if model:
            body["model"] = model
        if search_filter:
            body["filter"] = search_filter
        base = f"datasets/{ds_id}/search"
        if image is not None:
            content = image if isinstance(image, bytes) else Path(image).read_bytes()
            name = "query" if isinstance(image, bytes) else Path(image).name
            form = {k_: str(v) for k_, v in body.items() if k_ != "filter"}
            if search_filter:
                form["filter"] = json.dumps(search_filter)
            answer = self.request(
                "POST",
                f"{base}/image",
                data=form,
                files={"image": (name, io.BytesIO(content))},
                retry=True,
            ).json()
        elif text is not None:
            answer = self._post(f"{base}/text", {**body, "text": text}, retry=True)
        elif vector is not None:
            answer = self._post(f"{base}/vector", {**body, "vector": list(vector)}, retry=True)
        else:
            key = "item_id" if isinstance(item, int) else "reference_id"
            answer = self._post(f"{base}/item", {**body, key: item}, retry=True)
        return SearchResult(
            hits=[SearchHit(float(h["score"]), h["item"]) for h in answer["results"]],
            model=str(answer["model"]["name"]),
            random_weights=bool(answer["random_weights"]),
            strategy=str(answer.get("strategy") or ""),
            data=answer,
        )

    # ------------------------------------------------------------------ insights

    def insights_scores_start(
        self, dataset: DatasetRef, *, model: str | None = None, neighbors: int | None = None
    ) -> Job:
        """Start computing uniqueness, representativeness and outlier scores (a job)."""
        body = {k: v for k, v in {"model": model, "neighbors": neighbors}.items() if v is not None}
        path = f"datasets/{self._dataset_id(dataset)}/insights/scores"
        return Job.from_json(self._post(path, body))

    def insights_scores(
        self,
        dataset: DatasetRef,
        *,
        sort: str = "-uniqueness",
        model: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> JSON:
        """A page of items ranked by a score (`-uniqueness`: most unique first; also
        representativeness and outlier, `-` for descending); `random_weights` says when
        the scores mean nothing."""
        params: dict[str, Any] = {"sort": sort, "limit": limit, "offset": offset}
        if model is not None:
            params["model"] = model
        return dict(self._get(f"datasets/{self._dataset_id(dataset)}/insights/scores", params))

    def insights_leaks_start(
        self, dataset: DatasetRef, a: str, b: str, *, model: str | None = None
    ) -> Job:
        """Start a leak report between two sides: `slice:<name>`, `tag:<name>` or a name."""
        body: dict[str, Any] = {"a": a, "b": b}
        if model is not None:
            body["model"] = model
        path = f"datasets/{self._dataset_id(dataset)}/insights/leaks"
        return Job.from_json(self._post(path, body))

    def insights_leaks(
        self, dataset: DatasetRef, *, report: int | None = None, limit: int = 1000
    ) -> JSON:
        """A leak report (the newest unless `report` is given) with all its pairs."""
        path = f"datasets/{self._dataset_id(dataset)}/insights/leaks"
        params: dict[str, Any] = {"limit": limit, "offset": 0}
        if report is not None:
            params["report"] = report
        page = dict(self._get(path, params))
        pairs = list(page["pairs"])
        while page.get("next_offset") is not None:
            params["offset"] = page["next_offset"]
            page = dict(self._get(path, params))
            pairs.extend(page["pairs"])
        return {**page, "offset": 0, "next_offset": None, "pairs": pairs}

    def insights_leaks_remove(
        self, dataset: DatasetRef, side: str, *, report: int | None = None
    ) -> JSON:
        """Take a report's leaking items out of side `a` or `b` (untag, or remove from
        the slice)."""
        body: dict[str, Any] = {"side": side}
        if report is not None:
            body["report"] = report
        path = f"datasets/{self._dataset_id(dataset)}/insights/leaks/remove"
        return dict(self._post(path, body))

    # ------------------------------------------------------------------- autotag

    def autotags(self, dataset: DatasetRef) -> list[JSON]:
        """The dataset's autotags (name, model, scored round, query field)."""
        return list(self._get(f"datasets/{self._dataset_id(dataset)}/autotags"))

    def _autotag_id(self, dataset: DatasetRef, ref: int | str) -> int:
        if isinstance(ref, int):
            return ref
        for found in self.autotags(dataset):
            if found["name"] == ref:
                return int(found["id"])
        raise NucleusError(f"no autotag named {ref!r} in this dataset")

    def autotag(self, dataset: DatasetRef, ref: int | str) -> JSON:
        """An autotag (by id or name) with its example counts and rounds."""
        ds_id = self._dataset_id(dataset)
        return dict(self._get(f"datasets/{ds_id}/autotags/{self._autotag_id(ds_id, ref)}"))

    def autotag_create(
        self,
        dataset: DatasetRef,
        name: str,
        *,
        positives: Iterable[str] = (),
        negatives: Iterable[str] = (),
        model: str | None = None,
        **sources: Any,
    ) -> JSON:
        """Create an autotag from examples by reference id (or `positives_slice`,
        `positives_tag`, `negatives_slice`, `negatives_tag`); trains round 1 and starts its
        scoring job. Returns {autotag, round, job}."""
        body: dict[str, Any] = {"name": name, **sources}
        if positives:
            body["positives"] = list(positives)
        if negatives:
            body["negatives"] = list(negatives)
        if model is not None:
            body["model"] = model
        return dict(self._post(f"datasets/{self._dataset_id(dataset)}/autotags", body))

    def autotag_round(
        self,
        dataset: DatasetRef,
        ref: int | str,
        *,
        positives: Iterable[str] = (),
        negatives: Iterable[str] = (),
        **sources: Any,
    ) -> JSON:
        """Add confirmed (positives) and rejected (negatives) items and train the next
        round; its scoring is a job. Returns {autotag, round, job}."""
        ds_id = self._dataset_id(dataset)
        body: dict[str, Any] = {"positives": list(positives), "negatives": list(negatives)}
        path = f"datasets/{ds_id}/autotags/{self._autotag_id(ds_id, ref)}/rounds"
        return dict(self._post(path, {**body, **sources}))

    def autotag_scores(
        self,
        dataset: DatasetRef,
        ref: int | str,
        *,
        order: str = "desc",
        low: float | None = None,
        high: float | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> JSON:
        """A page of an autotag's scores, best first (`order="asc"`: worst first), within
        [low, high]; `random_weights` says when they mean nothing."""
        ds_id = self._dataset_id(dataset)
        params: dict[str, Any] = {"order": order, "limit": limit, "offset": offset}
        if low is not None:
            params["min"] = low
        if high is not None:
            params["max"] = high
        path = f"datasets/{ds_id}/autotags/{self._autotag_id(ds_id, ref)}/scores"
        return dict(self._get(path, params))

    def autotag_apply(
        self,
        dataset: DatasetRef,
        ref: int | str,
        threshold: float,
        *,
        tag: str | None = None,
        slice: str | None = None,
    ) -> JSON:
        """Tag the items scoring at least `threshold`, or make a static slice of them."""
        ds_id = self._dataset_id(dataset)
        body: dict[str, Any] = {"threshold": threshold}
        body.update({k: v for k, v in {"tag": tag, "slice": slice}.items() if v is not None})
        path = f"datasets/{ds_id}/autotags/{self._autotag_id(ds_id, ref)}/apply"
        return dict(self._post(path, body))

    def autotag_delete(self, dataset: DatasetRef, ref: int | str) -> None:
        ds_id = self._dataset_id(dataset)
        self.request("DELETE", f"datasets/{ds_id}/autotags/{self._autotag_id(ds_id, ref)}")


# ---------------------------------------------------------------------------- helpers


def _jsonl_records(response: requests.Response) -> Iterator[JSON]:
    """Parse a streamed JSONL body line by line, holding at most one line and one chunk."""
    buffer = bytearray()
    try:
        with response:
            for chunk in response.iter_content(chunk_size=1 << 16):
                start = len(buffer)
                buffer.extend(chunk)
                end = buffer.find(b"\n", start)
                begin = 0
                while end != -1:
                    line = bytes(buffer[begin:end])
                    if line.strip():
                        yield json.loads(line)
                    begin = end + 1
                    end = buffer.find(b"\n", begin)
                del buffer[:begin]
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise NucleusConnectionError(f"the export stream broke off: {exc}") from exc
    if bytes(buffer).strip():
        yield json.loads(bytes(buffer))


def _copy(response: requests.Response, out: BinaryIO) -> int:
    """Stream a response body into `out`; returns the bytes written."""
    written = 0
    try:
        with response:
            for chunk in response.iter_content(chunk_size=1 << 20):
                out.write(chunk)
                written += len(chunk)
    except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
        raise NucleusConnectionError(f"the download broke off: {exc}") from exc
    return written


def _save(response: requests.Response, path: Path) -> Path:
    """Stream a response body into `path` through `<path>.part`, renamed when complete."""
    partial = path.with_name(path.name + ".part")
    with response:
        try:
            with open(partial, "wb") as out:
                _copy(response, out)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    partial.replace(path)
    return path


def _query(filters: Filters | None) -> list[tuple[str, str]]:
    """Query parameters from a filter mapping; list values repeat the parameter."""
    out: list[tuple[str, str]] = []
    for key, value in (filters or {}).items():
        values = value if isinstance(value, list | tuple) else [value]
        out.extend((key, _param(v)) for v in values)
    return out


def _param(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return str(value)


def _chunks(values: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(values)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def _shifted(error: NucleusAPIError, key: str, offset: int) -> NucleusAPIError:
    """Renumber `items[3]...` paths of a chunk's error to the row's index in the whole upload."""
    if not offset:
        return error

    def shift(path: str) -> str:
        match = _ROW_PATH.match(path)
        if not match or match.group(1) != key:
            return path
        return f"{key}[{int(match.group(2)) + offset}]{path[match.end() :]}"

    fields = [FieldError(shift(f.path), f.message) for f in error.fields]
    message = f"{error.message} (in the chunk from row {offset}; earlier chunks were written)"
    return NucleusAPIError(error.status, error.code, message, fields)
