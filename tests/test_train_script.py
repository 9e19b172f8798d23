"""train.py end to end in real processes: kill -9 and resume, SIGTERM, mirrored on two
logical CPUs, two multi_worker processes on loopback, an image folder with corrupt files."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
import tf_keras

from conftest import run_cases

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN = os.path.join(ROOT, "train.py")
TINY = ["--model=small", "--alpha=0.35", "--resolution=32", "--dataset=synthetic",
        "--synthetic_train_examples=512", "--synthetic_eval_examples=64", "--batch_size=16",
        "--ema_momentum=0.9", "--base_learning_rate=0.4", "--warmup_epochs=0.5",
        "--log_every_steps=20"]


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.pop("TF_CONFIG", None)
    env.update(extra)
    return env


def _train(*args, timeout=600, **kwargs):
    return subprocess.run([sys.executable, TRAIN, *TINY, *args], capture_output=True,
                          text=True, env=_env(), timeout=timeout, **kwargs)


def _final_weights(model_dir):
    model = tf_keras.models.load_model(os.path.join(model_dir, "final", "model.keras"))
    return [w.numpy() for w in model.weights]


def _checkpoint_steps(model_dir):
    state = os.path.join(model_dir, "checkpoints", "checkpoint")
    if not os.path.exists(state):
        return []
    return sorted(int(f.split("-")[1].split(".")[0]) for f in
                  os.listdir(os.path.join(model_dir, "checkpoints")) if f.endswith(".index"))


def _start(model_dir, *args):
    return subprocess.Popen([sys.executable, TRAIN, *TINY, f"--model_dir={model_dir}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=_env())


def _wait_for_checkpoint(proc, model_dir, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if _checkpoint_steps(model_dir):
            return
        if proc.poll() is not None:
            raise AssertionError("training ended before its first checkpoint:\n"
                                 + proc.stdout.read())
        time.sleep(0.05)
    raise AssertionError("no checkpoint appeared")


@pytest.mark.slow
def test_sigkill_then_resume_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    # Fine-tuning, killed while the backbone is frozen: the resume restores the checkpoint (no
    # re-import), unfreezes at step 48 (3 epochs of 16 steps) and ends as the straight run.
    steps = ["--synthetic_train_examples=256", "--train_steps=64",
             "--checkpoint_every_steps=5", "--deterministic",
             "--keep_checkpoints=2", "--freeze_backbone_epochs=3",
             f"--init_weights={_pretrained_folder(tmp_path / 'pretrained')}"]
    killed_dir = tmp_path / "killed"
    proc = _start(killed_dir, *steps)
    _wait_for_checkpoint(proc, str(killed_dir))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    saved = _checkpoint_steps(str(killed_dir))
    assert saved and max(saved) < 48 and not (killed_dir / "final").exists()

    # The uninterrupted run and the resume, one after the other in one process.
    straight, resumed = run_cases("train.py", [
        TINY + [f"--model_dir={tmp_path / 'straight'}", *steps],
        TINY + [f"--model_dir={killed_dir}", *steps]])
    assert straight["code"] == 0, straight["stderr"][-3000:]
    assert "initialized from" in straight["stdout"] and \
        "step 48: backbone unfrozen" in straight["stdout"]
    assert resumed["code"] == 0, resumed["stderr"][-3000:]
    assert f"resumed at step {max(saved)}" in resumed["stdout"]
    assert "initialized from" not in resumed["stdout"]
    assert "step 48: backbone unfrozen" in resumed["stdout"]
    assert len(_checkpoint_steps(str(killed_dir))) == 2          # keeps the last K
    for a, b in zip(_final_weights(tmp_path / "straight"), _final_weights(killed_dir)):
        np.testing.assert_array_equal(a, b)
    top1 = [json.loads((d / "final" / "eval.json").read_text())["top1"]
            for d in (tmp_path / "straight", killed_dir)]
    assert top1[0] == top1[1]


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_that_a_rerun_resumes(tmp_path):
    model_dir = tmp_path / "run"
    proc = _start(model_dir, "--train_steps=100000", "--checkpoint_every_steps=10")
    _wait_for_checkpoint(proc, str(model_dir))
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 143, out[-3000:]
    assert "SIGTERM: checkpoint saved at step" in out
    step = int(out.split("checkpoint saved at step ")[1].split(";")[0])
    assert step in _checkpoint_steps(str(model_dir)) and step < 100000
    # The checkpoint is usable: a rerun restores it and continues to a later end.
    rerun = _train(f"--model_dir={model_dir}", f"--train_steps={step + 5}",
                   "--checkpoint_every_steps=10")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert f"resumed at step {step}" in rerun.stdout
    assert json.loads((model_dir / "final" / "eval.json").read_text())["step"] == step + 5


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus(tmp_path):
    proc = _train(f"--model_dir={tmp_path}", "--strategy=mirrored", "--logical_cpus=2",
                  "--train_steps=20", "--checkpoint_every_steps=10", "--log_every_steps=10")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 replica(s), global batch 16" in proc.stdout
    losses = [float(line.split("loss ")[1].split()[0]) for line in proc.stdout.splitlines()
              if line.startswith("step ")]
    assert len(losses) == 2 and all(np.isfinite(losses))
    assert _checkpoint_steps(str(tmp_path)) == [10, 20]
    assert json.loads((tmp_path / "final" / "eval.json").read_text())["examples"] == 64


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_multi_worker_processes_end_with_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers},
                                "task": {"type": "worker", "index": index}})
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests", "train_worker.py"),
             str(tmp_path / "run"), str(tmp_path / f"worker{index}.npz")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env=_env(TF_CONFIG=tf_config)))
    outputs = []
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        outputs.append(out)
        assert proc.returncode == 0, out[-3000:]
    w0, w1 = (np.load(tmp_path / f"worker{i}.npz") for i in range(2))
    assert int(w0["replicas"]) == 2 and int(w0["step"]) == int(w1["step"]) == 6
    arrays = [k for k in w0.files if k.startswith("arr_")]
    assert len(arrays) > 50
    for key in arrays:
        np.testing.assert_array_equal(w0[key], w1[key])
    # Only the chief wrote the shared model_dir; the other worker's scratch is gone.
    run = tmp_path / "run"
    assert (run / "final" / "model.keras").exists()
    assert _checkpoint_steps(str(run)) == [3, 6]
    scratch = list((run / "workers").rglob("*")) if (run / "workers").exists() else []
    assert scratch == []
    assert "step 6/6" in outputs[0] and "step 6/6" not in outputs[1]


@pytest.mark.slow
def test_image_folder_with_corrupt_jpegs_trains_and_counts_them(tmp_path):
    rng = np.random.RandomState(0)
    for c in range(3):
        os.makedirs(tmp_path / "data" / f"class{c}")
        for i in range(12):
            data = tf.io.encode_jpeg(np.full((24, 24, 3), 80 * c, np.uint8)
                                     + rng.randint(0, 20, (24, 24, 3)).astype(np.uint8)).numpy()
            if i < 3:
                data = data[: len(data) // 3] if i % 2 else b"\x00garbage"
            (tmp_path / "data" / f"class{c}" / f"{i}.jpg").write_bytes(data)
    proc = subprocess.run(
        [sys.executable, TRAIN, "--model=small", "--alpha=0.35", "--resolution=32",
         "--dataset=image_folder", f"--image_folder={tmp_path / 'data'}",
         "--held_out_fraction=0.25", "--batch_size=8", "--train_steps=16",
         "--log_every_steps=8", f"--model_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, env=_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    skipped = sum(int(line.split("skipped ")[1].split()[0])
                  for line in proc.stdout.splitlines() if "unreadable files" in line)
    assert skipped > 0
    result = json.loads((tmp_path / "run" / "final" / "eval.json").read_text())
    assert result["examples"] + result["skipped"] == 9
    assert (tmp_path / "run" / "final" / "labels.txt").read_text().split() == \
        ["class0", "class1", "class2"]
    mask = os.umask(0)
    os.umask(mask)
    for written in ("train_config.json", "final/labels.txt", "final/model_config.json"):
        assert os.stat(tmp_path / "run" / written).st_mode & 0o777 == 0o666 & ~mask, written


def _degenerate_folders(root):
    """Folders train.py must refuse: no readable image, an empty class, a single class."""
    for name in ("a", "b"):
        os.makedirs(root / "unreadable" / name)
        for i in range(8):
            (root / "unreadable" / name / f"{i}.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    jpeg = tf.io.encode_jpeg(np.zeros((8, 8, 3), np.uint8)).numpy()
    for folder, classes in (("empty_class", ("a", "b", "c")), ("one_class", ("a",))):
        for name in classes:
            os.makedirs(root / folder / name)
            for i in range(4 if name != "c" else 0):
                (root / folder / name / f"{i}.jpg").write_bytes(jpeg)
    return [(["--dataset=image_folder", f"--image_folder={root / 'unreadable'}"],
             "no readable image among the 14 training files tried"),
            (["--dataset=image_folder", f"--image_folder={root / 'empty_class'}"],
             "['c'] under"),
            (["--dataset=image_folder", f"--image_folder={root / 'one_class'}"],
             "at least 2 class sub-folders")]


def _pretrained_folder(path, alpha=0.35, classes=10):
    """One of our own models as --init_weights (a convert folder: model.keras + config)."""
    from mobilenet_v3 import ModelConfig, build_model
    from mobilenet_v3.weights.convert import write_folder
    config = ModelConfig.from_flat(name="small", alpha=alpha, input_shape=(32, 32, 3),
                                   classes=classes)
    tf_keras.utils.set_random_seed(1)
    write_folder(build_model(config), config, str(path))
    return str(path)


def test_bad_flags_fail_clearly(tmp_path):
    pretrained = _pretrained_folder(tmp_path / "small_0.35")
    cases = _degenerate_folders(tmp_path)[:1] + [
             (["--batch_size=0"], "global_batch_size"),
             ([f"--init_weights={tmp_path / 'missing.tflite'}"],
              f"init_weights: weights file not found: '{tmp_path / 'missing.tflite'}'"),
             ([f"--init_weights={pretrained}", "--model=large", "--minimalistic"],
              "--model: the file has small, the run large; --minimalistic: the file has False, "
              "the run True"),
             (["--task=detect"], "--task must be one of classification, detection"),
             (["--dataset=image_folder"], "image_folder"),
             (["--dataset=image_folder", f"--image_folder={tmp_path / 'missing'}"],
              "image folder not found")]
    results = run_cases("train.py", [TINY + [f"--model_dir={tmp_path / 'run'}", *args]
                                     for args, _ in cases])
    for (args, message), result in zip(cases, results):
        assert result["code"] == 1, (args, result["stderr"][-2000:])
        assert message in result["stderr"], (args, result["stderr"][-2000:])
        assert "Traceback" not in result["stderr"], (args, result["stderr"][-2000:])
    # absl's own parsing, in a real process: fails before TensorFlow is imported.
    proc = _train(f"--model_dir={tmp_path / 'run'}", "--bogus_flag=1", timeout=300)
    assert proc.returncode == 1 and "Unknown command line flag" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.fixture
def small_mount(tmp_path):
    """A 1 MB tmpfs (full disk) and a read-only tmpfs; skipped where mounting is not allowed."""
    mounts = {"full": tmp_path / "full", "readonly": tmp_path / "readonly"}
    done = []
    try:
        for name, options in (("full", "size=1m"), ("readonly", "ro,size=1m")):
            mounts[name].mkdir()
            result = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs",
                                     str(mounts[name])], capture_output=True, text=True)
            if result.returncode:
                pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
            done.append(mounts[name])
        yield mounts
    finally:
        for path in done:
            subprocess.run(["umount", str(path)], capture_output=True)


def test_unwritable_model_dirs_fail_clearly(tmp_path, small_mount):
    (tmp_path / "a_file").write_text("")
    cases = [(tmp_path / "a_file", "is a file, not a folder"),
             (small_mount["readonly"] / "run", "cannot write to --model_dir"),
             (small_mount["full"] / "run", "could not read or write")]
    results = run_cases("train.py", [
        TINY + [f"--model_dir={model_dir}", "--train_steps=2", "--log_every_steps=1",
                "--checkpoint_every_steps=1"] for model_dir, _ in cases])
    for (model_dir, message), result in zip(cases, results):
        assert result["code"] == 1, (model_dir, result["stderr"][-2000:])
        assert message in result["stderr"] and "Traceback" not in result["stderr"], \
            result["stderr"][-2000:]
    full = results[-1]["stderr"]
    assert "checkpoints" in full and "rerun" in full                 # the full disk's advice


@pytest.mark.slow
def test_resume_refuses_changed_settings_falls_back_from_a_damaged_checkpoint_and_cleans_up(
        tmp_path):
    run = tmp_path / "run"
    first = _train(f"--model_dir={run}", "--train_steps=8", "--checkpoint_every_steps=4")
    assert first.returncode == 0, first.stderr[-2000:]
    assert _checkpoint_steps(run) == [4, 8]
    (run / "final.tmp-99999").mkdir()                      # what a kill leaves behind
    (run / "checkpoints" / "ckpt-8_temp").mkdir()
    data = run / "checkpoints" / "ckpt-8.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])   # truncated

    # The three reruns in one process (one TensorFlow start-up), as three commands would be.
    args = TINY + [f"--model_dir={run}"]
    changed, resumed, allowed = run_cases("train.py", [
        args + ["--train_steps=12", "--checkpoint_every_steps=4", "--batch_size=32",
                "--seed=3"],
        args + ["--train_steps=12", "--checkpoint_every_steps=4"],
        args + ["--train_steps=14", "--checkpoint_every_steps=2", "--base_learning_rate=0.1",
                "--allow_changed_settings"]])
    assert changed["code"] == 1 and "Traceback" not in changed["stderr"]
    assert "--batch_size: 16 then, 32 now" in changed["stderr"], changed["stderr"][-2000:]
    assert "--seed: 0 then, 3 now" in changed["stderr"]
    # (a refused run that had rewritten train_config.json would make the next one refused)
    assert resumed["code"] == 0, resumed["stderr"][-2000:]
    assert "ckpt-8 is damaged" in resumed["stderr"] and "resumed at step 4" in resumed["stdout"]
    assert "step 12/12" in resumed["stdout"]
    assert not (run / "final.tmp-99999").exists()
    assert not (run / "checkpoints" / "ckpt-8_temp").exists()

    assert allowed["code"] == 0, allowed["stderr"][-2000:]
    kept = [f for f in os.listdir(run) if f.startswith("train_config.") and f != "train_config.json"]
    assert len(kept) == 1 and json.loads((run / kept[0]).read_text())["schedule"][
        "base_learning_rate"] == 0.4
    assert json.loads((run / "train_config.json").read_text())["schedule"][
        "base_learning_rate"] == 0.1
