"""`nucleus insights ...`: item scores (uniqueness, representativeness, outliers) and
leaks between splits, over the insights API (docs/insights.md)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nucleus.cli_common import (
    UsageError,
    add_dataset,
    add_json,
    dump,
    follow,
    number,
    print_job,
    table,
)
from nucleus.cli_label_errors import add_label_error_commands
from nucleus.client import NucleusClient


def add_insights_parser(commands: Any) -> None:
    """The `insights` command and its subcommands, on the CLI's subparsers."""
    insights = commands.add_parser(
        "insights", help="label errors, uncertainty, item scores, leaks between splits"
    )
    insight = insights.add_subparsers(dest="insight", required=True, metavar="INSIGHT")
    add_label_error_commands(insight)
    scores = insight.add_parser("scores", help="items ranked by a score (--compute: first run it)")
    add_dataset(scores)
    names = ("uniqueness", "representativeness", "outlier")
    scores.add_argument(
        "--sort", default="-uniqueness", choices=[f"{d}{n}" for n in names for d in "-+"]
    )
    scores.add_argument("--model", help="embedding model (default: the dataset's)")
    scores.add_argument("-n", "--limit", type=int, default=20, help="how many (default 20)")
    scores.add_argument("--compute", action="store_true", help="compute the scores first")
    scores.add_argument("--neighbors", type=int, help="with --compute: k (default 10)")
    add_json(scores)
    scores.set_defaults(run=_insights_scores)
    leaks = insight.add_parser("leaks", help="copies across two slices or tags (--a/--b: find)")
    add_dataset(leaks)
    leaks.add_argument("--a", help="one side: slice:<name>, tag:<name> or a name (e.g. train)")
    leaks.add_argument("--b", help="the other side (e.g. test)")
    leaks.add_argument("--model", help="embedding model for semantic copies (real weights)")
    leaks.add_argument("--remove", choices=["a", "b"], help="take the leaks out of this side")
    add_json(leaks)
    leaks.set_defaults(run=_insights_leaks)


def _insights_scores(client: NucleusClient, args: argparse.Namespace) -> int:
    dataset = client.dataset(args.dataset)
    if args.compute:
        start = client.insights_scores_start(dataset, model=args.model, neighbors=args.neighbors)
        if (job := follow(client, start)).status != "succeeded":
            print_job(job)
            return 1
    page = client.insights_scores(
        dataset, sort=args.sort.lstrip("+"), model=args.model, limit=args.limit
    )
    if page["random_weights"]:
        model = page["run"]["model"]
        print(
            f"nucleus: warning: model {model!r} has random weights; the scores are not semantic",
            file=sys.stderr,
        )
    if args.json:
        dump(page)
        return 0
    names = ("uniqueness", "representativeness", "outlier")
    rows = [(r["item"]["reference_id"], *(f"{r[n]:.4f}" for n in names)) for r in page["results"]]
    table([("reference_id", *names), *rows])
    return 0


def _insights_leaks(client: NucleusClient, args: argparse.Namespace) -> int:
    if (args.a is None) != (args.b is None):
        raise UsageError("insights leaks: give both --a and --b, or neither")
    dataset = client.dataset(args.dataset)
    if args.a is not None:
        start = client.insights_leaks_start(dataset, args.a, args.b, model=args.model)
        if (job := follow(client, start)).status != "succeeded":
            print_job(job)
            return 1
    report = client.insights_leaks(dataset)
    if args.json:
        dump(report)
    else:
        head = report["report"]
        print(f"{head['pair_count']} leaking pairs between {head['a']} and {head['b']}")
        pairs = [(p["a"], p["b"], p["evidence"], number(p["distance"])) for p in report["pairs"]]
        table([("a", "b", "evidence", "distance"), *pairs])
    if args.remove is not None:
        done = client.insights_leaks_remove(dataset, args.remove, report=report["report"]["id"])
        print(f"took {done['removed']} items out of {done['removed_from']}", file=sys.stderr)
    return 0
