"""The reading order of the gallery: sphinx-gallery's ``within_subsection_order``.

From the estimators in ordinary scikit-learn use, through RGD, to RAIS; a method of your own last.
``tests/test_docs.py`` checks that it lists every example once.
"""

from __future__ import annotations

READING_ORDER = (
    "plot_tabular_pipeline.py",
    "plot_grid_search_tau_lr.py",
    "plot_images_default_cnn.py",
    "plot_long_tailed.py",
    "plot_rgd_training_dynamics.py",
    "plot_rais_priorities.py",
    "plot_rais_vs_uniform_sgd.py",
    "plot_custom_policy.py",
)


class ReadingOrder:
    """Sort key of an example's file name: its position in :data:`READING_ORDER`."""

    def __init__(self, src_dir: str) -> None:
        self.src_dir = src_dir

    def __call__(self, filename: str) -> int:
        return READING_ORDER.index(filename)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
