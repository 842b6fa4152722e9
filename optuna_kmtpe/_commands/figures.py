"""``kmtpe figures``: regenerate the paper's figures and tables from this package's results."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
from typing import Any


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "figures",
        help="regenerate the paper's figures and tables from benchmark / search results",
        description=(
            "From a `kmtpe bench` results folder (--results): Fig. 3 (convergence) and the "
            "statistics tables. From a `kmtpe search` output folder (--search): Fig. 1 (weight "
            "distributions), Fig. 4 (explored configurations) and the Table II row. Written to "
            "--out as PNG, PDF, interactive HTML and markdown."
        ),
    )
    parser.add_argument("--results", type=Path, help="a `kmtpe bench --out` folder")
    parser.add_argument("--search", type=Path, help="a `kmtpe search --out` folder")
    parser.add_argument("--out", type=Path, default=Path("figures"))
    parser.add_argument("--json", action="store_true", help="print the written paths as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from paper_figures.make_all import make_all

    try:
        written = make_all(args.results, args.out, search=args.search)
    except (FileNotFoundError, ValueError) as e:
        print(f"kmtpe figures: error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"written": [str(p) for p in written]}))
    else:
        for path in written:
            print(path)
    return 0
