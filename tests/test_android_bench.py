"""android_bench against a fake `adb` on PATH that behaves like a Pixel-like phone (4 little +
4 large cores, getprop, a writable /data/local/tmp) and a benchmark_model stand-in that really
runs the pushed .tflite with LiteRT. The orchestration and parsing under test are the real code.
"""

import json
import os
import sys

import pytest

from android_bench import bench, output_format
from android_bench.device import DeviceError, taskset_mask

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_phone")
PIXEL_PROPS = {"ro.product.model": "Pixel 2", "ro.product.manufacturer": "Google",
               "ro.product.device": "walleye", "ro.product.cpu.abi": "arm64-v8a",
               "ro.build.version.release": "11", "ro.build.version.sdk": "30"}
PIXEL_FREQS = [1900800] * 4 + [2457600] * 4     # cpu0-3 little, cpu4-7 large

# Verbatim lines from PAPER.md (the older tool format).
PAPER_LINES = """count=50 first=207897 curr=225553 min=206675 max=231957 avg=220000 std=6795
Inference timings in us: Init: 1430, First inference: 247583, Warmup (avg): 222136, Inference (avg): 220000
Memory footprint delta from the start of the tool (MB): init=5.66016 overall=140.508"""


def make_phone(tmp_path, monkeypatch, devices=None):
    """Writes the fake phones' state and puts the fake adb first on PATH."""
    state = tmp_path / "phones"
    state.mkdir()
    if devices is None:
        devices = [{"serial": "FA7AX1A00001", "state": "device", "props": PIXEL_PROPS,
                    "freqs": PIXEL_FREQS}]
    for d in devices:
        root = state / d["serial"]
        (root / "data" / "local" / "tmp").mkdir(parents=True)
        (root / "props").write_text("".join(f"{k}={v}\n" for k, v in d["props"].items()))
        for cpu, freq in enumerate(d["freqs"]):
            folder = root / "sys" / "devices" / "system" / "cpu" / f"cpu{cpu}" / "cpufreq"
            folder.mkdir(parents=True)
            (folder / "cpuinfo_max_freq").write_text(f"{freq}\n")
    (state / "devices.json").write_text(json.dumps(devices))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    adb = bin_dir / "adb"
    adb.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE}/fake_adb.py \"$@\"\n")
    adb.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_PHONE_DIR", str(state))
    monkeypatch.setenv("PYTHONPATH", os.path.dirname(HERE))
    tool = tmp_path / "benchmark_model"
    tool.write_text(f"#!/bin/sh\nexec {sys.executable} {FAKE}/fake_benchmark_model.py \"$@\"\n")
    tool.chmod(0o755)
    return state, str(tool)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two real .tflite files (tiny MobileNetV3s) and an export-style report for one."""
    from mobilenet_v3 import ModelConfig, build_model
    from mobilenet_v3.export import convert as conversion
    folder = tmp_path_factory.mktemp("models")
    paths = []
    for name in ("small", "large"):
        config = ModelConfig.from_flat(name=name, alpha=0.35, input_shape=(32, 32, 3),
                             include_preprocessing=False, classes=10, batch_size=1)
        path = folder / f"v3_{name}.tflite"
        path.write_bytes(conversion.convert(build_model(config)))
        paths.append(str(path))
    (folder / "v3_small.json").write_text(json.dumps({
        "format": "float32", "eval": {"top1": 0.5},
        "model": {"name": "small", "alpha": 0.35, "input_shape": [32, 32, 3]}}))
    return paths


def _config(tmp_path, models, tool, **kw):
    return bench.BenchConfig(models=models, output_dir=str(tmp_path / "out"),
                             benchmark_binary=tool, warmup_runs=2, num_runs=7,
                             cooldown_seconds=0.0, **kw)


def _adb_calls(state):
    return [json.loads(line) for line in (state / "adb.log").read_text().splitlines()]


def test_parser_reads_the_papers_lines_and_the_newer_format():
    r = output_format.parse("INFO: STARTING!\n" + PAPER_LINES)
    assert (r.count, r.first_us, r.min_us, r.max_us, r.avg_us, r.std_us) == \
        (50, 207897, 206675, 231957, 220000, 6795)
    assert (r.init_us, r.first_inference_us, r.warmup_avg_us, r.inference_avg_us) == \
        (1430, 247583, 222136, 220000)
    assert (r.memory_init_mb, r.memory_overall_mb) == (5.66016, 140.508)
    assert r.median_us is None
    newer = ("INFO: count=3 first=10 curr=9 min=8 max=10 avg=9.5 std=1\n"
             "INFO: count=100 first=5 curr=6 min=4 max=9 avg=6.2 std=1 p5=4 median=6 p95=8\n")
    r = output_format.parse(newer)
    assert (r.count, r.avg_us, r.p5_us, r.median_us, r.p95_us) == (100, 6.2, 4, 6, 8)
    with pytest.raises(output_format.BenchmarkOutputError, match="Segmentation fault"):
        output_format.parse("INFO: STARTING!\nSegmentation fault\n")


def test_mask_covers_exactly_the_given_cores():
    assert taskset_mask([4, 5, 6, 7]) == "f0"
    assert taskset_mask([7]) == "80" and taskset_mask([0, 1]) == "3"
    with pytest.raises(ValueError):
        taskset_mask([])


def test_runs_pinned_to_the_large_cores_and_tabulates(tmp_path, monkeypatch, models):
    state, tool = make_phone(tmp_path, monkeypatch)
    outcome = bench.run(_config(tmp_path, models, tool), log=lambda _: None)
    device = outcome["device"]
    assert device["model"] == "Pixel 2" and device["abi"] == "arm64-v8a"
    assert device["cores"] == [4, 5, 6, 7] and device["mask"] == "f0"
    runs = (state / "FA7AX1A00001" / "taskset.log").read_text().splitlines()
    assert len(runs) == 2
    for line, model in zip(runs, models):
        mask, binary, *args = line.split()
        assert mask == "f0" and binary.endswith("/data/local/tmp/mobilenet_v3_bench/"
                                                "benchmark_model")
        assert f"--graph={state}/FA7AX1A00001/data/local/tmp/mobilenet_v3_bench/" \
               f"{os.path.basename(model)}" in args
        assert "--num_threads=1" in args and "--num_runs=7" in args
        assert "--warmup_runs=2" in args and "--use_xnnpack=true" in args
    pushes = [c for c in _adb_calls(state) if "push" in c]
    assert [c[-1] for c in pushes] == [
        "/data/local/tmp/mobilenet_v3_bench/benchmark_model",
        "/data/local/tmp/mobilenet_v3_bench/v3_small.tflite",
        "/data/local/tmp/mobilenet_v3_bench/v3_large.tflite"]
    assert all(c[:2] == ["-s", "FA7AX1A00001"] for c in _adb_calls(state)
               if c[0] != "devices")
    results = outcome["results"]
    assert [r["count"] for r in results] == [7, 7]
    assert all(0 < r["min_us"] <= r["median_us"] <= r["max_us"] for r in results)
    out = tmp_path / "out"
    table = (out / "results.md").read_text()
    assert "| V3-Small 0.35 @32 | float32 | 50.0 |" in table and "Pixel 2 avg ms" in table
    assert "v3_large.tflite" in table
    assert len((out / "results.csv").read_text().splitlines()) == 3
    assert json.loads((out / "results.json").read_text())["device"]["mask"] == "f0"
    # Cleaned up: nothing left in the phone's /data/local/tmp.
    assert os.listdir(state / "FA7AX1A00001" / "data" / "local" / "tmp") == []


def test_device_problems_are_explained(tmp_path, monkeypatch, models):
    arm = {"props": PIXEL_PROPS, "freqs": PIXEL_FREQS}
    cases = [
        ([], None, "no Android device found"),
        ([dict(arm, serial="A", state="device"), dict(arm, serial="B", state="device")], None,
         "choose one with --serial"),
        ([dict(arm, serial="A", state="device")], "Z", "no device with serial 'Z'"),
        ([dict(arm, serial="A", state="unauthorized")], None, "Allow USB debugging"),
        ([dict(arm, serial="A", state="offline")], None, "offline"),
        ([dict(serial="A", state="device", freqs=PIXEL_FREQS,
               props=dict(PIXEL_PROPS, **{"ro.product.cpu.abi": "armeabi-v7a"}))], None,
         "armeabi-v7a"),
    ]
    for i, (devices, serial, message) in enumerate(cases):
        case_dir = tmp_path / str(i)
        case_dir.mkdir()
        with monkeypatch.context() as m:
            _, tool = make_phone(case_dir, m, devices)
            with pytest.raises(DeviceError, match=message):
                bench.run(_config(case_dir, models, tool, serial=serial), log=lambda _: None)


def test_two_devices_and_a_serial_picks_that_one(tmp_path, monkeypatch, models):
    devices = [{"serial": s, "state": "device", "props": PIXEL_PROPS, "freqs": PIXEL_FREQS}
               for s in ("A1", "B2")]
    state, tool = make_phone(tmp_path, monkeypatch, devices)
    outcome = bench.run(_config(tmp_path, models[:1], tool, serial="B2"), log=lambda _: None)
    assert outcome["device"]["serial"] == "B2"
    assert (state / "B2" / "taskset.log").exists() and not (state / "A1" / "taskset.log").exists()


def test_disconnect_mid_run_keeps_earlier_results_and_names_the_model(tmp_path, monkeypatch,
                                                                      models):
    state, tool = make_phone(tmp_path, monkeypatch, [{
        "serial": "P", "state": "device", "props": PIXEL_PROPS, "freqs": PIXEL_FREQS,
        "disconnect_after_runs": 1}])
    with pytest.raises(bench.BenchmarkFailed, match="v3_large.tflite") as info:
        bench.run(_config(tmp_path, models, tool), log=lambda _: None)
    assert "not connected" in str(info.value) and "1 result(s)" in str(info.value)
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert [r["model"] for r in saved["runs"]] == ["v3_small.tflite"]
    assert "| V3-Small 0.35 @32 |" in (tmp_path / "out" / "results.md").read_text()


def test_unparseable_output_is_saved_and_quoted(tmp_path, monkeypatch, models):
    state, tool = make_phone(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_BENCHMARK_FORMAT", "garbage")
    with pytest.raises(bench.BenchmarkFailed, match="Segmentation fault") as info:
        bench.run(_config(tmp_path, models, tool), log=lambda _: None)
    raw = tmp_path / "out" / "raw" / "v3_small.tflite.txt"
    assert raw.exists() and "no timings here" in raw.read_text() and str(raw) in str(info.value)


def test_older_tool_output_is_parsed_too(tmp_path, monkeypatch, models):
    make_phone(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_BENCHMARK_FORMAT", "old")
    outcome = bench.run(_config(tmp_path, models[:1], str(tmp_path / "benchmark_model")),
                        log=lambda _: None)
    r = outcome["results"][0]
    assert r["median_us"] is None and r["count"] == 7 and r["inference_avg_us"] > 0


def test_missing_binary_and_missing_adb(tmp_path, monkeypatch, models):
    make_phone(tmp_path, monkeypatch)
    with pytest.raises(FileNotFoundError, match="--allow_download"):
        bench.run(_config(tmp_path, models, None), log=lambda _: None)
    with pytest.raises(FileNotFoundError, match="benchmark binary not found"):
        bench.run(_config(tmp_path, models, str(tmp_path / "nope")), log=lambda _: None)
    config = _config(tmp_path, models, str(tmp_path / "benchmark_model"))
    config.adb_path = str(tmp_path / "no-adb-here")
    with pytest.raises(DeviceError, match="adb not found"):
        bench.run(config, log=lambda _: None)


def test_command_line_tool(tmp_path, monkeypatch, models):
    import subprocess
    _, tool = make_phone(tmp_path, monkeypatch)
    root = os.path.dirname(HERE)
    proc = subprocess.run([sys.executable, "-m", "android_bench.run",
                           f"--models={','.join(models)}", f"--benchmark_binary={tool}",
                           f"--output_dir={tmp_path / 'cli'}", "--num_runs=5",
                           "--warmup_runs=1", "--cooldown_seconds=0"],
                          cwd=root, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| V3-Small 0.35 @32 |" in proc.stdout
    bad = subprocess.run([sys.executable, "-m", "android_bench.run",
                          f"--models={tmp_path / 'missing.tflite'}"], cwd=root,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "not found" in bad.stderr


OP_PROFILE_OUTPUT = """INFO: count=20 first=900 curr=800 min=790 max=900 avg=810 std=20 p5=790 median=800 p95=850
INFO: Inference timings in us: Init: 1430, First inference: 900, Warmup (avg): 850, Inference (avg): 810
Operator-wise Profiling Info for Regular Benchmark Runs:
============================== Summary by node type ==============================
\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t  [mem KB]\t[times called]
\t Convolution (NHWC, QD8, F32, QC8W) IGEMM\t       43\t     0.500\t    62.500%\t    62.500%\t     0.000\t       43
\t              HARD_SWISH\t       19\t     0.300\t    37.500%\t   100.000%\t     0.000\t       19

Timings (microseconds): count=20 first=1 curr=1 min=1 max=1 avg=1 std=0
Memory (bytes): count=0
"""


def test_op_profile_section_is_parsed_and_does_not_confuse_the_timings():
    result = output_format.parse(OP_PROFILE_OUTPUT)
    assert (result.count, result.avg_us, result.median_us) == (20, 810, 800)
    rows = output_format.parse_op_profile(OP_PROFILE_OUTPUT)
    assert rows == [
        {"node_type": "Convolution (NHWC, QD8, F32, QC8W) IGEMM", "count": 43, "avg_ms": 0.5,
         "avg_pct": 62.5},
        {"node_type": "HARD_SWISH", "count": 19, "avg_ms": 0.3, "avg_pct": 37.5}]
    assert output_format.parse_op_profile(PAPER_LINES) == []


def test_op_profiling_on_the_phone(tmp_path, monkeypatch, models):
    state, tool = make_phone(tmp_path, monkeypatch)
    outcome = bench.run(_config(tmp_path, models[:1], tool, op_profiling=True),
                        log=lambda _: None)
    assert "--enable_op_profiling=true" in (state / "FA7AX1A00001" / "taskset.log").read_text()
    row = outcome["results"][0]
    assert row["count"] == 7                           # the timed stage, not the profiler's
    types = {o["node_type"]: o["count"] for o in row["op_profile"]}
    assert types["CONV_2D"] == 43 and types["HARD_SWISH"] == 19
    assert "ModifyGraphWithDelegate" not in types      # the init profile is not taken
    assert "| CONV_2D | 43 |" in (tmp_path / "out" / "results.md").read_text()
