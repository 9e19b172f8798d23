"""train.py --arch: trains the rows recorded in a model_config.json or run folder (NetAdapt's
and NAS's results retrained from scratch), and refuses what cannot be meant."""

import json

from conftest import run_cases
from mobilenet_v3 import ModelConfig
from mobilenet_v3.search import arch


def test_train_arch_trains_the_recorded_rows_and_refuses_the_rest(tmp_path):
    small = arch.explicit_spec(ModelConfig.from_flat(name="small", alpha=0.35))
    narrow = arch.set_width(small, "last", 64)
    record = tmp_path / "model_config.json"
    record.write_text(json.dumps(arch.with_spec(ModelConfig.from_flat(name="small"),
                                                narrow).to_flat()))
    run = ["--model=small", "--dataset=synthetic", "--num_classes=3", "--synthetic_train_examples=32",
           "--synthetic_eval_examples=16", "--resolution=32", "--batch_size=16",
           "--train_steps=2", "--eval_every_steps=0", "--noema"]
    results = run_cases("train.py", [
        run + [f"--arch={record}", f"--model_dir={tmp_path / 'ok'}"],
        run + [f"--arch={tmp_path / 'missing'}", f"--model_dir={tmp_path / 'a'}"],
        run + [f"--arch={record}", "--alpha=0.5", f"--model_dir={tmp_path / 'b'}"],
        run + [f"--arch={record}", "--model=large", f"--model_dir={tmp_path / 'c'}"],
    ])
    assert results[0]["code"] == 0, results[0]["stderr"][-2000:]
    with open(tmp_path / "ok" / "final" / "model_config.json") as f:
        trained = ModelConfig.from_record(json.load(f))
    assert trained.arch == narrow and trained.scaled_arch.last_conv_channels == 64
    for r, expected in zip(results[1:], ("missing", "leave out --alpha", "--model=small")):
        assert r["code"] == 1 and expected in r["stderr"], r
        assert "Traceback" not in r["stderr"]
