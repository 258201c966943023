"""`nucleus insights ...` (beside nucleus/cli_insights.py): label-error candidates and
model uncertainty (docs/insights.md).

nucleus insights scan --dataset demo --run "demo-detector on the demo" [--wait]
nucleus insights label-errors --dataset demo [--run R] [--type wrong_label] [--limit 50]
nucleus insights uncertainty-start --dataset demo --model demo-detector
nucleus insights uncertainty --dataset demo --model demo-detector [--sort margin]
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from nucleus.client import NucleusClient, NucleusError

TYPES = ("wrong_label", "bad_box", "missing", "spurious", "neighbour", "odd_label")
SORTS = ("entropy_mean", "entropy_max", "margin", "least_confidence", "low_confidence")


def add_label_error_commands(sub: Any) -> None:
    """The label-error and uncertainty subcommands, on `nucleus insights`'s subparsers."""
    scan = sub.add_parser("scan", help="find label-error candidates from an evaluation run")
    scan.add_argument("--dataset", required=True, help="dataset name or id")
    # dest: `run` is the command's function (nucleus.cli.main calls args.run).
    scan.add_argument("--run", dest="run_name", required=True, help="evaluation run name or id")
    scan.add_argument(
        "--no-look",
        dest="look",
        action="store_false",
        help="read no image: leave out labels and boxes unlike their look (fast at scale)",
    )
    scan.add_argument("--wait", action="store_true", help="wait for the job")
    scan.set_defaults(run=_scan)

    errors = sub.add_parser("label-errors", help="the best label-error candidates")
    errors.add_argument("--dataset", required=True, help="dataset name or id")
    errors.add_argument(
        "--run", dest="run_name", help="evaluation run name or id (default: the newest scan)"
    )
    errors.add_argument("--type", choices=TYPES)
    errors.add_argument("--limit", type=int, default=50)
    errors.add_argument("--json", action="store_true", help="print JSON instead of a table")
    errors.add_argument("--slice", help="also save the listed items as a new static slice")
    errors.add_argument("--tag", help="also tag the listed items")
    errors.set_defaults(run=_label_errors)

    start = sub.add_parser("uncertainty-start", help="compute a model's uncertainty per item")
    start.add_argument("--dataset", required=True, help="dataset name or id")
    start.add_argument("--model", required=True, help="model name or id")
    start.set_defaults(run=_uncertainty_start)

    unsure = sub.add_parser("uncertainty", help="items by a model's uncertainty")
    unsure.add_argument("--dataset", required=True, help="dataset name or id")
    unsure.add_argument("--model", required=True, help="model name or id")
    unsure.add_argument("--sort", choices=SORTS, default="entropy_max")
    unsure.add_argument("--limit", type=int, default=50)
    unsure.add_argument("--json", action="store_true", help="print JSON instead of a table")
    unsure.set_defaults(run=_uncertainty)


def _ref(raw: str) -> str | int:
    return int(raw) if raw.isdigit() else raw


def _run_id(client: NucleusClient, dataset: int, raw: str) -> int:
    ref = _ref(raw)
    if isinstance(ref, int):
        return ref
    for run in client.evaluations(dataset):
        if run["name"] == ref:
            return int(run["id"])
    raise NucleusError(f"no evaluation run named {ref!r}")


def _scan(client: NucleusClient, args: argparse.Namespace) -> int:
    dataset = client.dataset(args.dataset).id
    scan = client.label_error_scan(dataset, _run_id(client, dataset, args.run_name), look=args.look)
    print(f"label-error scan {scan['id']}; job {scan['job']} {scan['status']}", file=sys.stderr)
    if args.wait:
        job = client.job_wait(dataset, scan["job"])
        print(f"job {job.id}: {job.status}", file=sys.stderr)
        return 0 if job.status == "succeeded" else 1
    print(scan["id"])
    return 0


def _label_errors(client: NucleusClient, args: argparse.Namespace) -> int:
    dataset = client.dataset(args.dataset).id
    scan_id = None
    if args.run_name is not None:
        run_id = _run_id(client, dataset, args.run_name)
        scans = [
            s
            for s in client.label_error_scans(dataset)
            if s["run"] == run_id and s["status"] == "succeeded"
        ]
        if not scans:
            print(
                f"nucleus: error: no finished label-error scan of run {args.run_name}",
                file=sys.stderr,
            )
            return 1
        scan_id = int(scans[0]["id"])
    found = client.label_errors(dataset, type=args.type, scan=scan_id, limit=args.limit)
    refs = list(dict.fromkeys(c["reference_id"] for c in found["results"]))
    if args.slice:
        made = client.slice_create(dataset, args.slice, reference_ids=refs)
        print(f"saved {len(refs)} items as the slice {made.name!r} ({made.id})", file=sys.stderr)
    if args.tag:
        added = client.tag_add(dataset, args.tag, refs)
        print(f"tagged {added} items {args.tag!r}", file=sys.stderr)
    if args.json:
        print(json.dumps(found, indent=2))
        return 0
    for signal in ("neighbours", "look"):
        if signal in found and not found[signal]["enabled"]:
            print(f"# {found[signal]['reason']}", file=sys.stderr)
    print("\t".join(("reference_id", "type", "score", "label", "prediction", "confidence", "iou")))
    for c in found["results"]:
        e = c["evidence"]
        row = (
            c["reference_id"],
            c["type"],
            f"{c['score']:.4f}",
            e.get("label", ""),
            # odd_label: what the object looks like to the classifier, and how surely.
            e.get("prediction_label", e.get("label", ""))
            if c["prediction"]
            else e.get("looks_like", ""),
            e.get("confidence", e.get("p_looks_like", "")),
            e.get("iou", ""),
        )
        print("\t".join(str(v) for v in row))
    return 0


def _uncertainty_start(client: NucleusClient, args: argparse.Namespace) -> int:
    dataset = client.dataset(args.dataset).id
    started = client.uncertainty_start(dataset, _ref(args.model))
    print(started["job"])
    return 0


def _uncertainty(client: NucleusClient, args: argparse.Namespace) -> int:
    dataset = client.dataset(args.dataset).id
    rows = client.uncertainty(dataset, _ref(args.model), sort=args.sort, limit=args.limit)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    fields = ("reference_id", *SORTS, "predictions")
    print("\t".join(fields))
    for r in rows:
        print("\t".join(f"{r[f]:.4f}" if isinstance(r[f], float) else str(r[f]) for f in fields))
    return 0
