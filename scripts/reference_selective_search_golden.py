"""Golden regions from the reference's own selective search (pals-ttic/adapting-CLIP utils/selective_search.py).

    python scripts/reference_selective_search_golden.py --reference-dir /path/to/adapting-CLIP

The reference is imported from --reference-dir at run time (it is not part of this repository).
Writes tests/golden/selective_search.json: for a few small images, every region box in order.
"""
import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from ss_cases import CASES, case_image  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reference-dir", required=True)
    ap.add_argument("--out", default=str(ROOT / "tests" / "golden" / "selective_search.json"))
    a = ap.parse_args()
    sys.path.insert(0, str(Path(a.reference_dir).resolve()))
    from utils.selective_search import selective_search

    out = []
    for case in CASES:
        img = case_image(case)
        _, regions = selective_search(img, scale=case["scale"], sigma=case["sigma"], min_size=case["min_size"])
        rects = [[int(v) for v in r["rect"]] for r in regions]
        out.append(dict(case, rects=rects))
        print(case["name"], img.shape, len(rects), flush=True)
    Path(a.out).write_text(json.dumps(out))


if __name__ == "__main__":
    main()
