"""Figures: the image with boxes beside the score-map overlay (paper Fig. 4 style)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np


def _box_patch(box, color, lw=2.5):
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = box
    return Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=lw)


def save_figure(path, image: np.ndarray, score_map: Optional[np.ndarray], pred_box: Sequence[float],
                phrase: str, gt_box: Optional[Sequence[float]] = None, title: Optional[str] = None) -> Path:
    """Left: image, GT box (yellow) and predicted box (red). Right: the score map over the image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from PIL import Image

    h, w = image.shape[:2]
    ncols = 2 if score_map is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 5 * h / max(w, 1) + 0.6), squeeze=False)
    ax = axes[0, 0]
    ax.imshow(image)
    if gt_box is not None:
        ax.add_patch(_box_patch(gt_box, "yellow"))
    ax.add_patch(_box_patch(pred_box, "red"))
    ax.set_title(title or phrase, fontsize=10)
    if score_map is not None:
        m = np.asarray(score_map, dtype=np.float32)
        m = (m - m.min()) / (m.max() - m.min() + 1e-12)
        up = np.asarray(Image.fromarray((m * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR))
        ax2 = axes[0, 1]
        ax2.imshow(image)
        ax2.imshow(up, cmap="jet", alpha=0.5)
        ax2.add_patch(_box_patch(pred_box, "red"))
        ax2.set_title("score map", fontsize=10)
    for a in axes[0]:
        a.axis("off")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
