"""See it: training curves, confusion matrices, image grids, filters, feature maps, Grad-CAM,
receptive fields, the convolution explained, and the self-contained HTML run report.

Every figure function returns a ``matplotlib.figure.Figure`` (never a pyplot window; the Agg
backend is selected unless you chose a backend yourself) that ``save_figure`` writes as PNG, SVG
or PDF.

Example:
    >>> from cnnlab.viz import plot_curves, save_figure, write_report
    >>> save_figure(plot_curves("runs/digits-simple_cnn"), "curves.png")  # doctest: +SKIP
    >>> write_report("runs/digits-simple_cnn")  # doctest: +SKIP
"""

from cnnlab.viz import _backend  # noqa: F401  (selects Agg before anything draws)
from cnnlab.viz._common import save_figure
from cnnlab.viz.confusion import confusion_matrix, most_confused, plot_confusion, plot_most_confused
from cnnlab.viz.curves import plot_curves, read_metrics
from cnnlab.viz.explain import (
    conv_plan,
    explain_conv,
    explain_pool,
    explain_transposed_conv,
    pool_plan,
    save_gif,
    transposed_conv_plan,
)
from cnnlab.viz.features import feature_maps, plot_feature_maps
from cnnlab.viz.filters import plot_filters
from cnnlab.viz.gradcam import GradCAM, grad_cam, plot_grad_cam
from cnnlab.viz.grids import (
    plot_augmentation_preview,
    plot_dataset_preview,
    plot_predictions,
    plot_top_losses,
    top_losses,
)
from cnnlab.viz.receptive import ReceptiveField, plot_receptive_field, receptive_field
from cnnlab.viz.report import write_report

__all__ = [
    "GradCAM",
    "ReceptiveField",
    "confusion_matrix",
    "conv_plan",
    "explain_conv",
    "explain_pool",
    "explain_transposed_conv",
    "feature_maps",
    "grad_cam",
    "most_confused",
    "plot_augmentation_preview",
    "plot_confusion",
    "plot_curves",
    "plot_dataset_preview",
    "plot_feature_maps",
    "plot_filters",
    "plot_grad_cam",
    "plot_most_confused",
    "plot_predictions",
    "plot_receptive_field",
    "plot_top_losses",
    "pool_plan",
    "read_metrics",
    "receptive_field",
    "save_figure",
    "save_gif",
    "top_losses",
    "transposed_conv_plan",
    "write_report",
]
