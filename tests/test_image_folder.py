import os
import re

import numpy as np
import pytest
import tensorflow as tf

from mobilenet_v3.data import image_folder

SHARED_CIFAR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "datasets",
                            "cifar10", "train")


def _write_folder(root, per_class=4):
    rng = np.random.RandomState(0)
    for name in ("cat", "dog"):
        os.makedirs(root / name)
        for i in range(per_class):
            pixels = rng.randint(0, 256, (12, 10, 3)).astype(np.uint8)
            encode = tf.io.encode_png if i % 2 else tf.io.encode_jpeg
            ext = "png" if i % 2 else "jpg"
            tf.io.write_file(str(root / name / f"{i}.{ext}"), encode(pixels))
    (root / "cat" / "notes.txt").write_text("not an image")


def test_scan_split_and_decode(tmp_path):
    _write_folder(tmp_path)
    folder = image_folder.scan(str(tmp_path))
    assert folder.class_names == ("cat", "dog")
    assert len(folder.files) == 8 and folder.labels.count(0) == 4
    train, held = image_folder.split(folder, 0.25, seed=1)
    assert len(held.files) == 2 and sorted(held.labels) == [0, 1]   # stratified
    assert image_folder.split(folder, 0.5, seed=1)[1].labels == (0, 1, 0, 1)   # interleaved
    assert not set(train.files) & set(held.files)
    assert image_folder.split(folder, 0.25, seed=1) == (train, held)  # reproducible
    images = list(image_folder.dataset(folder))
    assert len(images) == 8
    assert images[0][0].dtype == tf.uint8 and images[0][0].shape == (12, 10, 3)


def test_corrupt_images_are_skipped_not_fatal(tmp_path):
    _write_folder(tmp_path)
    (tmp_path / "dog" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a jpeg")
    good = tmp_path / "cat" / "0.jpg"
    (tmp_path / "cat" / "truncated.jpg").write_bytes(good.read_bytes()[:40])
    folder = image_folder.scan(str(tmp_path))
    assert len(folder.files) == 10
    decoded = list(image_folder.dataset(folder))
    assert len(decoded) == 8    # the two unreadable files are skipped
    assert [int(label) for _, label in decoded].count(1) == 4


def test_clear_errors_for_unusable_folders(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        image_folder.scan(str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="no class sub-folders"):
        image_folder.scan(str(tmp_path))
    os.makedirs(tmp_path / "empty_class")
    with pytest.raises(ValueError, match="no .jpg"):
        image_folder.scan(str(tmp_path))



def test_class_list_sets_the_labels_and_keeps_classes_without_images(tmp_path):
    """A pretrained model's label space (e.g. ImageNet's 1001) over a folder holding a few of
    its classes: labels follow the list; classes without a folder or image keep theirs."""
    _write_folder(tmp_path / "data")
    os.makedirs(tmp_path / "data" / "bird")                      # listed, no image
    listed = tmp_path / "labels.txt"
    listed.write_text("background\ndog\nbird\nfish\ncat\n")
    folder = image_folder.scan(str(tmp_path / "data"), str(listed))
    assert folder.class_names == ("background", "dog", "bird", "fish", "cat")
    assert sorted(set(folder.labels)) == [1, 4] and folder.labels.count(4) == 4
    assert all(("/cat/" in f) == (label == 4) for f, label in zip(folder.files, folder.labels))
    train, held = image_folder.split(folder, 0.25, seed=0)
    assert sorted(held.labels) == [1, 4]
    with pytest.raises(ValueError, match="hold no"):             # without the list: refused
        image_folder.scan(str(tmp_path / "data"))
    listed.write_text("background\ndog\n")
    with pytest.raises(ValueError, match=r"\['bird', 'cat'\].*not in the class list"):
        image_folder.scan(str(tmp_path / "data"), str(listed))
    listed.write_text("dog\ndog\ncat\n")
    with pytest.raises(ValueError, match="repeated"):
        image_folder.scan(str(tmp_path / "data"), str(listed))
    with pytest.raises(FileNotFoundError, match="cannot be read"):
        image_folder.scan(str(tmp_path / "data"), str(tmp_path / "missing.txt"))


def test_degenerate_folders_are_refused(tmp_path):
    from test_train_script import _degenerate_folders
    from mobilenet_v3.data import pipeline
    for args, message in _degenerate_folders(tmp_path):
        root = args[1].split("=", 1)[1]
        config = pipeline.DataConfig(source="image_folder", image_folder=root, image_size=32,
                                     held_out_fraction=0.1)   # train.py's default
        with pytest.raises(ValueError, match=re.escape(message)):
            pipeline.open_source(config)


@pytest.mark.skipif(not os.path.isdir(SHARED_CIFAR),
                    reason="../shared/datasets/cifar10 is not on this machine")
def test_reads_real_cifar10_jpegs():
    folder = image_folder.scan(SHARED_CIFAR)
    assert len(folder.class_names) == 10 and "airplane" in folder.class_names
    sample = image_folder.ImageFolder(
        folder.class_names,
        tuple(folder.files[i] for i in range(0, len(folder.files), 5000)),
        tuple(folder.labels[i] for i in range(0, len(folder.files), 5000)))
    decoded = list(image_folder.dataset(sample))
    assert [int(label) for _, label in decoded] == list(range(10))
    assert all(image.shape == (32, 32, 3) for image, _ in decoded)
