"""Training/eval input pipelines: resumable order, worker sharding, skip counting, padding."""

import os

import numpy as np
import pytest
import tensorflow as tf

from mobilenet_v3.data import pipeline

CONFIG = pipeline.DataConfig(source="synthetic", image_size=16, num_classes=4,
                             synthetic_train_examples=24, synthetic_eval_examples=10, seed=3)


def _batches(config, global_batch, start_step, count, pipelines=1, pipeline_id=0,
             replicas=1):
    source = pipeline.open_source(config)
    ctx = tf.distribute.InputContext(num_input_pipelines=pipelines,
                                     input_pipeline_id=pipeline_id,
                                     num_replicas_in_sync=replicas)
    ds = pipeline.train_dataset(source, config, global_batch, ctx, start_step)
    return [tuple(t.numpy() for t in b) for b in ds.take(count)]


def test_a_resumed_pipeline_continues_with_the_same_batches():
    full = _batches(CONFIG, 8, 0, 7)
    resumed = _batches(CONFIG, 8, 4, 3)
    for a, b in zip(full[4:], resumed):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


def test_each_epoch_is_a_permutation_and_epochs_differ():
    labels = np.concatenate([b[1] for b in _batches(CONFIG, 8, 0, 6)])   # 2 epochs of 24
    first, second = labels[:24], labels[24:]
    assert sorted(first) == sorted(second) == sorted(np.arange(24) % 4)
    images = [b[0] for b in _batches(CONFIG, 8, 0, 6)]
    assert not np.array_equal(images[0], images[3])


def test_two_workers_split_each_global_batch_between_them():
    single = _batches(CONFIG, 8, 0, 2)
    w0 = _batches(CONFIG, 8, 0, 2, pipelines=2, pipeline_id=0, replicas=2)
    w1 = _batches(CONFIG, 8, 0, 2, pipelines=2, pipeline_id=1, replicas=2)
    for step in range(2):
        merged = np.empty_like(single[step][0])
        merged[0::2], merged[1::2] = w0[step][0], w1[step][0]
        np.testing.assert_allclose(merged, single[step][0], atol=1e-6)


def test_unreadable_files_are_skipped_and_counted(tmp_path):
    rng = np.random.RandomState(0)
    corrupt = 0
    for c in ("cat", "dog"):
        os.makedirs(tmp_path / c)
        for i in range(6):
            data = tf.io.encode_jpeg(rng.randint(0, 255, (20, 20, 3), np.uint8)).numpy()
            if i in (1, 4):          # a truncated JPEG and a text file named .jpg
                data = data[:40] if i == 1 else b"not an image"
                corrupt += 1
            (tmp_path / c / f"{i}.jpg").write_bytes(data)
    config = pipeline.DataConfig(source="image_folder", image_folder=str(tmp_path),
                                 held_out_fraction=0.0001, image_size=16)
    # held_out_fraction rounds to zero files per class: that is refused with a clear error.
    with pytest.raises(ValueError, match="too few images"):
        pipeline.open_source(config)
    config.held_out_fraction = 1 / 6
    source = pipeline.open_source(config)
    assert source.num_train == 10
    ctx = tf.distribute.InputContext()
    ds = pipeline.train_dataset(source, config, 2, ctx)
    # The documented order: position p reads index_shuffle(p mod N, (seed, epoch)). Walk it
    # to know how many unreadable files lie before the 2k-th readable one.
    files = source_files(config)
    bad = [os.path.basename(f) in ("1.jpg", "4.jpg") for f in files]
    assert any(bad)
    batches = 9
    expected_skips, good, position = 0, 0, 0
    while good < 2 * batches:
        index = int(tf.random.experimental.index_shuffle(
            position % 10, tf.constant([config.seed, position // 10], tf.int64), 9))
        if bad[index]:
            expected_skips += 1
        else:
            good += 1
        position += 1
    skipped = sum(int(s.numpy().sum()) for _, _, s in ds.take(batches))
    assert skipped == expected_skips >= 2 * sum(bad) - 2


def source_files(config):
    from mobilenet_v3.data import image_folder
    train, _ = image_folder.split(image_folder.scan(config.image_folder),
                                  config.held_out_fraction, config.seed)
    return train.files


def test_eval_pass_is_padded_evenly_and_masked():
    source = pipeline.open_source(CONFIG)
    for pipelines, pid in ((1, 0), (2, 0), (2, 1)):
        ctx = tf.distribute.InputContext(pipelines, pid, pipelines)
        batches = list(pipeline.eval_dataset(source, CONFIG, 4, ctx))
        labels = np.concatenate([b[1].numpy() for b in batches])
        assert len(batches) == pipeline.eval_steps(10, 4)    # same count on every pipeline
        assert (labels >= 0).sum() == (10 if pipelines == 1 else 5)


def test_bad_data_config_is_refused():
    with pytest.raises(ValueError, match="unknown data source"):
        pipeline.DataConfig(source="coco").validate()
    with pytest.raises(ValueError, match="image_folder"):
        pipeline.DataConfig(source="image_folder").validate()
    with pytest.raises(ValueError, match="min_crop_area"):
        pipeline.DataConfig(min_crop_area=0).validate()
