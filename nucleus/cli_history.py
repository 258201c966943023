"""`nucleus history ...`: a dataset's annotation history (who changed what, through
what), one item's, and reverting a change (docs/review.md#history)."""

from __future__ import annotations

import argparse
import itertools
from typing import Any

from nucleus.cli_common import add_dataset, add_json, dump, table
from nucleus.client import JSON, NucleusClient


def add_history_parser(commands: Any) -> None:
    """The `history` command and its subcommands, on the CLI's subparsers."""
    history = commands.add_parser(
        "history", help="annotation changes: list, show an item's, revert"
    )
    action = history.add_subparsers(dest="history_action", required=True, metavar="ACTION")
    listing = action.add_parser("list", help="a dataset's changes, newest first")
    add_dataset(listing)
    listing.add_argument("--user", help="made by this username")
    listing.add_argument(
        "--source", choices=["ingest", "api", "editor", "review", "revert", "admin"]
    )
    listing.add_argument("--annotation", help="of this annotation id")
    listing.add_argument("--item", type=int, help="on this item id")
    listing.add_argument("--job", type=int, help="made by this ingest job")
    listing.add_argument("--since", type=int, help="only changes after this change id")
    listing.add_argument("-n", "--limit", type=int, default=50, help="how many (default 50)")
    add_json(listing)
    listing.set_defaults(run=_history_list)
    item = action.add_parser("item", help="one item's changes, newest first")
    add_dataset(item)
    item.add_argument("item_id", type=int, metavar="ITEM_ID")
    add_json(item)
    item.set_defaults(run=_history_item)
    revert = action.add_parser("revert", help="revert a change (the latest of its annotation)")
    add_dataset(revert)
    revert.add_argument("change_id", type=int, metavar="CHANGE_ID")
    add_json(revert)
    revert.set_defaults(run=_history_revert)


def _state(state: JSON | None) -> str:
    return "-" if state is None else f"{state.get('label')} ({state.get('kind')})"


def _print(changes: list[JSON]) -> None:
    rows = [
        (
            c["id"],
            c["created"][:19],
            c["user"] or "-",
            c["source"],
            c["action"],
            c["annotation_id"],
            f"{_state(c['before'])} -> {_state(c['after'])}",
        )
        for c in changes
    ]
    table([("id", "at", "user", "source", "action", "annotation", "change"), *rows])


def _history_list(client: NucleusClient, args: argparse.Namespace) -> int:
    found = client.history(
        client.dataset(args.dataset),
        user=args.user,
        source=args.source,
        annotation_id=args.annotation,
        item_id=args.item,
        job_id=args.job,
        since=args.since,
    )
    changes = list(itertools.islice(found, args.limit))
    if args.json:
        dump(changes)
    else:
        _print(changes)
    return 0


def _history_item(client: NucleusClient, args: argparse.Namespace) -> int:
    changes = client.item_history(client.dataset(args.dataset), args.item_id)
    if args.json:
        dump(changes)
    else:
        _print(changes)
    return 0


def _history_revert(client: NucleusClient, args: argparse.Namespace) -> int:
    made = client.change_revert(client.dataset(args.dataset), args.change_id)
    if args.json:
        dump(made)
    else:
        _print([made])
    return 0
