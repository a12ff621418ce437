"""prefstore.charts: the figures hold exactly the data given, with data labels escaped."""

import math

import numpy as np
import pytest

from prefstore import charts

ATOL = 1e-12


def test_label_escapes_html():
    assert charts.label('<img src=x onerror=alert(1)>') == (
        "&lt;img src=x onerror=alert(1)&gt;")
    assert charts.label("a & b") == "a &amp; b"


def test_kappa_heatmap_cells_and_text():
    fig = charts.kappa_heatmap(["a", "<b>"], [[1.0, 0.5], [0.5, 1.0]])
    heat = fig.data[0]
    assert list(heat.x) == ["a", "&lt;b&gt;"] and list(heat.y) == ["a", "&lt;b&gt;"]
    assert [list(r) for r in heat.z] == [[1.0, 0.5], [0.5, 1.0]]
    assert [list(r) for r in heat.text] == [["1.000", "0.500"], ["0.500", "1.000"]]
    assert (heat.zmin, heat.zmax) == (-1, 1)


def test_kappa_heatmap_missing_pair_is_blank():
    fig = charts.kappa_heatmap(["a", "b"], np.array([[1.0, np.nan], [np.nan, 1.0]]))
    assert math.isnan(fig.data[0].z[0][1])
    assert fig.data[0].text[0][1] == ""


def test_score_errorbars_asymmetric():
    rows = [{"name": "x", "score": 0.5, "ci_low": 0.25, "ci_high": 1.0},
            {"name": "y", "score": -0.5, "ci_low": None, "ci_high": None}]
    scatter = charts.score_errorbars(rows).data[0]
    assert list(scatter.y) == ["x", "y"]
    assert list(scatter.x) == [0.5, -0.5]
    assert scatter.error_x.array[0] == pytest.approx(0.5, abs=ATOL)
    assert scatter.error_x.arrayminus[0] == pytest.approx(0.25, abs=ATOL)
    assert math.isnan(scatter.error_x.array[1]) and math.isnan(scatter.error_x.arrayminus[1])


def test_win_rate_heatmap_blank_where_never_met():
    fig = charts.win_rate_heatmap(["a", "b"], [[None, 0.75], [0.25, None]], [[0, 4], [4, 0]])
    heat = fig.data[0]
    assert [list(r) for r in heat.text] == [["", "0.75"], ["0.25", ""]]
    assert [list(r) for r in heat.customdata] == [[0, 4], [4, 0]]
    assert (heat.zmin, heat.zmax) == (0, 1)


def test_win_rate_heatmap_in_leaderboard_order():
    rate = [[None, 0.75, 1.0], [0.25, None, None], [0.0, None, None]]
    games = [[0, 4, 1], [4, 0, 0], [1, 0, 0]]
    heat = charts.win_rate_heatmap(["a", "b", "c"], rate, games, order=["c", "a"]).data[0]
    assert list(heat.x) == ["c", "a", "b"]
    assert [list(r) for r in heat.text] == [["", "0.00", ""], ["1.00", "", "0.75"],
                                            ["", "0.25", ""]]
    assert [list(r) for r in heat.customdata] == [[0, 1, 0], [1, 0, 4], [0, 4, 0]]


def test_alpha_over_time_lines():
    rows = [{"period": "2024-01-01", "krippendorff_alpha": -0.2, "percent_agreement": 0.5},
            {"period": "2024-01-08", "krippendorff_alpha": None, "percent_agreement": 0.75}]
    fig = charts.alpha_over_time(rows)
    alpha, pct = fig.data
    assert list(alpha.x) == ["2024-01-01", "2024-01-08"]
    assert alpha.y[0] == -0.2 and math.isnan(alpha.y[1])
    assert list(pct.y) == [0.5, 0.75]
    assert list(fig.layout.yaxis.range) == [-0.2, 1.0]
    assert list(charts.alpha_over_time([]).layout.yaxis.range) == [0.0, 1.0]


def test_type_figures():
    types = [{"type": 1, "weight": 0.75, "rows": [{"name": "a", "score": 1.0},
                                                  {"name": "b", "score": -1.0}]},
             {"type": 2, "weight": 0.25, "rows": [{"name": "b", "score": 0.5},
                                                  {"name": "a", "score": -0.5}]}]
    fig = charts.type_scores(types)
    assert [t.name for t in fig.data] == ["type 1 (75%)", "type 2 (25%)"]
    assert list(fig.data[1].x) == ["a", "b"] and list(fig.data[1].y) == [-0.5, 0.5]
    probs = charts.type_probabilities([{"rater": "r1", "type 1": 0.9, "type 2": 0.1,
                                        "most likely type": 1}])
    assert [(t.name, list(t.x)) for t in probs.data] == [("type 1", [0.9]), ("type 2", [0.1])]


def test_confusion_heatmap_counts():
    fig = charts.confusion_heatmap(["0", "1", "tie"], [[3, 1, 0], [0, 2, 0], [1, 0, 1]])
    assert [list(r) for r in fig.data[0].z] == [[3, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert list(fig.data[0].x) == ["0", "1", "tie"]


def test_edit_histogram_and_calibration():
    assert list(charts.edit_histogram([1, 5, 5]).data[0].x) == [1.0, 5.0, 5.0]
    bins = [{"bin_low": 0.5, "bin_high": 0.6, "n": 4, "mean_predicted": 0.55, "realized": 0.5},
            {"bin_low": 0.9, "bin_high": 1.0, "n": 1, "mean_predicted": 0.95, "realized": 1.0}]
    diagonal, router = charts.calibration_plot(bins).data
    assert list(diagonal.x) == [0, 1] and list(diagonal.y) == [0, 1]
    assert list(router.x) == [0.55, 0.95] and list(router.y) == [0.5, 1.0]
    assert list(router.customdata) == [4, 1]
    assert list(router.marker.size) == [20.0, 13.0]
