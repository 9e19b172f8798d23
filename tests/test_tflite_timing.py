import os

import numpy as np
import pytest

from mobilenet_v3.bench import timing as tflite_timing
from mobilenet_v3 import ModelConfig, build_model
from mobilenet_v3.export import convert as conversion

# Its module-scoped fixtures are built once: keep the file on one xdist worker.
pytestmark = pytest.mark.xdist_group("tflite_timing")


@pytest.fixture(scope="module")
def tiny_models():
    def tflite(alpha):
        return conversion.convert(build_model(ModelConfig.from_flat(
            name="small", alpha=alpha, input_shape=(64, 64, 3), classes=10,
            include_preprocessing=False)))
    return {"narrow": tflite(0.35), "wide": tflite(1.0)}


def test_interleaved_timing_statistics_on_real_models(tiny_models):
    timings = tflite_timing.time_interleaved(tiny_models, warmup=2, runs=15, repeats=2)
    assert set(timings) == {"narrow", "wide"}
    for t in timings.values():
        assert len(t.samples_ms) == 30 and all(s > 0 for s in t.samples_ms)
        assert t.min_ms <= t.median_ms <= t.p90_ms <= max(t.samples_ms)
        assert t.median_ms == pytest.approx(float(np.median(t.samples_ms)))
    # 3x the channels is measurably slower, whatever the machine's noise
    assert timings["wide"].min_ms > timings["narrow"].min_ms


def test_pin_to_core():
    before = os.sched_getaffinity(0)
    try:
        core = min(before)
        tflite_timing.pin_to_core(core)
        assert os.sched_getaffinity(0) == {core}
        with pytest.raises(ValueError, match="not available"):
            tflite_timing.pin_to_core(10_000)
    finally:
        os.sched_setaffinity(0, before)
