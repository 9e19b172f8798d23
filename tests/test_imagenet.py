"""ImageNet through tfds imagenet2012: real preparation from tiny home-made archives in a
manual_dir, tfds.testing.mock_data, the 1000/1001 label conventions and the missing-data error."""

import io
import os
import subprocess
import sys
import tarfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from mobilenet_v3.data import imagenet, pipeline

# Its module-scoped fixtures are built once: keep the file on one xdist worker.
pytestmark = pytest.mark.xdist_group("imagenet")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYNSETS = ("n01440764", "n01443537", "n01484850")   # tfds label ids 0, 1, 2


def _jpeg(seed: int, size: int = 40) -> bytes:
    rng = np.random.RandomState(seed)
    return tf.io.encode_jpeg(rng.randint(0, 255, (size, size + 8, 3), np.uint8)).numpy()


def _add(tar: tarfile.TarFile, name: str, data: bytes):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def make_fake_archives(manual_dir: str, per_class: int = 3, num_val: int = 4):
    """ILSVRC2012_img_train.tar (one inner tar per synset) and ILSVRC2012_img_val.tar laid
    out like the real ones, so the real tfds builder prepares them."""
    os.makedirs(manual_dir, exist_ok=True)
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_train.tar"), "w") as outer:
        for c, synset in enumerate(SYNSETS):
            inner = io.BytesIO()
            with tarfile.open(fileobj=inner, mode="w") as t:
                for i in range(per_class):
                    _add(t, f"{synset}_{i}.JPEG", _jpeg(100 * c + i))
            _add(outer, f"{synset}.tar", inner.getvalue())
    with tarfile.open(os.path.join(manual_dir, "ILSVRC2012_img_val.tar"), "w") as val:
        for i in range(1, num_val + 1):
            _add(val, f"ILSVRC2012_val_{i:08d}.JPEG", _jpeg(1000 + i))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    root = tmp_path_factory.mktemp("imagenet")
    manual, data = str(root / "manual"), str(root / "tfds")
    make_fake_archives(manual)
    builder = imagenet.builder(data, manual)
    return builder, data, manual


def test_real_builder_prepares_fake_archives(prepared):
    builder, _, _ = prepared
    assert builder.is_prepared()
    assert imagenet.num_examples(builder, "train") == 3 * len(SYNSETS)
    assert imagenet.num_examples(builder, "validation") == 4
    labels = sorted(int(l) for _, l in imagenet.examples(builder, "train", 1000))
    assert labels == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    shifted = sorted(int(l) for _, l in imagenet.examples(builder, "train", 1001))
    assert shifted == [l + 1 for l in labels]
    # Validation labels come from tfds' validation_labels.txt: check against that file.
    names = builder.info.features["label"].names
    val_labels = [int(l) for _, l in imagenet.examples(builder, "validation", 1000)]
    assert all(0 <= l < 1000 for l in val_labels) and len(val_labels) == 4
    assert len(names) == 1000


def test_prepared_data_is_read_without_the_archives(prepared):
    _, data, _ = prepared
    source = pipeline.open_source(pipeline.DataConfig(
        source="imagenet", data_dir=data, manual_dir=None, image_size=32, imagenet_classes=1001))
    assert (source.num_train, source.num_eval, source.num_classes) == (9, 4, 1001)
    assert source.class_names[:2] == ("background", SYNSETS[0])
    ctx = tf.distribute.InputContext()
    images, labels, skipped = next(iter(pipeline.train_dataset(
        source, pipeline.DataConfig(source="imagenet", image_size=32, seed=1), 4, ctx)))
    assert images.shape == (4, 32, 32, 3)
    assert float(tf.reduce_min(images)) >= -1.0 and float(tf.reduce_max(images)) <= 1.0
    assert set(labels.numpy()) <= {1, 2, 3} and int(tf.reduce_sum(skipped)) == 0


def test_mock_data_feeds_the_pipelines():
    with tfds.testing.mock_data(num_examples=12):
        config = pipeline.DataConfig(source="imagenet", image_size=32, data_dir="/nonexistent")
        source = pipeline.open_source(config)
        assert source.num_train == 12 and source.num_classes == 1000
        ctx = tf.distribute.InputContext()
        batches = list(pipeline.eval_dataset(source, config, 8, ctx))
        labels = np.concatenate([b[1].numpy() for b in batches])
        assert len(batches) == 2 and (labels >= 0).sum() == 12 and (labels == -1).sum() == 4


def test_missing_imagenet_explains_how_to_prepare(tmp_path):
    with pytest.raises(imagenet.DatasetNotPreparedError, match="ILSVRC2012_img_train.tar"):
        imagenet.builder(str(tmp_path / "tfds"), str(tmp_path / "empty"))
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "train.py"), "--dataset=imagenet",
         f"--data_dir={tmp_path / 'tfds'}", f"--model_dir={tmp_path / 'run'}"],
        capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1
    assert "--manual_dir" in proc.stderr and "image-net.org" in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_imagenet_label_conventions():
    assert imagenet.label_offset(1000) == 0 and imagenet.label_offset(1001) == 1
    with pytest.raises(ValueError, match="1000 classes"):
        imagenet.label_offset(10)
