"""``grounding-tables``: gather run directories into the paper's tables, next to the paper's numbers.

Table 1  methods × splits        Table 2  backbones × splits (ours)
Table 3  ViT upsample 1× vs 2×   Table A1 box-search time (from scripts/bench_box_search.py)

Each cell reads ``ours (paper, Δ)``; a missing run is a blank, never a zero. The paper's values live
in one data file, ``grounding/paper_results.csv``. Written as Markdown, CSV and LaTeX.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Iterable, List, Optional

import pandas as pd

SPLITS = ["flickr_all", "flickr_other", "flickr_s0", "flickr_s1", "vg_s0", "vg_s1"]
PAPER_CSV = Path(__file__).with_name("paper_results.csv")
TABLE1_METHODS = ["crop_rank", "denseclip", "ours"]
NO_PAPER_VALUES = ("**No paper values for this table** in the paper-results file: cells show our numbers only. "
                   "Add the paper's rows (table,method,backbone,split,metric,value,note) to "
                   "`grounding/paper_results.csv` or pass `--paper FILE`.")


def paper_results(path: Path = PAPER_CSV) -> pd.DataFrame:
    if not Path(path).is_file():
        return pd.DataFrame(columns=["table", "method", "backbone", "split", "metric", "value", "note"])
    df = pd.read_csv(path, dtype={"backbone": str, "note": str}).fillna({"backbone": "", "note": ""})
    return df


def collect_runs(paths: Iterable) -> pd.DataFrame:
    """One row per run directory (a folder with metrics.json) found under ``paths``."""
    rows = []
    for root in paths:
        root = Path(root)
        found = [root / "metrics.json"] if (root / "metrics.json").is_file() else sorted(root.rglob("metrics.json"))
        for m in found:
            try:
                d = json.loads(m.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            params = d.get("params") or {}
            rows.append({
                "run_dir": str(m.parent), "split": d.get("split"), "method": d.get("method"),
                "backbone": d.get("backbone_key") or d.get("backbone"), "accuracy": 100.0 * d["accuracy"],
                "n": d.get("n"), "iou_threshold": d.get("iou_threshold"), "upsample": params.get("upsample"),
                "overrides": json.dumps(d.get("overrides") or {}, sort_keys=True), "mtime": m.stat().st_mtime,
            })
    cols = ["run_dir", "split", "method", "backbone", "accuracy", "n", "iou_threshold", "upsample", "overrides", "mtime"]
    return pd.DataFrame(rows, columns=cols)


def _best(runs: pd.DataFrame) -> pd.DataFrame:
    """Per key, the run with the most rows (then the newest)."""
    if runs.empty:
        return runs
    return runs.sort_values(["n", "mtime"]).groupby(["split", "method", "backbone", "upsample_key"], dropna=False).tail(1)


def _cell(ours: Optional[float], paper: Optional[float]) -> str:
    if ours is None and paper is None:
        return ""
    if ours is None:
        return f"({paper:.1f})"
    if paper is None:
        return f"{ours:.1f}"
    return f"{ours:.1f} ({paper:.1f}, {ours - paper:+.1f})"


def _table(runs: pd.DataFrame, paper: pd.DataFrame, row_keys: List[tuple], label: str, splits: List[str]):
    """row_keys: (row label, method, backbone, upsample or None). Returns (display df, long csv df)."""
    disp, long = [], []
    for name, method, backbone, upsample in row_keys:
        r = {label: name}
        for sp in splits:
            sel = runs[(runs.split == sp) & (runs.method == method) & (runs.backbone == backbone)]
            if upsample is not None:
                sel = sel[sel.upsample == upsample]
            ours = float(sel.accuracy.iloc[-1]) if len(sel) else None
            p = paper[(paper.method == method) & (paper.split == sp) & (paper.backbone == backbone)]
            if upsample is not None:
                p = p[p.note.str.contains(f"upsample={upsample}", regex=False)]
            pv = float(p.value.iloc[0]) if len(p) else None
            r[sp] = _cell(ours, pv)
            long.append({label: name, "split": sp, "ours": ours, "paper": pv,
                         "diff": None if ours is None or pv is None else ours - pv,
                         "run_dir": sel.run_dir.iloc[-1] if len(sel) else None})
        disp.append(r)
    return pd.DataFrame(disp), pd.DataFrame(long)


def build_tables(run_paths: Iterable, paper_csv: Path = PAPER_CSV, bench_csv: Optional[Path] = None):
    runs = collect_runs(run_paths)
    runs["upsample_key"] = runs.upsample.astype(str)
    default = runs[runs.overrides == "{}"]
    default = _best(default)
    paper = paper_results(paper_csv)
    splits = SPLITS + sorted(set(runs.split.dropna()) - set(SPLITS))
    tables = {}
    # Table 1: methods (each with its backbone) × splits
    keys = set()
    for _, r in pd.concat([default[["method", "backbone"]],
                           paper[paper.table.astype(str) == "1"][["method", "backbone"]]]).iterrows():
        keys.add((r.method, r.backbone if isinstance(r.backbone, str) else ""))
    order = {m: i for i, m in enumerate(TABLE1_METHODS)}
    keys = sorted(keys, key=lambda k: (order.get(k[0], -1), k[1]))
    tables["table1_methods"] = _table(default, paper[paper.table.astype(str) == "1"],
                                      [(f"{m} ({b})" if b else m, m, b, None) for m, b in keys], "method", splits)
    # Table 2: ours, backbones × splits
    bks = sorted(set(default[default.method == "ours"].backbone.dropna()) |
                 set(paper[(paper.table.astype(str) == "2")].backbone))
    tables["table2_backbones"] = _table(default, paper[paper.table.astype(str) == "2"],
                                        [(b, "ours", b, None) for b in bks if b], "backbone", splits)
    # Table 3: ViT upsample 1x vs 2x (runs may override only `upsample`)
    up_runs = runs[runs.overrides.isin(["{}"]) | runs.overrides.str.fullmatch(r'\{"upsample": \d+\}')]
    up_runs = _best(up_runs[up_runs.method == "ours"])
    vits = sorted({b for b in up_runs.backbone.dropna() if str(b).startswith(("vit", "toy"))} |
                  set(paper[paper.table.astype(str) == "3"].backbone))
    tables["table3_upsample"] = _table(up_runs, paper[paper.table.astype(str) == "3"],
                                       [(f"{b} {u}x", "ours", b, u) for b in vits if b for u in (1, 2)], "model", splits)
    if bench_csv and Path(bench_csv).is_file():
        b = pd.read_csv(bench_csv)
        tables["tableA1_box_search_time"] = (b, b)
    return tables


def write_tables(tables, out_dir: Path) -> List[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, md = [], []
    for name, (disp, long) in tables.items():
        caption = ("box search time per 224×224 map, from scripts/bench_box_search.py (same maps, one machine)"
                   if name.startswith("tableA1") else "cells: ours (paper, difference), Acc@IoU in %; blank = no run")
        if not name.startswith("tableA1") and ("paper" not in long or long.paper.isna().all()):
            caption += f"\n\n{NO_PAPER_VALUES}"
        md.append(f"### {name}\n\n{caption}\n\n"
                  + (disp.to_markdown(index=False) if len(disp) else "_no rows_") + "\n")
        long.to_csv(out_dir / f"{name}.csv", index=False)
        (out_dir / f"{name}.tex").write_text(disp.style.hide(axis="index").to_latex(hrules=True))
        written += [out_dir / f"{name}.csv", out_dir / f"{name}.tex"]
    (out_dir / "tables.md").write_text("\n".join(md))
    written.append(out_dir / "tables.md")
    return written


def demo_table(run_root: Path) -> pd.DataFrame:
    runs = collect_runs([run_root])
    if runs.empty:
        return runs
    runs = runs.sort_values("mtime").groupby(["split", "method", "backbone"]).tail(1)
    return runs[["split", "method", "backbone", "n", "iou_threshold", "accuracy"]].rename(
        columns={"accuracy": "Acc@IoU (%)"}).round(2)


def print_demo_table(run_root: Path) -> None:
    t = demo_table(run_root)
    if len(t):
        print("\n" + t.to_markdown(index=False) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="grounding-tables", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="*", default=["outputs", "multirun"], help="run directories or folders of them")
    ap.add_argument("-o", "--out", default="outputs/tables")
    ap.add_argument("--paper", default=str(PAPER_CSV))
    ap.add_argument("--bench", default="outputs/bench/box_search.csv", help="CSV from scripts/bench_box_search.py")
    a = ap.parse_args(argv)
    tables = build_tables([p for p in a.runs if Path(p).exists()], Path(a.paper), Path(a.bench))
    write_tables(tables, Path(a.out))
    print((Path(a.out) / "tables.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
