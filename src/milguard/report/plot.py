"""The audit's figure: the magnitude of every float value along the graph against fp16's limits,
with the device strip under it.

For every float var in program order (x), its magnitude max(|lo|, |hi|) on a log scale (y)
against fp16's limits (:mod:`milguard.fp16`): ``MAX`` = 65504 (the largest finite half; above it
the value is stored as ±inf) and ``MIN_NORMAL`` ≈ 6.1e-5 (the smallest normal half; below it
precision drains away, below 3e-8 it is 0). Hollow markers are the static bound from the input
ranges, filled markers the largest value the fp32 reference run reached on the calibration
samples; colour is the var's precision, marker shape the op's expected device; rings are
error/warning findings. Infinite values sit on the top edge. The strip below shows the device
segments (Neural Engine / GPU / CPU).

Every artist carries a ``gid`` ("fp16-max", "static:fp16:ane", "finding:error", "segment:cpu:4:9",
...) so tests can read the figure back. matplotlib is imported only here, and only when a figure
is drawn: it is the ``html`` extra (``pip install 'milguard[html]'``), and without it
:func:`require_matplotlib` says so in one line.
"""
from __future__ import annotations

import io
import math
from typing import Any, Mapping, Sequence

from .. import fp16
from ..errors import MilguardError
from .display import DEVICE_NAME, devices_of, fmt, gating, magnitude, nonfinite, number

PRECISION_COLOR = {"fp16": "#e8710a", "fp32": "#1a73e8"}
DEVICE_COLOR = {"ane": "#188038", "gpu": "#9334e6", "cpu": "#80868b"}
DEVICE_MARKER = {"ane": "o", "gpu": "s", "cpu": "^", None: "D"}
SEVERITY_COLOR = {"error": "#d93025", "warning": "#f9ab00", "info": "#9aa0a6"}
PATTERN_COLOR = {"layer_norm": "#e6f4ea", "rms_norm": "#e8f0fe", "softmax": "#fef7e0"}
MAX_OP_LABELS = 90          # x tick labels (op types) up to this many vars
ANNOTATE = 3                # largest overflow findings labelled in the plot
LABEL_SLOTS = 16            # at most this many pattern labels across the plot

Rows = Sequence[Mapping[str, Any]]
INSTALL_HTML = "pip install 'milguard[html]'"


def require_matplotlib() -> None:
    """Raise a one-line MilguardError when matplotlib (the ``html`` extra) is not installed."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MilguardError(f"the HTML report needs matplotlib: {INSTALL_HTML}") from None


def figure_png(d: Mapping[str, Any], dpi: int = 100) -> bytes:
    """The magnitude plot with the device strip under it, as PNG bytes."""
    buf = io.BytesIO()
    figure(d, dpi).savefig(buf, format="png", dpi=dpi, metadata={"Software": None})
    return buf.getvalue()


def figure(d: Mapping[str, Any], dpi: int = 100) -> Any:
    """The matplotlib Figure (no pyplot state): axes[0] the magnitudes, axes[1] the device strip."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, devices, findings = d["ranges"], devices_of(d), gating(d)
    n = max(len(rows), 1)
    fig = Figure(figsize=(13, 6.4), dpi=dpi)
    FigureCanvasAgg(fig)
    gs = fig.add_gridspec(2, 1, height_ratios=[9, 1], hspace=0.05)
    ax, strip = fig.add_subplot(gs[0]), fig.add_subplot(gs[1])

    static = [magnitude(r.get("lo"), r.get("hi")) for r in rows]
    reference = [magnitude(r.get("reference_lo"), r.get("reference_hi")) for r in rows]
    top = _fp16_limits(ax, [*static, *reference, *(f["magnitude"] for f in findings)], n)
    _pattern_bands(ax, d["patterns"], rows, n)
    _values(ax, rows, devices, static, reference, top)
    x_of: dict[str, int] = {}
    for i, r in enumerate(rows):
        x_of.setdefault(r["op"], i)
    _finding_rings(ax, findings, x_of, top)
    _annotate(ax, findings, x_of, top)
    _style(ax)
    _device_strip(strip, rows, devices, n)
    _op_type_labels(strip, rows)
    fig.subplots_adjust(left=0.06, right=0.91, top=0.9, bottom=0.2 if len(rows) <= MAX_OP_LABELS else 0.1)
    return fig


def _fp16_limits(ax: Any, magnitudes: Sequence[Any], n: int) -> float:
    """Log y axis spanning every finite magnitude, the bands above fp16's max and below its
    smallest normal; returns the height where ±inf is drawn."""
    finite = [m for m in magnitudes if m is not None and math.isfinite(number(m)) and number(m) > 0]
    y_lo = min([1e-6, *(number(m) / 3 for m in finite)])
    y_hi = max([1e7, *(number(m) * 8 for m in finite)])
    top = y_hi / 1.6
    ax.set_yscale("log")
    ax.set_ylim(y_lo, y_hi)
    ax.set_xlim(-0.8, n - 0.2)
    ax.axhspan(fp16.MAX, y_hi, color="#f6aea9", alpha=0.35, zorder=1, lw=0)
    ax.axhspan(y_lo, fp16.MIN_NORMAL, color="#dadce0", alpha=0.45, zorder=1, lw=0)
    ax.axhline(fp16.MAX, color="#d93025", lw=1.4, zorder=1.5, gid="fp16-max")
    ax.axhline(fp16.MIN_NORMAL, color="#5f6368", lw=1.0, ls="--", zorder=1.5, gid="fp16-min-normal")
    side = ax.get_yaxis_transform()
    for y, text, color in ((top, "±inf", "#b3261e"), (fp16.MAX, "fp16 max\n65504", "#b3261e"),
                           (fp16.MIN_NORMAL, "fp16 smallest\nnormal 6.1e-5", "#3c4043")):
        ax.text(1.006, y, text, color=color, ha="left", va="center", fontsize=8.5, transform=side)
    return top


def _pattern_bands(ax: Any, patterns: Rows, rows: Rows, n: int) -> None:
    """A shaded column band per matched pattern, labelled with its kind and precision."""
    last_label = -math.inf
    for p in patterns:
        xs = [i for i, r in enumerate(rows) if r["op"] in set(p["ops"])]
        if xs:
            ax.axvspan(min(xs) - 0.45, max(xs) + 0.45, color=PATTERN_COLOR.get(p["kind"], "#f1f3f4"),
                       zorder=0.5, lw=0, gid=f"pattern:{p['kind']}:{min(xs)}:{max(xs)}")
            mid = (min(xs) + max(xs)) / 2
            if mid - last_label >= n / LABEL_SLOTS:          # labels would overlap on long programs
                last_label = mid
                ax.text(mid, fp16.MIN_NORMAL * 2.5, f"{p['kind']}\n{p['precision']}", ha="center",
                        va="bottom", fontsize=7.5, color="#3c4043", zorder=2)


def _values(ax: Any, rows: Rows, devices: Mapping[str, str], static: Sequence[Any],
            reference: Sequence[Any], top: float) -> None:
    """Hollow static bounds, filled calibrated values (by precision and device), and a cross where
    the fp16 run went inf/NaN."""
    for series, filled in ((static, False), (reference, True)):
        for dev in DEVICE_MARKER:
            for prec, color in PRECISION_COLOR.items():
                pts = [(i, _plotted(m, top)) for i, (m, r) in enumerate(zip(series, rows))
                       if m is not None and number(m) > 0 and r["dtype"] == prec and devices.get(r["op"]) == dev]
                if pts:
                    xs, ys = zip(*pts)
                    ax.scatter(xs, ys, marker=DEVICE_MARKER[dev], s=34 if filled else 40,
                               facecolors=color if filled else "white", edgecolors=color,
                               linewidths=1.3, zorder=4 if filled else 3,
                               gid=f"{'calibrated' if filled else 'static'}:{prec}:{dev or 'input'}")
    inf_x = [i for i, r in enumerate(rows) if nonfinite(r.get("observed_lo"), r.get("observed_hi"))]
    if inf_x:
        ax.scatter(inf_x, [top] * len(inf_x), marker="x", s=46, color="#b3261e", linewidths=1.8, zorder=6,
                   gid="nonfinite")


def _finding_rings(ax: Any, findings: Rows, x_of: Mapping[str, int], top: float) -> None:
    for sev in ("warning", "error"):
        pts = [(x_of[f["op"]], _plotted(f["magnitude"], top)) for f in findings
               if f["severity"] == sev and f["op"] in x_of and number(f["magnitude"]) > 0]
        if pts:
            xs, ys = zip(*pts)
            ax.scatter(xs, ys, marker="o", s=190, facecolors="none", edgecolors=SEVERITY_COLOR[sev],
                       linewidths=1.6, zorder=5, gid=f"finding:{sev}")


def _annotate(ax: Any, findings: Rows, x_of: Mapping[str, int], top: float) -> None:
    """Label the ``ANNOTATE`` largest overflow findings with their op type and magnitude."""
    best: dict[str, Mapping[str, Any]] = {}
    for f in findings:
        if f["kind"] == "overflow" and f["op"] in x_of and f["op_type"] != "const":
            if f["op"] not in best or number(f["magnitude"]) > number(best[f["op"]]["magnitude"]):
                best[f["op"]] = f
    chosen = sorted(best.values(), key=lambda f: -number(f["magnitude"]))[:ANNOTATE]
    for k, f in enumerate(sorted(chosen, key=lambda f: x_of[f["op"]])):
        x, y = x_of[f["op"]], _plotted(f["magnitude"], top)
        ax.annotate(f"{f['op_type']} {fmt(f['magnitude'])}", (x, y), xytext=(8, -14 - 10 * (k % 2)),
                    textcoords="offset points", fontsize=8, color="#b3261e", zorder=7)


def _style(ax: Any) -> None:
    """Axis label, grid, spines and the legend of markers, colours and rings."""
    from matplotlib.lines import Line2D

    ax.set_ylabel("max |value|  (log scale)")
    ax.grid(axis="y", color="#e8eaed", lw=0.6, zorder=0)
    ax.tick_params(axis="x", bottom=False, labelbottom=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)

    def mark(label: str, **kw: Any) -> Any:
        return Line2D([], [], ls="", label=label, **kw)

    grey = {"mfc": "#dadce0", "mec": "#3c4043"}
    handles = [
        mark("fp16 var", marker="o", mfc=PRECISION_COLOR["fp16"], mec=PRECISION_COLOR["fp16"]),
        mark("fp32 var", marker="o", mfc=PRECISION_COLOR["fp32"], mec=PRECISION_COLOR["fp32"]),
        mark("static bound", marker="o", mfc="white", mec="#3c4043"),
        mark("calibrated (fp32 reference)", marker="o", mfc="#3c4043", mec="#3c4043"),
        *(mark(DEVICE_NAME[k], marker=DEVICE_MARKER[k], **grey) for k in ("ane", "gpu", "cpu")),
        mark("function input", marker=DEVICE_MARKER[None], **grey),
        mark("inf/NaN in the fp16 run", marker="x", color="#b3261e", mew=1.8),
        *(mark(sev, marker="o", ms=11, mfc="none", mec=SEVERITY_COLOR[sev], mew=1.6)
          for sev in ("error", "warning")),
    ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.0, 1.13), ncol=7, fontsize=8.5,
              frameon=False, handletextpad=0.3, columnspacing=1.2)


def _device_strip(strip: Any, rows: Rows, devices: Mapping[str, str], n: int) -> None:
    """One coloured span per run of ops on the same device, named when it is wide enough."""
    strip.set_xlim(-0.8, n - 0.2)
    strip.set_ylim(0, 1)
    strip.set_yticks([])
    for side in ("top", "right", "left"):
        strip.spines[side].set_visible(False)
    runs: list[list[Any]] = []                       # [device, first x, last x]
    for i, r in enumerate(rows):
        dev = devices.get(r["op"])
        if runs and runs[-1][0] == dev:
            runs[-1][2] = i
        else:
            runs.append([dev, i, i])
    for dev, a, b in runs:
        if dev is None:
            continue
        strip.axvspan(a - 0.5, b + 0.5, color=DEVICE_COLOR[dev], lw=0, gid=f"segment:{dev}:{a}:{b}")
        if b - a + 1 >= max(3, n // 25):
            strip.text((a + b) / 2, 0.5, DEVICE_NAME[dev], ha="center", va="center", color="white",
                       fontsize=8.5, fontweight="bold")
    strip.set_ylabel("device", rotation=0, ha="right", va="center", fontsize=9)


def _op_type_labels(strip: Any, rows: Rows) -> None:
    if len(rows) <= MAX_OP_LABELS:
        strip.set_xticks(range(len(rows)))
        strip.set_xticklabels([r["op_type"] for r in rows], rotation=90, fontsize=6.5)
    strip.set_xlabel("program order (function inputs first)", fontsize=9)


def _plotted(m: Any, top: float) -> float:
    v = number(m)
    return top if not math.isfinite(v) or v > top else v
