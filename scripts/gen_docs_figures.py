#!/usr/bin/env python
"""Draw the figures of docs/reference/batching.md into docs/img/ (PNG, matplotlib).

    .venv/bin/python scripts/gen_docs_figures.py

Each tensor is drawn as a grid of cells: one row per sample along a batch axis, one
column per element of the per-sample axis. Batch rows have one colour per sample; the
per-sample data of an unbatched (shared) input is grey.
"""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.patches import FancyArrowPatch, Rectangle

OUT = Path(__file__).resolve().parents[1] / "docs" / "img"
SAMPLE = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860"]
SHARED = "#B0B0B0"
plt.rcParams.update({"font.size": 11, "font.family": "DejaVu Sans", "svg.hashsalt": "kokoyi"})


def grid(ax, x, y, rows, cols, colours, title=None, cell=0.6, alpha=0.85):
    """A rows x cols grid with its top-left corner at (x, y); row r is coloured colours[r]."""
    for r in range(rows):
        for c in range(cols):
            ax.add_patch(Rectangle((x + c * cell, y - (r + 1) * cell), cell, cell,
                                   facecolor=colours[r % len(colours)], edgecolor="white", lw=1.5, alpha=alpha))
    if title:
        ax.text(x + cols * cell / 2, y + 0.25, title, ha="center", va="bottom", fontsize=11, family="monospace")
    return (x, y, x + cols * cell, y - rows * cell)


def brace_left(ax, box, text):
    x0, y0, _x1, y1 = box
    ax.annotate("", xy=(x0 - 0.15, y1), xytext=(x0 - 0.15, y0),
                arrowprops={"arrowstyle": "<->", "color": "#333333", "lw": 1})
    ax.text(x0 - 0.3, (y0 + y1) / 2, text, ha="right", va="center", fontsize=9, color="#333333")


def brace_below(ax, box, text):
    x0, _y0, x1, y1 = box
    ax.annotate("", xy=(x0, y1 - 0.15), xytext=(x1, y1 - 0.15),
                arrowprops={"arrowstyle": "<->", "color": "#333333", "lw": 1})
    ax.text((x0 + x1) / 2, y1 - 0.3, text, ha="center", va="top", fontsize=9, color="#333333")


def arrow(ax, start, end, text=None, colour="#333333", rad=0.0):
    ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, color=colour, lw=1.3,
                                 connectionstyle=f"arc3,rad={rad}"))
    if text:
        ax.text((start[0] + end[0]) / 2, (start[1] + end[1]) / 2 + 0.2, text, ha="center", va="bottom",
                fontsize=10, family="monospace")


def finish(fig, ax, name, xlim, ylim):
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    ax.set_aspect("equal")
    ax.axis("off")
    OUT.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT / name, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    print(f"wrote {(OUT / name).relative_to(OUT.parents[1])}")


def one_level():
    """pi(s) on one state, and pi(S, batch_level=[1]) on three."""
    fig, ax = plt.subplots(figsize=(10, 4.2))
    ax.text(0, 3.3, "one sample:  pi(s)", fontsize=12, weight="bold")
    s = grid(ax, 1.2, 2.3, 1, 4, [SHARED], "s: (4,)")
    p = grid(ax, 6.2, 2.3, 1, 2, [SHARED], "pi(s): (2,)")
    arrow(ax, (s[2] + 0.2, 2.0), (p[0] - 0.2, 2.0), "π")

    ax.text(0, 0.4, "a batch:  pi(S, batch_level=[1])", fontsize=12, weight="bold")
    S = grid(ax, 1.2, -0.6, 3, 4, SAMPLE, "S: (3, 4)")
    P = grid(ax, 6.2, -0.6, 3, 2, SAMPLE, "result: (3, 2)")
    brace_left(ax, S, "axis 0:\nbatch\n(level 1)")
    brace_below(ax, S, "per-sample axis (the math's s)")
    brace_below(ax, P, "per-sample result")
    for r in range(3):
        y = -0.6 - (r + 0.5) * 0.6
        arrow(ax, (S[2] + 0.2, y), (P[0] - 0.2, y), "π" if r == 0 else None, colour=SAMPLE[r])
    ax.text(8.0, -1.5, "row b of the result\n= pi(S[b])", fontsize=10, va="center")
    finish(fig, ax, "batch_level_one.png", (-0.5, 10.5), (-3.3, 3.9))


def mixed_levels():
    """PGLoss(logP, r, batch_level=[0, 1]): one logP shared by three reward sequences."""
    fig, ax = plt.subplots(figsize=(10, 4.4))
    ax.text(0, 2.2, "PGLoss(logP, r, batch_level=[0, 1])", fontsize=12, weight="bold")
    lp = grid(ax, 1.0, 1.0, 1, 5, [SHARED], "logP: (5,)  level 0")
    r = grid(ax, 1.0, -0.8, 3, 5, SAMPLE, "r: (3, 5)  level 1")
    out = grid(ax, 8.0, -0.8, 3, 5, SAMPLE, "result: (3, 5)")
    brace_left(ax, r, "batch\naxis")
    brace_below(ax, r, "per-sample axis T")
    for k in range(3):
        y = -0.8 - (k + 0.5) * 0.6
        arrow(ax, (r[2] + 0.2, y), (out[0] - 0.2, y), None, colour=SAMPLE[k])
        arrow(ax, (lp[2] + 0.2, 0.7), (out[0] - 0.2, y), None, colour=SHARED, rad=-0.15)
    ax.text(5.6, 1.3, "shared: the same logP\nfor every sample", fontsize=9, ha="center", color="#555555")
    ax.text(4.9, -3.2, "sample b: PGLoss(logP, r[b])", fontsize=10, ha="left", family="monospace")
    finish(fig, ax, "batch_level_mixed.png", (-0.5, 11.5), (-3.6, 2.7))


def two_levels():
    """f(x, batch_level=[2]) with x of shape (2, 3, 4): the batch shape (2, 3) goes in front."""
    fig, ax = plt.subplots(figsize=(10, 5.2))
    ax.text(0, 2.7, "two batch axes:  f(x, batch_level=[2]),  f: ℝ⁴ → ℝ²", fontsize=12, weight="bold")
    colours = [SAMPLE[:3], SAMPLE[3:6]]
    x_in, x_out, tops = 2.8, 8.4, (1.6, -1.1)
    boxes, outs = [], []
    for i, top in enumerate(tops):
        boxes.append(grid(ax, x_in, top, 3, 4, colours[i], f"x[{i}]: (3, 4)"))
        outs.append(grid(ax, x_out, top, 3, 2, colours[i], f"result[{i}]: (3, 2)"))
        brace_left(ax, boxes[i], "axis 1\n(size 3)")
        for k in range(3):
            y = top - (k + 0.5) * 0.6
            arrow(ax, (boxes[i][2] + 0.2, y), (outs[i][0] - 0.2, y), "f" if (i, k) == (0, 0) else None,
                  colour=colours[i][k])
    ax.annotate("", xy=(0.9, boxes[1][3]), xytext=(0.9, boxes[0][1]),
                arrowprops={"arrowstyle": "<->", "color": "#333333", "lw": 1})
    ax.text(0.75, (boxes[0][1] + boxes[1][3]) / 2, "axis 0\n(size 2)", ha="right", va="center", fontsize=9)
    brace_below(ax, boxes[1], "axis 2: per-sample")
    ax.text(x_out + 0.6, boxes[1][3] - 0.35, "x: (2, 3, 4)  →  result: (2, 3, 2)\nthe batch shape (2, 3) stays in front",
            fontsize=10, va="top", ha="center")
    finish(fig, ax, "batch_level_two.png", (-0.6, 11.0), (-4.2, 3.2))


if __name__ == "__main__":
    one_level()
    mixed_levels()
    two_levels()
