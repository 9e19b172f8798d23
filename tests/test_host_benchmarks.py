"""The host latency tool and the paper-style report on real tiny models."""

import json
import os
import subprocess
import sys

import pytest

# Its module-scoped fixtures are built once: keep the file on one xdist worker.
pytestmark = pytest.mark.xdist_group("host_benchmarks")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tflite_files(tmp_path_factory):
    from mobilenet_v3 import ModelConfig, build_model
    from mobilenet_v3.export import convert as conversion
    folder = tmp_path_factory.mktemp("tfl")
    paths = []
    for name in ("small", "large"):
        path = folder / f"{name}.tflite"
        path.write_bytes(conversion.convert(build_model(ModelConfig.from_flat(
            name=name, alpha=0.35, input_shape=(32, 32, 3), include_preprocessing=False,
            classes=10, batch_size=1))))
        paths.append(str(path))
    return paths


def test_latency_statistics_on_real_models(tflite_files):
    from benchmark import latency
    rows = latency.measure(tflite_files, core=-1, warmup=2, runs=10, repeats=3,
                           baseline=tflite_files[1])
    assert [r["file"] for r in rows] == tflite_files
    for r in rows:
        assert r["samples"] == 30 and r["xnnpack_partitions"] == 1
        assert 0 < r["min_ms"] <= r["median_ms"] <= r["p90_ms"]
    assert rows[1]["ratio_min"] == 1.0 and rows[1]["ratio_median"] == 1.0
    assert rows[0]["ratio_min"] == pytest.approx(rows[0]["min_ms"] / rows[1]["min_ms"], rel=1e-2)
    with pytest.raises(FileNotFoundError):
        latency.measure(tflite_files + ["/nonexistent.tflite"])
    with pytest.raises(ValueError, match="baseline"):
        latency.measure(tflite_files, baseline="other.tflite")


def test_latency_command_line(tflite_files, tmp_path):
    run = [sys.executable, os.path.join(ROOT, "benchmark", "latency.py")]
    proc = subprocess.run(run + ["--format=json", "--runs=5", "--repeats=2", "--warmup=1",
                                 "--core=-1"] + tflite_files,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = json.loads(proc.stdout[proc.stdout.index("["):])
    assert len(rows) == 2 and rows[0]["ratio_min"] == 1.0
    bad = subprocess.run(run + [str(tmp_path / "missing.tflite")], capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 1 and "no such .tflite" in bad.stderr


@pytest.mark.slow
def test_report_table_csv_json_and_plot(tmp_path):
    out = tmp_path / "report"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmark", "report.py"), f"--output_dir={out}",
         "--networks=ours:small:1.0,keras:small:1.0,v2:v2:0.35", "--resolution=32",
         "--repeats=1", "--runs=3", "--warmup=1", "--core=-1", "--official_small="],
        capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = json.loads((out / "report.json").read_text())
    assert [r["source"] for r in rows] == ["ours", "keras.applications",
                                           "keras.applications V2"]
    ours, keras, v2 = rows
    assert ours["madds_m"] == keras["madds_m"] and ours["params_m"] == keras["params_m"]
    assert ours["int8_partitions"] <= keras["int8_partitions"]
    assert all(r["float32_min_ms"] > 0 and r["int8_min_ms"] > 0 for r in rows)
    assert v2["paper_top1"] is None                     # the paper's numbers are for 224px
    table = (out / "report.md").read_text()
    assert table.count("\n| V") == 3 and "int8 XNNPACK partitions" in table
    assert len((out / "report.csv").read_text().splitlines()) == 4
    png = (out / "latency.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10000
    bad = subprocess.run([sys.executable, os.path.join(ROOT, "benchmark", "report.py"),
                          "--networks=ours:medium:1.0", f"--output_dir={out}"],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "bad network" in bad.stderr


def test_op_profile_sums_per_op_type_and_finds_the_slow_int8_hard_swish():
    import numpy as np
    from mobilenet_v3.bench import op_profile
    from mobilenet_v3.bench.calibration import calibrate_batch_norm
    from mobilenet_v3 import ModelConfig, build_model
    from mobilenet_v3.export import convert as conversion
    from mobilenet_v3.analysis import tflite_inspect
    config = ModelConfig.from_flat(name="small", alpha=0.35, input_shape=(32, 32, 3), classes=10,
                         include_preprocessing=False, batch_size=1)
    model = build_model(config)
    images = np.random.RandomState(0).uniform(-1, 1, (4, 32, 32, 3)).astype(np.float32)
    calibrate_batch_norm(model, images)
    tflite = conversion.convert(model, "int8", representative_images=lambda: list(images))
    times = op_profile.op_type_times(tflite, runs=5)
    histogram = tflite_inspect.op_histogram(tflite)
    assert {k: v["count"] for k, v in times.items() if k != "_total"} == histogram
    assert times["_total"]["count"] == sum(histogram.values())
    assert all(v["ms"] > 0 for v in times.values())
    assert times["HARD_SWISH"]["count"] == 19
