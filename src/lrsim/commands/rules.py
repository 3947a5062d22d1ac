"""`lrsim rules`: every registered rule with family, locality, substrates, hyperparameters."""

from __future__ import annotations

import argparse
import json

from lrsim.errors import ConfigError

EPILOG = """\
examples:
  lrsim rules                      the table
  lrsim rules --json               the same as JSON (with each hyperparameter's range)
  lrsim rules feedback_alignment   one rule: its hyperparameters and its docstring
"""


def add(sub: argparse._SubParsersAction) -> None:
    r = sub.add_parser("rules", help="list rules: family, locality, substrates, hyperparameters",
                       epilog=EPILOG)
    r.add_argument("names", nargs="*", metavar="RULE", help="only these rules (default: all)")
    r.add_argument("--json", action="store_true", help="print as JSON")
    r.set_defaults(func=cmd_rules)


def cmd_rules(args: argparse.Namespace) -> int:
    from lrsim.rules import rules

    names = args.names or rules.names()
    for name in names:
        if name not in rules:
            try:
                rules.entry(name)
            except ConfigError as err:
                raise ConfigError(f"rules: {err}") from None
    rows = []
    for name in names:
        e = rules.entry(name)
        hp = ", ".join(f"{k}={p.default!r} {p.describe()}" for k, p in e.params.items()) or "-"
        rows.append({"name": name, "family": e.info["family"], "locality": e.info["locality"],
                     "substrates": list(e.info["substrates"]),
                     "signals": sorted(e.info["signals"]),
                     "hyperparameters": {k: {"default": p.default, "allowed": p.describe(),
                                             "doc": p.doc} for k, p in e.params.items()},
                     "summary": e.doc.splitlines()[0] if e.doc else "",
                     "_hp": hp, "_doc": e.doc})
    if args.json:
        print(json.dumps([{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
                         indent=2))
        return 0
    w = max(len(r["name"]) for r in rows)
    print(f"{'rule':<{w}}  {'family':<18} {'locality':<17} {'substrates':<13} hyperparameters")
    for r in rows:
        print(f"{r['name']:<{w}}  {r['family']:<18} {r['locality']:<17} "
              f"{','.join(r['substrates']):<13} {r['_hp']}")
    if args.names or args.verbose:  # with the docstrings (equations, papers)
        for r in rows:
            print(f"\n{r['name']}:\n{r['_doc']}")
    return 0
