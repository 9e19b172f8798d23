"""NetAdapt end to end on a tiny seed: the search on a local Ray with two workers, a killed
search resuming with the same choices, and the phone oracle on the fake phone (fake adb)."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, tiny_train_config
from mobilenet_v3.search import netadapt, oracles, workers

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("netadapt")]

ARGS = ["--oracle=madds", "--spaces=b9.exp,b10.exp,last", "--finetune_steps=3",
        "--batch_size=32", "--learning_rate=0.01", "--max_steps=2", "--delta=0.02",
        "--target_fraction=0.5", "--deterministic", "--workers=2"]


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    """Small 0.35 @32 trained 64 steps on synthetic data (4 classes): a real train.py run."""
    from mobilenet_v3.data import pipeline
    from mobilenet_v3.training import Trainer
    folder = tmp_path_factory.mktemp("seed") / "run"
    config = tiny_train_config(folder, train_steps=64, global_batch_size=32,
                               data=pipeline.DataConfig(image_size=32, num_classes=4,
                                                        synthetic_train_examples=256,
                                                        synthetic_eval_examples=64))
    Trainer(config).run()
    return str(folder)


def _cli(output_dir, seed_run, *extra, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT, RAY_USAGE_STATS_ENABLED="0")
    return [sys.executable, os.path.join(ROOT, "netadapt.py"), f"--seed_run={seed_run}",
            f"--output_dir={output_dir}", *ARGS, *extra], dict(cwd=ROOT, env=env, text=True, **kw)


def _choices(history):
    return [(s["chosen"]["edit"], s["chosen"]["latency"], s["chosen"]["top1"])
            for s in history["steps"]]


@pytest.fixture(scope="module")
def search(seed_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("search") / "out"
    command, options = _cli(out, seed_run)
    done = subprocess.run(command, capture_output=True, timeout=900, **options)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "history.json") as f:
        return out, json.load(f), done.stdout


def test_search_on_two_ray_workers(search):
    out, history, stdout = search
    seed = history["seed"]
    delta = 0.02 * seed["latency"]
    assert len(history["steps"]) == 2
    for step in history["steps"]:
        ok = [p for p in step["proposals"] if p["status"] == "ok"]
        assert len(ok) == len(step["proposals"]) >= 2
        for p in ok:                      # every proposal cuts at least delta
            assert p["latency"] <= step["from_latency"] - delta + 1e-9
            assert 0.0 <= p["top1"] <= 1.0
        assert step["chosen"]["latency"] <= step["from_latency"] - delta + 1e-9
        ratios = [(p["top1"] - step["from_top1"]) / (step["from_latency"] - p["latency"])
                  for p in ok]
        best = min(range(len(ok)), key=lambda i: (-ratios[i], ok[i]["latency"], i))  # ties:
        assert step["chosen"]["edit"] == ok[best]["edit"]                        # faster first
    # two workers ran at once: fine-tunes of one step overlap in time, in two processes
    runs = [p for s in history["steps"] for p in s["proposals"]]
    overlapping = [(a, b) for a in runs for b in runs if a is not b
                   and a["started"] < b["started"] < a["ended"]]
    assert overlapping and all(a["worker_pid"] != b["worker_pid"] for a, b in overlapping)
    # the result is a normal run folder with the chosen rows
    from mobilenet_v3.training import run_dir as run_dir_lib
    final = history["final"]
    trained = run_dir_lib.load_trained(final["run_dir"])
    assert trained.config.backbone.spec is not None
    from mobilenet_v3.search import arch
    assert trained.config.arch == arch.modeling_spec(history["steps"][-1]["chosen"]["spec"])
    assert final["full_measurement"]["final"] == pytest.approx(final["latency"])
    assert (out / "history.png").stat().st_size > 0
    assert "step 2: kept" in stdout


def test_killed_search_resumes_with_identical_choices(search, seed_run, tmp_path):
    _, reference, _ = search
    out = tmp_path / "out"
    command, options = _cli(out, seed_run)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True, **options)
    step2 = out / "steps" / "002"
    deadline = time.time() + 600
    try:     # kill it in the middle of step 2, once one of its fine-tunes has finished
        while not any((step2 / space / "run" / "final" / "eval.json").exists()
                      for space in ("b9.exp", "b10.exp", "last")):
            assert process.poll() is None and time.time() < deadline, "the search ended early"
            time.sleep(0.5)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    with open(out / "history.json") as f:
        assert len(json.load(f)["steps"]) == 1
    done = subprocess.run(command, capture_output=True, timeout=900, **options)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(finished earlier)" in done.stdout
    with open(out / "history.json") as f:
        resumed = json.load(f)
    assert _choices(resumed) == _choices(reference)
    # a rerun with other settings is refused with a message, and changes nothing
    before = (out / "history.json").read_bytes()
    command, options = _cli(out, seed_run, "--rule=smallest_drop")
    refused = subprocess.run(command, capture_output=True, timeout=300, **options)
    assert refused.returncode == 1 and "other settings" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert (out / "history.json").read_bytes() == before


def test_phone_oracle_on_the_fake_phone(seed_run, tmp_path, monkeypatch):
    from test_android_bench import make_phone
    _, tool = make_phone(tmp_path, monkeypatch)
    from mobilenet_v3.search import arch
    from mobilenet_v3.training import run_dir as run_dir_lib
    from mobilenet_v3.training import TrainConfig
    from mobilenet_v3.training.schedule import ScheduleConfig
    data = run_dir_lib.RunDir(seed_run).data_config()
    train = TrainConfig(model_dir="unused", data=data, global_batch_size=32, train_steps=2,
                        schedule=ScheduleConfig(base_learning_rate=0.01, base_batch_size=32,
                                                warmup_epochs=0, decay_rate=1.0))
    out = tmp_path / "out"
    phone = oracles.PhoneOracle(oracles.PhoneSettings(
        output_dir=str(out / "phone_runs"), benchmark_binary=tool, warmup_runs=1, num_runs=5,
        cooldown_seconds=0))
    config = netadapt.NetAdaptConfig(output_dir=str(out), seed=seed_run, train=train,
                                     target_fraction=0.5, delta_fraction=0.01, max_steps=1,
                                     spaces=["last"])
    try:
        history = netadapt.NetAdapt(config, phone, workers.RayConfig(workers=2)).run()
    finally:
        workers.stop()
    assert history["settings"]["oracle"].startswith("phone:")
    step = history["steps"][0]
    assert step["chosen"]["space"] == "last"
    assert step["chosen"]["latency"] <= history["seed"]["latency"] * 0.99
    # every figure is one android_bench measured (its results.json, avg in ms)
    measured = []
    for run in (out / "phone_runs").iterdir():
        results = run / "results.json"
        if run.is_dir() and not run.is_symlink() and results.exists():
            measured += [row["avg_us"] / 1000 for row in json.loads(results.read_text())["runs"]]
    assert history["seed"]["latency"] in measured and step["chosen"]["latency"] in measured
    assert history["final"]["full_measurement"]["oracle"] == phone.id
    assert arch.modeling_spec(step["chosen"]["spec"]).last_conv_channels < \
        arch.modeling_spec(history["seed"]["spec"]).last_conv_channels
    assert run_dir_lib.load_trained(history["final"]["run_dir"]).config.arch == \
        arch.modeling_spec(step["chosen"]["spec"])


def test_lookup_table_search(seed_run, tmp_path):
    """--oracle=table: proposals priced as sums of pieces timed on the host, the final choice
    re-timed in full and the table's error recorded."""
    from mobilenet_v3.search import arch
    from mobilenet_v3.training import run_dir as run_dir_lib
    from mobilenet_v3.training import TrainConfig
    from mobilenet_v3.training.schedule import ScheduleConfig
    data = run_dir_lib.RunDir(seed_run).data_config()
    train = TrainConfig(model_dir="unused", data=data, global_batch_size=32, train_steps=2,
                        schedule=ScheduleConfig(base_learning_rate=0.01, base_batch_size=32,
                                                warmup_epochs=0, decay_rate=1.0))
    table = oracles.TableOracle(oracles.HostOracle(
        settings=oracles.HostSettings(warmup=2, runs=10, repeats=2)))
    config = netadapt.NetAdaptConfig(output_dir=str(tmp_path / "out"), seed=seed_run,
                                     train=train, target_fraction=0.5, delta_fraction=0.02,
                                     max_steps=1, spaces=["last"])
    try:
        history = netadapt.NetAdapt(config, table, workers.RayConfig(workers=2)).run()
    finally:
        workers.stop()
    assert history["settings"]["oracle"] == "table/host"
    chosen = history["steps"][0]["chosen"]
    with open(tmp_path / "out" / netadapt.CACHE) as f:
        pieces = json.load(f)["table/host/pieces"]

    def summed(spec):     # the table's figure is the sum of its pieces' cached timings
        network = oracles.Network(arch.modeling_spec(spec), 32, 4)
        keys = [k for k, _ in oracles._pieces(network)]
        return keys, sum(pieces[k] for k in keys)
    seed_keys, seed_ms = summed(history["seed"]["spec"])
    chosen_keys, chosen_ms = summed(chosen["spec"])
    assert history["seed"]["latency"] == pytest.approx(seed_ms)
    assert chosen["latency"] == pytest.approx(chosen_ms)
    # an edit of the last stage reuses every other piece's timing: only the tail is new
    assert chosen_keys[:-1] == seed_keys[:-1] and chosen_keys[-1] != seed_keys[-1]
    full = history["final"]["full_measurement"]
    assert full["oracle"] == "host" and full["seed"] > 0 and full["final"] > 0
    assert full["table_predicted"] == pytest.approx([seed_ms, chosen_ms])
    assert full["table_error"]["relative_errors"] == pytest.approx(
        [(seed_ms - full["seed"]) / full["seed"], (chosen_ms - full["final"]) / full["final"]])


def test_a_failing_fine_tune_is_reported_not_counted(seed_run, tmp_path):
    """A task that raises is retried once by Ray, then comes back as {'failed': its cause}."""
    from mobilenet_v3.search import finetune
    job = finetune.Job(name="step 1 b9.exp", folder=str(tmp_path / "p"),
                       parent=str(tmp_path / "no_such_parent"), child_spec=None, train=None)
    seen = []
    try:
        results = workers.run_all([job], workers.RayConfig(workers=1),
                                  lambda i, r: seen.append((i, r)))
    finally:
        workers.stop()
    assert len(results) == 1 and set(results[0]) == {"failed"}
    reason = results[0]["failed"]
    assert reason.startswith("step 1 b9.exp: RunFolderError:") and "no_such_parent" in reason
    assert "\n" not in reason and seen == [(0, results[0])]
