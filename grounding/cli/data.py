"""``grounding-data``: is my data root complete, and is it the published test set? (no model, no torch)

  grounding-data check [split=NAME ...] [data_root=DIR] [--json]
      one line per split (all registered splits when none is named): ok, missing (which files, and where
      they come from) or incomplete (what differs); then a summary. Exit 0 when every split is ok, else 1.
  grounding-data layout [split=NAME ...]
      the tree of files the splits expect under data_root (README's data section shows the same tree).

split=a,b and repeated split= both work; data_root defaults to conf/config.yaml's (data).
Bad arguments (an unknown split, an unknown option) are one line on stderr, exit code 2.
"""
from __future__ import annotations

import json
import sys
from typing import List, Optional, Tuple

from ..errors import GroundingError, guarded, short_warnings


def parse(argv: List[str]) -> Tuple[str, List[str], Optional[str], bool]:
    """(command, split names, data_root or None, --json) from ``argv``."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        raise SystemExit(print(__doc__) or 0)
    cmd, names, root, as_json = argv[0], [], None, False
    if cmd not in ("check", "layout"):
        raise GroundingError(f"unknown command {cmd!r}: use `grounding-data check` or `grounding-data layout`")
    for a in argv[1:]:
        key, eq, val = a.partition("=")
        if a == "--json":
            as_json = True
        elif eq and key.lstrip("+") == "split":
            names += [v for v in val.split(",") if v]
        elif eq and key.lstrip("+") == "data_root":
            root = val
        elif a != "--debug":
            raise GroundingError(f"unknown argument {a!r}: expected split=NAME, data_root=DIR or --json")
    return cmd, names, root, as_json


def run(argv: List[str]) -> int:
    from ..data import doctor
    from ..data.splits import split_info

    cmd, names, root, as_json = parse(argv)
    for n in names:
        split_info(n)  # an unknown name fails here, before any checking, listing the known ones
    if cmd == "layout":
        print(doctor.layout(names or None, root or "<data_root>"))
        return 0
    root = root or doctor.default_data_root()
    results = doctor.check(names or None, root)
    ok = all(r.status == "ok" for r in results)
    if as_json:
        print(json.dumps({"data_root": root, "ok": ok, "splits": [r.to_dict() for r in results],
                          "summary": doctor.summary(results, root)}, indent=1))
    else:
        for r in results:
            print(r.line(), flush=True)
        print(doctor.summary(results, root))
    return 0 if ok else 1


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    short_warnings()
    return guarded(lambda: run(argv), argv)


if __name__ == "__main__":
    sys.exit(main())
