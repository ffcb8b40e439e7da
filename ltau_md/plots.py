"""Figures people would rather see than read: calibration curves, fitted distributions, F1 maps."""

from __future__ import annotations

import io
import os
from collections.abc import Mapping

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ltau_md import atomic_write  # noqa: E402
from ltau_md.calibration import CalibrationCurve  # noqa: E402
from ltau_md.cutoffs import F1Map, FittedDistribution  # noqa: E402


def save_figure(fig: plt.Figure, path: str | os.PathLike) -> None:
    """Write ``fig`` (format from the suffix) atomically and close it."""
    buf = io.BytesIO()
    fmt = os.path.splitext(str(path))[1].lstrip(".") or "png"
    fig.savefig(buf, format=fmt, dpi=130, bbox_inches="tight")
    plt.close(fig)
    atomic_write.write_bytes(path, buf.getvalue())


def plot_calibration(curves: Mapping[str, CalibrationCurve], path: str | os.PathLike, title: str = "") -> None:
    """Observed fraction with error ≤ atol·s against predicted p, one line per group."""
    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    ax.plot([0, 1], [0, 1], "r--", lw=1, label="ideal")
    for label, c in curves.items():
        ax.plot(c.predicted, c.observed, "o-", ms=4, label=f"{label} (s={c.scale:.2f}, area={c.area:.3f})")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="predicted p (LTAU)", ylabel="observed fraction with error ≤ atol·s")
    ax.set_title(title or "calibration")
    ax.legend(fontsize=7, loc="upper left")
    save_figure(fig, path)


def plot_distributions(
    panels: Mapping[str, tuple[np.ndarray, list[FittedDistribution], FittedDistribution, float | None]],
    path: str | os.PathLike,
    xlabel: str = "value",
) -> None:
    """One panel per label: histogram (density), every fitted family (the chosen one bold) and
    the cutoff (dashed). ``panels[label] = (values, fits, chosen, cutoff)``."""
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(5.0 * n, 3.6), squeeze=False)
    for ax, (label, (values, fits, chosen, cutoff)) in zip(axes[0], panels.items()):
        values = np.asarray(values).ravel()
        hi = max(float(np.quantile(values, 0.999)), cutoff or 0.0) * 1.1
        ax.hist(values, bins=80, range=(0, hi), density=True, color="0.8", label=f"data (n={values.size})")
        x = np.linspace(0, hi, 400)
        for f in fits:
            bold = f == chosen
            ax.plot(x, f.pdf(x), lw=2.2 if bold else 1.0, label=f"{f.family} (KS p={f.ks_pvalue:.3g})")
        if cutoff is not None:
            ax.axvline(cutoff, color="k", ls="--", lw=1, label=f"cutoff {cutoff:.4g}")
        ax.set(xlabel=xlabel, ylabel="density", xlim=(0, hi))
        ax.set_title(label)
        ax.legend(fontsize=7)
    save_figure(fig, path)


def plot_f1_map(
    fmap: F1Map,
    path: str | os.PathLike,
    error_cutoff: float | None = None,
    uncertainty_cutoff: float | None = None,
    title: str = "",
    relative: bool = False,
) -> None:
    """Precision, recall and F1 over (error cutoff × uncertainty cutoff), statistical cutoffs dotted.
    ``relative``: the map's cutoffs are ratios to the statistical ones (per species), not eV/Å."""
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6), sharey=True)
    extent = [fmap.uncertainty_cutoffs[0], fmap.uncertainty_cutoffs[-1], fmap.error_cutoffs[0], fmap.error_cutoffs[-1]]
    for ax, (name, arr) in zip(axes, (("precision", fmap.precision), ("recall", fmap.recall), ("F1", fmap.f1))):
        im = ax.imshow(arr, origin="lower", aspect="auto", extent=extent, vmin=0, vmax=1, cmap="viridis")
        if error_cutoff is not None:
            ax.axhline(error_cutoff, color="k", ls=":", lw=1.2)
        if uncertainty_cutoff is not None:
            ax.axvline(uncertainty_cutoff, color="k", ls=":", lw=1.2)
        ax.set_title(name)
        ax.set_xlabel("uncertainty cutoff / statistical lo" if relative else "uncertainty cutoff (eV/Å)")
    axes[0].set_ylabel("error cutoff / statistical cutoff" if relative else "error cutoff (eV/Å)")
    fig.colorbar(im, ax=axes, shrink=0.9)
    if title:
        fig.suptitle(title, y=1.04)  # above the panels' titles (bbox_inches="tight" keeps it)
    save_figure(fig, path)


def plot_parity(predicted: np.ndarray, true: np.ndarray, path: str | os.PathLike, title: str = "") -> None:
    """Predicted against true per-atom force error (log-log), with the x = y line."""
    predicted, true = np.asarray(predicted).ravel(), np.asarray(true).ravel()
    fig, ax = plt.subplots(figsize=(4.4, 4.2))
    lo = max(1e-4, float(min(predicted.min(), true[true > 0].min() if np.any(true > 0) else 1e-3)))
    hi = float(max(predicted.max(), true.max())) * 1.2
    ax.loglog(predicted, np.maximum(true, lo), ".", ms=2, alpha=0.4)
    ax.plot([lo, hi], [lo, hi], "r--", lw=1)
    ax.set(xlabel="predicted error (eV/Å)", ylabel="true |ΔF| (eV/Å)", xlim=(lo, hi), ylim=(lo, hi))
    ax.set_title(title)
    save_figure(fig, path)
