"""Platform-aware NAS (paper 4.1, MnasNet): a controller samples networks from the search
space, each is trained briefly from scratch and timed on the latency oracle, and the controller
learns from the reward ACC(m) x [LAT(m)/TAR]^w.

Round by round: sample `samples_per_round` networks (seeded by the round), time them all
(between trainings, never during), train them in parallel on Ray (trials/RRRR_I/run, normal
train.py run folders), score them, update the controller, then record the round in
history.json and the controller's state in controller/RRRR. A killed search rerun with the
same settings restores the last recorded round's controller and draws the same networks;
finished trials are read back, not retrained. `algorithm='random'` samples uniformly (the
baseline the controller must beat with the same trial budget).
"""

import dataclasses
import os
import time
from typing import Callable, Dict, List, Optional

import numpy as np

from mobilenet_v3.search import (arch as arch_lib, controller as controller_lib, finetune,
                                 oracles, records, workers)
from mobilenet_v3.search.records import SearchError
from mobilenet_v3.search.space import SearchSpace

HISTORY, CACHE = "history.json", "latency_cache.json"
ALGORITHMS = ("controller", "random")
W_LARGE, W_SMALL = -0.07, -0.15     # the paper's exponents


def reward(accuracy: float, latency: float, target: float, w: float,
           hard: bool = False) -> float:
    """MnasNet eq. 2 as the paper writes it: ACC(m) x [LAT(m)/TAR]^w. hard: MnasNet's hard
    constraint (exponent 0 within the target, -1 beyond it)."""
    exponent = (0.0 if latency <= target else -1.0) if hard else w
    return float(accuracy * (latency / target) ** exponent)


@dataclasses.dataclass
class NASConfig:
    output_dir: str
    base: object                    # modeling.ModelConfig: the seed network (its rows: the space)
    train: object                   # training.TrainConfig: the proxy training of every sample
    target: float                   # TAR, in the oracle's unit
    w: float = W_SMALL
    hard: bool = False
    rounds: int = 10
    samples_per_round: int = 4
    algorithm: str = "controller"
    controller: controller_lib.ControllerConfig = dataclasses.field(
        default_factory=controller_lib.ControllerConfig)
    seed: int = 0
    keep_best: int = 5

    def validate(self):
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}, got {self.algorithm!r}")
        if not self.target > 0:
            raise ValueError(f"the latency target must be > 0, got {self.target!r}")
        if self.rounds < 1 or self.samples_per_round < 1 or self.keep_best < 1:
            raise ValueError("rounds, samples_per_round and keep_best must be >= 1")
        self.controller.validate()

    def record(self, oracle: oracles.Oracle) -> Dict:
        """What a resume must keep unchanged (more rounds may be asked for)."""
        t = self.train
        return {"seed_network": dataclasses.asdict(arch_lib.spec_of(self.base)),
                "oracle": oracle.id, "unit": oracle.unit, "target": self.target, "w": self.w,
                "hard": self.hard, "samples_per_round": self.samples_per_round,
                "algorithm": self.algorithm, "seed": self.seed,
                "controller": dataclasses.asdict(self.controller),
                "proxy_steps": t.train_steps, "batch_size": t.global_batch_size,
                "learning_rate": t.schedule.base_learning_rate,
                "data": dataclasses.asdict(t.data)}


class NAS:
    def __init__(self, config: NASConfig, oracle: oracles.Oracle, ray: workers.RayConfig,
                 log: Callable[[str], None] = print):
        config.validate()
        self.config, self.oracle, self.ray, self.log = config, oracle, ray, log
        self.out = config.output_dir
        os.makedirs(self.out, exist_ok=True)
        if oracle.cache.path is None:
            oracle.cache = oracles.Cache(os.path.join(self.out, CACHE))
        self.space = SearchSpace(arch_lib.spec_of(config.base))
        self.resolution = config.train.data.image_size
        self.classes = config.base.classes
        self.controller = controller_lib.Controller(self.space.sizes, config.controller) \
            if config.algorithm == "controller" else None

    def network(self, actions) -> oracles.Network:
        return oracles.Network(self.space.decode(actions), self.resolution, self.classes)

    def _sample(self, number: int) -> np.ndarray:
        seed = self.config.seed * 1_000_003 + number
        n = self.config.samples_per_round
        if self.controller is not None:
            return self.controller.sample(n, seed)
        rng = np.random.default_rng([self.config.seed, number])
        return np.stack([rng.integers(0, s, size=n) for s in self.space.sizes], 1)

    def _save(self, history: Dict):
        from mobilenet_v3.search import plot
        records.save(self.out, HISTORY, history, plot.save_pareto, self.log)

    def _trained(self, history: Dict) -> Dict[str, Dict]:
        """Architectures trained in earlier rounds: a repeated sample is not trained again."""
        return {s["key"]: s for r in history["rounds"] for s in r["samples"] if "top1" in s}

    def run(self) -> Dict:
        history = records.load(self.out, HISTORY, self.config.record(self.oracle),
                               lambda: {"rounds": [], "best": []})
        done = len(history["rounds"])
        if done and self.controller is not None:
            self.controller.restore(os.path.join(self.out, "controller", f"{done:04d}"))
        seed = self.network(self.space.seed_actions())
        self.oracle.reference = None
        history["seed_latency"] = self.oracle.latency(seed)   # the host oracle's reference
        self.oracle.reference = seed
        self.log(f"seed {self.space.seed.name}: {history['seed_latency']:.4f} "
                 f"{self.oracle.unit}; target {self.config.target:.4f}; "
                 f"{len(self.space.sizes)} decisions; {self.config.algorithm}")
        started = time.time()
        for number in range(done + 1, self.config.rounds + 1):
            history["rounds"].append(self._round(number, history))
            if self.controller is not None:
                self.controller.save(os.path.join(self.out, "controller", f"{number:04d}"))
            self._save(history)
            per_round = (time.time() - started) / (number - done)
            rewards = [s["reward"] for s in history["rounds"][-1]["samples"] if "reward" in s]
            self.log(f"round {number}/{self.config.rounds}: mean reward "
                     f"{np.mean(rewards) if rewards else float('nan'):.4f}; about "
                     f"{(self.config.rounds - number) * per_round / 60:.0f} min left")
        history["best"] = best(history, self.config.keep_best)
        self._save(history)
        return history

    def _round(self, number: int, history: Dict) -> Dict:
        actions = self._sample(number)
        networks = [self.network(a) for a in actions]
        latencies = self.oracle.measure(networks)      # before any training of this round
        trained = self._trained(history)
        samples, jobs, which = [], [], []
        for i, (a, network, latency) in enumerate(zip(actions, networks, latencies)):
            sample = {"actions": [int(x) for x in a], "describe": self.space.describe(a),
                      "key": network.key, "latency": latency,
                      "spec": dataclasses.asdict(network.spec)}
            if network.key in trained:
                sample.update(top1=trained[network.key]["top1"],
                              run_dir=trained[network.key]["run_dir"], repeat=True)
            elif network.key in [s["key"] for s in samples]:
                sample["same_as"] = [s["key"] for s in samples].index(network.key)
            else:
                folder = os.path.join(self.out, "trials", f"{number:04d}_{i}")
                jobs.append(finetune.Job(
                    name=f"round {number} sample {i}", folder=folder, parent=None,
                    child_spec=None, train=dataclasses.replace(
                        self.config.train, seed=self.config.train.seed + 1000 * number + i,
                        model=arch_lib.with_spec(self.config.base, network.spec))))
                which.append(i)
            samples.append(sample)

        def done(k, result):
            text = (f"FAILED: {result['failed']}" if "failed" in result else
                    f"top1 {result['top1']:.4f}" + (" (finished earlier)" if result.get(
                        "resumed") else f" ({result['seconds']:.0f} s)"))
            self.log(f"  round {number} sample {which[k]} ({latencies[which[k]]:.4f} "
                     f"{self.oracle.unit}): {text}")
        for i, job, result in zip(which, jobs, workers.run_all(jobs, self.ray, done)):
            samples[i]["run_dir"] = job.run_dir
            if "failed" in result:
                samples[i]["failed"] = result["failed"]
            else:
                samples[i].update(top1=result["top1"], **{
                    k: result[k] for k in ("seconds", "worker_pid", "started", "ended")
                    if k in result})
        for s in samples:
            if "same_as" in s and "top1" in samples[s["same_as"]]:
                s.update(top1=samples[s["same_as"]]["top1"],
                         run_dir=samples[s["same_as"]]["run_dir"])
            if "top1" in s:
                s["reward"] = reward(s["top1"], s["latency"], self.config.target,
                                     self.config.w, self.config.hard)
        scored = [k for k, s in enumerate(samples) if "reward" in s]
        if not scored:
            raise SearchError(f"round {number}: every trial failed (see above); fix the cause "
                              "and rerun the same command")
        update = None
        if self.controller is not None:
            update = self.controller.update(actions[scored],
                                            [samples[k]["reward"] for k in scored])
        return {"round": number, "samples": samples, "controller": update}


def best(history: Dict, k: int) -> List[Dict]:
    """The k highest-reward distinct networks sampled so far (ties: lower latency)."""
    seen, result = set(), []
    ranked = sorted((s for r in history["rounds"] for s in r["samples"] if "reward" in s),
                    key=lambda s: (-s["reward"], s["latency"]))
    for s in ranked:
        if s["key"] not in seen:
            seen.add(s["key"])
            result.append({key: s[key] for key in ("describe", "latency", "top1", "reward",
                                                   "run_dir", "spec", "actions")})
    return result[:k]


def late_samples(history: Dict, fraction: float = 0.5) -> List[Dict]:
    """The samples of the last `fraction` of the rounds (where the controller has learned)."""
    rounds = history["rounds"]
    start = int(len(rounds) * (1 - fraction))
    return [s for r in rounds[start:] for s in r["samples"] if "reward" in s]


def summary(history: Dict, k: int = 5) -> Optional[Dict]:
    top = best(history, k)
    if not top:
        return None
    late = late_samples(history)
    return {"best_mean_reward": float(np.mean([s["reward"] for s in top])),
            "best_reward": top[0]["reward"],
            "late_median_latency": float(np.median([s["latency"] for s in late])),
            "samples": sum(len(r["samples"]) for r in history["rounds"])}
