"""android_bench against a fake `adb` on PATH that behaves like a Pixel-like phone (4 little +
4 large cores, getprop, a writable /data/local/tmp) and a benchmark_model stand-in that really
runs the pushed .tflite with LiteRT. The orchestration and parsing under test are the real code.
"""

import json
import os
import subprocess
import sys

import pytest

from android_bench import bench, output_format
from android_bench.device import DeviceError, taskset_mask

# Its module-scoped fixtures are built once: keep the file on one xdist worker.
pytestmark = pytest.mark.xdist_group("android_bench")

HERE = os.path.dirname(os.path.abspath(__file__))
FAKE = os.path.join(HERE, "fake_phone")
PIXEL_PROPS = {"ro.product.model": "Pixel 2", "ro.product.manufacturer": "Google",
               "ro.product.device": "walleye", "ro.product.cpu.abi": "arm64-v8a",
               "ro.build.version.release": "11", "ro.build.version.sdk": "30"}
PIXEL_FREQS = [1900800] * 4 + [2457600] * 4     # cpu0-3 little, cpu4-7 large
PIXEL7_PROPS = dict(PIXEL_PROPS, **{"ro.product.model": "Pixel 7", "ro.product.device": "panther",
                                    "ro.build.version.release": "14"})
PIXEL7_FREQS = [1803000] * 4 + [2348000] * 2 + [2850000] * 2   # big cores: cpu6-7 only
ROOT = os.path.dirname(HERE)

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
    out = tmp_path / "out" / "latest"
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
    saved = json.loads((tmp_path / "out" / "latest" / "results.json").read_text())
    assert [r["model"] for r in saved["runs"]] == ["v3_small.tflite"]
    assert "| V3-Small 0.35 @32 |" in (tmp_path / "out" / "latest" / "results.md").read_text()


def test_unparseable_output_is_saved_and_quoted(tmp_path, monkeypatch, models):
    state, tool = make_phone(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_BENCHMARK_FORMAT", "garbage")
    with pytest.raises(bench.BenchmarkFailed, match="Segmentation fault") as info:
        bench.run(_config(tmp_path, models, tool), log=lambda _: None)
    raw = (tmp_path / "out" / "latest").resolve() / "raw" / "v3_small.tflite.r0.txt"
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
    assert "| CONV_2D | 43 |" in (tmp_path / "out" / "latest" / "results.md").read_text()


# ---- hardening items 9-13, through the command line ---------------------------------------

def _cli(*args, env=None, **kw):
    """python -m android_bench.run with the test's PATH (fake adb) and fast settings."""
    return subprocess.run([sys.executable, "-m", "android_bench.run", "--num_runs=5",
                           "--warmup_runs=1", "--cooldown_seconds=0", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **(env or {})), **kw)


def _runs(out):
    """The run folders under an output dir, oldest first."""
    return sorted(p for p in out.iterdir() if p.is_dir() and not p.is_symlink()
                  and not p.name.startswith("."))


def test_failed_rerun_keeps_the_earlier_results(tmp_path, monkeypatch, models):
    _, tool = make_phone(tmp_path, monkeypatch)
    out = tmp_path / "res"
    first = _cli(f"--models={','.join(models)}", f"--benchmark_binary={tool}",
                 f"--output_dir={out}")
    assert first.returncode == 0, first.stderr[-2000:]
    second = _cli(f"--models={','.join(models)}", f"--benchmark_binary={tool}",
                  f"--output_dir={out}", env={"FAKE_BENCHMARK_FAIL": "Aborted",
                                              "FAKE_BENCHMARK_FAIL_AT": "start"})
    assert second.returncode == 1 and "Traceback" not in second.stderr
    old, new = _runs(out)
    assert len((old / "results.csv").read_text().splitlines()) == 3
    assert json.loads((old / "results.json").read_text())["status"] == "complete"
    assert sorted(os.listdir(old / "raw")) == ["v3_large.tflite.r0.txt", "v3_small.tflite.r0.txt"]
    failed = json.loads((new / "results.json").read_text())
    assert failed["status"].startswith("failed") and failed["runs"] == []
    assert os.listdir(new / "raw") == ["v3_small.tflite.r0.txt"]
    assert "Aborted" in (new / "raw" / "v3_small.tflite.r0.txt").read_text()
    assert (out / "latest").resolve() == new and str(new) in second.stderr


LINKER_ERROR = ('CANNOT LINK EXECUTABLE "/data/local/tmp/benchmark_model": library '
                '"libnativewindow.so" not found: needed by main executable')


def test_tool_failures_are_not_taken_for_device_problems(tmp_path, monkeypatch, models):
    _, tool = make_phone(tmp_path, monkeypatch)
    monkeypatch.setenv("FAKE_BENCHMARK_FAIL", LINKER_ERROR)
    monkeypatch.setenv("FAKE_BENCHMARK_FAIL_AT", "start")
    with pytest.raises(bench.BenchmarkFailed) as info:
        bench.run(_config(tmp_path, models[:1], tool), log=lambda _: None)
    message = str(info.value)
    assert "exited with status 1" in message and LINKER_ERROR in message
    assert "not connected" not in message
    monkeypatch.setenv("FAKE_BENCHMARK_FAIL", "ERROR: the NNAPI accelerator is offline")
    monkeypatch.setenv("FAKE_BENCHMARK_FAIL_AT", "load")
    monkeypatch.setenv("FAKE_BENCHMARK_EXIT", "3")
    monkeypatch.setenv("FAKE_BENCHMARK_ONLY", "v3_large.tflite")
    with pytest.raises(bench.BenchmarkFailed) as info:
        bench.run(_config(tmp_path, models, tool), log=lambda _: None)
    message = str(info.value)
    assert "exited with status 3" in message and "reconnect" not in message
    assert "INFO: STARTING!" in message and "accelerator is offline" in message  # both streams
    assert "1 result(s)" in message and len(info.value.partial) == 1
    raw = (tmp_path / "out" / "latest" / "raw" / "v3_large.tflite.r0.txt").read_text()
    assert "INFO: Graph:" in raw and "accelerator is offline" in raw and "status 3" in raw


def test_cores_are_checked_against_the_phones_cpus(tmp_path, monkeypatch, models):
    state, tool = make_phone(tmp_path, monkeypatch, [{
        "serial": "P7", "state": "device", "props": PIXEL7_PROPS, "freqs": PIXEL7_FREQS}])
    outcome = bench.run(_config(tmp_path, models[:1], tool), log=lambda _: None)
    assert outcome["device"]["cores"] == [6, 7] and outcome["device"]["mask"] == "c0"
    assert (state / "P7" / "taskset.log").read_text().startswith("c0 ")
    (state / "adb.log").unlink()
    for cores in ("8,9", "99"):
        proc = _cli(f"--models={models[0]}", f"--benchmark_binary={tool}", f"--cores={cores}",
                    f"--output_dir={tmp_path / 'cli'}")
        assert proc.returncode == 1 and "Traceback" not in proc.stderr
        assert f"--cores={cores}" in proc.stderr and "[0, 1, 2, 3, 4, 5, 6, 7]" in proc.stderr
    assert not [c for c in _adb_calls(state) if "push" in c]
    proc = _cli(f"--models={models[0]}", f"--benchmark_binary={tool}", "--cores=big")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "--cores=big" in proc.stderr


def test_non_tflite_files_are_refused_before_touching_the_phone(tmp_path, monkeypatch, models):
    state, tool = make_phone(tmp_path, monkeypatch)
    notes = tmp_path / "notes.tflite"
    notes.write_text("these are notes, not a model\n")
    proc = _cli(f"--models={models[0]},{notes}", f"--benchmark_binary={tool}",
                f"--output_dir={tmp_path / 'cli'}")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert str(notes) in proc.stderr and "TFL3" in proc.stderr and models[0] not in proc.stderr
    assert not (state / "adb.log").exists()


def test_messages_name_the_flag_and_what_was_kept(tmp_path, monkeypatch, models):
    _, tool = make_phone(tmp_path, monkeypatch)
    for args, expected in (([f"--models={models[0]}", "--num_runs=0"], "--num_runs=0"),
                           ([f"--models={models[0]}", "--cooldown_seconds=-1"],
                            "--cooldown_seconds=-1"),
                           ([f"--benchmark_binary={tool}"], "--models")):
        proc = _cli(*args)
        assert proc.returncode == 1 and expected in proc.stderr, (args, proc.stderr)
    proc = _cli(f"--models={','.join(models)}", f"--benchmark_binary={tool}",
                f"--output_dir={tmp_path / 'out'}",
                env={"FAKE_BENCHMARK_FORMAT": "garbage", "FAKE_BENCHMARK_ONLY": "v3_large.tflite"})
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "1 result(s) measured before it were kept" in proc.stderr
    kept = json.loads((tmp_path / "out" / "latest" / "results.json").read_text())
    assert [r["model"] for r in kept["runs"]] == ["v3_small.tflite"]


def test_ctrl_c_exits_130_keeps_results_and_cleans_the_phone(tmp_path, monkeypatch, models):
    state, tool = make_phone(tmp_path, monkeypatch)
    # Ctrl-C during the second model: the fake adb sends SIGINT to its process group, which
    # start_new_session makes the command line tool's own group (not pytest's).
    proc = _cli(f"--models={','.join(models)}", f"--benchmark_binary={tool}",
                f"--output_dir={tmp_path / 'out'}", env={"FAKE_ADB_SIGINT_ON_RUN": "2"},
                start_new_session=True)
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "interrupted" in proc.stderr
    kept = json.loads((tmp_path / "out" / "latest" / "results.json").read_text())
    assert kept["status"] == "interrupted"
    assert [r["model"] for r in kept["runs"]] == ["v3_small.tflite"]
    assert os.listdir(state / "FA7AX1A00001" / "data" / "local" / "tmp") == []


def test_names_with_commas_and_repeated_models(tmp_path, monkeypatch, models):
    _, tool = make_phone(tmp_path, monkeypatch)
    comma = tmp_path / "v3,small.tflite"
    comma.write_bytes(open(models[0], "rb").read())
    proc = _cli(f"--models={comma}", f"--models={models[1]}", f"--benchmark_binary={tool}",
                f"--output_dir={tmp_path / 'out'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    kept = json.loads((tmp_path / "out" / "latest" / "results.json").read_text())
    assert [r["model"] for r in kept["runs"]] == ["v3,small.tflite", "v3_large.tflite"]
    missing = tmp_path / "x,y.tflite"                   # an argument is never split
    proc = _cli(f"--benchmark_binary={tool}", str(missing))
    assert proc.returncode == 1 and repr(str(missing)) in proc.stderr


def test_files_with_metadata_run_exactly_as_without(tmp_path, monkeypatch, models):
    """TFLite metadata (labels, normalisation: export_tflite.py writes it into every file) is
    for app runtimes; the benchmark tool runs such a file exactly as the bare one."""
    from mobilenet_v3.export import tflite_metadata
    card = tflite_metadata.ModelCard(task="classification", name="tiny", description="d",
                                     version="1", labels=[f"c{i}" for i in range(10)])
    plain = open(models[0], "rb").read()
    with_metadata = tmp_path / "v3_small_metadata.tflite"
    with_metadata.write_bytes(tflite_metadata.attach(plain, card))
    assert tflite_metadata.read(with_metadata.read_bytes())["labels"] == 10
    state, tool = make_phone(tmp_path, monkeypatch)
    outcome = bench.run(_config(tmp_path, [models[0], str(with_metadata)], tool),
                        log=lambda _: None)
    runs = [line.split() for line in
            (state / "FA7AX1A00001" / "taskset.log").read_text().splitlines()]
    assert len(runs) == 2
    # the same command but for the file's name
    assert [a for a in runs[0] if not a.startswith("--graph=")] == \
        [a for a in runs[1] if not a.startswith("--graph=")]
    results = outcome["results"]
    assert [r["count"] for r in results] == [7, 7]
    assert all(0 < r["min_us"] <= r["max_us"] for r in results)
