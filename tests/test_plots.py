import numpy as np

from ltau_md.calibration import calibration_curve
from ltau_md.cutoffs import f1_map, fit_uncertainty
from ltau_md.plots import plot_calibration, plot_distributions, plot_f1_map

PNG = b"\x89PNG\r\n\x1a\n"


def test_figures_are_written_as_png(tmp_path):
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 2000)
    e = rng.gamma(2, 0.05, 2000)
    plot_calibration({"Li": calibration_curve(p, e, 0.1), "Mg": calibration_curve(p, e, 0.1, 1.5)}, tmp_path / "cal.png")
    chosen, fits = fit_uncertainty(e)
    plot_distributions({"Li": (e, fits, chosen, chosen.cutoff(1000))}, tmp_path / "fit.png")
    plot_f1_map(f1_map(e, e * rng.lognormal(0, 0.3, 2000), 10, 10), tmp_path / "f1.png", 0.2, 0.3)
    for name in ("cal.png", "fit.png", "f1.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG


def test_f1_map_axes_say_whether_cutoffs_are_ratios_or_ev_per_angstrom(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    import ltau_md.plots as plots

    labels = []

    def keep_labels(fig, path):
        labels.append((fig.axes[0].get_ylabel(), fig.axes[0].get_xlabel()))
        plt.close(fig)

    monkeypatch.setattr(plots, "save_figure", keep_labels)
    rng = np.random.default_rng(1)
    e = rng.gamma(2, 0.05, 500)
    fmap = f1_map(e, e * rng.lognormal(0, 0.3, 500), 5, 5)
    plot_f1_map(fmap, tmp_path / "abs.png", 0.2, 0.3)
    plot_f1_map(fmap, tmp_path / "rel.png", 1.0, 1.0, relative=True)  # what ltau-md loop draws
    assert labels[0] == ("error cutoff (eV/Å)", "uncertainty cutoff (eV/Å)")
    assert labels[1] == ("error cutoff / statistical cutoff", "uncertainty cutoff / statistical lo")
