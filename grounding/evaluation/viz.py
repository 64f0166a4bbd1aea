"""Figures: the image with boxes beside the score-map overlay (paper Fig. 4 style).

Left panel: the image, ground truth (yellow) and prediction (red), with a legend. Right panel: the
score map (min-max normalised, jet) over the image, with a colour bar. The title names the method and
backbone when given, then the phrase (wrapped) and the IoU. The figure is cut to its content, so a
landscape image leaves no blank strip.
"""
from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

GT_COLOR, PRED_COLOR = "yellow", "red"


def _box_patch(box, color, lw=2.5):
    from matplotlib.patches import Rectangle

    x1, y1, x2, y2 = box
    return Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, edgecolor=color, linewidth=lw)


def figure_title(phrase: str, *, title: Optional[str] = None, iou: Optional[float] = None,
                 method: Optional[str] = None, backbone: Optional[str] = None, width: int = 60) -> str:
    """Title lines: ``method · backbone``, then the phrase (or ``title``) wrapped at ``width`` characters
    with the IoU appended."""
    head = " · ".join(str(v) for v in (method, backbone) if v)
    body = title if title is not None else f"“{phrase}”"
    if iou is not None and title is None:
        body += f"  (IoU {iou:.2f})"
    return "\n".join(([head] if head else []) + textwrap.wrap(body, width=width, break_long_words=True))


def save_figure(path, image: np.ndarray, score_map: Optional[np.ndarray], pred_box: Sequence[float],
                phrase: str, gt_box: Optional[Sequence[float]] = None, title: Optional[str] = None, *,
                iou: Optional[float] = None, method: Optional[str] = None, backbone: Optional[str] = None,
                dpi: int = 100) -> Path:
    """Left: image, GT box (yellow) and predicted box (red), legend. Right: the score map over the image,
    colour bar. ``title`` replaces the phrase line; ``method``/``backbone`` head the title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.lines import Line2D
    from PIL import Image

    h, w = image.shape[:2]
    ncols = 2 if score_map is not None else 1
    panel_w = 5.0
    panel_h = panel_w * h / max(w, 1)
    if panel_h > 6.0:  # tall portrait: cap the height, narrow the panel
        panel_h, panel_w = 6.0, 6.0 * w / max(h, 1)
    n_title = figure_title(phrase, title=title, iou=iou, method=method, backbone=backbone, width=45 * ncols).count("\n") + 1
    fig, axes = plt.subplots(1, ncols, figsize=(max(3.0, panel_w * ncols + (0.8 if ncols == 2 else 0)), panel_h + 0.3 + 0.22 * n_title),
                             squeeze=False, layout="constrained")
    ax = axes[0, 0]
    ax.imshow(image)
    handles = []
    if gt_box is not None:
        ax.add_patch(_box_patch(gt_box, GT_COLOR))
        handles.append(Line2D([], [], color=GT_COLOR, lw=2.5, label="ground truth"))
    ax.add_patch(_box_patch(pred_box, PRED_COLOR))
    handles.append(Line2D([], [], color=PRED_COLOR, lw=2.5, label="prediction"))
    if score_map is not None:
        m = np.asarray(score_map, dtype=np.float32)
        m = (m - m.min()) / (m.max() - m.min() + 1e-12)
        up = np.asarray(Image.fromarray((m * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)) / 255.0
        ax2 = axes[0, 1]
        ax2.imshow(image)
        ax2.imshow(up, cmap="jet", alpha=0.5, vmin=0, vmax=1)
        ax2.add_patch(_box_patch(pred_box, PRED_COLOR))
        ax2.set_title("score map", fontsize=10)
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        cax = make_axes_locatable(ax2).append_axes("right", size="4%", pad=0.06)  # as tall as the image
        cb = fig.colorbar(ScalarMappable(Normalize(0, 1), cmap="jet"), cax=cax)
        cb.set_label("score (min-max normalised)", fontsize=8)
        cb.ax.tick_params(labelsize=7)
    for a in axes[0]:
        a.axis("off")
    # legend below the image panel, outside the picture so it hides nothing
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.01), ncol=len(handles), fontsize=8,
              frameon=False, handlelength=1.5)
    fig.suptitle(figure_title(phrase, title=title, iou=iou, method=method, backbone=backbone,
                              width=45 * ncols), fontsize=10)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, bbox_inches="tight", pad_inches=0.05)  # tight: no blank strip, whatever the aspect
    plt.close(fig)
    return path
