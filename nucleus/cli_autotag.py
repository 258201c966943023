"""`nucleus autotag ...`: train a linear classifier on a few examples' embeddings, refine
it in rounds, read its scores, tag or slice by threshold (docs/selection.md, "Autotag")."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from nucleus.cli_common import UsageError, add_dataset, add_json, dump, follow, print_job, table
from nucleus.client import Job, NucleusClient


def add_autotag_parser(commands: Any) -> None:
    """The `autotag` command and its subcommands, on the CLI's subparsers."""
    autotag = commands.add_parser("autotag", help="classifiers on embeddings from a few examples")
    action = autotag.add_subparsers(dest="autotag_action", required=True, metavar="ACTION")

    listing = action.add_parser("list", help="the dataset's autotags")
    add_dataset(listing)
    add_json(listing)
    listing.set_defaults(run=_list)

    create = action.add_parser("create", help="train round 1 on examples and score every item")
    add_dataset(create)
    create.add_argument("name")
    create.add_argument("--model", help="embedding model (default: the dataset's)")
    _add_examples(create)
    create.add_argument("--no-wait", action="store_true", help="do not wait for the scores")
    add_json(create)
    create.set_defaults(run=_create)

    rounds = action.add_parser("round", help="add confirmed/rejected items and retrain")
    add_dataset(rounds)
    rounds.add_argument("name", help="the autotag's name (or id)")
    _add_examples(rounds)
    rounds.add_argument("--no-wait", action="store_true", help="do not wait for the scores")
    add_json(rounds)
    rounds.set_defaults(run=_round)

    scores = action.add_parser("scores", help="items by score, best first")
    add_dataset(scores)
    scores.add_argument("name", help="the autotag's name (or id)")
    scores.add_argument("--min", type=float, help="only scores >= this")
    scores.add_argument("--max", type=float, help="only scores <= this")
    scores.add_argument("--asc", action="store_true", help="worst first")
    scores.add_argument("-n", "--limit", type=int, default=20, help="how many (default 20)")
    add_json(scores)
    scores.set_defaults(run=_scores)

    apply = action.add_parser("apply", help="tag or slice the items scoring >= a threshold")
    add_dataset(apply)
    apply.add_argument("name", help="the autotag's name (or id)")
    apply.add_argument("threshold", type=float)
    apply.add_argument("--tag", help="tag them so")
    apply.add_argument("--slice", help="or make a static slice of them, so named")
    add_json(apply)
    apply.set_defaults(run=_apply)


def _add_examples(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pos", action="append", default=[], help="a positive reference id")
    parser.add_argument("--neg", action="append", default=[], help="a negative reference id")
    parser.add_argument("--pos-tag", help="positives: the items of this tag")
    parser.add_argument("--pos-slice", type=int, help="positives: the items of this slice (id)")
    parser.add_argument("--neg-tag", help="negatives: the items of this tag")
    parser.add_argument("--neg-slice", type=int, help="negatives: the items of this slice (id)")


def _sources(args: argparse.Namespace) -> dict[str, Any]:
    found = {
        "positives_tag": args.pos_tag,
        "positives_slice": args.pos_slice,
        "negatives_tag": args.neg_tag,
        "negatives_slice": args.neg_slice,
    }
    return {k: v for k, v in found.items() if v is not None}


def _ref(name: str) -> int | str:
    return int(name) if name.isdigit() else name


def _started(client: NucleusClient, args: argparse.Namespace, answer: dict[str, Any]) -> int:
    if answer["autotag"]["random_weights"]:
        print(
            f"nucleus: warning: model {answer['autotag']['model']!r} has random weights; "
            "the scores are not semantic",
            file=sys.stderr,
        )
    metrics = answer["round"]["metrics"]
    if not args.no_wait:
        job = follow(client, Job.from_json(answer["job"]))
        if job.status != "succeeded":
            print_job(job)
            return 1
    if args.json:
        dump(answer)
        return 0
    loo = metrics.get("loo_accuracy")
    print(
        f"autotag {answer['autotag']['name']!r} round {answer['round']['number']}: "
        f"{answer['round']['positives']} positives, {answer['round']['negatives']} negatives, "
        f"{answer['round']['sampled_negatives']} drawn at random; training accuracy "
        f"{metrics['train_accuracy_examples']:.2f}"
        + (f", leave-one-out {loo:.2f}" if loo is not None else "")
        + f"; query: {answer['autotag']['query']}"
    )
    return 0


def _list(client: NucleusClient, args: argparse.Namespace) -> int:
    found = client.autotags(args.dataset)
    if args.json:
        dump(found)
        return 0
    rows = [(a["name"], a["model"], a["scored_round"] or "-", a["query"]) for a in found]
    table([("name", "model", "round", "query"), *rows])
    return 0


def _create(client: NucleusClient, args: argparse.Namespace) -> int:
    answer = client.autotag_create(
        args.dataset,
        args.name,
        positives=args.pos,
        negatives=args.neg,
        model=args.model,
        **_sources(args),
    )
    return _started(client, args, answer)


def _round(client: NucleusClient, args: argparse.Namespace) -> int:
    answer = client.autotag_round(
        args.dataset, _ref(args.name), positives=args.pos, negatives=args.neg, **_sources(args)
    )
    return _started(client, args, answer)


def _scores(client: NucleusClient, args: argparse.Namespace) -> int:
    page = client.autotag_scores(
        args.dataset,
        _ref(args.name),
        order="asc" if args.asc else "desc",
        low=args.min,
        high=args.max,
        limit=args.limit,
    )
    if page["random_weights"]:
        print("nucleus: warning: random weights; the scores are not semantic", file=sys.stderr)
    if args.json:
        dump(page)
        return 0
    marks = {True: "+", False: "-", None: ""}
    rows = [
        (r["item"]["reference_id"], f"{r['score']:.4f}", marks[r["example"]])
        for r in page["results"]
    ]
    table([("reference_id", "score", "example"), *rows])
    return 0


def _apply(client: NucleusClient, args: argparse.Namespace) -> int:
    if bool(args.tag) == bool(args.slice):
        raise UsageError("autotag apply: give --tag or --slice (one of them)")
    done = client.autotag_apply(
        args.dataset, _ref(args.name), args.threshold, tag=args.tag, slice=args.slice
    )
    if args.json:
        dump(done)
    elif done["tag"]:
        print(f"tagged {done['items']} items {done['tag']!r}")
    else:
        print(f"slice {done['slice']} made of {done['items']} items")
    return 0
