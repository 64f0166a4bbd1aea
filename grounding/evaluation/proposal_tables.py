"""The "proposal-ranking methods" table: rows method × proposal source × backbone, columns the RefCOCO
splits and Flickr30k Entities, each cell ``acc (recall)`` in % — recall being what the proposal set
allows at best (metrics.json's ``proposals.recall``), so acc / recall is how well the ranker did with
what it had. Also the run columns the tables read for proposal runs.

With a run of ReCLIP / Red-Circle / FGVP (``reclip``, ``red_circle``, ``fgvp_box``: this harness's
*isolated scoring*, no spaCy relations, no SAM masks) the published numbers of
``grounding/proposal_results.csv`` are added as reference rows, with their proposals, backbones and source."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import pandas as pd

PUBLISHED_CSV = Path(__file__).resolve().parents[1] / "proposal_results.csv"
ISOLATED = ("reclip", "red_circle", "fgvp_box")  # visual-prompt rankers: rows say "isolated scoring"

FLICKR_ENTITIES = "flickr30k_entities_test"
CAPTION = ("cells: acc (recall), in %: Acc@IoU of the ranker (IoU ≥ 0.5 on RefCOCO, > 0.5 on Flickr30k Entities) "
           "and the recall of its proposals (rows with at least one proposal that is a hit); blank = no run")


def proposal_columns(run_dir: Path, metrics: Dict[str, Any]) -> Dict[str, Any]:
    """``proposals``: the configured source of the run (its run.json; None when the method used its own),
    ``proposal_source``: the source named in metrics.json, ``recall``: its recall in % (or None)."""
    block = metrics.get("proposals") if isinstance(metrics.get("proposals"), dict) else {}
    configured = None
    try:
        ident = json.loads((Path(run_dir) / "run.json").read_text())
        configured = (ident.get("proposals") or {}).get("name")
    except (OSError, ValueError, AttributeError):
        pass
    recall = block.get("recall")
    return {"proposals": configured, "proposal_source": block.get("source"),
            "recall": None if recall is None else 100.0 * float(recall)}


def _cell(acc: Optional[float], recall: Optional[float]) -> str:
    if acc is None:
        return ""
    return f"{acc:.2f}" + ("" if recall is None else f" ({recall:.2f})")


def proposal_table(runs: pd.DataFrame, refcoco_splits) -> Optional[Tuple[pd.DataFrame, pd.DataFrame, str]]:
    """(display, long, caption) over ``runs`` (collect_runs' frame, one best run per key), or None without
    proposal runs. Columns: ``refcoco_splits`` then Flickr30k Entities (test)."""
    if runs.empty or "recall" not in runs or runs.recall.isna().all():
        return None
    splits = list(refcoco_splits) + [FLICKR_ENTITIES]
    sel = runs[runs.recall.notna() & runs.split.isin(splits)]
    if sel.empty:
        return None
    source = sel.proposals.where(sel.proposals.notna(), sel.proposal_source).fillna("")
    keys = sorted(set(zip(sel.method, source, sel.backbone, sel.proposals.fillna(""))))
    disp, long = [], []
    for method, src, backbone, configured in keys:
        d = {"method": method + (" (isolated scoring)" if method in ISOLATED else ""), "proposals": src,
             "backbone": backbone}
        for sp in splits:
            r = sel[(sel.split == sp) & (sel.method == method) & (sel.backbone == backbone)
                    & (sel.proposals.fillna("") == configured)]
            acc = float(r.accuracy.iloc[-1]) if len(r) else None
            rec = float(r.recall.iloc[-1]) if len(r) else None
            d[sp] = _cell(acc, rec)
            long.append({"method": method, "proposals": src, "backbone": backbone, "split": sp, "accuracy": acc,
                         "recall": rec, "run_dir": r.run_dir.iloc[-1] if len(r) else None})
        disp.append(d)
    columns = ["method", "proposals", "backbone", *splits]
    if set(sel.method) & set(ISOLATED):
        ref_disp, ref_long = published_rows(splits)
        disp, long, columns = disp + ref_disp, long + ref_long, columns + ["source"]
    disp = pd.DataFrame(disp, columns=columns).fillna("")
    keep = [sp for sp in splits if (disp[sp] != "").any()]
    disp = disp.drop(columns=[sp for sp in splits if sp not in keep])
    return disp, pd.DataFrame(long), CAPTION


def published_rows(splits, path: Path = PUBLISHED_CSV):
    """Reference rows (display dicts, long dicts) of the published ReCLIP / Red-Circle / FGVP numbers:
    one row per (method, variant, proposals, backbones), cells ``accuracy`` in % as published."""
    pub = pd.read_csv(path)
    pub["split"] = pub.split.str.replace("refcoco+", "refcoco_plus", regex=False)
    disp, long = [], []
    for (method, variant, props, backbones, source), g in pub.groupby(
            ["method", "variant", "proposals", "backbones", "source"], sort=False):
        d = {"method": f"{method}: {variant} (published)", "proposals": props, "backbone": backbones,
             "source": source}
        for sp, acc in zip(g.split, g.accuracy):
            if sp in splits:
                d[sp] = f"{acc:.1f}"
                long.append({"method": d["method"], "proposals": props, "backbone": backbones, "split": sp,
                             "accuracy": float(acc), "recall": None, "run_dir": None, "source": source})
        disp.append(d)
    return disp, long
