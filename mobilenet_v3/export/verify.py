"""Checks an exported file against its Keras model: LiteRT runs the file once per export.

Agreement (top-1, max |diff|) with the reference, top-1 against the labels and the optional
held-out evaluation are all derived from that one run over the held-out images.
"""

from typing import Dict, Optional

import numpy as np
import tf_keras

from mobilenet_v3.analysis import tflite_inspect


def keras_outputs(model: tf_keras.Model, images: np.ndarray, batch: int = 32) -> np.ndarray:
    return np.concatenate([model(images[i:i + batch], training=False).numpy()
                           for i in range(0, len(images), batch)])


def _agreement(ours: np.ndarray, theirs: np.ndarray) -> Dict:
    """Top-1 agreement counts the reference's class when the file's top score is tied: a
    uint8 softmax output (1/256 steps, Google's files have one) cannot rank classes closer
    than a step, and picking the lower index of a tie is no quantization error. How often the
    file's top is tied is reported (top1_ties)."""
    top5 = np.argsort(-theirs, axis=-1)[:, :5]
    best = ours.max(-1)
    reference_top = theirs.argmax(-1)
    return {"images": int(len(ours)),
            "max_abs_diff": float(np.abs(ours - theirs).max()),
            "top1_agreement": float(np.mean(
                ours[np.arange(len(ours)), reference_top] == best)),
            "top1_ties": float(np.mean((ours == best[:, None]).sum(-1) > 1)),
            "top1_in_reference_top5": float(np.mean(
                np.any(top5 == ours.argmax(-1)[:, None], axis=-1)))}


def verify(tflite: bytes, reference: tf_keras.Model, reference_name: str, images: np.ndarray,
           labels: np.ndarray, check_images: int, eval_images: int = 0,
           float_reference: Optional[tf_keras.Model] = None) -> Dict:
    """The first `check_images` are compared with `reference`; the first `eval_images` (if
    any) are scored against their labels. `images` are as the file takes them.

    `float_reference` (integer formats): the float model the file stands for; with it the
    report also has `agreement_with_float` (for PTQ it is `reference` itself, whose h-swish
    form changes no value; for QAT it is the model before fake quantization).
    """
    outputs = tflite_inspect.run(tflite, images[:max(check_images, eval_images)])
    ours, theirs = outputs[:check_images], keras_outputs(reference, images[:check_images])
    report = {"agreement": {
        **_agreement(ours, theirs), "reference": reference_name,
        "top1_vs_labels": float(np.mean(ours.argmax(-1) == labels[:check_images]))}}
    if float_reference is not None:
        floats = theirs if float_reference is reference else \
            keras_outputs(float_reference, images[:check_images])
        report["agreement_with_float"] = {
            **_agreement(ours, floats), "reference": "the float Keras model",
            "float_top1_vs_labels": float(np.mean(floats.argmax(-1) == labels[:check_images]))}
    if eval_images:
        predicted = outputs[:eval_images].argmax(-1)
        report["eval"] = {"images": int(len(predicted)),
                          "top1": float(np.mean(predicted == labels[:eval_images]))}
    return report
