"""TFLite export of a trained MobileNetV3: every format verified and described in a report.

`export(trained, config)` writes, per format, `<name>_<format>.tflite`, a JSON report beside it
and `labels.txt`. Files are written atomically (temporary name, then rename) and existing files
are kept unless `overwrite=True`.

h-swish form per format (benchmark/RESULTS.md, "int8 export"): float formats keep the fused
HARD_SWISH op; integer formats use the 'unfused' form, (x/6) * ReLU6(x+3), which XNNPACK runs in
int8, so the whole int8 graph stays in one XNNPACK partition instead of ~20.
"""

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import tensorflow as tf
import tf_keras

from mobilenet_v3 import conversion, optimizer as optimizer_lib, quantization, tflite_inspect
from mobilenet_v3.data import pipeline
from mobilenet_v3.layers import HARD_SWISH_FORMS
from mobilenet_v3.model import ModelConfig, build_model

FORMATS = ("float32", "float16", "dynamic", "int8", "qat_int8")
DEFAULT_HARD_SWISH_FORM = {"float32": "fused", "float16": "fused", "dynamic": "fused",
                           "int8": "unfused", "qat_int8": "unfused"}
IO_DTYPES = {"int8": tf.int8, "uint8": tf.uint8, "float32": tf.float32}


class ExportError(ValueError):
    """Bad input to the exporter: a clear message, nothing written."""


@dataclasses.dataclass
class ExportConfig:
    output_dir: str
    formats: Sequence[str] = ("float32", "int8")
    basename: Optional[str] = None            # default: e.g. mobilenet_v3_small_0.5_64
    include_preprocessing: bool = False       # [0, 255] input with the rescale in the graph
    classifier_activation: Optional[str] = None   # None: logits; 'softmax'
    io_dtype: str = "int8"                    # int8 / qat_int8 input and output type
    hard_swish_form: Optional[str] = None     # None: the measured default per format
    calibration_images: int = 200             # int8 PTQ representative set (training split)
    check_images: int = 64                    # held-out images compared with Keras
    eval_images: int = 0                      # top-1 over this many held-out images (0: off)
    qat_steps: int = 200
    qat_batch_size: int = 32
    qat_learning_rate: float = 1e-4
    overwrite: bool = False
    seed: int = 0

    def validate(self):
        unknown = [f for f in self.formats if f not in FORMATS]
        if unknown or not self.formats:
            raise ExportError(f"unknown format(s) {unknown or list(self.formats)}; choose from "
                              f"{FORMATS}")
        if self.io_dtype not in IO_DTYPES:
            raise ExportError(f"io_dtype must be one of {tuple(IO_DTYPES)}, got "
                              f"{self.io_dtype!r}")
        if self.hard_swish_form not in (None,) + HARD_SWISH_FORMS:
            raise ExportError(f"hard_swish_form must be one of {HARD_SWISH_FORMS}, got "
                              f"{self.hard_swish_form!r}")
        if "int8" in self.formats and self.calibration_images < 1:
            raise ExportError("int8 needs calibration_images >= 1 (a representative set)")
        if "qat_int8" in self.formats and (self.qat_steps < 1 or self.qat_batch_size < 1):
            raise ExportError("qat_int8 needs qat_steps >= 1 and qat_batch_size >= 1")
        if self.check_images < 1 or self.eval_images < 0:
            raise ExportError("check_images must be >= 1 and eval_images >= 0")


@dataclasses.dataclass
class TrainedModel:
    """A trained network plus what describes it (from a train.py model_dir or a .keras file)."""
    model: tf_keras.Model
    config: ModelConfig
    labels: List[str]
    data: Optional[pipeline.DataConfig] = None     # the training data, if known


# ---- loading -----------------------------------------------------------------------------

def _model_config_from_json(d: Dict) -> ModelConfig:
    d = dict(d)
    d["input_shape"] = tuple(d["input_shape"])
    known = {f.name for f in dataclasses.fields(ModelConfig)}
    return ModelConfig(**{k: v for k, v in d.items() if k in known})


def _data_config_from_run(model_dir: str) -> Optional[pipeline.DataConfig]:
    path = os.path.join(model_dir, "train_config.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        data = json.load(f).get("data", {})
    known = {f.name for f in dataclasses.fields(pipeline.DataConfig)}
    return pipeline.DataConfig(**{k: v for k, v in data.items() if k in known})


def load_trained(path: str) -> TrainedModel:
    """A train.py model_dir (final/ or, failing that, the newest checkpoint's EMA weights)
    or a saved .keras/.h5 model with model_config.json beside it."""
    if not os.path.exists(path):
        raise ExportError(f"no trained model at {path!r} (expected a train.py --model_dir or "
                          "a .keras file)")
    if os.path.isdir(path):
        final = os.path.join(path, "final", "model.keras")
        if os.path.exists(final):
            trained = load_trained(final)
            trained.data = _data_config_from_run(path)
            return trained
        return _load_checkpoint(path)
    folder = os.path.dirname(os.path.abspath(path))
    config_path = os.path.join(folder, "model_config.json")
    if not os.path.exists(config_path):
        raise ExportError(f"{path!r} has no model_config.json beside it; export needs the "
                          "ModelConfig it was built from (train.py writes one)")
    with open(config_path) as f:
        config = _model_config_from_json(json.load(f))
    try:
        model = tf_keras.models.load_model(path, compile=False)
    except Exception as e:
        raise ExportError(f"cannot load {path!r} as a Keras model: {e}") from None
    labels_path = os.path.join(folder, "labels.txt")
    labels = open(labels_path).read().split("\n") if os.path.exists(labels_path) else []
    labels = [l for l in labels if l] or [f"class_{i}" for i in range(config.classes)]
    return TrainedModel(model, config, labels)


def _load_checkpoint(model_dir: str) -> TrainedModel:
    config_path = os.path.join(model_dir, "train_config.json")
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if not os.path.exists(config_path) or not latest:
        raise ExportError(f"{model_dir!r} is not a train.py model_dir: it has neither "
                          "final/model.keras nor train_config.json with checkpoints/")
    with open(config_path) as f:
        run = json.load(f)
    config = _model_config_from_json(run["trained_model"])
    model = build_model(config)
    # A schedule (like training's), so the optimizer has no learning-rate variable that the
    # checkpoint would lack.
    unused_schedule = tf_keras.optimizers.schedules.ExponentialDecay(0.0, 1, 1.0)
    opt = optimizer_lib.build_optimizer(optimizer_lib.OptimizerConfig(
        **run.get("optimizer", {})), unused_schedule)
    opt.build(model.trainable_variables)
    try:
        tf.train.Checkpoint(model=model, optimizer=opt).restore(latest).expect_partial() \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise ExportError(f"checkpoint {latest!r} does not match the model in "
                          f"train_config.json: {e}") from None
    averages = optimizer_lib.ema_values(opt, model.trainable_variables)
    if averages is not None:
        for v, a in zip(model.trainable_variables, averages):
            v.assign(a)
    return TrainedModel(model, config, [f"class_{i}" for i in range(config.classes)],
                        _data_config_from_run(model_dir))


# ---- models for export -------------------------------------------------------------------

def export_model_config(config: ModelConfig, hard_swish_form: str, include_preprocessing: bool,
                        classifier_activation: Optional[str],
                        batch_size: Optional[int] = 1) -> ModelConfig:
    return dataclasses.replace(config, batch_size=batch_size, hard_swish_form=hard_swish_form,
                               include_preprocessing=include_preprocessing,
                               classifier_activation=classifier_activation, weight_decay=0.0)


def rebuild(trained: TrainedModel, config: ModelConfig) -> tf_keras.Model:
    """`config`'s network carrying the trained weights (the variants differ in no weight)."""
    model = build_model(config)
    model.set_weights(trained.model.get_weights())
    return model


def hard_swish_sites(model: tf_keras.Model) -> int:
    """How many h-swish activations the network has (in either form)."""
    names = {layer.name for layer in model.layers}
    return sum(1 for layer in model.layers if isinstance(layer, tf_keras.layers.Multiply)
               and (f"{layer.name}_hsig_add3" in names or f"{layer.name}_add3" in names))


# ---- data --------------------------------------------------------------------------------

def images_from(source: pipeline.Source, image_size: int, split: str, count: int,
                seed: int = 0):
    """(images [-1, 1], labels): `count` evaluation-preprocessed examples of `split`.

    Training examples are a seeded sample (for calibration); held-out ones come in order.
    """
    if split == "train":
        if source.train_element is not None:
            n = source.num_train
            order = tf.random.experimental.index_shuffle(
                tf.range(min(count, n), dtype=tf.int64), tf.constant([seed, 7], tf.int64),
                n - 1)
            ds = tf.data.Dataset.from_tensor_slices(order).map(source.train_element)
        else:
            ds = source.train_stream(seed, None).map(
                lambda img, label: (pipeline.decode_image(img), label))
    else:
        ds = source.eval_examples()
    ds = ds.map(lambda img, label: (pipeline.preprocessing.eval_preprocess(img, image_size),
                                    label), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.ignore_errors(log_warning=True).take(count).batch(64)
    images, labels = [], []
    for x, y in ds:
        images.append(x.numpy())
        labels.append(y.numpy())
    if not images:
        raise ExportError(f"no readable images in the {split} split of the {source.name} data")
    return np.concatenate(images), np.concatenate(labels)


def to_model_input(images: np.ndarray, include_preprocessing: bool) -> np.ndarray:
    """[-1, 1] images as the exported model wants them ([0, 255] with in-graph rescale)."""
    return ((images + 1.0) * 127.5).astype(np.float32) if include_preprocessing else images


# ---- writing -----------------------------------------------------------------------------

def atomic_write(path: str, data: bytes, overwrite: bool):
    """Writes to a temporary file in the same folder, then renames: never a partial file."""
    if os.path.exists(path) and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True (--overwrite) to replace it")
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path) or ".", prefix=".tmp-",
                               suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _tensor_info(details: Dict) -> Dict:
    scale, zero = details["quantization"]
    info = {"name": details["name"], "shape": details["shape"].tolist(),
            "dtype": np.dtype(details["dtype"]).name}
    if scale:
        info["quantization"] = {"scale": float(scale), "zero_point": int(zero)}
    return info


def describe(tflite: bytes, fmt: str, form: str, sites: int) -> Dict:
    """The structural part of a report: ops, partitions, h-swish, dtypes, size."""
    histogram = tflite_inspect.op_histogram(tflite)
    it = tflite_inspect.interpreter(tflite)
    hs_ops = histogram.get("HARD_SWISH", 0)
    report = {
        "format": fmt, "size_bytes": len(tflite), "hard_swish_form": form,
        "op_histogram": histogram, "xnnpack_partitions": tflite_inspect.xnnpack_partitions(tflite),
        "hard_swish": {"activations": sites, "HARD_SWISH_ops": hs_ops,
                       "single_op_each": hs_ops == sites,
                       "as_expected": hs_ops == (sites if form == "fused" else 0),
                       "expected": "one HARD_SWISH op per h-swish" if form == "fused" else
                       "none: ADD(+RELU6) and two MULs per h-swish, all in XNNPACK"},
        "inputs": [_tensor_info(d) for d in it.get_input_details()],
        "outputs": [_tensor_info(d) for d in it.get_output_details()],
    }
    if fmt in ("int8", "qat_int8"):
        report["float_tensors_inside"] = tflite_inspect.float_tensors_inside(tflite)
    return report


def agreement(tflite: bytes, reference: tf_keras.Model, images: np.ndarray) -> Dict:
    ours = tflite_inspect.run(tflite, images)
    theirs = np.concatenate([reference(images[i:i + 32], training=False).numpy()
                             for i in range(0, len(images), 32)])
    return {"images": int(len(images)),
            "max_abs_diff": float(np.abs(ours - theirs).max()),
            "top1_agreement": float(np.mean(ours.argmax(-1) == theirs.argmax(-1)))}


def top1(tflite: bytes, images: np.ndarray, labels: np.ndarray) -> Dict:
    predictions = tflite_inspect.run(tflite, images).argmax(-1)
    return {"images": int(len(images)), "top1": float(np.mean(predictions == labels))}


# ---- QAT ---------------------------------------------------------------------------------

def qat_finetune(trained: TrainedModel, data: pipeline.DataConfig, config: ExportConfig,
                 form: str, work_dir: str) -> tf_keras.Model:
    """tfmot quantize_apply on our model, fine-tuned with the training loop for qat_steps."""
    from mobilenet_v3.schedule import ScheduleConfig
    from mobilenet_v3.trainer import TrainConfig, Trainer
    base_config = export_model_config(trained.config, form, False, None, batch_size=None)

    def model_fn(_):
        return quantization.quantize_model(rebuild(trained, base_config))
    train_config = TrainConfig(
        model_dir=work_dir, model=base_config, data=data,
        schedule=ScheduleConfig(base_learning_rate=config.qat_learning_rate,
                                base_batch_size=config.qat_batch_size, warmup_epochs=0.0,
                                decay_rate=1.0),
        optimizer=optimizer_lib.OptimizerConfig(use_ema=False),
        global_batch_size=config.qat_batch_size, train_steps=config.qat_steps,
        log_every_steps=max(1, config.qat_steps // 4),
        checkpoint_every_steps=config.qat_steps, seed=config.seed)
    with quantization.quantize_scope():
        trainer = Trainer(train_config, model_fn=model_fn)
        trainer.train()
    return trainer.model


# ---- the export --------------------------------------------------------------------------

def default_basename(config: ModelConfig) -> str:
    name = f"mobilenet_v3_{config.name}" + ("_minimalistic" if config.minimalistic else "")
    return f"{name}_{config.alpha:g}_{config.input_shape[0]}"


def export(trained: TrainedModel, config: ExportConfig,
           data: Optional[pipeline.DataConfig] = None,
           log: Callable[[str], None] = print) -> Dict[str, Dict]:
    """Writes every requested format; returns {format: report}."""
    config.validate()
    data = data or trained.data
    if data is None:
        raise ExportError("no dataset to calibrate and check on: name one (e.g. "
                          "--dataset=image_folder --image_folder=...)")
    data = dataclasses.replace(data, image_size=trained.config.input_shape[0])
    os.makedirs(config.output_dir, exist_ok=True)
    base = config.basename or default_basename(trained.config)
    targets = {fmt: os.path.join(config.output_dir, f"{base}_{fmt}.tflite")
               for fmt in config.formats}
    if not config.overwrite:
        existing = [p for p in targets.values() if os.path.exists(p)]
        if existing:
            raise FileExistsError(f"{existing[0]} exists; pass overwrite=True (--overwrite) "
                                  "to replace it")

    source = pipeline.open_source(data)          # once: scanning/preparing can be slow
    held_out, held_out_labels = images_from(source, data.image_size, "eval",
                                            max(config.check_images, config.eval_images))
    check, check_labels = held_out[:config.check_images], held_out_labels[:config.check_images]
    evaluation = (held_out[:config.eval_images], held_out_labels[:config.eval_images]) \
        if config.eval_images else None
    calibration = images_from(source, data.image_size, "train", config.calibration_images,
                              config.seed)[0] if "int8" in config.formats else None
    pre = config.include_preprocessing
    reports = {}
    for fmt in config.formats:
        form = config.hard_swish_form or DEFAULT_HARD_SWISH_FORM[fmt]
        log(f"{fmt}: converting ({form} h-swish)")
        reference_config = export_model_config(trained.config, form, pre,
                                               config.classifier_activation)
        if fmt == "qat_int8":
            if pre or config.classifier_activation:
                raise ExportError("qat_int8 is exported as logits without in-graph "
                                  "preprocessing (either would be a float island in the int8 "
                                  "graph; the int8 input scale does the rescale)")
            work = tempfile.mkdtemp(prefix=".qat-", dir=config.output_dir)
            try:
                reference = qat_finetune(trained, data, config, form, work)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            tflite = conversion.convert(reference, "int8",
                                        io_dtype=IO_DTYPES[config.io_dtype])
        else:
            reference = rebuild(trained, reference_config)
            images = (lambda: to_model_input(calibration, pre)) if fmt == "int8" else None
            tflite = conversion.convert(
                reference, fmt, representative_images=images,
                io_dtype=IO_DTYPES[config.io_dtype] if fmt == "int8" else tf.float32)
        sites = hard_swish_sites(reference if fmt != "qat_int8" else build_model(reference_config))
        report = describe(tflite, fmt, form, sites)
        report["agreement"] = dict(
            agreement(tflite, reference, to_model_input(check, pre)),
            reference="the QAT Keras model" if fmt == "qat_int8" else "the Keras model")
        report["agreement"]["top1_vs_labels"] = float(np.mean(
            tflite_inspect.run(tflite, to_model_input(check, pre)).argmax(-1) == check_labels))
        if evaluation is not None:
            report["eval"] = top1(tflite, to_model_input(evaluation[0], pre), evaluation[1])
        report["file"] = os.path.basename(targets[fmt])
        report["labels_file"] = "labels.txt"
        report["model"] = dataclasses.asdict(reference_config)
        if fmt in ("int8", "qat_int8") and report["float_tensors_inside"]:
            raise ExportError(f"{fmt}: float tensors inside the int8 graph: "
                              f"{report['float_tensors_inside'][:5]}")
        atomic_write(targets[fmt], tflite, config.overwrite)
        atomic_write(targets[fmt][:-len(".tflite")] + ".json",
                     json.dumps(report, indent=2, default=str).encode(), True)
        log(f"{fmt}: wrote {targets[fmt]} ({len(tflite) / 1e6:.2f} MB, "
            f"{report['xnnpack_partitions']} XNNPACK partition(s), top-1 agreement "
            f"{report['agreement']['top1_agreement']:.3f}, max |diff| "
            f"{report['agreement']['max_abs_diff']:.2g})")
        reports[fmt] = report
    atomic_write(os.path.join(config.output_dir, "labels.txt"),
                 ("\n".join(trained.labels) + "\n").encode(), True)
    return reports
