"""Figures that read right at a glance: what each one shows is checked on the matplotlib figure itself."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from torchlab.lessons import plots as small  # noqa: E402
from torchlab.reporting import figures as common  # noqa: E402
from torchlab.tasks.digits import plots as digits  # noqa: E402
from torchlab.tasks.keypoints import plots as keypoints  # noqa: E402
from torchlab.tasks.mnist import plots as mnist  # noqa: E402


@pytest.fixture
def captured(monkeypatch):
    """Keep the figures the plot functions would save: {file name: Figure}."""
    figures = {}

    def keep(fig, path, dpi=120):
        fig.canvas.draw()  # tick labels exist only after a draw
        figures[str(path).rsplit("/", 1)[-1]] = fig
        return path

    for module in (common, digits, keypoints, mnist, small):
        monkeypatch.setattr(module, "save_figure", keep)
    yield figures
    plt.close("all")


def tick_labels(axis):
    return [t.get_text().replace("\u2212", "-") for t in axis.get_ticklabels() if t.get_text()]


def test_one_epoch_curve_is_a_marked_point_on_a_whole_epoch_tick(captured):
    history = [{"epoch": 1, "train_loss": 1.6, "val_loss": 1.1, "train_accuracy": 0.55, "val_accuracy": 0.86}]
    common.plot_history(history, "curves.png")
    loss, accuracy = captured["curves.png"].axes
    for ax in (loss, accuracy):
        assert tick_labels(ax.xaxis) == ["1"]
        assert all(line.get_marker() == "o" for line in ax.get_lines())
    labels = tick_labels(loss.yaxis)
    assert labels and all("10^" not in t and "times" not in t for t in labels)  # plain 1.1, 1.2, ..., no 2×10⁰
    assert all(float(t) > 0 for t in labels)


def test_long_curves_have_no_markers_and_integer_epoch_ticks(captured):
    history = [{"epoch": e, "train_loss": 1.0 / e, "train_accuracy": 1 - 1.0 / e} for e in range(1, 1001)]
    common.plot_history(history, "curves.png")
    for ax in captured["curves.png"].axes:
        assert all(line.get_marker() in (None, "None", "") for line in ax.get_lines())
        assert all(float(t).is_integer() for t in tick_labels(ax.xaxis))


def test_prediction_bars_color_right_and_wrong_without_a_legend(captured):
    probs = np.full(10, 0.01)
    probs[6] = 0.91
    digits.plot_prediction(np.zeros((8, 8)), probs, true=6, index=0, path="right.png")
    digits.plot_prediction(np.zeros((8, 8)), probs, true=2, index=1, path="wrong.png")
    right_bars = captured["right.png"].axes[1].patches
    wrong_bars = captured["wrong.png"].axes[1].patches
    green, red = (matplotlib.colors.to_rgba(c) for c in (digits.TRUE_COLOR, digits.WRONG_COLOR))
    assert [i for i, b in enumerate(right_bars) if b.get_facecolor() == green] == [6]
    assert not [b for b in right_bars if b.get_facecolor() == red]  # a right prediction shows no red
    assert [i for i, b in enumerate(wrong_bars) if b.get_facecolor() == green] == [2]
    assert [i for i, b in enumerate(wrong_bars) if b.get_facecolor() == red] == [6]
    texts = [t.get_text() for t in captured["wrong.png"].axes[1].texts]
    assert texts == ["predicted\n0.91", "true\n0.01"]  # the bars say what they are
    assert captured["right.png"].legends == [] and captured["right.png"].axes[1].get_legend() is None


def test_misclassified_panels_say_how_many_errors_and_how_many_shown(captured):
    true = np.arange(20) % 10
    probs = np.eye(10)[true] * 0.9 + 0.01
    probs[[3, 7, 11, 15, 19, 2, 5]] = np.roll(probs[[3, 7, 11, 15, 19, 2, 5]], 1, axis=1)  # 7 wrong
    digits.plot_misclassified(np.zeros((20, 8, 8)), probs, true, np.arange(20), "digits.png", limit=5)
    assert captured["digits.png"]._suptitle.get_text() == "7 errors in 20 test images, the first 5 shown"
    mnist.plot_misclassified(np.zeros((20, 28, 28)), probs, true, [str(i) for i in range(10)], "mnist.png", limit=24)
    assert captured["mnist.png"]._suptitle.get_text().startswith("7 errors in 20 test images, all shown")


def test_clip_to_view_stops_a_diverging_path_at_the_edge():
    path = np.array([[0.0, 0.0], [1.0, 0.5], [-3.0, 0.2], [9.0, 0.1], [np.inf, 0.0]])
    kept, edge, step = small.clip_to_view(path, (-2.0, 2.0, -1.0, 1.0))
    assert step == 2 and kept.tolist() == [[0.0, 0.0], [1.0, 0.5]]
    assert edge[0] == pytest.approx(-2.0) and edge[1] == pytest.approx(0.5 - 0.3 * 0.75)  # on the left edge
    inside = np.array([[0.0, 0.0], [0.5, 0.5]])
    assert small.clip_to_view(inside, (-2.0, 2.0, -1.0, 1.0))[1:] == (None, None)


def test_descent_paths_stay_in_view_under_the_optimum_marker(captured):
    from torchlab.lessons.descent import BOWL, gradient_path

    paths = {eta: gradient_path(BOWL, eta, 20) for eta in (0.1, 0.35)}
    small.plot_descent(BOWL, paths, "bowl.png")
    ax = captured["bowl.png"].axes[0]
    x_lo, x_hi = ax.get_xlim()
    y_lo, y_hi = ax.get_ylim()
    lines = [line for line in ax.get_lines() if line.get_label().startswith("η")]
    for line in lines:
        x, y = line.get_data()
        assert np.all((x >= x_lo) & (x <= x_hi) & (y >= y_lo) & (y <= y_hi))
    assert "leaves the view at step" in lines[1].get_label() and "leaves" not in lines[0].get_label()
    optimum = next(line for line in ax.get_lines() if line.get_label() == "minimum")
    assert optimum.get_zorder() > max(line.get_zorder() for line in lines)


def test_feature_maps_share_one_color_scale_per_row_with_a_color_bar(captured):
    maps = [
        ("conv1", torch.randn(1, 4, 6, 6) * torch.tensor([1.0, 5.0, 0.1, 2.0])[None, :, None, None]),
        ("relu1", torch.rand(1, 4, 6, 6) * torch.tensor([1.0, 0.0, 3.0, 2.0])[None, :, None, None]),
    ]
    mnist.plot_feature_maps(maps, np.zeros((28, 28)), "maps.png", channels=4)
    fig = captured["maps.png"]
    rows = [ax.get_images()[0] for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.get_images()]
    assert len(rows) == 3  # the input, then one image per layer: its channels side by side
    conv, relu = rows[1], rows[2]
    strip = np.asarray(conv.get_array().filled(np.nan))
    assert strip.shape == (6, 4 * 6 + 3) and np.isnan(strip[:, 6]).all()  # one blank column between channels
    assert np.allclose(strip[:, 7:13], maps[0][1][0, 1].numpy())  # channel 1, where its tick says
    assert conv.get_clim()[0] == -conv.get_clim()[1] < 0 and relu.get_clim()[0] == 0  # signed rows centered on 0
    assert conv.get_clim()[1] == pytest.approx(float(maps[0][1].abs().max()))  # one scale for the whole row
    assert sum(1 for ax in fig.axes if ax.get_label() == "<colorbar>") == 2
    assert [t.get_text() for t in rows[1].axes.get_xticklabels()] == ["ch 0", "ch 1", "ch 2", "ch 3"]


def test_filters_share_one_color_scale_with_a_color_bar(captured):
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 12, 3))
    mnist.plot_filters(model, "filters.png")
    fig = captured["filters.png"]
    clims = {image.get_clim() for ax in fig.axes for image in ax.get_images()}
    bound = float(model[0].weight.detach().abs().max())
    assert clims == {(-bound, bound)}
    assert sum(1 for ax in fig.axes if ax.get_label() == "<colorbar>") == 1


def test_photo_overlay_has_a_legend_for_the_points_and_the_crop_square(captured):
    points = np.random.default_rng(0).uniform(100, 300, size=(15, 2))
    keypoints.plot_photo_keypoints(np.zeros((360, 480, 3), dtype=np.uint8), points, (60, 0, 360), "photo.png")
    texts = [t.get_text() for t in captured["photo.png"].axes[0].get_legend().get_texts()]
    assert texts[0] == "the square the model saw (360x360 px, resized to 96x96)"
    counts = [int(t.rsplit("(", 1)[1].rstrip(")")) for t in texts[1:]]
    assert len(texts) == 6 and sum(counts) == 15
