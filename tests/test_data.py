import numpy as np
import pytest
import tensorflow as tf

from mobilenet_v3.data.preprocessing import eval_preprocess, train_preprocess
from mobilenet_v3.data.synthetic import synthetic_dataset


def _arrays(dataset):
    images, labels = zip(*[(i.numpy(), l.numpy()) for i, l in dataset])
    return np.stack(images), np.array(labels)


def test_synthetic_is_deterministic_balanced_and_seeded():
    a_images, a_labels = _arrays(synthetic_dataset(40, num_classes=10, image_size=32, seed=3))
    b_images, b_labels = _arrays(synthetic_dataset(40, num_classes=10, image_size=32, seed=3))
    c_images, _ = _arrays(synthetic_dataset(40, num_classes=10, image_size=32, seed=4))
    np.testing.assert_array_equal(a_images, b_images)
    np.testing.assert_array_equal(a_labels, b_labels)
    assert not np.array_equal(a_images, c_images)
    assert a_images.dtype == np.uint8 and a_images.shape == (40, 32, 32, 3)
    assert np.bincount(a_labels).tolist() == [4] * 10
    assert a_images.std() > 20    # real contrast, not a flat image
    # an offset selects a disjoint, reproducible slice
    tail, _ = _arrays(synthetic_dataset(10, num_classes=10, image_size=32, seed=3, offset=30))
    np.testing.assert_array_equal(tail, a_images[30:])


def test_bad_synthetic_arguments():
    with pytest.raises(ValueError, match="num_classes"):
        synthetic_dataset(10, num_classes=1)


def test_preprocessing_ranges_shapes_and_determinism():
    image = tf.constant(np.random.RandomState(0).randint(0, 256, (50, 70, 3)), tf.uint8)
    a = train_preprocess(image, tf.constant([1, 2]), 40).numpy()
    b = train_preprocess(image, tf.constant([1, 2]), 40).numpy()
    c = train_preprocess(image, tf.constant([1, 3]), 40).numpy()
    assert a.shape == (40, 40, 3) and a.min() >= -1 and a.max() <= 1
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    e = eval_preprocess(image, 40).numpy()
    assert e.shape == (40, 40, 3) and e.min() >= -1 and e.max() <= 1
    # central crop: a frame of 0 around a 255 centre keeps only the centre
    framed = np.zeros((80, 80, 3), np.uint8)
    framed[5:75, 5:75] = 255
    np.testing.assert_allclose(eval_preprocess(framed, 16).numpy(), 1.0)
