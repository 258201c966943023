"""The `nucleus` command: the REST API from a shell, for people and pipelines.

    export NUCLEUS_URL=http://127.0.0.1:8000 NUCLEUS_TOKEN=nuc_...
    nucleus datasets
    nucleus ingest --dataset demo items.jsonl --wait
    nucleus jobs 12 --wait
    nucleus export --dataset demo --slice night-rain --version 2 --format coco -o out.json
    nucleus search --dataset demo --text "a red car" -k 20
    nucleus evaluate --dataset demo --model yolo --slice night --wait
    nucleus compare --dataset demo "yolo v8" "yolo v9"          # deltas b - a, items
    nucleus test --dataset demo --suite release-gates --model yolo-v9   # exit 1 on a failure
    nucleus history list --dataset demo --user alice      # who changed which annotations
    nucleus history revert --dataset demo 1234            # undo one change

Configuration comes from NUCLEUS_URL and NUCLEUS_TOKEN or the --url/--token flags. Errors
from the server are printed with their fields and exit with status 1; usage errors exit 2.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nucleus.cli_autotag import add_autotag_parser
from nucleus.cli_common import UsageError as _UsageError
from nucleus.cli_common import add_dataset as _add_dataset
from nucleus.cli_common import add_json as _add_json
from nucleus.cli_common import dump as _dump
from nucleus.cli_common import follow as _follow
from nucleus.cli_common import job_anywhere as _job_anywhere
from nucleus.cli_common import number as _number
from nucleus.cli_common import print_job as _print_job
from nucleus.cli_common import progress_text as _progress_text
from nucleus.cli_common import table as _table
from nucleus.cli_history import add_history_parser
from nucleus.cli_insights import add_insights_parser
from nucleus.cli_review import add_review_parser
from nucleus.cli_select import add_select_parser
from nucleus.client import NucleusAPIError, NucleusClient, NucleusError

DEFAULT_URL = "http://127.0.0.1:8000"
_FORMAT_BY_SUFFIX = {".jsonl": "manifest", ".ndjson": "manifest", ".json": "coco"}
# The names of COCOeval.stats in its order, as a run's metrics hold them.
_STAT_NAMES = (
    "map",
    "map_50",
    "map_75",
    "map_small",
    "map_medium",
    "map_large",
    "mar_1",
    "mar_10",
    "mar_100",
    "mar_small",
    "mar_medium",
    "mar_large",
)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line `argv` (default: sys.argv[1:]) and return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    url = args.url or os.environ.get("NUCLEUS_URL") or DEFAULT_URL
    token = args.token or os.environ.get("NUCLEUS_TOKEN")
    if not token:
        parser.error("no API token: set NUCLEUS_TOKEN or pass --token")
    client = NucleusClient(url, token=token)
    command: Callable[[NucleusClient, argparse.Namespace], int] = args.run
    try:
        return command(client, args)
    except _UsageError as exc:
        parser.error(str(exc))
    except NucleusAPIError as exc:
        print(f"nucleus: error: {exc}", file=sys.stderr)
        return 1
    except (NucleusError, OSError, TimeoutError) as exc:
        print(f"nucleus: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="nucleus", description="Talk to a Nucleus server's REST API."
    )
    parser.add_argument("--url", help=f"server URL (env NUCLEUS_URL, default {DEFAULT_URL})")
    parser.add_argument("--token", help="API token (env NUCLEUS_TOKEN)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    datasets = commands.add_parser("datasets", help="list the datasets you have a role on")
    _add_json(datasets)
    datasets.set_defaults(run=_datasets)

    slices = commands.add_parser("slices", help="list a dataset's slices")
    _add_dataset(slices)
    _add_json(slices)
    slices.set_defaults(run=_slices)

    jobs = commands.add_parser("jobs", help="show a job (or list a dataset's recent jobs)")
    jobs.add_argument("job_id", nargs="?", type=int, metavar="JOB_ID")
    jobs.add_argument("--dataset", help="dataset name or id (found by itself when omitted)")
    jobs.add_argument("--wait", action="store_true", help="follow the job until it finishes")
    _add_json(jobs)
    jobs.set_defaults(run=_jobs)

    ingest = commands.add_parser(
        "ingest",
        help="ingest a local manifest/COCO file (uploaded) or a path on the server",
        description="A local file is uploaded; anything else (or --server) names a folder, "
        "manifest or COCO file under one of the server's import roots.",
    )
    _add_dataset(ingest)
    ingest.add_argument("path", metavar="PATH_OR_MANIFEST")
    ingest.add_argument(
        "--format",
        choices=["manifest", "coco", "folder"],
        help="what PATH is (default: by suffix: .jsonl manifest, .json coco, else folder)",
    )
    ingest.add_argument("--images-root", help="where relative image paths in the file point")
    ingest.add_argument(
        "--server", action="store_true", help="PATH is on the server even if it exists here"
    )
    ingest.add_argument("--wait", action="store_true", help="follow the job until it finishes")
    ingest.set_defaults(run=_ingest)

    export = commands.add_parser(
        "export",
        help="download a dataset, a slice or a slice version (jsonl, coco or yolo), or a "
        "model's predictions on it (coco_results)",
        description="Streams the export into the file (written as FILE.part, renamed when "
        "complete), or to stdout without -o.",
    )
    _add_dataset(export)
    export.add_argument("--slice", help="slice name or id (default: the whole dataset)")
    export.add_argument("--version", type=int, help="the slice's frozen version number")
    export.add_argument(
        "--format", choices=["jsonl", "coco", "yolo", "coco_results"], default="jsonl"
    )
    export.add_argument("-o", "--output", help="file to write (default: stdout)")
    export.add_argument(
        "--predictions",
        metavar="MODEL",
        help="jsonl: add this model's predictions; coco_results: export them (required)",
    )
    export.add_argument(
        "--url-ttl", type=int, metavar="SECONDS", help="how long signed media URLs stay valid"
    )
    export.add_argument(
        "--media-urls",
        choices=["signed", "plain"],
        help="signed (expiring, no token needed) or plain (needs a token, never changes; "
        "the default for a --version, whose export is then the same file every time)",
    )
    export.add_argument("--include-media", action="store_true", help="yolo: add the images")
    export.set_defaults(run=_export)

    search = commands.add_parser(
        "search", help="similarity search: print reference_id and score, best first"
    )
    _add_dataset(search)
    what = search.add_mutually_exclusive_group(required=True)
    what.add_argument("--text", help="a text prompt")
    what.add_argument("--item", metavar="REFERENCE_ID", help="items like this item")
    what.add_argument("--image", metavar="FILE", help="items like this image file")
    search.add_argument("-k", type=int, default=20, help="how many results (default 20)")
    search.add_argument("--model", help="embedding model (default: the dataset's)")
    search.add_argument("--query", help="only items this query matches")
    search.add_argument("--slice", help="only items of this slice")
    search.add_argument(
        "--tag", action="append", default=[], help="only items with this tag (repeatable)"
    )
    _add_json(search)
    search.set_defaults(run=_search)

    evaluate = commands.add_parser(
        "evaluate",
        help="evaluate a model's predictions against the ground truth (COCO metrics for "
        "boxes and masks, accuracy and F1 for categories)",
        description="Starts an evaluation run of MODEL on the dataset, a slice or a slice "
        "version. Without --wait it prints the run's id; with --wait it follows the job and "
        "prints the 12 COCO numbers and each class's AP (classification: accuracy and each "
        "class's precision, recall and F1; exit 1 when the run failed).",
    )
    _add_dataset(evaluate)
    evaluate.add_argument("--model", required=True, help="model name or id")
    evaluate.add_argument(
        "--task",
        default="detection",
        help="detection (boxes, the default), segmentation (polygons and masks) or "
        "classification (categories)",
    )
    evaluate.add_argument("--slice", help="slice name or id (default: the whole dataset)")
    evaluate.add_argument("--version", type=int, help="the slice's frozen version number")
    evaluate.add_argument("--query", default="", help="only the items this query matches")
    evaluate.add_argument(
        "--name", help="the run's name, unique in the dataset (default: MODEL and the time)"
    )
    evaluate.add_argument(
        "--options",
        metavar="JSON",
        help="run options as JSON, e.g. '{\"confidence_threshold\": 0.4}'",
    )
    evaluate.add_argument("--wait", action="store_true", help="follow the job and print metrics")
    _add_json(evaluate)
    evaluate.set_defaults(run=_evaluate)

    compare = commands.add_parser(
        "compare",
        help="compare two finished evaluation runs: metric deltas and the items each gets right",
        description="Prints each summary metric and each class's AP for runs A and B with "
        "the delta (B - A), then how many items A gets right (no FP, no FN) and B wrong, "
        "and the other way round, each with its query for the grid.",
    )
    _add_dataset(compare)
    compare.add_argument("a", metavar="A", help="run name or id")
    compare.add_argument("b", metavar="B", help="run name or id")
    _add_json(compare)
    compare.set_defaults(run=_compare)

    test = commands.add_parser(
        "test",
        help="run a scenario suite's tests on a model; exit 0 when all pass, 1 when not",
        description="Evaluates every test of SUITE for MODEL (one job), waits for it and "
        "prints each test's value, what it needed and whether it passed. Exit status: 0 "
        "when every test passed, 1 when one failed (or the job or a request did), 2 on "
        "usage errors: a gate for a training pipeline.",
    )
    _add_dataset(test)
    test.add_argument("--suite", required=True, help="scenario suite name or id")
    test.add_argument("--model", required=True, help="model name or id")
    _add_json(test)
    test.set_defaults(run=_test)

    add_insights_parser(commands)
    add_autotag_parser(commands)
    add_review_parser(commands)
    add_select_parser(commands)
    add_history_parser(commands)
    return parser


# ----------------------------------------------------------------------------- commands


def _datasets(client: NucleusClient, args: argparse.Namespace) -> int:
    found = client.datasets()
    if args.json:
        _dump([d.data for d in found])
    else:
        _table(
            [
                ("id", "name", "role", "items"),
                *((d.id, d.name, d.role, d.item_count) for d in found),
            ]
        )
    return 0


def _slices(client: NucleusClient, args: argparse.Namespace) -> int:
    found = client.slices(client.dataset(args.dataset))
    if args.json:
        _dump([s.data for s in found])
    else:
        _table([("id", "name", "items"), *((s.id, s.name, s.item_count) for s in found)])
    return 0


def _jobs(client: NucleusClient, args: argparse.Namespace) -> int:
    if args.job_id is None:
        if args.dataset is None:
            raise _UsageError("jobs: give a JOB_ID, or --dataset to list its jobs")
        recent = list(itertools.islice(client.jobs(client.dataset(args.dataset)), 20))
        if args.json:
            _dump([j.data for j in recent])
        else:
            rows = ((j.id, j.kind, j.status, _progress_text(j), j.error_count) for j in recent)
            _table([("id", "kind", "status", "progress", "errors"), *rows])
        return 0
    if args.dataset is not None:
        job = client.job(client.dataset(args.dataset), args.job_id)
    else:
        job = _job_anywhere(client, args.job_id)
    if args.wait and not job.finished:
        job = _follow(client, job)
    if args.json:
        _dump(job.data)
    else:
        _print_job(job)
    return 0 if job.status in ("succeeded", "queued", "running") else 1


def _ingest(client: NucleusClient, args: argparse.Namespace) -> int:
    dataset = client.dataset(args.dataset)
    local = Path(args.path)
    kind = args.format or _FORMAT_BY_SUFFIX.get(local.suffix.lower(), "folder")
    if local.is_file() and not args.server:
        if kind == "folder":
            raise _UsageError(f"ingest: {args.path} is a file; give --format manifest or coco")
        job = client.ingest_file(dataset, local, type=kind, images_root=args.images_root)
        print(f"uploaded {local.name}; job {job.id} {job.status}", file=sys.stderr)
    else:
        if local.is_dir() and not args.server:
            raise _UsageError(
                f"ingest: {args.path} is a local folder; only files are uploaded. Put it "
                "under one of the server's import roots and pass --server with that path"
            )
        source: dict[str, Any] = {"type": kind, "path": args.path}
        if args.images_root:
            source["images_root"] = args.images_root
        job = client.ingest(dataset, source)
        print(f"job {job.id} {job.status}", file=sys.stderr)
    if not args.wait:
        print(job.id)
        return 0
    job = _follow(client, job)
    _print_job(job)
    return 0 if job.status == "succeeded" else 1


def _export(client: NucleusClient, args: argparse.Namespace) -> int:
    if args.version is not None and args.slice is None:
        raise _UsageError("export: --version needs --slice")
    dataset = client.dataset(args.dataset)
    options: dict[str, Any] = {
        "slice": _slice_ref(args.slice),
        "version": args.version,
        "format": args.format,
        "predictions": args.predictions,
        "url_ttl": args.url_ttl,
        "media_urls": args.media_urls,
        "include_media": args.include_media,
    }
    if args.output in (None, "-"):
        client.export_write(dataset, sys.stdout.buffer, **options)
        sys.stdout.buffer.flush()
        return 0
    path = client.export_to_file(dataset, args.output, **options)
    print(f"wrote {path} ({path.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


def _search(client: NucleusClient, args: argparse.Namespace) -> int:
    dataset = client.dataset(args.dataset)
    found = client.search(
        dataset,
        text=args.text,
        item=args.item,
        image=args.image,
        k=args.k,
        model=args.model,
        query=args.query,
        slice=_slice_ref(args.slice),
        tags=args.tag,
    )
    if found.random_weights:
        print(
            f"nucleus: warning: model {found.model!r} has random weights; "
            "these results are not semantic",
            file=sys.stderr,
        )
    if args.json:
        _dump(found.data)
    else:
        for hit in found:
            print(f"{hit.reference_id}\t{hit.score:.4f}")
    return 0


DEFAULT_NAME_TRIES = 20


def _evaluate(client: NucleusClient, args: argparse.Namespace) -> int:
    if args.version is not None and args.slice is None:
        raise _UsageError("evaluate: --version needs --slice")
    options: Any = {}
    if args.options is not None:
        try:
            options = json.loads(args.options)
        except ValueError as exc:
            raise _UsageError(f"evaluate: --options is not JSON: {exc}") from None
    dataset = client.dataset(args.dataset)
    model = _model_ref(args.model)
    default = f"{args.model} {datetime.now(UTC):%Y-%m-%d %H:%M:%S}"
    # A default name taken by a run started in the same second gets a number; a name the
    # user gave stays theirs (a taken one is their 409).
    for attempt in range(1, 1 + (DEFAULT_NAME_TRIES if args.name is None else 1)):
        name = args.name or (default if attempt == 1 else f"{default} ({attempt})")
        try:
            run = client.evaluation_start(
                dataset,
                model,
                name=name,
                slice=_slice_ref(args.slice),
                version=args.version,
                query=args.query,
                options=options,
                task=args.task,
            )
            break
        except NucleusAPIError as exc:
            if args.name is not None or exc.status != 409 or attempt == DEFAULT_NAME_TRIES:
                raise
    print(
        f"evaluation {run['id']} ({run['name']}); job {run['job']} {run['status']}", file=sys.stderr
    )
    if not args.wait:
        print(run["id"])
        return 0
    _follow(client, client.job(dataset, run["job"]))
    run = client.evaluation(dataset, run["id"])
    if args.json:
        _dump(run)
    else:
        _print_evaluation(run)
    return 0 if run["status"] == "succeeded" else 1


def _compare(client: NucleusClient, args: argparse.Namespace) -> int:
    dataset = client.dataset(args.dataset)
    found = client.evaluation_compare(dataset, _model_ref(args.a), _model_ref(args.b))
    if args.json:
        _dump(found)
        return 0
    print(f"a: {found['a']['name']} ({found['a']['model_name']})")
    print(f"b: {found['b']['name']} ({found['b']['model_name']})")
    for warning in found.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    rows = [
        (r["metric"], _number(r["a"]), _number(r["b"]), _delta(r["delta"]))
        for r in found["summary"]
    ]
    _table([("metric", "a", "b", "delta"), *rows])
    print()
    rows = [
        (c["label"], _number(c["ap"]["a"]), _number(c["ap"]["b"]), _delta(c["ap"]["delta"]))
        for c in found["per_class"]
    ]
    _table([("label", "ap a", "ap b", "delta"), *rows])
    print()
    lists = [(key, str(v["count"]), str(v["query"])) for key, v in found["items"].items()]
    _table([("items", "count", "query"), *lists])
    return 0


def _delta(value: Any) -> str:
    return "" if value is None else f"{value:+.4f}" if isinstance(value, float) else f"{value:+d}"


def _test(client: NucleusClient, args: argparse.Namespace) -> int:
    dataset = client.dataset(args.dataset)
    suite = client.scenario_suite(dataset, _model_ref(args.suite))
    started = client.scenario_evaluate(dataset, suite, _model_ref(args.model))
    print(
        f"suite {suite['name']}: evaluation {started['id']}; job {started['job']}", file=sys.stderr
    )
    _follow(client, client.job(dataset, started["job"]))
    done = client.scenario_evaluation(dataset, suite, started["id"])
    if args.json:
        _dump(done)
    else:
        rows = [
            (
                r["test_name"],
                r["metric"],
                _number(r["value"]),
                _number(r["required"]),
                "PASS" if r["passed"] else "FAIL",
                r["message"],
            )
            for r in done["results"]
        ]
        _table([("test", "metric", "value", "required", "result", "message"), *rows])
        failed = sum(1 for r in done["results"] if not r["passed"])
        verdict = "passed" if done["passed"] else "FAILED"
        print(f"{verdict}: {len(done['results']) - failed} passed, {failed} failed", end="")
        print(f" (job {done['status']}: {done['message']})" if done["message"] else "")
    return 0 if done["passed"] else 1


# ------------------------------------------------------------------------------ helpers


def _slice_ref(raw: str | None) -> str | int | None:
    """A slice named on the command line: its name, or its id when all digits."""
    return int(raw) if raw is not None and raw.isdigit() else raw


def _model_ref(raw: str) -> str | int:
    """A model (or suite) named on the command line: its name, or its id when all digits."""
    return int(raw) if raw.isdigit() else raw


def _print_evaluation(run: dict[str, Any]) -> None:
    """A finished run: its status, the 12 COCO numbers, then each class's AP."""
    print(f"evaluation {run['id']} ({run['name']}) of {run['model_name']}: {run['status']}")
    if run.get("message"):
        print(f"  {run['message']}")
    for warning in run.get("warnings") or []:
        print(f"  warning: {warning}")
    metrics = run.get("metrics") or {}
    if not metrics:
        return
    if run.get("task") == "classification":
        _print_classification(metrics)
        return
    _table([("metric", "value"), *((k, _number(metrics.get(k))) for k in _STAT_NAMES)])
    print()
    rows = [
        (
            c["label"],
            _number(c.get("ap")),
            _number(c.get("ap50")),
            c.get("tp"),
            c.get("fp"),
            c.get("fn"),
        )
        for c in metrics.get("per_class") or []
    ]
    _table([("label", "ap", "ap50", "tp", "fp", "fn"), *rows])


def _print_classification(metrics: dict[str, Any]) -> None:
    """Accuracy, the averages and top-k, then each class's precision, recall and F1."""
    summary = [("accuracy", _number(metrics.get("accuracy")))]
    for average in ("macro", "weighted"):
        for key in ("precision", "recall", "f1"):
            summary.append((f"{average}_{key}", _number((metrics.get(average) or {}).get(key))))
    for k, value in (metrics.get("top_k") or {}).items():
        summary.append((f"top_{k}", _number(value)))
    _table([("metric", "value"), *summary])
    print()
    rows = [
        (
            c["label"],
            _number(c.get("precision")),
            _number(c.get("recall")),
            _number(c.get("f1")),
            c.get("support"),
        )
        for c in metrics.get("per_class") or []
    ]
    _table([("label", "precision", "recall", "f1", "support"), *rows])


if __name__ == "__main__":
    sys.exit(main())
