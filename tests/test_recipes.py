"""The authors' recipes as flagfiles (configs/ssdlite_coco.cfg: the OD API's; configs/
lraspp_cityscapes.cfg: DeepLab's): they parse, refuse missing data with one line, and train
with their optimizer and schedule on tiny data."""

import json
import os

import pytest

from conftest import run_cases

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SSDLITE = os.path.join(ROOT, "configs", "ssdlite_coco.cfg")
LRASPP = os.path.join(ROOT, "configs", "lraspp_cityscapes.cfg")
TINY = ["--resolution=65", "--dataset=synthetic", "--num_classes=3", "--batch_size=2",
        "--synthetic_train_examples=8", "--synthetic_eval_examples=2", "--train_steps=3",
        "--log_every_steps=1", "--alpha=0.35", "--checkpoint_every_steps=3"]


@pytest.mark.slow
def test_the_recipes_parse_refuse_missing_data_and_train(tmp_path):
    empty = tmp_path / "empty_tfds"
    empty.mkdir()
    cases = [[f"--flagfile={SSDLITE}", f"--model_dir={tmp_path / 'coco'}", f"--data_dir={empty}"],
             [f"--flagfile={LRASPP}", f"--model_dir={tmp_path / 'city'}",
              f"--manual_dir={tmp_path / 'missing'}"],
             [f"--flagfile={SSDLITE}", f"--model_dir={tmp_path / 'det'}", *TINY,
              "--warmup_steps=1", "--base_batch_size=2", "--base_learning_rate=0.01"],
             [f"--flagfile={LRASPP}", f"--model_dir={tmp_path / 'seg'}", *TINY,
              "--seg_pool_crop=65,65", "--seg_global_pool", "--base_batch_size=2"]]
    coco, city, det, seg = run_cases("train.py", cases)
    assert coco["code"] == 1 and "coco/2017 is not prepared" in coco["stderr"], coco
    assert "--download_data" in coco["stderr"] and "Traceback" not in coco["stderr"]
    assert city["code"] == 1 and "Traceback" not in city["stderr"], city
    for result, folder, optimizer, schedule in ((det, "det", "momentum", "cosine"),
                                                (seg, "seg", "momentum", "poly")):
        assert result["code"] == 0, result["stderr"][-3000:]
        assert "step 1/3" in result["stdout"] and "ETA " in result["stdout"]   # time left
        record = json.loads((tmp_path / folder / "train_config.json").read_text())
        assert record["optimizer"]["name"] == optimizer and not record["optimizer"]["use_ema"]
        assert record["schedule"]["kind"] == schedule
        assert record["model"]["bn_momentum"] in (0.97, 0.9997)
    assert json.loads((tmp_path / "seg" / "train_config.json").read_text())["data"][
        "scale_of"] == "original"


def test_time_left_reads_like_a_clock():
    from mobilenet_v3.training.loop import format_duration
    assert [format_duration(s) for s in (0.4, 45, 61, 750, 3600, 11100.2)] == [
        "0s", "45s", "1m01s", "12m30s", "1h00m", "3h05m"]
