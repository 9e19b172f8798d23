"""nas.py end to end on tiny proxy trainings: a search on a local Ray with two workers and the
deterministic MAdds oracle (the reward checked against the paper's formula), a killed search
resuming with the same controller and samples, and bad input refused with a message."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, run_cases
from mobilenet_v3.search import arch, oracles
from mobilenet_v3.search.space import SearchSpace
from mobilenet_v3.specs import SMALL

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("nas")]

TARGET = 1.8     # M MAdds: Small 1.0 @32 has ~2.2
ARGS = ["--seed_arch=small", "--dataset=synthetic", "--num_classes=4",
        "--synthetic_train_examples=96", "--synthetic_eval_examples=32", "--resolution=32",
        "--oracle=madds", f"--target_ms={TARGET}", "--rounds=2", "--samples_per_round=3",
        "--proxy_steps=3", "--batch_size=32", "--learning_rate=0.01", "--deterministic",
        "--workers=2", "--seed=1"]


def _cli(output_dir, *extra, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT, RAY_USAGE_STATS_ENABLED="0")
    return [sys.executable, os.path.join(ROOT, "nas.py"), f"--output_dir={output_dir}", *ARGS,
            *extra], dict(cwd=ROOT, env=env, text=True, **kw)


def _samples(history):
    return [(s["actions"], s["latency"], s.get("top1"), s.get("reward"))
            for r in history["rounds"] for s in r["samples"]]


@pytest.fixture(scope="module")
def search(tmp_path_factory):
    out = tmp_path_factory.mktemp("nas") / "out"
    command, options = _cli(out)
    done = subprocess.run(command, capture_output=True, timeout=900, **options)
    assert done.returncode == 0, done.stderr[-3000:]
    with open(out / "history.json") as f:
        return out, json.load(f), done.stdout


def test_search_on_two_ray_workers(search):
    out, history, stdout = search
    settings = history["settings"]
    assert settings["w"] == -0.15 and settings["target"] == TARGET   # Small's exponent
    space = SearchSpace(SMALL)
    samples = [s for r in history["rounds"] for s in r["samples"]]
    assert [len(r["samples"]) for r in history["rounds"]] == [3, 3]
    for s in samples:        # the reward exactly as the paper writes it
        assert 0.0 <= s["top1"] <= 1.0
        assert s["reward"] == pytest.approx(s["top1"] * (s["latency"] / TARGET) ** -0.15)
        assert arch.modeling_spec(s["spec"]) == space.decode(s["actions"])
    # the latency is the decoded network's, by the oracle (a fresh count)
    network = oracles.Network(space.decode(samples[0]["actions"]), 32, 4)
    assert samples[0]["latency"] == pytest.approx(oracles.MAddsOracle().latency(network))
    assert history["seed_latency"] == pytest.approx(oracles.MAddsOracle().latency(
        oracles.Network(SMALL, 32, 4)))
    # the controller learned between the rounds, and its states were kept
    assert history["rounds"][0]["controller"]["baseline"] is not None
    assert (out / "controller" / "0001").is_dir() and (out / "controller" / "0002").is_dir()
    trained = [s for s in samples if "worker_pid" in s]
    overlapping = [(a, b) for a in trained for b in trained if a is not b
                   and a["started"] < b["started"] < a["ended"]]
    assert overlapping and all(a["worker_pid"] != b["worker_pid"] for a, b in overlapping)
    # the best networks, best first, as normal run folders of their rows
    best = history["best"]
    assert [b["reward"] for b in best] == sorted((b["reward"] for b in best), reverse=True)
    assert best[0]["reward"] == max(s["reward"] for s in samples)
    from mobilenet_v3.training import run_dir as run_dir_lib
    trained_model = run_dir_lib.load_trained(best[0]["run_dir"])
    assert trained_model.config.arch == space.decode(best[0]["actions"])
    assert (out / "history.png").stat().st_size > 0
    assert "round 2/2" in stdout and "best reward" in stdout


def test_killed_search_resumes_with_the_same_samples(search, tmp_path):
    _, reference, _ = search
    out = tmp_path / "out"
    command, options = _cli(out)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True, **options)
    deadline = time.time() + 600
    try:     # kill it in round 2, once one of its trials has finished (polled often: the
        #      round's other trials may end moments later)
        while not any((out / "trials" / f"0002_{i}" / "run" / "final" / "eval.json").exists()
                      for i in range(3)):
            assert process.poll() is None and time.time() < deadline, "the search ended early"
            time.sleep(0.05)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    with open(out / "history.json") as f:
        assert len(json.load(f)["rounds"]) == 1
    done = subprocess.run(command, capture_output=True, timeout=900, **options)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "(finished earlier)" in done.stdout
    with open(out / "history.json") as f:
        resumed = json.load(f)
    assert _samples(resumed) == _samples(reference)
    # other reward settings are refused with a message, and change nothing
    before = (out / "history.json").read_bytes()
    command, options = _cli(out, "--w=-0.07")
    refused = subprocess.run(command, capture_output=True, timeout=300, **options)
    assert refused.returncode == 1 and "other settings" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert (out / "history.json").read_bytes() == before


def test_bad_input_gets_a_message(tmp_path):
    base = [f"--output_dir={tmp_path / 'out'}", "--dataset=synthetic", "--resolution=32"]
    results = run_cases("nas.py", [
        base,                                                         # no target
        base + ["--target_ms=1", "--seed_arch=" + str(tmp_path / "missing")],
        base + ["--target_ms=1", "--samples_per_round=0"],
    ])
    for r, expected in zip(results, ("--target_ms is required", "missing",
                                     "samples_per_round")):
        assert r["code"] == 1 and expected in r["stderr"], r
        assert "Traceback" not in r["stderr"]
    assert not (tmp_path / "out" / "history.json").exists()

