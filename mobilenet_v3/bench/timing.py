"""Interleaved single-thread timing of .tflite models with the LiteRT interpreter.

Models are timed in turns (A, B, A, B, ...) so that a noisy machine slows them alike; the
minimum over all invokes is the most stable figure (TOOLCHAIN.md), the median is reported too.
"""

import dataclasses
import os
import time
from typing import Dict, List, Optional

import numpy as np

from mobilenet_v3.analysis import tflite_inspect


@dataclasses.dataclass
class Timing:
    name: str
    samples_ms: List[float]

    @property
    def min_ms(self) -> float:
        return float(np.min(self.samples_ms))

    @property
    def median_ms(self) -> float:
        return float(np.median(self.samples_ms))

    @property
    def p90_ms(self) -> float:
        return float(np.percentile(self.samples_ms, 90))


def pin_to_core(core: Optional[int]) -> None:
    """Pins this process to one CPU core (Linux), as the paper pins to one large core."""
    if core is None:
        return
    available = os.sched_getaffinity(0)
    if core not in available:
        raise ValueError(f"core {core} is not available to this process: {sorted(available)}")
    os.sched_setaffinity(0, {core})


def time_interleaved(models: Dict[str, bytes], warmup: int = 20, runs: int = 100,
                     repeats: int = 3, threads: int = 1, seed: int = 0) -> Dict[str, Timing]:
    """Times each model `repeats` x `runs` invokes, taking turns between models."""
    rng = np.random.RandomState(seed)
    interpreters = {}
    for name, tflite in models.items():
        it = tflite_inspect.interpreter(tflite, num_threads=threads)
        inp = it.get_input_details()[0]
        if np.dtype(inp["dtype"]).kind == "f":
            data = rng.uniform(-1, 1, inp["shape"]).astype(inp["dtype"])
        else:
            info = np.iinfo(inp["dtype"])
            data = rng.randint(info.min, info.max + 1, inp["shape"]).astype(inp["dtype"])
        it.set_tensor(inp["index"], data)
        for _ in range(warmup):
            it.invoke()
        interpreters[name] = it
    timings = {name: Timing(name, []) for name in models}
    for _ in range(repeats):
        for name, it in interpreters.items():
            for _ in range(runs):
                start = time.perf_counter_ns()
                it.invoke()
                timings[name].samples_ms.append((time.perf_counter_ns() - start) / 1e6)
    return timings
