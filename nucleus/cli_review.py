"""`nucleus review ...`: review queues over the review API (docs/review.md), so that a
person at a terminal or an external labeling tool can pull entries and push decisions.

nucleus review queues --dataset D
nucleus review create --dataset D --name N (--slice S | --query Q | --items FILE |
    --label-errors [--type T] [--min-score X] | --run R --outcome fp|fn [--label L])
    [--with-annotations] [--limit N] [--round-robin --assignees bob,eve]
nucleus review claim --dataset D --queue Q [--count N]          (JSON lines of entries)
nucleus review entries --dataset D --queue Q [--status rejected]
nucleus review decide --dataset D --queue Q --entry E --decision rejected --reason bad_box
nucleus review push --dataset D --queue Q --file decisions.jsonl (one decision a line)
nucleus review undo --dataset D --queue Q
nucleus review stats --dataset D --queue Q
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from nucleus.cli_common import UsageError, add_dataset, add_json, dump, number, table
from nucleus.client import NucleusAPIError, NucleusClient

DECISIONS = ("accepted", "corrected", "rejected", "skipped")
STATUSES = ("pending", "claimed", *DECISIONS)


def _queue_ref(raw: str) -> int | str:
    return int(raw) if raw.isdigit() else raw


def add_review_parser(commands: Any) -> None:
    """The `review` command and its subcommands, on the CLI's subparsers."""
    review = commands.add_parser("review", help="review queues: claim entries, decide them")
    sub = review.add_subparsers(dest="review_command", required=True, metavar="COMMAND")

    queues = sub.add_parser("queues", help="list a dataset's review queues")
    add_dataset(queues)
    add_json(queues)
    queues.set_defaults(run=_queues)

    create = sub.add_parser("create", help="make a review queue from a source")
    add_dataset(create)
    create.add_argument("--name", required=True)
    source = create.add_mutually_exclusive_group(required=True)
    source.add_argument("--slice", help="a slice's name or id")
    source.add_argument("--query", help="a query of the query language")
    source.add_argument("--items", type=Path, help="a file of reference ids, one a line")
    source.add_argument("--label-errors", action="store_true", help="label-error candidates")
    # dest: `run` is the command's function (nucleus.cli.main calls args.run).
    source.add_argument("--run", dest="run_id", type=int, help="an evaluation run's id")
    create.add_argument("--outcome", choices=("fp", "fn"), help="with --run")
    create.add_argument("--label", help="with --run: one label")
    create.add_argument("--scan", type=int, help="with --label-errors (default: the newest)")
    create.add_argument("--type", help="with --label-errors: one type")
    create.add_argument("--min-score", type=float, help="with --label-errors")
    create.add_argument("--with-annotations", action="store_true", help="check each annotation")
    create.add_argument("--limit", type=int, help="at most this many entries")
    create.add_argument("--round-robin", action="store_true", help="assign by position")
    create.add_argument("--assignees", default="", help="usernames, comma separated")
    create.add_argument("--claim-minutes", type=int, default=30)
    create.set_defaults(run=_create)

    claim = sub.add_parser("claim", help="claim your next entries (JSON lines)")
    add_dataset(claim)
    claim.add_argument("--queue", required=True, help="queue name or id")
    claim.add_argument("--count", type=int, default=1)
    claim.set_defaults(run=_claim)

    entries = sub.add_parser("entries", help="a queue's entries in order")
    add_dataset(entries)
    entries.add_argument("--queue", required=True, help="queue name or id")
    entries.add_argument("--status", choices=STATUSES)
    add_json(entries)
    entries.set_defaults(run=_entries)

    decide = sub.add_parser("decide", help="decide one entry")
    add_dataset(decide)
    decide.add_argument("--queue", required=True, help="queue name or id")
    decide.add_argument("--entry", type=int, required=True)
    decide.add_argument("--decision", choices=DECISIONS, required=True)
    decide.add_argument("--reason", help="a reason key (to reject)")
    decide.add_argument("--note", default="")
    decide.set_defaults(run=_decide)

    push = sub.add_parser("push", help="decide many entries from a JSON-lines file")
    add_dataset(push)
    push.add_argument("--queue", required=True, help="queue name or id")
    push.add_argument("--file", type=Path, required=True, help='{"entry", "decision", ...}')
    push.set_defaults(run=_push)

    undo = sub.add_parser("undo", help="undo your last decision in a queue")
    add_dataset(undo)
    undo.add_argument("--queue", required=True, help="queue name or id")
    undo.set_defaults(run=_undo)

    stats = sub.add_parser("stats", help="a queue's progress and per-reviewer counts")
    add_dataset(stats)
    stats.add_argument("--queue", required=True, help="queue name or id")
    add_json(stats)
    stats.set_defaults(run=_stats)


def _queues(client: NucleusClient, args: argparse.Namespace) -> int:
    found = client.review_queues(args.dataset)
    if args.json:
        dump(found)
        return 0
    rows = [
        (q["id"], q["name"], q["source_kind"], q["assignment"], q["entry_count"]) for q in found
    ]
    table([("id", "name", "source", "assignment", "entries"), *rows])
    return 0


def _source(client: NucleusClient, args: argparse.Namespace) -> dict[str, Any]:
    source: dict[str, Any]
    if args.slice is not None:
        source = {"kind": "slice", "slice": client.slice(args.dataset, _queue_ref(args.slice)).id}
    elif args.query is not None:
        source = {"kind": "query", "query": args.query}
    elif args.items is not None:
        refs = [line.strip() for line in args.items.read_text().splitlines() if line.strip()]
        source = {"kind": "items", "reference_ids": refs}
    elif args.label_errors:
        source = {"kind": "label_errors", "scan": args.scan, "type": args.type}
        if args.min_score is not None:
            source["min_score"] = args.min_score
    else:
        if args.outcome is None:
            raise UsageError("review create: --run needs --outcome fp or fn")
        source = {"kind": "evaluation", "run": args.run_id, "outcome": args.outcome}
        if args.label:
            source["label"] = args.label
    if args.with_annotations:
        source["with_annotations"] = True
    if args.limit is not None:
        source["limit"] = args.limit
    return {k: v for k, v in source.items() if v is not None}


def _create(client: NucleusClient, args: argparse.Namespace) -> int:
    queue = client.review_queue_create(
        args.dataset,
        args.name,
        _source(client, args),
        assignment="round_robin" if args.round_robin else "claim",
        assignees=[a.strip() for a in args.assignees.split(",") if a.strip()],
        claim_minutes=args.claim_minutes,
    )
    print(f"queue {queue['id']} {queue['name']!r}: {queue['entry_count']} entries", file=sys.stderr)
    print(queue["id"])
    return 0


def _claim(client: NucleusClient, args: argparse.Namespace) -> int:
    for entry in client.review_claim(args.dataset, _queue_ref(args.queue), count=args.count):
        print(json.dumps(entry))
    return 0


def _entries(client: NucleusClient, args: argparse.Namespace) -> int:
    found = client.review_entries(args.dataset, _queue_ref(args.queue), status=args.status)
    if args.json:
        for entry in found:
            print(json.dumps(entry))
        return 0
    rows = [
        (
            e["id"],
            e["position"],
            e["reference_id"],
            e["status"],
            e["decided_by"] or e["claimed_by"],
            e["reason"],
        )
        for e in found
    ]
    table([("id", "position", "reference_id", "status", "reviewer", "reason"), *rows])
    return 0


def _decide(client: NucleusClient, args: argparse.Namespace) -> int:
    entry = client.review_decide(
        args.dataset,
        _queue_ref(args.queue),
        args.entry,
        args.decision,
        reason=args.reason,
        note=args.note,
    )
    print(f"entry {entry['id']}: {entry['status']}")
    return 0


def _push(client: NucleusClient, args: argparse.Namespace) -> int:
    """Each line's decision; a bad line is reported and the others still go (each is
    idempotent, so a rerun after a fix sends the good ones again harmlessly)."""
    queue = _queue_ref(args.queue)
    failed = 0
    for number_, line in enumerate(args.file.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            client.review_decide(
                args.dataset,
                queue,
                int(row["entry"]),
                row["decision"],
                reason=row.get("reason"),
                note=row.get("note", ""),
                objects=row.get("objects"),
            )
        except (ValueError, KeyError, TypeError, NucleusAPIError) as exc:
            failed += 1
            print(f"line {number_}: {exc}", file=sys.stderr)
    return 1 if failed else 0


def _undo(client: NucleusClient, args: argparse.Namespace) -> int:
    entry = client.review_undo(args.dataset, _queue_ref(args.queue))
    print(f"entry {entry['id']} ({entry['reference_id']}) is yours again")
    return 0


def _stats(client: NucleusClient, args: argparse.Namespace) -> int:
    stats = client.review_stats(args.dataset, _queue_ref(args.queue))
    if args.json:
        dump(stats)
        return 0
    print(
        f"{stats['done']} / {stats['total']} done; acceptance rate "
        f"{number(stats['acceptance_rate']) or '-'}"
    )
    fields = ("accepted", "corrected", "rejected", "skipped", "claimed")
    rows = [
        (r["username"], *(r[f] for f in fields), number(r["acceptance_rate"]))
        for r in stats["reviewers"]
    ]
    table([("reviewer", *fields, "acceptance_rate"), *rows])
    return 0
