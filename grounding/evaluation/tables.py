"""``grounding-tables``: gather run directories into the paper's tables, next to the paper's numbers.

Table 1  methods × splits (prior work, Crop & Rank, DenseCLIP, ours)   Table 2  backbones × splits (ours)
Table 3  ViT upsample 1× vs 2×                                          Table A1 box-search time

Each cell of Tables 1–3 reads ``ours (paper, Δ)``; a cell the paper has but no run covers reads ``(paper)``; a
cell with neither is blank, never a zero. Table A1 lists the paper's two rows (with their hardware) above this
harness's measured rows (``scripts/bench_box_search.py`` → ``outputs/bench/box_search.csv``).
The paper's values live in one data file, ``grounding/paper_results.csv``. Written as Markdown, CSV and LaTeX.
"""
from __future__ import annotations

import argparse
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, NamedTuple, Optional

import pandas as pd

from ..methods.hparams import backbone_kind
from .runfiles import read_metrics, skip_unreadable
from ..data.completeness import INCOMPLETE_MARK, INCOMPLETE_NOTE, mark_incomplete
from .proposal_tables import proposal_columns, proposal_table

# The splits the tables show, in column order. The one place they are listed (see split_names()).
PAPER_CSV = Path(__file__).resolve().parents[1] / "paper_results.csv"
PAPER_COLUMNS = ["table", "method", "backbone", "split", "metric", "value", "note"]
BENCH_CSV = Path("outputs") / "bench" / "box_search.csv"
# Table 1's prior-work rows: (name, supervision) as the paper prints them; every other method is "CLIP".
PRIOR_WORK = {"zsgnet": ("ZSGNet", "Full"), "wang_et_al": ("Wang et al.", "BBox"),
              "parcalabescu_et_al": ("Parcalabescu et al.", "BBox")}
METHOD_ORDER = [*PRIOR_WORK, "crop_rank", "denseclip", "ours"]
BACKBONE_ORDER = ["rn50", "rn101", "rn50x4", "rn50x16", "rn50x64", "vit_b32", "vit_b16", "vit_l14", "vit_l14_336"]
A1_METHODS = {"hierarchical": "Hierarchical", "ess": "ESS (Python)"}  # Table A1's method names as printed
NO_PAPER_VALUES = ("**No paper values for this table** in the paper-results file: cells show our numbers only. "
                   "Add the paper's rows (table,method,backbone,split,metric,value,note) to "
                   "`grounding/paper_results.csv` or pass `--paper FILE`.")
RN50_NOTE = ("Table 1 prints \"Ours (RN50)\", but its numbers equal Table 2's RN50x4 row (the reference code loads "
             "RN50 weights for its RN50x4 configuration: README, \"Parity with the reference code\"). Both rows keep "
             "the values as printed.")
ACC_CAPTION = ("cells: ours (paper, Δ), Acc@IoU in % (IoU > 0.5 on Flickr, > 0.3 on VG); (paper) = no run; "
               "blank = neither")


def split_names(table: str = "zsg") -> List[str]:
    """The columns of a results table, from the split registry (each split's YAML says its table and order)."""
    from ..data.splits import table_splits

    return table_splits(table)


def family_methods(table: str = "dense_untuned") -> List[str]:
    """Methods whose class takes its defaults from hyperparameter ``table`` (the training-free family)."""
    from hydra.utils import get_class
    from omegaconf import OmegaConf

    from ..config import method_yamls

    return [m for m, path in method_yamls().items()
            if getattr(get_class(str(OmegaConf.load(path)._target_)), "paper_defaults", None) == table]


# --------------------------------------------------------------------------------------------- data in
def paper_results(path: Path = PAPER_CSV) -> pd.DataFrame:
    """The paper's numbers (``table,method,backbone,split,metric,value,note``); empty if ``path`` is missing."""
    if not Path(path).is_file():
        return pd.DataFrame(columns=PAPER_COLUMNS)
    df = pd.read_csv(path, dtype={"table": str, "backbone": str, "split": str, "note": str})
    missing = set(PAPER_COLUMNS) - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}; the header must be {','.join(PAPER_COLUMNS)}")
    return df.fillna({"backbone": "", "split": "", "note": ""})


def _upsample_of(note: str) -> Optional[int]:
    m = re.search(r"upsample=(\d+)", note or "")
    return int(m.group(1)) if m else None


def collect_runs(paths: Iterable) -> pd.DataFrame:
    """One row per run directory (a folder with metrics.json) found under ``paths``; a corrupt metrics.json
    leaves its run out with a one-line warning (runfiles.skip_unreadable)."""
    rows = []
    for root in paths:
        root = Path(root)
        found = [root / "metrics.json"] if (root / "metrics.json").is_file() else sorted(root.rglob("metrics.json"))
        for m in found:
            d = skip_unreadable(lambda: read_metrics(m.parent))
            if d is None:
                continue
            params = d.get("params") or {}
            rows.append({
                "run_dir": str(m.parent), "split": d.get("split"), "method": d.get("method"),
                "backbone": d.get("backbone_label") or d.get("backbone_key") or d.get("backbone"), "accuracy": 100.0 * d["accuracy"],
                "n": d.get("n"), "iou_threshold": d.get("iou_threshold"), "upsample": params.get("upsample"),
                "overrides": json.dumps(d.get("overrides") or {}, sort_keys=True), "mtime": m.stat().st_mtime,
                "tuned": bool(d.get("tuned", True)), "breakdowns": d.get("breakdowns") or {},
                "backbone_kind": d.get("backbone_kind") or backbone_kind(str(d.get("backbone_key") or "")),
                "complete": d.get("complete"),
                **proposal_columns(m.parent, d),
            })
    cols = ["run_dir", "split", "method", "backbone", "accuracy", "n", "iou_threshold", "upsample", "overrides", "mtime",
            "tuned", "breakdowns", "backbone_kind", "complete", "proposals", "recall", "proposal_source"]
    return pd.DataFrame(rows, columns=cols)


def _best(runs: pd.DataFrame) -> pd.DataFrame:
    """Per key, the run with the most rows (then the newest)."""
    if runs.empty:
        return runs
    return runs.sort_values(["n", "mtime"]).groupby(["split", "method", "backbone", "upsample_key", "proposals"],
                                                    dropna=False).tail(1)


# ------------------------------------------------------------------------------------- generic table spec
@dataclass
class Row:
    """One table row: which runs and which paper values fill it."""
    label: str
    method: str
    backbone: str = ""
    upsample: Optional[int] = None  # match runs' params.upsample and the paper's ``upsample=`` note
    columns: Dict[str, str] = field(default_factory=dict)  # extra display columns after the label (supervision)
    proposals: Optional[str] = None  # match runs with this configured proposal source (None: none configured)


@dataclass
class TableSpec:
    """Rows × splits of Acc@IoU: ``render_table`` fills each cell from runs and the paper's table ``table``."""
    name: str
    table: str  # the paper's table id in paper_results.csv ("1", "2", "3")
    label: str  # header of the row-label column
    rows: List[Row]
    splits: List[str]
    caption: str = ACC_CAPTION
    notes: List[str] = field(default_factory=list)
    drop_empty_splits: bool = False  # leave out split columns with neither a run nor a paper value


class Table(NamedTuple):
    display: pd.DataFrame  # what Markdown and LaTeX show
    long: pd.DataFrame  # one row per cell, numbers (the CSV)
    caption: str = ""
    notes: List[str] = []


def _num(x: float, sign: str = "") -> str:
    """Two decimals as the paper prints them, less one trailing zero: 43.8, 34.25, 60.0, +2.5."""
    s = f"{x:{sign}.2f}"
    return s[:-1] if s.endswith("0") else s


def _cell(ours: Optional[float], paper: Optional[float]) -> str:
    if ours is None and paper is None:
        return ""
    if ours is None:
        return f"({_num(paper)})"
    if paper is None:
        return _num(ours)
    return f"{_num(ours)} ({_num(paper)}, {_num(ours - paper, '+')})"


def _paper_cells(paper: pd.DataFrame, table: str) -> Dict[tuple, float]:
    """{(method, backbone, split, upsample): value} of one paper table."""
    p = paper[paper.table.astype(str) == str(table)]
    return {(r.method, r.backbone, r.split, _upsample_of(r.note)): float(r.value) for r in p.itertuples()}


def render_table(spec: TableSpec, runs: pd.DataFrame, paper: pd.DataFrame) -> Table:
    """Fill ``spec``'s rows × splits with ``ours (paper, Δ)`` cells."""
    cells = _paper_cells(paper, spec.table)
    disp, long = [], []
    for row in spec.rows:
        d = {spec.label: row.label, **row.columns}
        for sp in spec.splits:
            sel = runs[(runs.split == sp) & (runs.method == row.method) & (runs.backbone == row.backbone)
                       & (runs.proposals.fillna("") == (row.proposals or ""))]
            if row.upsample is not None:
                sel = sel[sel.upsample == row.upsample]
            ours = float(sel.accuracy.iloc[-1]) if len(sel) else None
            pv = cells.get((row.method, row.backbone, sp, row.upsample))
            d[sp] = mark_incomplete(_cell(ours, pv), sel.complete.iloc[-1] if len(sel) else None)
            long.append({spec.label: row.label, "split": sp, "ours": ours, "paper": pv,
                         "diff": None if ours is None or pv is None else ours - pv,
                         "run_dir": sel.run_dir.iloc[-1] if len(sel) else None})
        disp.append(d)
    disp = pd.DataFrame(disp, columns=[spec.label, *(spec.rows[0].columns if spec.rows else {}), *spec.splits])
    long = pd.DataFrame(long, columns=[spec.label, "split", "ours", "paper", "diff", "run_dir"])
    if spec.drop_empty_splits:
        keep = [sp for sp in spec.splits if (disp[sp] != "").any()]
        disp = disp.drop(columns=[sp for sp in spec.splits if sp not in keep])
        long = long[long.split.isin(keep)].reset_index(drop=True)
    caption, notes = spec.caption, list(spec.notes)
    notes += [INCOMPLETE_NOTE] if any(INCOMPLETE_MARK in str(v) for v in disp.values.ravel()) else []
    if long.paper.isna().all():
        caption += f"\n\n{NO_PAPER_VALUES}"
    return Table(disp, long, caption, notes)


# ---------------------------------------------------------------------------------------- the paper's tables
def _order(key: str, order: List[str]) -> tuple:
    return (order.index(key), "") if key in order else (len(order), key)


def _keys(paper: pd.DataFrame, table: str, runs: pd.DataFrame) -> List[tuple]:
    """(method, backbone) pairs of the paper's table and of the runs, in the paper's order."""
    p = paper[paper.table.astype(str) == table]
    keys = {(m, b if isinstance(b, str) else "") for m, b in zip(p.method, p.backbone)}
    keys |= {(m, b if isinstance(b, str) else "") for m, b in zip(runs.method, runs.backbone) if isinstance(m, str)}
    return sorted(keys, key=lambda k: (_order(k[0], METHOD_ORDER), _order(k[1], BACKBONE_ORDER)))


def table1_spec(runs: pd.DataFrame, paper: pd.DataFrame, splits: List[str]) -> TableSpec:
    rows = []
    for m, b in _keys(paper, "1", runs):
        name, sup = PRIOR_WORK.get(m, (f"{m} ({b})" if b else m, "CLIP"))
        rows.append(Row(name, m, b, columns={"supervision": sup}))
    notes = [RN50_NOTE] if paper.note.str.contains("RN50x4", regex=False).any() else []
    return TableSpec("table1_methods", "1", "method", rows, splits, notes=notes)


def table2_spec(runs: pd.DataFrame, paper: pd.DataFrame, splits: List[str]) -> TableSpec:
    keys = _keys(paper, "2", runs[runs.method == "ours"])
    rows = [Row(b, "ours", b) for m, b in keys if m == "ours" and b]
    notes = [RN50_NOTE] if paper.note.str.contains("RN50x4", regex=False).any() else []
    return TableSpec("table2_backbones", "2", "backbone", rows, splits, notes=notes)


def table3_spec(runs: pd.DataFrame, paper: pd.DataFrame, splits: List[str]) -> TableSpec:
    vit_runs = runs[(runs.method == "ours") & (runs.backbone_kind == "vit")]
    rows = [Row(f"{b} {u}x", "ours", b, u) for m, b in _keys(paper, "3", vit_runs) if m == "ours" and b
            for u in (1, 2)]
    return TableSpec("table3_upsample", "3", "model", rows, splits,
                     caption=ACC_CAPTION + "; ViT feature maps upsampled 1× vs 2× (the paper's `upsample=` note)",
                     drop_empty_splits=True)


UNTUNED_NOTE = ("† not tuned: α and σ are ours-ViT's paper values for the backbone × dataset family "
                "(tune on a val split with `python scripts/tune.py`, then paste into grounding/methods/hparams.py).")


def zoo_spec(runs: pd.DataFrame, splits: List[str]) -> TableSpec:
    """Training-free dense methods × splits (rows method × backbone; ours-ViT alongside for reference)."""
    family = family_methods()
    sel = runs[runs.method.isin(family + ["ours"]) & (runs.backbone_kind == "vit")]
    keys = sorted({(m, b) for m, b in zip(sel.method, sel.backbone)},
                  key=lambda k: (k[0] != "ours", k[0], k[1]))
    untuned = {(m, b) for m, b, t in zip(sel.method, sel.backbone, sel.tuned) if not t}
    rows = [Row(f"{m} ({b}){' †' if (m, b) in untuned else ''}", m, b) for m, b in keys if m in family or
            any(k[0] in family for k in keys)]
    cols = splits + sorted(set(sel.split.dropna()) - set(splits))
    return TableSpec("table_zoo_dense_methods", "zoo", "method (backbone)", rows, cols,
                     notes=[UNTUNED_NOTE] if untuned else [], drop_empty_splits=True)


def refcoco_spec(runs: pd.DataFrame) -> TableSpec:
    """Methods × RefCOCO / RefCOCO+ / RefCOCOg splits (Acc@0.5 with IoU ≥ 0.5, as the REC literature)."""
    splits = split_names("refcoco")
    sel = runs[runs.split.isin(splits)]
    keys = sorted({(m, b, p if isinstance(p, str) else "") for m, b, p in zip(sel.method, sel.backbone, sel.proposals)})
    rows = [Row(f"{m}{f' on {p}' if p else ''} ({b})", m, b, proposals=p or None) for m, b, p in keys]
    return TableSpec("table_refcoco", "refcoco", "method (backbone)", rows, splits,  # dense and proposal methods
                     caption="Acc@0.5 (IoU ≥ 0.5) in %; the paper has no RefCOCO numbers", drop_empty_splits=True)


BREAKDOWN_COLUMNS = (("by_size", "GT"), ("by_phrase_length", "words"))


def breakdown_table(runs: pd.DataFrame) -> Optional[Table]:
    """Acc by GT box size and phrase length per run (from metrics.json's breakdowns): ``acc (n)`` cells."""
    if runs.empty or not any(runs.breakdowns):
        return None
    disp, long = [], []
    for r in runs.sort_values(["split", "method", "backbone"]).itertuples():
        row = {"run": f"{r.split} · {r.method} · {r.backbone}", "all": f"{r.accuracy:.1f} ({r.n})"}
        for key, label in BREAKDOWN_COLUMNS:
            for bucket, v in (r.breakdowns.get(key) or {}).items():
                acc = v.get("acc")
                row[f"{label} {bucket}"] = "" if acc is None else f"{100 * acc:.1f} ({v.get('n')})"
                long.append({"run": row["run"], "breakdown": key, "bucket": bucket, "acc": acc, "n": v.get("n"),
                             "hits": v.get("hits"), "run_dir": r.run_dir})
        disp.append(row)
    caption = ("Acc@IoU (%) by GT box size (COCO: small < 32², medium < 96² px) and phrase length; (n) rows per "
               "bucket; more breakdowns (area quartiles, phrase types, IoU curve) in each run's metrics.json and "
               "in `grounding-report`")
    return Table(pd.DataFrame(disp).fillna(""), pd.DataFrame(long), caption, [])


def _sci(x) -> str:
    """2.3×10⁻³, as the paper prints Table A1's seconds."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    if x == 0:
        return "0"
    e = math.floor(math.log10(abs(x)))
    mant = round(x / 10 ** e, 1)
    if abs(mant) >= 10:
        mant, e = mant / 10, e + 1
    return f"{mant:.1f}×10" + str(e).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


def table_a1(paper: pd.DataFrame, bench_csv: Optional[Path]) -> Optional[Table]:
    """The paper's rows (hierarchical on RTX6000, ESS in Python on CPU), then this harness's measured rows."""
    rows = []
    p = paper[paper.table.astype(str) == "A1"]
    for method, g in p.groupby("method", sort=False):
        val = dict(zip(g.metric, g.value.astype(float)))
        rows.append({"method": A1_METHODS.get(method, method), "source": "paper", "hardware": g.note.iloc[0],
                     "mean_s": val.get("mean_time_s"), "std_s": val.get("std_time_s")})
    have_bench = bench_csv is not None and Path(bench_csv).is_file()
    if have_bench:
        b = pd.read_csv(bench_csv)
        if not {"method", "ms_mean"} <= set(b.columns):
            raise ValueError(f"{bench_csv}: not a scripts/bench_box_search.py CSV (columns method,maps,size,ms_mean,"
                             f"ms_std,device; found {','.join(b.columns)}); rerun `make bench` or pass --bench FILE")
        for r in b.to_dict("records"):
            maps = f"{int(r['maps'])} maps" if pd.notna(r.get("maps")) else "maps"
            size = f" of {int(r['size'])}×{int(r['size'])}" if pd.notna(r.get("size")) else ""
            std = r.get("ms_std")
            rows.append({"method": r["method"], "source": f"this harness ({maps}{size})",
                         "hardware": r.get("device", ""), "mean_s": r["ms_mean"] / 1000,
                         "std_s": None if std is None else std / 1000})
    if not rows:
        return None
    long = pd.DataFrame(rows, columns=["method", "source", "hardware", "mean_s", "std_s"])
    disp = pd.DataFrame({"method": long.method, "source": long.source, "hardware": long.hardware.fillna(""),
                         "mean time (s)": [_sci(x) for x in long.mean_s],
                         "std (s)": [_sci(x) for x in long.std_s]})
    caption = ("box-search time per 224×224 score map: the paper's rows (its hardware; mean and standard deviation "
               "over 100 examples), then this harness's (scripts/bench_box_search.py: the same maps for every search, "
               "one machine)")
    notes = [] if have_bench else [
        f"No benchmark file{f' at `{bench_csv}`' if bench_csv else ''}: this harness's rows come from "
        f"`make bench` (`python scripts/bench_box_search.py`), which writes `{BENCH_CSV}`; run `make tables` again "
        "after it."]
    return Table(disp, long, caption, notes)


def build_tables(run_paths: Iterable, paper_csv: Path = PAPER_CSV, bench_csv: Optional[Path] = None
                 ) -> Dict[str, Table]:
    runs = collect_runs(run_paths)
    runs["upsample_key"] = runs.upsample.astype(str)
    default = _best(runs[runs.overrides == "{}"])
    paper = paper_results(paper_csv)
    splits = split_names()
    splits += sorted(set(runs.split.dropna()) - set(splits))
    # Table 3 takes default runs and runs that override only `upsample`
    up_runs = runs[runs.overrides.isin(["{}"]) | runs.overrides.str.fullmatch(r'\{"upsample": \d+\}')]
    up_runs = _best(up_runs[up_runs.method == "ours"])
    tables = {}
    for make_spec, r in ((table1_spec, default), (table2_spec, default), (table3_spec, up_runs)):
        spec = make_spec(r, paper, splits)
        tables[spec.name] = render_table(spec, r, paper)
    zoo = zoo_spec(default, splits)
    if zoo.rows:
        tables[zoo.name] = render_table(zoo, default, paper)
    ref = refcoco_spec(default)
    if ref.rows:
        tables[ref.name] = render_table(ref, default, paper)
    prop = proposal_table(default, split_names("refcoco"))
    if prop is not None:
        tables["table_proposal_ranking"] = Table(*prop)
    bd = breakdown_table(default)
    if bd is not None:
        tables["table_breakdowns"] = bd
    a1 = table_a1(paper, bench_csv)
    if a1 is not None:
        tables["tableA1_box_search_time"] = a1
    return tables


# ------------------------------------------------------------------------------------------ data out
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_SUPERSCRIPT = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")


def latex_text(s) -> str:
    """``s`` as LaTeX text: special characters escaped; ×10⁻³, ×, ±, Δ and † as math or symbols."""
    s = "".join(_LATEX_SPECIAL.get(c, c) for c in str(s))
    s = re.sub(r'"([^"]*)"', r"``\1''", s)
    s = re.sub("×10([⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)", lambda m: r"$\times10^{" + m.group(1).translate(_SUPERSCRIPT) + "}$", s)
    return (s.replace("×", r"$\times$").replace("±", r"$\pm$").replace("Δ", r"$\Delta$")
            .replace("†", r"\dag{}").replace("≥", r"$\geq$"))


def to_latex(t: Table) -> str:
    """A booktabs ``tabular`` of the display table, every cell and header escaped; notes below it."""
    disp = t.display.astype(str).map(latex_text) if len(t.display) else t.display
    disp = disp.rename(columns=latex_text)
    numeric = [bool(len(t.display)) and all(re.match(r"[-+(\d]|$", str(v)) for v in t.display[c])
               for c in t.display.columns]
    fmt = "".join("r" if n else "l" for n in numeric)
    tex = disp.style.hide(axis="index").to_latex(hrules=True, column_format=fmt or "l")
    for note in t.notes:
        tex += "{\\footnotesize " + latex_text(note.replace("`", "")) + "\\par}\n"
    return tex


def write_tables(tables: Dict[str, Table], out_dir: Path) -> List[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written, md = [], []
    for name, t in tables.items():
        t = Table(*t) if not isinstance(t, Table) else t
        body = t.display.to_markdown(index=False) if len(t.display) else "_no rows_"
        notes = "".join(f"\n*Note.* {n}\n" for n in t.notes)
        md.append(f"### {name}\n\n{t.caption}\n\n{body}\n{notes}")
        t.long.to_csv(out_dir / f"{name}.csv", index=False)
        (out_dir / f"{name}.tex").write_text(to_latex(t))
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
    ap.add_argument("--paper", default=str(PAPER_CSV), help="the paper's values (default: the package's copy)")
    ap.add_argument("--bench", default=str(BENCH_CSV), help="CSV from scripts/bench_box_search.py (Table A1)")
    a = ap.parse_args(argv)
    if not Path(a.paper).is_file():
        ap.error(f"no paper-values file at {a.paper} (the package's is {PAPER_CSV})")
    tables = build_tables([p for p in a.runs if Path(p).exists()], Path(a.paper), Path(a.bench))
    written = write_tables(tables, Path(a.out))
    print((Path(a.out) / "tables.md").read_text())
    for p in written:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
