"""The one exporter of every task: each format's file made, verified, guarded and reported
with the same schema, written atomically and resumable.

Every task's int8 file gets exact calibration, the folded h-swish and, where one int8 scale
cannot hold a tensor of the real weights, float islands chosen per model (mixed_precision.py);
refusal of unplanned float tensors and of saturated int32 biases; a JSON report per file
(report.describe's structure, the task's agreement with its Keras model, the guard, the
settings); atomic writes, and a rerun with the same settings keeps complete files; the guard:
an integer file whose agreement with the model it stands for is below the task's minimum is
kept only as `<name>.rejected.tflite` and the export fails.

A task supplies a `TaskAdapter`: how to make each format's file, how to score a file against
its Keras model (one number for the guard and the search, details for the report), facts of
its own about a file, and which float tensors the format itself needs (the detector's
post-processing op takes float).
"""

import dataclasses
import hashlib
import json
import os
from typing import Callable, Dict, Optional, Sequence, Set, Tuple

import numpy as np

from mobilenet_v3 import files
from mobilenet_v3.analysis import tflite_inspect
from mobilenet_v3.export import file_state, mixed_precision, report as structure
from mobilenet_v3.export import tflite_metadata
from mobilenet_v3.export.errors import ExportError, Int8AgreementError
from mobilenet_v3.export.formats import FORMATS as POLICIES, HEAD_FORMATS as FORMATS

# The h-swish form of each format's graph (formats.py explains why); adapters build these.
FLOAT_FORM, INT8_FORM = POLICIES["float32"].hard_swish_form, POLICIES["int8"].hard_swish_form
DEFAULT_MAX_FLOAT_BLOCKS = 8


@dataclasses.dataclass
class TaskAdapter:
    task: str
    model_record: Dict                                  # model_config.json of the model
    weights: Sequence[np.ndarray]                       # for the settings fingerprint
    float_file: Callable[[str], bytes]                  # float32, float16 or dynamic
    # int8_file(agreement(file) -> value, MixedPolicy) -> (file, {"calibration", "mixed"})
    int8_file: Callable[[Callable[[bytes], float], mixed_precision.MixedPolicy],
                        Tuple[bytes, Dict]]
    # score(file, format): the file vs the Keras model it stands for (float, or QAT's)
    score: Callable[[bytes, str], Dict]
    value_key: str                                      # the key of `score` the guard reads
    search_key: Optional[str] = None                    # what the mixed search raises
    allowed_float: Callable[[bytes], Set[int]] = lambda tflite: set()
    formats: Sequence[str] = FORMATS                    # what this task exports as
    qat_file: Optional[Callable[[], Tuple[bytes, Dict]]] = None   # qat_int8, if offered
    facts: Callable[[bytes, str], Dict] = lambda tflite, fmt: {}  # the task's own report keys
    # card(fmt) -> tflite_metadata.ModelCard keywords of the task (name, description, scores,
    # input_range); the exporter adds labels, version and provenance
    card: Callable[[str], Dict] = lambda fmt: {}


@dataclasses.dataclass
class TaskExportConfig:
    output_dir: str
    formats: Sequence[str] = FORMATS
    basename: str = "model"
    min_agreement: float = 0.9          # guard on adapter.score()[value_key]; 0 turns it off
    target_agreement: float = 0.95      # the mixed search stops here
    max_float_blocks: int = 8          # 0 = pure int8 (DEFAULT_MAX_FLOAT_BLOCKS)
    overwrite: bool = False
    metadata: bool = True               # TFLite metadata for app runtimes (tflite_metadata/)
    source: Optional[str] = None        # the model exported (provenance only, not a setting)
    extra_settings: Optional[Dict] = None   # anything else that decides the files

    def validate(self, offered: Sequence[str] = FORMATS):
        if not [f for f in self.formats if f]:
            raise ExportError(f"no format given: choose from {', '.join(offered)}")
        bad = sorted(set(self.formats) - set(offered))
        if bad:
            raise ExportError(f"this task exports as {', '.join(offered)}; got {bad}")
        for name in ("min_agreement", "target_agreement"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ExportError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.max_float_blocks < 0:
            raise ExportError("max_float_blocks must be >= 0")


def options_from(config, basename: str, min_agreement: float,
                 target_agreement: Optional[float] = None,
                 max_float_blocks: int = DEFAULT_MAX_FLOAT_BLOCKS,
                 extra_settings: Optional[Dict] = None,
                 source: Optional[str] = None) -> TaskExportConfig:
    """An export.ExportConfig (what export_tflite.py's flags give every task) as this
    exporter's config; None fields take the task's defaults (no target: the guard's minimum)."""
    minimum = min_agreement if config.min_int8_agreement is None else config.min_int8_agreement
    return TaskExportConfig(
        output_dir=config.output_dir, formats=tuple(config.formats),
        basename=config.basename or basename, overwrite=config.overwrite,
        metadata=config.metadata, source=source, min_agreement=minimum,
        target_agreement=minimum if target_agreement is None else target_agreement,
        max_float_blocks=max_float_blocks if config.max_float_blocks is None
        else config.max_float_blocks,
        extra_settings={"calibration_images": config.calibration_images,
                        "check_images": config.check_images, "seed": config.seed,
                        **(extra_settings or {})})


def open_data(path: str, data, recorded, open_source: Callable, hint: str):
    """The data source to calibrate and check on: `data` if given, else the run's."""
    data = data if data is not None else recorded
    if data is None:
        raise ExportError(f"{path!r} records no training data; name the images to calibrate "
                          f"and check on (e.g. {hint})")
    try:
        return open_source(data)
    except ValueError as e:
        raise ExportError(str(e)) from None


def _settings(adapter: TaskAdapter, fmt: str, config: TaskExportConfig,
              calibration: Optional[np.ndarray]) -> Dict:
    digest = hashlib.sha256()
    for w in adapter.weights:
        digest.update(np.ascontiguousarray(w).tobytes())
    # int8 is calibrated on them; qat_int8 starts its ranges from them and fine-tunes on their data
    if (POLICIES[fmt].calibrated or POLICIES[fmt].qat) and calibration is not None:
        digest.update(np.ascontiguousarray(calibration).tobytes())
    fields = {k: v for k, v in dataclasses.asdict(config).items()
              if k not in ("output_dir", "formats", "basename", "overwrite", "source")}
    return json.loads(json.dumps({"format": fmt, "model": adapter.model_record,
                                  "weights_and_calibration_sha256": digest.hexdigest(),
                                  **fields}, default=str))


def unplanned_float_tensors(tflite: bytes, allowed: Set[int]) -> list:
    """Float tensors of an int8 file other than its I/O and `allowed` (tensor indices)."""
    it = tflite_inspect.interpreter(tflite, xnnpack=False)
    io = {d["index"] for d in it.get_input_details() + it.get_output_details()}
    used = {int(i) for op in it._get_ops_details()
            for i in list(op["inputs"]) + list(op["outputs"])}
    return [d["name"] for d in it.get_tensor_details()
            if d["index"] in used - io - allowed and np.dtype(d["dtype"]).kind == "f"]


def _checked(adapter: TaskAdapter, tflite: bytes, fmt: str, extra: Dict) -> Dict:
    report = dict(structure.describe(tflite, fmt), **adapter.facts(tflite, fmt))
    if not POLICIES[fmt].integer:
        return report
    report["saturated_biases"] = tflite_inspect.saturated_biases(tflite)
    unplanned = unplanned_float_tensors(tflite, adapter.allowed_float(tflite))
    report["float_tensors_inside"] = unplanned
    if unplanned and not extra.get("mixed", {}).get("float_tensors"):
        raise ExportError(f"{fmt}: float tensors inside the int8 graph: {unplanned[:5]}")
    if report["saturated_biases"]:
        raise ExportError(f"{fmt}: int32 biases clipped at the int32 limit (their weight "
                          f"scale is ~0): "
                          f"{dict(list(report['saturated_biases'].items())[:3])}")
    return report


def _prepare(out: str):
    try:
        os.makedirs(out, exist_ok=True)
        for name in os.listdir(out):
            if name.startswith(".tmp-"):
                os.remove(os.path.join(out, name))
    except OSError as e:
        raise ExportError(f"cannot write to output_dir {out!r}: {e.strerror or e}") from None


def export(adapter: TaskAdapter, labels: Sequence[str], calibration: Optional[np.ndarray],
           config: TaskExportConfig, log: Callable[[str], None] = print) -> Dict[str, Dict]:
    """Writes each format's .tflite + .json and labels.txt; returns {format: report}."""
    config.validate(adapter.formats)
    if "int8" in config.formats and (calibration is None or not len(calibration)):
        raise ExportError("int8 needs calibration images")
    out = config.output_dir
    _prepare(out)
    targets = {f: os.path.join(out, f"{config.basename}_{f}.tflite") for f in config.formats}
    settings = {f: _settings(adapter, f, config, calibration) for f in targets}
    plan = {}
    for f, t in targets.items():
        plan[f], ours = (None, True) if config.overwrite else file_state.earlier(t, settings[f])
        if not ours:
            raise FileExistsError(f"{t} exists and was made from another model or with other "
                                  "settings; pass --overwrite to replace it")
    # Labels first: a killed export never leaves files without their labels.
    files.atomic_write_text(os.path.join(out, "labels.txt"), "\n".join(labels) + "\n")
    reports = {}
    for fmt, target in targets.items():
        if plan[fmt] is not None:
            log(f"{fmt}: {target} is complete with the same settings; kept")
            reports[fmt] = plan[fmt]
            continue
        reports[fmt] = _export_one(adapter, fmt, target, settings[fmt], calibration, config,
                                   labels, log)
    failed = {f: r for f, r in reports.items() if r.get("guard", {}).get("verdict") == "FAIL"}
    if failed:
        parts = [f"{f}: {adapter.value_key} {r['guard']['value']:.3f} against "
                 f"{r['guard']['compared_with']} on {r['guard']['images']} check images is "
                 f"below --min_int8_agreement={config.min_agreement:g}"
                 for f, r in failed.items()]
        raise Int8AgreementError(
            "; ".join(parts) + ". Not written under its name; kept as "
            + ", ".join(r["file"] for r in failed.values()) + " with its report. Allow more "
            "float blocks (--max_float_blocks), use more calibration images, or lower "
            "--min_int8_agreement (0 turns the guard off).")
    return reports


def _export_one(adapter, fmt, target, settings, calibration, config, labels, log) -> Dict:
    extra = {}
    if POLICIES[fmt].qat:
        log(f"{fmt}: fine-tuning with fake quantization, then converting")
        tflite, extra = adapter.qat_file()
    elif fmt != "int8":
        log(f"{fmt}: converting")
        tflite = adapter.float_file(fmt)
    else:
        log(f"int8: calibrating on {len(calibration)} images")
        policy = mixed_precision.MixedPolicy(config.target_agreement, config.max_float_blocks,
                                             enabled=config.max_float_blocks > 0)
        key = adapter.search_key or adapter.value_key
        tflite, extra = adapter.int8_file(lambda f: adapter.score(f, fmt)[key], policy)
    report = _checked(adapter, tflite, fmt, extra)
    report.update(extra, file=os.path.basename(target), labels_file="labels.txt",
                  task=adapter.task)
    report.setdefault("model", adapter.model_record)           # the task may name the graph's
    report.setdefault("hard_swish_form", POLICIES[fmt].hard_swish_form)
    report["agreement"] = dict({"reference": "the float Keras model"},
                               **adapter.score(tflite, fmt))
    value = report["agreement"][adapter.value_key]
    reference = report["agreement"]["reference"]
    line = (f"{fmt}: {{}} {target} ({{size:.2f}} MB, "
            f"{report['xnnpack_partitions']} XNNPACK partition(s), {adapter.value_key} "
            f"{value:.4f} vs {reference}")
    if POLICIES[fmt].integer:
        kept = extra.get("mixed", {}).get("float_blocks", [])
        line += f", float blocks: {', '.join(kept) if kept else 'none'}"
        verdict = "pass" if value >= config.min_agreement else "FAIL"
        report["guard"] = {"metric": adapter.value_key, "min": config.min_agreement,
                           "value": value, "compared_with": reference,
                           "images": report["agreement"].get("images"), "verdict": verdict}
        line += f"; guard {verdict} (min {config.min_agreement:g})"
    if config.metadata:
        tflite = with_metadata(adapter, tflite, fmt, labels, settings, report, config)
        report["metadata"] = tflite_metadata.read(tflite)
        report["size_bytes"] = len(tflite)            # describe() measured the bare file
        for text in tflite_metadata.summary(report["metadata"]):
            log(f"{fmt}: {text}")
    if POLICIES[fmt].integer:
        if report["guard"]["verdict"] != "pass":
            rejected = file_state.write_rejected(target, tflite, report)
            log(line.format("REJECTED, kept as", size=len(tflite) / 1e6)
                .replace(target, rejected) + ")")
            return report
    report.update(written=True, export_settings=settings,
                  sha256=file_state.sha256(tflite),
                  replaces_sha256=file_state.current_sha256(target))
    files.atomic_write_json(target[:-len(".tflite")] + ".json", report, True)
    files.atomic_write(target, tflite, True)
    log(line.format("wrote", size=len(tflite) / 1e6) + ")")
    return report


def with_metadata(adapter: TaskAdapter, tflite: bytes, fmt: str, labels: Sequence[str],
                  settings: Dict, report: Dict, config: TaskExportConfig) -> bytes:
    """The file with its TFLite metadata (export/tflite_metadata), re-scored on the check
    images: it must measure exactly what the file without metadata measured, in every task."""
    card = adapter.card(fmt)
    agreement = report["agreement"]
    measured = (f"{adapter.value_key.replace('_', ' ')} {agreement[adapter.value_key]:.4f} "
                f"with {agreement['reference']} on {agreement.get('images')} held-out images")
    provenance = {"exported_by": f"mobilenet-v3 {package_version()}", "format": fmt,
                  "source": config.source, "task": adapter.task,
                  "architecture": report.get("model", adapter.model_record),
                  "weights_and_calibration_sha256":
                      settings["weights_and_calibration_sha256"],
                  **{key: report[key] for key in ("calibration", "mixed", "agreement", "guard",
                                                  "eval", "hard_swish_form") if key in report}}
    made = tflite_metadata.ModelCard(**dict(
        card, task=adapter.task, labels=labels, provenance=provenance,
        version=settings["weights_and_calibration_sha256"][:12],
        name=card.get("name", config.basename),
        description=f"{card.get('description', adapter.task)}; {fmt}; {measured}."))
    try:
        written = tflite_metadata.attach(tflite, made)
    except tflite_metadata.MetadataError as e:
        raise ExportError(f"{fmt}: cannot write its TFLite metadata: {e}") from None
    again = dict({"reference": "the float Keras model"}, **adapter.score(written, fmt))
    if again != agreement:
        raise ExportError(f"{fmt}: the file with metadata measures {again} where the file "
                          f"without measured {agreement} (a bug in the metadata writer); "
                          "not written")
    return written


def package_version() -> str:
    from importlib import metadata
    try:
        return metadata.version("mobilenet-v3")
    except metadata.PackageNotFoundError:
        return "unknown"
