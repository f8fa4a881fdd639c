"""Figures and the HTML heat map. Matplotlib is used through `Figure` objects (Agg canvas, no pyplot state).

Colours of Δp = p_tuned − p_base use the diverging `RdBu` map on [−vmax, vmax]: blue where the tuned
model made the token more likely, red where it made it less likely, white where nothing changed;
the darker the colour, the larger the change (as in Fig. 2a of the paper).
"""

from __future__ import annotations

import html
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from .files import atomic_savefig, atomic_write_text

__all__ = [
    "plot_dynamics",
    "plot_shift_histogram",
    "plot_token_heatmap",
    "plot_trajectory",
    "shift_colour",
    "write_heatmap_html",
]

CMAP = "RdBu"
FONT_SIZE = 9.0
CHAR_WIDTH = 0.602 * FONT_SIZE / 72  # inches per character of DejaVu Sans Mono
LINE_HEIGHT = 1.55 * FONT_SIZE / 72


def _figure(**kwargs):
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def _save(fig, path, **kwargs) -> Path:
    # Tokens may hold glyphs the bundled fonts lack; a missing glyph is drawn as a box, not an error.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Glyph .* missing")
        warnings.filterwarnings("ignore", message="Matplotlib currently does not support")
        return atomic_savefig(fig, path, **kwargs)


def shift_colour(delta: float, vmax: float = 1.0) -> tuple[str, str]:
    """Background and text colours (hex) for a probability change."""
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    x = 0.5 + 0.5 * float(np.clip(delta / vmax, -1.0, 1.0))
    r, g, b, _ = colormaps[CMAP](x)
    luminance = 0.299 * r + 0.587 * g + 0.114 * b
    return to_hex((r, g, b)), "#ffffff" if luminance < 0.5 else "#000000"


# ---------------------------------------------------------------------------------------- heat maps


def _layout(pieces: Sequence[str], width: int, max_lines: int):
    """Place tokens on a character grid: [(token, line, column, text)], and the number of lines used."""
    cells, line, column = [], 0, 0
    for token, piece in enumerate(pieces):
        text = piece.replace("\t", "    ").replace("\r", "")
        if not text:  # a byte token inside a multi-byte character: its character went to an earlier token
            continue
        parts = text.split("\n")
        if not text.strip():  # whitespace or newline only: a one-cell swatch so its colour shows
            if column >= width:
                line, column = line + 1, 0
            cells.append((token, line, column, ""))
            column += max(1, len(parts[0]))
            parts = [""] * len(parts)
        for k, part in enumerate(parts):
            if k:
                line, column = line + 1, 0
            while part:
                if column >= width:
                    line, column = line + 1, 0
                take = part[: width - column]
                cells.append((token, line, column, take))
                column += len(take)
                part = part[len(take) :]
        if line >= max_lines:
            return [c for c in cells if c[1] < max_lines], max_lines, token
    return cells, line + 1, None


def plot_token_heatmap(
    pieces: Sequence[str],
    deltas: Sequence[float],
    path: str | Path,
    *,
    title: str = "",
    vmax: float = 1.0,
    width: int = 100,
    max_lines: int = 80,
) -> Path:
    """One response as coloured text (the PNG twin of the HTML heat map), colour = Δp of each token."""
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import Normalize
    from matplotlib.patches import Rectangle

    cells, lines, cut_at = _layout(pieces, width, max_lines)
    margin, title_h, bar_h = 0.3, 0.45 if title else 0.1, 0.75
    text_w, text_h = width * CHAR_WIDTH, max(1, lines) * LINE_HEIGHT
    fig_w, fig_h = text_w + 2 * margin, text_h + title_h + bar_h + margin
    fig = _figure(figsize=(fig_w, fig_h), dpi=110)
    ax = fig.add_axes((margin / fig_w, (bar_h + margin / 2) / fig_h, text_w / fig_w, text_h / fig_h))
    ax.set_xlim(0, width)
    ax.set_ylim(max(1, lines), 0)
    ax.axis("off")
    for token, line, column, text in cells:
        background, foreground = shift_colour(deltas[token], vmax)
        ax.add_patch(Rectangle((column, line + 0.05), max(1, len(text)), 0.9, facecolor=background, linewidth=0))
        if text.strip():
            ax.text(
                column, line + 0.5, text, family="monospace", size=FONT_SIZE, color=foreground, ha="left", va="center"
            )
    if cut_at is not None:
        ax.text(
            0,
            max_lines - 0.5,
            f"… {len(pieces) - cut_at} more tokens not shown",
            family="monospace",
            size=FONT_SIZE,
            color="#555555",
            va="center",
        )
    if title:
        fig.text(0.5, 1 - 0.25 / fig_h, title, ha="center", va="center", size=FONT_SIZE + 1)
    cax = fig.add_axes((0.25, 0.25 / fig_h, 0.5, 0.15 / fig_h))
    bar = fig.colorbar(ScalarMappable(Normalize(-vmax, vmax), colormaps[CMAP]), cax=cax, orientation="horizontal")
    bar.set_label("Δp = p_tuned − p_base", size=FONT_SIZE)
    bar.ax.tick_params(labelsize=FONT_SIZE - 1)
    return _save(fig, path)


def write_heatmap_html(
    responses: Sequence[Mapping], path: str | Path, *, title: str, header: str = "", vmax: float = 1.0
) -> Path:
    """A self-contained HTML page: each response's tokens on a background coloured by Δp, probabilities on hover.

    Each mapping in `responses` has `pieces`, `p_base`, `p_tuned`, and optionally `heading`,
    `prompt` (shown folded) and `stats` (a line of text).
    """
    from matplotlib import colormaps
    from matplotlib.colors import to_hex

    stops = ", ".join(to_hex(colormaps[CMAP](x)) for x in np.linspace(0, 1, 11))
    parts = [
        "<!doctype html>\n<html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em}"
        ".resp{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:13px;white-space:pre-wrap;"
        "line-height:1.7;border:1px solid #ccc;padding:.7em;border-radius:4px}"
        ".resp span{border-radius:2px}.stats{color:#444;font-size:90%}"
        f".bar{{height:12px;width:24em;background:linear-gradient(to right,{stops});border:1px solid #999}}"
        ".legend{display:flex;gap:.6em;align-items:center;font-size:90%}pre{white-space:pre-wrap}</style>",
        "</head><body>",
        f"<h1>{html.escape(title)}</h1>",
        header,
        f"<div class='legend'><span>Δp = −{vmax:g}</span><div class='bar'></div><span>+{vmax:g}</span>"
        "<span>(red: less likely after tuning, blue: more likely; hover a token for its probabilities)</span></div>",
    ]
    for response in responses:
        parts.append(f"<h2>{html.escape(response.get('heading', 'Response'))}</h2>")
        if response.get("stats"):
            parts.append(f"<p class='stats'>{html.escape(response['stats'])}</p>")
        if response.get("prompt") is not None:
            parts.append(f"<details><summary>prompt</summary><pre>{html.escape(response['prompt'])}</pre></details>")
        spans = []
        for piece, before, after in zip(response["pieces"], response["p_base"], response["p_tuned"]):
            delta = float(after) - float(before)
            background, foreground = shift_colour(delta, vmax)
            tip = f"Δp = {delta:+.4f}&#10;p_base = {float(before):.4f}&#10;p_tuned = {float(after):.4f}"
            spans.append(
                f"<span style='background:{background};color:{foreground}' title='{tip}'>{html.escape(piece)}</span>"
            )
        parts.append("<div class='resp'>" + "".join(spans) + "</div>")
    parts.append("</body></html>\n")
    return atomic_write_text(path, "\n".join(parts))


# ---------------------------------------------------------------------------------------- token shift


def plot_shift_histogram(
    deltas: Mapping[str, np.ndarray], path: str | Path, *, threshold: float | None = None, bins: int = 80
) -> Path:
    """(a) Histogram of Δp over all response tokens, one outline per tuned model (Fig. 2b); log-scale counts
    as fractions of tokens. (b) The fraction of tokens with |Δp| > t for every threshold t."""
    fig = _figure(figsize=(11, 4.2), dpi=110, layout="constrained")
    hist_ax, tail_ax = fig.subplots(1, 2)
    edges = np.linspace(-1, 1, bins + 1)
    grid = np.linspace(0, 1, 201)
    for label, values in deltas.items():
        values = np.asarray(values, dtype=np.float64)
        if values.size == 0:
            continue
        weights = np.full(values.shape, 1.0 / values.size)
        hist_ax.hist(values, bins=edges, weights=weights, histtype="step", linewidth=1.6, label=label)
        magnitude = np.sort(np.abs(values))
        tail = 1.0 - np.searchsorted(magnitude, grid, side="right") / magnitude.size
        tail_ax.plot(grid, tail, linewidth=1.6, label=label)
    hist_ax.set_yscale("log")
    hist_ax.set_xlabel("Δp = p_tuned − p_base")
    hist_ax.set_ylabel("fraction of tokens")
    hist_ax.set_title("(a) token probability changes")
    tail_ax.set_xlabel("threshold t")
    tail_ax.set_ylabel("fraction of tokens with |Δp| > t")
    tail_ax.set_title("(b) tokens moved more than t")
    tail_ax.set_ylim(0, 1)
    if threshold is not None:
        tail_ax.axvline(threshold, color="#888888", linestyle=":", linewidth=1)
    for ax in (hist_ax, tail_ax):
        ax.grid(alpha=0.3)
        if deltas:
            ax.legend(fontsize=8)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------- trajectory


def plot_trajectory(
    reference_labels: Sequence[str],
    series: Sequence[Mapping],
    path: str | Path,
    *,
    reference_points: np.ndarray | None = None,
    axis_label: str = "distance to {}",
    title: str = "Learning dynamics in probability space",
) -> Path:
    """Checkpoints as points whose coordinates are their distances to the references (Fig. 3).

    Each series mapping has `label`, `coords` (checkpoints x references) and optionally
    `accuracy`, written beside its last point. With three references the plot is 3-D, with two
    2-D, with one the distance against checkpoint order; with more than three the first three
    references are drawn. `reference_points[j]` are the coordinates of reference j (its own
    coordinate is 0), drawn as black stars.
    """
    k = len(reference_labels)
    dims = min(k, 3)
    fig = _figure(figsize=(7.5, 6.5) if dims == 3 else (7, 5.5), dpi=110, layout="constrained" if dims < 3 else None)
    if dims == 3:
        import mpl_toolkits.mplot3d  # noqa: F401  (registers the 3-D projection)

        ax = fig.add_subplot(projection="3d")
    else:
        ax = fig.add_subplot()
    colours = [f"C{i % 10}" for i in range(len(series))]
    for colour, entry in zip(colours, series):
        coords = np.asarray(entry["coords"], dtype=float).reshape(-1, k)
        if coords.size == 0:
            continue
        accuracy = entry.get("accuracy")
        name = entry["label"] if accuracy is None else f"{entry['label']} ({accuracy:g})"
        if dims == 1:
            xs = np.arange(len(coords))
            ax.plot(xs, coords[:, 0], "-o", color=colour, markersize=4, label=name)
            end = (xs[-1], coords[-1, 0])
        else:
            points = [coords[:, i] for i in range(dims)]
            ax.plot(*points, "-o", color=colour, markersize=4, label=name)
            ax.scatter(*[p[:1] for p in points], s=60, facecolors="none", edgecolors=colour, linewidths=1.5)
            ax.scatter(*[p[-1:] for p in points], s=90, color=colour, edgecolors="black", linewidths=0.8)
            end = tuple(p[-1] for p in points)
        if accuracy is not None:
            ax.text(*end, f"  {accuracy:g}", color=colour, fontsize=10, fontweight="bold")
    if reference_points is not None and dims > 1:
        refs = np.asarray(reference_points, dtype=float).reshape(-1, k)
        for j, label in enumerate(reference_labels):
            point = refs[j, :dims]
            if np.all(np.isfinite(point)):
                ax.scatter(*point, marker="*", s=160, color="black")
                ax.text(*point, f"  {label}", fontsize=9)
    if dims == 1:
        ax.set_xlabel("checkpoint")
        ax.set_ylabel(axis_label.format(reference_labels[0]))
    else:
        ax.set_xlabel(axis_label.format(reference_labels[0]))
        ax.set_ylabel(axis_label.format(reference_labels[1]))
        if dims == 3:
            ax.set_zlabel(axis_label.format(reference_labels[2]))
    from matplotlib.ticker import MaxNLocator

    for axis in (ax.xaxis, ax.yaxis) + ((ax.zaxis,) if dims == 3 else ()):
        axis.set_major_locator(MaxNLocator(4))
    if dims == 3:
        ax.set_box_aspect(None, zoom=0.85)
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
            axis.labelpad = 12
    if k > 3:
        title += f" (first 3 of {k} references)"
    ax.set_title(title)
    if series:
        ax.legend(fontsize=8, loc="best")
    if dims < 3:
        ax.grid(alpha=0.3)
    return _save(fig, path, bbox_inches="tight" if dims == 3 else None)


# ---------------------------------------------------------------------------------------- dynamics


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average over up to `window` points (the first points average what there is)."""
    if window <= 1 or values.size == 0:
        return values
    cumulative = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, values.size + 1), window)
    return (cumulative[1:] - cumulative[np.arange(1, values.size + 1) - counts]) / counts


def plot_dynamics(
    panels: Sequence[Mapping], path: str | Path, *, smooth: int = 1, title: str = "Training dynamics"
) -> Path:
    """Curves against training step, one panel per metric and one line per run (Fig. 4 and 6).

    Each panel mapping has `title`, `ylabel` and `curves`: {run label: (steps, values)}. With
    `smooth > 1` the raw curve is drawn faint under its trailing moving average.
    """
    from matplotlib.ticker import MaxNLocator

    count = max(1, len(panels))
    columns = min(3, count)
    rows = -(-count // columns)
    fig = _figure(figsize=(4.6 * columns, 3.5 * rows), dpi=110, layout="constrained")
    axes = np.atleast_1d(fig.subplots(rows, columns, squeeze=False)).ravel()
    for ax, panel in zip(axes, panels):
        for index, (label, (steps, values)) in enumerate(panel["curves"].items()):
            steps, values = np.asarray(steps, dtype=float), np.asarray(values, dtype=float)
            colour = f"C{index % 10}"
            if smooth > 1:
                ax.plot(steps, values, color=colour, alpha=0.25, linewidth=1)
                ax.plot(steps, _smooth(values, smooth), color=colour, linewidth=1.8, label=label)
            else:
                ax.plot(
                    steps,
                    values,
                    color=colour,
                    linewidth=1.6,
                    marker="o" if len(steps) < 20 else None,
                    markersize=3,
                    label=label,
                )
        ax.set_title(panel["title"])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step")
        ax.set_ylabel(panel.get("ylabel", ""))
        ax.grid(alpha=0.3)
        if panel["curves"]:
            ax.legend(fontsize=8)
    for ax in axes[len(panels) :]:
        ax.axis("off")
    fig.suptitle(title)
    return _save(fig, path)
