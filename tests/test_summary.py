import json
import subprocess
import sys

import numpy as np
import pytest
import tf_keras

from mobilenet_v3 import ModelConfig, summary

# PAPER.md, appendix Table 9: (model, alpha, resolution, MAdds in M, params in M).
PAPER_TABLE_9 = [
    ("large", 1.25, 224, 356, 7.5), ("large", 1.0, 224, 217, 5.4), ("large", 0.75, 224, 155, 4.0),
    ("large", 0.5, 224, 69, 2.6), ("large", 0.35, 224, 40, 2.2), ("large", 1.0, 256, 282, 5.4),
    ("large", 1.0, 192, 160, 5.4), ("large", 1.0, 160, 112, 5.4), ("large", 1.0, 128, 73, 5.4),
    ("large", 1.0, 96, 43, 5.4), ("small", 1.25, 224, 91, 3.6), ("small", 1.0, 224, 57, 2.5),
    ("small", 0.75, 224, 44, 2.0), ("small", 0.5, 224, 21, 1.6), ("small", 0.35, 224, 12, 1.4),
    ("small", 1.0, 256, 74, 2.5), ("small", 1.0, 160, 30, 2.5), ("small", 1.0, 128, 20, 2.5),
    ("small", 1.0, 96, 12, 2.5),
]

# Rows where the paper's published figure disagrees with its own stated scaling rules (the
# ones torchvision and keras.applications implement and that give the exact 1.0 counts):
# there we must instead agree with keras.applications, built independently in the test.
PAPER_INCONSISTENT = {
    ("large", 1.25): "params",   # 8.26M: the 1600-wide head conv and classifier
    ("large", 0.5): "params",    # 2.69M
    ("large", 0.35): "params",   # 2.13M
    ("small", 0.35): "madds",    # 12.8M
}
KERAS_APPS = {"large": tf_keras.applications.MobileNetV3Large,
              "small": tf_keras.applications.MobileNetV3Small}


def _keras_apps_counts(name, alpha, resolution):
    from mobilenet_v3.analysis import cost as profiler
    model = KERAS_APPS[name](input_shape=(resolution, resolution, 3), alpha=alpha, weights=None,
                             include_preprocessing=False)
    totals = profiler.totals(profiler.profile(model))
    return totals.madds, int(sum(np.prod(w.shape) for w in model.trainable_weights))


@pytest.mark.parametrize("name, alpha, resolution, madds_m, params_m", PAPER_TABLE_9)
def test_reproduces_paper_table_9(name, alpha, resolution, madds_m, params_m):
    result = summary.summarize(ModelConfig.from_flat(name=name, alpha=alpha,
                                           input_shape=(resolution, resolution, 3),
                                           include_preprocessing=False))
    madds_ok = abs(result["madds"] / 1e6 - madds_m) <= 0.03 * madds_m
    # The paper counts weights outside BN (5.46M for Large 1.0; with BN's gamma and beta the
    # trainable count is 5.48M, with its moving statistics 5.51M).
    params_ok = abs(result["weight_params"] / 1e6 - params_m) <= 0.06
    exception = PAPER_INCONSISTENT.get((name, alpha))
    assert madds_ok or exception == "madds", result["madds"]
    assert params_ok or exception == "params", result["weight_params"]
    if exception:
        # The exception list must stay exact: the row really misses the paper's figure...
        assert not (madds_ok if exception == "madds" else params_ok)
        # ...and matches an independent implementation. keras.applications keeps the stem at
        # 16 channels for every alpha (the paper scales it), hence the small tolerances.
        keras_madds, keras_params = _keras_apps_counts(name, alpha, resolution)
        if exception == "madds":
            # Small 0.35: keras.applications' 16-channel stem at 112x112 gives 15.9M; the
            # paper's scaled stem brings ours to 12.8M, between it and the paper's 12M.
            assert madds_m * 1e6 < result["madds"] < keras_madds
        else:
            assert abs(result["trainable_params"] - keras_params) <= 0.001 * keras_params


def test_rows_follow_table_1_and_sum_to_totals():
    result = summary.summarize(ModelConfig.from_flat(name="large", include_preprocessing=False))
    rows = result["rows"]
    assert len(rows) == 20   # rows 0..19 of Table 1
    assert [r["input"] for r in rows[:3]] == ["224x224x3", "112x112x16", "112x112x16"]
    assert rows[13]["operator"] == "bneck 5x5" and rows[13]["exp"] == "672"
    assert rows[13]["se"] == "yes" and rows[13]["nl"] == "HS" and rows[13]["stride"] == "2"
    assert rows[17]["operator"] == "avg pool" and rows[17]["madds"] == 0
    assert rows[19]["out"] == "1000"
    assert sum(r["madds"] for r in rows) == result["madds"]
    assert sum(r["params"] for r in rows) == result["params"]
    # the stem: 112*112 outputs x 3*3*3 x 16
    assert rows[0]["madds"] == 112 * 112 * 27 * 16
    text = summary.format_table(result)
    assert "bneck 5x5" in text and "216.6M" in text


def test_minimalistic_matches_slim_readme():
    # TF-Slim README: Large-minimalistic 209M MACs, 3.9M params. (Its Small rows, 66M for
    # Small 1.0 and 65M for Small-minimalistic, count differently from the paper's 57M and
    # are not a usable reference; Small-minimalistic is checked structurally in test_model.)
    r = summary.summarize(ModelConfig.from_flat(name="large", minimalistic=True,
                                      include_preprocessing=False))
    assert abs(r["madds"] / 1e6 - 209) <= 0.03 * 209, r["madds"]
    assert abs(r["weight_params"] / 1e6 - 3.9) <= 0.06, r["weight_params"]


def test_cli_json(capsys):
    assert summary.main(["summary", "--model=small", "--alpha=0.75", "--format=json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"madds", "params", "trainable_params", "rows"} <= set(data)
    assert abs(data["madds"] / 1e6 - 44) <= 0.03 * 44


@pytest.mark.parametrize("args, message", [
    (["--model=medium"], "model"), (["--alpha=0"], "alpha"), (["--resolution=16"], "resolution"),
    (["--classes=0"], "classes"), (["--format=xml"], "format")])
def test_cli_rejects_bad_flags(capsys, args, message):
    assert summary.main(["summary"] + args) == 2
    assert message in capsys.readouterr().err


def test_cli_as_a_module():
    out = subprocess.run(
        [sys.executable, "-m", "mobilenet_v3.summary", "--model=small", "--resolution=96"],
        capture_output=True, text=True, check=True).stdout
    assert "MobileNetV3-Small" in out and "total MAdds" in out
    assert "bneck 5x5" in out
