"""Latency oracles behind one interface: `measure(networks) -> [ms]`, cached by architecture.

  host    this machine's LiteRT interpreter, one thread, pinned to one core; the networks are
          timed in turns with a reference (the current network) and the minimum of several
          rounds is kept, scaled by the reference's cached figure so that the drift of a noisy
          machine between steps does not look like a latency change
  phone   android_bench: the TFLite benchmark tool over adb, one thread, a large core
          (paper 6.1.2); the tool's average
  table   per-piece latencies (stem, each bottleneck at its input size, the last stage)
          measured once on `host` or `phone` and summed; `errors()` compares its predictions
          with full measurements
  madds   multiply-adds (millions) from the cost counter: deterministic, no device

Every oracle times the float32 inference graph of the network (batch 1, the in-graph [0, 255]
-> [-1, 1] rescale, softmax), built with random weights: latency does not depend on them.
"""

import dataclasses
import json
import os
import tempfile
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import tf_keras

from mobilenet_v3 import files
from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.search import arch as arch_lib
from mobilenet_v3.specs import ArchSpec

ORACLES = ("host", "phone", "table", "madds")


@dataclasses.dataclass(frozen=True)
class Network:
    """What latency depends on: the rows, the input size, the classes."""

    spec: ArchSpec
    resolution: int
    classes: int

    @property
    def key(self) -> str:
        return arch_lib.key(self.spec, self.resolution, self.classes)

    def config(self) -> ModelConfig:
        return arch_lib.with_spec(ModelConfig.from_flat(name=_table_name(self.spec)), self.spec) \
            .replace(input_shape=(self.resolution, self.resolution, 3), classes=self.classes,
                     include_top=True, batch_size=1, include_preprocessing=True,
                     classifier_activation="softmax", dropout_rate=0.0)


def _table_name(spec: ArchSpec) -> str:
    return "large" if spec.name.startswith("large") else "small"


def tflite_of(model: tf_keras.Model) -> bytes:
    from mobilenet_v3.export import convert
    return convert.convert(model, "float32")


def network_tflite(network: Network) -> bytes:
    from mobilenet_v3.modeling.builders import build_model
    tf_keras.backend.clear_session()
    return tflite_of(build_model(network.config()))


# ---- the cache ------------------------------------------------------------------------------
class Cache:
    """{oracle id: {network key: ms}} in one JSON file, written atomically after each entry."""

    def __init__(self, path: Optional[str]):
        self.path, self.entries = path, {}
        if path and os.path.exists(path):
            try:
                with open(path) as f:
                    self.entries = json.load(f)
            except (OSError, ValueError) as e:
                raise ValueError(f"latency cache {path!r} is unreadable ({e}); move it away "
                                 "to measure again") from None

    def get(self, oracle: str, key: str) -> Optional[float]:
        return self.entries.get(oracle, {}).get(key)

    def put(self, oracle: str, key: str, value: float):
        self.entries.setdefault(oracle, {})[key] = float(value)
        if self.path:
            files.atomic_write_json(self.path, self.entries)


class Oracle:
    """measure(): ms per network, the cached figure when this oracle already measured it."""

    name = "oracle"
    unit = "ms"

    def __init__(self, cache: Optional[Cache] = None):
        self.cache = cache or Cache(None)
        self.reference: Optional[Network] = None   # the current network (host: timed along)

    @property
    def id(self) -> str:
        return self.name

    def measure(self, networks: Sequence[Network]) -> List[float]:
        todo = [n for n in dict.fromkeys(networks) if self.cache.get(self.id, n.key) is None]
        if todo:
            for network, value in zip(todo, self._measure(todo)):
                self.cache.put(self.id, network.key, value)
        return [self.cache.get(self.id, n.key) for n in networks]

    def latency(self, network: Network) -> float:
        return self.measure([network])[0]

    def measure_uncached(self, networks: Sequence[Network]) -> List[float]:
        """Measured now, together, with no reference: for a final comparison."""
        saved, self.reference = self.reference, None
        try:
            return self._measure(list(networks))
        finally:
            self.reference = saved

    def _measure(self, networks: List[Network]) -> List[float]:
        raise NotImplementedError


# ---- host -----------------------------------------------------------------------------------
@dataclasses.dataclass
class HostSettings:
    core: Optional[int] = None      # default: the last core this process may use
    warmup: int = 10
    runs: int = 50
    repeats: int = 3


def time_tflite(models: Dict[str, bytes], settings: HostSettings) -> Dict[str, float]:
    """Min ms per model: one thread pinned to one core, the models in turns (bench.timing)."""
    from mobilenet_v3.bench import timing
    allowed = os.sched_getaffinity(0)
    core = max(allowed) if settings.core is None else settings.core
    os.sched_setaffinity(0, {core})    # the calling thread: LiteRT invokes on it
    try:
        timings = timing.time_interleaved(models, warmup=settings.warmup, runs=settings.runs,
                                          repeats=settings.repeats, threads=1)
    finally:
        os.sched_setaffinity(0, allowed)
    return {name: t.min_ms for name, t in timings.items()}


class HostOracle(Oracle):
    name = "host"

    def __init__(self, cache=None, settings: Optional[HostSettings] = None):
        super().__init__(cache)
        self.settings = settings or HostSettings()

    def time_models(self, models: Dict[str, bytes]) -> Dict[str, float]:
        return time_tflite(models, self.settings)

    def _measure(self, networks):
        models = {f"n{i}": network_tflite(n) for i, n in enumerate(networks)}
        ref = self.reference
        ref_ms = self.cache.get(self.id, ref.key) if ref is not None else None
        if ref_ms is not None:
            models["reference"] = network_tflite(ref)
        measured = self.time_models(models)
        scale = ref_ms / measured["reference"] if ref_ms is not None else 1.0
        return [measured[f"n{i}"] * scale for i in range(len(networks))]


# ---- phone ----------------------------------------------------------------------------------
@dataclasses.dataclass
class PhoneSettings:
    output_dir: str
    benchmark_binary: Optional[str] = None
    serial: Optional[str] = None
    adb_path: str = "adb"
    warmup_runs: int = 20
    num_runs: int = 50
    cooldown_seconds: float = 1.0
    delegate: str = "xnnpack"


def time_on_phone(paths: List[str], settings: PhoneSettings,
                  log: Callable[[str], None] = lambda text: None) -> Dict[str, float]:
    """Average ms per file from one android_bench run (its folder under output_dir)."""
    from android_bench import bench
    config = bench.BenchConfig(
        models=paths, output_dir=settings.output_dir, benchmark_binary=settings.benchmark_binary,
        serial=settings.serial, adb_path=settings.adb_path, warmup_runs=settings.warmup_runs,
        num_runs=settings.num_runs, cooldown_seconds=settings.cooldown_seconds,
        delegate=settings.delegate)
    outcome = bench.run(config, log=log)
    return {row["path"]: row["avg_us"] / 1000.0 for row in outcome["results"]}


class PhoneOracle(Oracle):
    name = "phone"

    def __init__(self, settings: PhoneSettings, cache=None, log=lambda text: None):
        super().__init__(cache)
        self.settings, self.log = settings, log

    @property
    def id(self):
        return f"phone:{self.settings.serial or 'default'}:{self.settings.delegate}"

    def time_models(self, models: Dict[str, bytes]) -> Dict[str, float]:
        """One android_bench run over all the models (files in a temporary folder)."""
        with tempfile.TemporaryDirectory() as folder:
            paths = {}
            for i, (name, tflite) in enumerate(models.items()):
                paths[name] = os.path.join(folder, f"netadapt_{i}.tflite")
                files.atomic_write(paths[name], tflite)
            measured = time_on_phone(list(paths.values()), self.settings, self.log)
        return {name: measured[path] for name, path in paths.items()}

    def _measure(self, networks):
        measured = self.time_models({f"n{i}": network_tflite(n) for i, n in enumerate(networks)})
        return [measured[f"n{i}"] for i in range(len(networks))]


# ---- lookup table ---------------------------------------------------------------------------
def _pieces(network: Network):
    """(piece key, builder) per piece: the stem, every bottleneck at its input size, the last
    stage (last conv, pool, head, logits)."""
    from mobilenet_v3.modeling import backbone, classifier, layers as layers_lib, naming
    config = network.config()
    scaled = config.scaled_arch
    batch_norm = backbone.batch_norm_factory(config)
    size = network.resolution

    def stem():
        x = inputs = tf_keras.Input((size, size, 3), batch_size=1)
        x = tf_keras.layers.Rescaling(1 / 127.5, offset=-1.0)(x)
        x = layers_lib.conv_bn_act(x, scaled.stem_channels, 3, 2, scaled.spec.stem_nl,
                                   naming.STEM, batch_norm)
        return tf_keras.Model(inputs, x)
    pieces = [(json.dumps(["stem", size, scaled.stem_channels, scaled.spec.stem_nl]), stem)]
    size = (size + 1) // 2
    for block in scaled.blocks:
        def bneck(block=block, size=size):
            x = inputs = tf_keras.Input((size, size, block.in_channels), batch_size=1)
            x, _ = layers_lib.inverted_residual(x, block, naming.bneck(block.index), batch_norm)
            return tf_keras.Model(inputs, x)
        row = dataclasses.asdict(block)
        row.pop("index")
        pieces.append((json.dumps(["bneck", size, row], sort_keys=True), bneck))
        size = (size + block.stride - 1) // block.stride

    def tail(size=size):
        x = inputs = tf_keras.Input((size, size, scaled.blocks[-1].out), batch_size=1)
        x = layers_lib.conv_bn_act(x, scaled.last_conv_channels, 1, 1, scaled.spec.last_conv_nl,
                                   naming.LAST_CONV, batch_norm)
        return tf_keras.Model(inputs, classifier.classifier_head(x, config))
    pieces.append((json.dumps(["tail", size, scaled.last_conv_channels, scaled.head_channels,
                               network.classes, scaled.spec.last_conv_nl,
                               scaled.spec.head_nl]), tail))
    return pieces


class TableOracle(Oracle):
    """Sums per-piece latencies measured once on `base` (host or phone); each piece is a
    network of its own to the base oracle's timing, cached under 'table/<base id>'."""

    name = "table"

    def __init__(self, base: Oracle, cache=None):
        if not hasattr(base, "time_models"):
            raise ValueError(f"a lookup table sums timed pieces: its base must be a timing "
                             f"oracle (host or phone), not {base.name}")
        super().__init__(cache)
        self.base = base

    @property
    def id(self):
        return f"table/{self.base.id}"

    def _piece_ms(self, pieces) -> Dict[str, float]:
        store = f"{self.id}/pieces"
        todo = {k: build for k, build in pieces if self.cache.get(store, k) is None}
        if todo:
            models = {}
            for k, build in todo.items():
                tf_keras.backend.clear_session()
                models[k] = tflite_of(build())
            for k, ms in self._time(models).items():
                self.cache.put(store, k, ms)
        return {k: self.cache.get(store, k) for k, _ in pieces}

    def _time(self, models: Dict[str, bytes]) -> Dict[str, float]:
        named = {f"p{i}": tflite for i, tflite in enumerate(models.values())}
        measured = self.base.time_models(named)
        return {k: measured[f"p{i}"] for i, k in enumerate(models)}

    def _measure(self, networks):
        result = []
        for network in networks:
            pieces = _pieces(network)
            ms = self._piece_ms(pieces)
            result.append(float(sum(ms[k] for k, _ in pieces)))
        return result


# ---- MAdds ----------------------------------------------------------------------------------
class MAddsOracle(Oracle):
    name = "madds"
    unit = "M MAdds"

    def _measure(self, networks):
        from mobilenet_v3.analysis import cost
        from mobilenet_v3.modeling.builders import build_model
        values = []
        for network in networks:
            tf_keras.backend.clear_session()
            values.append(cost.totals(cost.profile(build_model(network.config()))).madds / 1e6)
        return values


def error_table(predicted: Sequence[float], measured: Sequence[float]) -> Dict:
    """The lookup table's error against full measurements: per network and summarised."""
    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    rel = (p - m) / m
    return {"relative_errors": [float(x) for x in rel],
            "mean_abs_relative_error": float(np.mean(np.abs(rel))) if len(rel) else None,
            "max_abs_relative_error": float(np.max(np.abs(rel))) if len(rel) else None}
