"""`nucleus select ...`: what to label next, by a recipe of strategies and weights, over
the selection API (docs/selection.md)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from nucleus.cli_common import UsageError, add_dataset, add_json, dump, table
from nucleus.client import NucleusClient


def add_select_parser(commands: Any) -> None:
    """The `select` command, on the CLI's subparsers."""
    select = commands.add_parser(
        "select",
        help="select what to label next (a slice and its frozen version 1)",
        description="Strategies: uncertainty, uniqueness, similarity, metadata, random, "
        "diversity, balance, exclude. Example: nucleus select --dataset D --name batch-3 "
        "--budget 1000 --strategy uncertainty:model=yolo --strategy diversity "
        "--weight diversity=2 --strategy exclude:slice=labelled,radius=0.05",
    )
    add_dataset(select)
    select.add_argument("--name", help="the new slice's name (not needed with --preview)")
    select.add_argument("--budget", type=int, help="how many items to select")
    select.add_argument(
        "--strategy",
        action="append",
        default=[],
        metavar="NAME[:KEY=VALUE,...]",
        help="a strategy and its options (repeat for several)",
    )
    select.add_argument(
        "--strategy-json",
        action="append",
        default=[],
        metavar="JSON",
        help='a strategy as JSON, e.g. \'{"name": "metadata", "key": "weather", '
        '"values": {"fog": 1}}\'',
    )
    select.add_argument(
        "--weight", action="append", default=[], metavar="NAME=W", help="a strategy's weight"
    )
    select.add_argument("--seed", type=int, default=0)
    select.add_argument("--pool-slice", help="select from this slice (name or id)")
    select.add_argument("--pool-query", help="select from the items this query matches")
    select.add_argument("--preview", action="store_true", help="show the first picks, save nothing")
    select.add_argument("--wait", action="store_true", help="wait for a big pool's job")
    select.add_argument("--list", action="store_true", help="list the dataset's selections")
    add_json(select)
    select.set_defaults(run=_select)


def _value(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def strategy_of(spec: str) -> dict[str, Any]:
    """`diversity`, `uncertainty:model=yolo,field=margin` -> a strategy object."""
    name, _, rest = spec.partition(":")
    out: dict[str, Any] = {"name": name.strip()}
    for part in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise UsageError(f"--strategy {spec!r}: expected KEY=VALUE, got {part!r}")
        out[key.strip()] = _value(value.strip())
    return out


def _select(client: NucleusClient, args: argparse.Namespace) -> int:
    if args.list:
        found = client.selections(args.dataset)
        if args.json:
            dump(found)
            return 0
        table(
            [("id", "status", "slice", "items", "recipe")]
            + [
                (
                    s["id"],
                    s["status"],
                    (s["slice"] or {}).get("name", ""),
                    s["item_count"],
                    json.dumps(s["recipe"]["weights"]),
                )
                for s in found
            ]
        )
        return 0
    strategies = [strategy_of(s) for s in args.strategy]
    for raw in args.strategy_json:
        try:
            strategies.append(json.loads(raw))
        except ValueError as exc:
            raise UsageError(f"--strategy-json: {exc}") from None
    if not strategies or args.budget is None:
        raise UsageError("give --budget and at least one --strategy")
    weights: dict[str, float] = {}
    for raw in args.weight:
        key, sep, value = raw.partition("=")
        try:
            weights[key.strip()] = float(value)
        except ValueError:
            raise UsageError(f"--weight {raw!r}: expected NAME=NUMBER") from None
        if not sep:
            raise UsageError(f"--weight {raw!r}: expected NAME=NUMBER")
    pool: dict[str, Any] = {}
    if args.pool_slice:
        pool["slice"] = int(args.pool_slice) if args.pool_slice.isdigit() else args.pool_slice
    if args.pool_query:
        pool["query"] = args.pool_query
    recipe: dict[str, Any] = {
        "strategies": strategies,
        "budget": args.budget,
        "weights": weights,
        "seed": args.seed,
        "pool": pool or None,
    }
    if args.preview:
        preview = client.selection_preview(args.dataset, **recipe)
        if args.json:
            dump(preview)
            return 0
        print(f"{preview['item_count']} items would be selected")
        _print_figures(preview["figures"])
        for item in preview["items"][:20]:
            print(f"  {item['reference_id']}")
        return 0
    if not args.name:
        raise UsageError("give --name (the new slice's name), or --preview")
    made = client.selection_create(args.dataset, name=args.name, wait=args.wait, **recipe)
    if args.json:
        dump(made)
        return 0
    if made.get("slice"):
        print(
            f"slice {made['slice']['name']!r}: {made['item_count']} items, "
            f"version {made['version']} frozen (selection {made['id']})"
        )
        _print_figures(made["figures"])
        return 0
    print(f"selection {made['id']}: job {made['job']['id']} {made['status']}")
    return 0 if made["status"] not in ("failed", "cancelled") else 1


def _print_figures(figures: dict[str, Any]) -> None:
    print(f"pool {figures.get('pool')}, eligible {figures.get('eligible')}")
    for name, part in (figures.get("strategies") or {}).items():
        shown = {k: v for k, v in part.items() if k not in ("classes",)}
        print(f"  {name}: {json.dumps(shown)}")
