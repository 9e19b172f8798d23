"""NetAdapt (paper section 4.2): shrink a trained network step by step to a latency target.

Each step proposes, for every space of the current network (arch.py: each expansion, each
width group, the last conv), the widest narrowing that cuts the oracle's latency by at least
delta (0.01 x the seed's, the paper's), found by bisection over widths in steps of 8. Every
proposal inherits the current weights (inherit.py), is fine-tuned T steps (finetune.py, on
Ray: workers.py) and scored on the held-out data; the step keeps the proposal with the largest
dAccuracy / |dLatency| (the paper's rule) or the smallest accuracy drop (NetAdapt's).

The output folder holds everything a resume needs and nothing is measured twice:
  history.json          settings, the seed, every finished step (all proposals, the choice)
  latency_cache.json    the oracle's figures by architecture
  seed/                 the seed as an explicit-rows model folder and its evaluation
  steps/NNN/            proposals.json (written before any fine-tune), one folder each
  final/run/            the result as a normal train.py run folder (long fine-tune or the
                        last choice's run); history.json's "final" re-measures it in full
  history.png           latency vs accuracy of every proposal and the chosen path
A search killed anywhere and rerun with the same command continues where it stopped: finished
fine-tunes are read back, unfinished ones resume from their checkpoints, and the proposals of
a step are the saved ones, so the choices are the same.
"""

import dataclasses
import json
import os
import shutil
import time
from typing import Callable, Dict, List, Optional

from mobilenet_v3 import files
from mobilenet_v3.modeling.config import ModelConfig
from mobilenet_v3.search import arch as arch_lib, finetune, oracles, records, workers
from mobilenet_v3.search.records import SearchError
from mobilenet_v3.specs import ArchSpec

RULES = ("ratio", "smallest_drop")
HISTORY, CACHE = "history.json", "latency_cache.json"


@dataclasses.dataclass
class NetAdaptConfig:
    output_dir: str
    seed: str                       # a train.py run folder or a model.keras folder
    train: object                   # training.TrainConfig: the fine-tune recipe (T steps)
    target: Optional[float] = None  # in the oracle's unit (ms; M MAdds for 'madds')
    target_fraction: Optional[float] = 0.7   # of the seed's latency, when target is None
    delta_fraction: float = 0.01    # each step cuts >= this x the seed's latency
    rule: str = "ratio"
    max_steps: Optional[int] = None
    final_steps: int = 0            # long fine-tune of the result (0: the last choice's run)
    spaces: Optional[List[str]] = None   # only these spaces (arch.proposal_spaces names)

    def validate(self):
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, got {self.rule!r}")
        if self.target is None and not (self.target_fraction and 0 < self.target_fraction < 1):
            raise ValueError("give a target latency (> 0) or a target fraction in (0, 1) of "
                             f"the seed's, got {self.target_fraction!r}")
        if self.target is not None and not self.target > 0:
            raise ValueError(f"target must be > 0, got {self.target!r}")
        if not 0 < self.delta_fraction < 1:
            raise ValueError(f"delta must be in (0, 1) of the seed's latency, got "
                             f"{self.delta_fraction!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be >= 1, got {self.max_steps!r}")
        if self.spaces is not None and not self.spaces:
            raise ValueError("spaces: name at least one (e.g. b10.exp,last) or leave it out")
        if self.final_steps < 0:
            raise ValueError(f"final_steps must be >= 0, got {self.final_steps!r}")

    def record(self, oracle: oracles.Oracle) -> Dict:
        """What a resume must keep unchanged."""
        t = self.train
        return {"seed": os.path.abspath(self.seed), "oracle": oracle.id, "unit": oracle.unit,
                "target": self.target, "target_fraction": self.target_fraction,
                "delta_fraction": self.delta_fraction, "rule": self.rule,
                "finetune_steps": t.train_steps, "batch_size": t.global_batch_size,
                "learning_rate": t.schedule.base_learning_rate, "seed_value": t.seed,
                "data": dataclasses.asdict(t.data), "spaces": self.spaces}


def select(proposals: List[Dict], current_acc: float, current_lat: float, rule: str) -> int:
    """Index of the kept proposal: largest dAcc / |dLat| ('ratio', the paper's) or the
    highest accuracy ('smallest_drop'); ties go to the lower latency, then the earlier."""
    def score(p):
        if rule == "smallest_drop":
            return p["top1"]
        return (p["top1"] - current_acc) / max(abs(current_lat - p["latency"]), 1e-12)
    ranked = sorted(range(len(proposals)),
                    key=lambda i: (-score(proposals[i]), proposals[i]["latency"], i))
    return ranked[0]


def propose(spec: ArchSpec, latency: float, delta: float, network: Callable,
            oracle: oracles.Oracle, spaces: Optional[List[str]] = None) -> List[Dict]:
    """For each space, the widest narrowing (steps of 8) whose latency is <= latency - delta,
    by bisection (latency grows with width); spaces that cannot cut delta propose nothing."""
    proposals = []
    for space in arch_lib.proposal_spaces(spec):
        if spaces is not None and space not in spaces:
            continue
        width = arch_lib.widths(spec)[space]
        options = [s for s in (arch_lib.set_width(spec, space, c)
                               for c in range(width - arch_lib.CHANNEL_STEP, 0,
                                              -arch_lib.CHANNEL_STEP)) if s is not None]
        if not options or oracle.latency(network(options[-1])) > latency - delta:
            continue
        lo, hi = 0, len(options) - 1
        while lo < hi:
            mid = (lo + hi) // 2
            if oracle.latency(network(options[mid])) <= latency - delta:
                hi = mid
            else:
                lo = mid + 1
        child = options[hi]
        proposals.append({"space": space, "kind": arch_lib.kind_of(space),
                          "edit": arch_lib.describe_edit(spec, child),
                          "width": arch_lib.widths(child)[space],
                          "latency": oracle.latency(network(child)),
                          "spec": dataclasses.asdict(child)})
    return proposals


def full_measurement(oracle: oracles.Oracle, networks: List[oracles.Network]) -> Dict:
    """Seed and final timed together on the device oracle, bypassing the cache (the table's
    base oracle for a lookup table); MAdds are exact."""
    base = oracle.base if isinstance(oracle, oracles.TableOracle) else oracle
    seed_value, final_value = base.measure_uncached(networks)
    result = {"oracle": base.id, "seed": seed_value, "final": final_value,
              "ratio": final_value / seed_value}
    if isinstance(oracle, oracles.TableOracle):
        predicted = oracle.measure(networks)
        result["table_predicted"] = predicted
        result["table_error"] = oracles.error_table(predicted, [seed_value, final_value])
    return result


class NetAdapt:
    def __init__(self, config: NetAdaptConfig, oracle: oracles.Oracle,
                 ray: workers.RayConfig, log: Callable[[str], None] = print):
        config.validate()
        self.config, self.oracle, self.ray, self.log = config, oracle, ray, log
        self.out = config.output_dir
        os.makedirs(self.out, exist_ok=True)
        if oracle.cache.path is None:
            oracle.cache = oracles.Cache(os.path.join(self.out, CACHE))
        from mobilenet_v3.training import run_dir as run_dir_lib
        record = run_dir_lib.model_record(config.seed)
        if record.get("head_type"):
            raise SearchError(f"{config.seed} is a {record['head_type']} model; NetAdapt here "
                              "adapts classifiers (fine-tuned and scored on held-out top-1)")
        self.seed_config = ModelConfig.from_record(record)
        known = arch_lib.proposal_spaces(arch_lib.spec_of(self.seed_config))
        unknown = sorted(set(config.spaces or ()) - set(known))
        if unknown:
            raise ValueError(f"spaces {unknown} are not spaces of the seed; it has "
                             f"{', '.join(known)}")
        data = config.train.data
        self.resolution, self.classes = data.image_size, self.seed_config.classes

    # ---- bookkeeping ------------------------------------------------------------------
    def network(self, spec: ArchSpec) -> oracles.Network:
        return oracles.Network(spec, self.resolution, self.classes)

    def _history(self) -> Dict:
        return records.load(self.out, HISTORY, self.config.record(self.oracle),
                            lambda: {"seed": None, "steps": [], "final": None})

    def _save(self, history: Dict):
        from mobilenet_v3.search import plot
        records.save(self.out, HISTORY, history, plot.save, self.log)

    def _job(self, name, folder, parent, spec, child_spec, steps, seed, evaluate_only=False):
        """A fine-tune of `child_spec` (None: the parent's `spec` itself) from `parent`."""
        model = arch_lib.with_spec(self.seed_config, child_spec or spec)
        train = dataclasses.replace(self.config.train, train_steps=max(1, steps), seed=seed,
                                    model=model)
        return finetune.Job(name=name, folder=folder, parent=parent, child_spec=child_spec,
                            train=train, evaluate_only=evaluate_only)

    def _run(self, jobs, describe):
        def done(i, result):
            if "failed" in result:
                self.log(f"  {describe(i)}: FAILED after {workers.RETRIES} retry: "
                         f"{result['failed']}")
            else:
                self.log(f"  {describe(i)}: top1 {result['top1']:.4f}"
                         + (" (finished earlier)" if result.get("resumed") else
                            f" ({result['seconds']:.0f} s)"))
        return workers.run_all(jobs, self.ray, done)

    # ---- the search ---------------------------------------------------------------------
    def _seed(self, history: Dict) -> Dict:
        if history["seed"] is not None:
            return history["seed"]
        spec = arch_lib.spec_of(self.seed_config)
        folder = os.path.join(self.out, "seed")
        job = self._job("seed", folder, self.config.seed, spec, spec, 1, self.config.train.seed,
                        evaluate_only=True)
        self.log("evaluating the seed on the held-out data")
        result = self._run([job], lambda i: "seed")[0]
        if "failed" in result:
            raise SearchError(f"the seed could not be evaluated: {result['failed']}")
        self.oracle.reference = None
        latency = self.oracle.latency(self.network(spec))
        history["seed"] = {"spec": dataclasses.asdict(spec), "latency": latency,
                           "top1": result["top1"], "model": job.inherited}
        self._save(history)
        return history["seed"]

    def run(self) -> Dict:
        history = self._history()
        seed = self._seed(history)
        target = self.config.target or seed["latency"] * self.config.target_fraction
        delta = self.config.delta_fraction * seed["latency"]
        unit = self.oracle.unit
        self.log(f"seed: {seed['latency']:.4f} {unit}, top1 {seed['top1']:.4f}; target "
                 f"{target:.4f} {unit}, delta {delta:.4f} {unit}")
        current = history["steps"][-1]["chosen"] if history["steps"] else seed
        started, steps_done_here = time.time(), 0
        while current["latency"] > target:
            number = len(history["steps"]) + 1
            if self.config.max_steps and number > self.config.max_steps:
                self.log(f"stopped after --max_steps={self.config.max_steps} steps")
                break
            step = self._step(number, current, delta)
            if step is None:
                self.log(f"step {number}: no space can cut {delta:.4f} {unit} any more; "
                         "stopping above the target")
                break
            history["steps"].append(step)
            self._save(history)
            current = step["chosen"]
            steps_done_here += 1
            per_step = (time.time() - started) / steps_done_here
            cut = (seed["latency"] - current["latency"]) / len(history["steps"])
            left = max(0.0, (current["latency"] - target) / max(cut, 1e-12))
            self.log(f"step {number}: kept {current['edit']}: {current['latency']:.4f} {unit}, "
                     f"top1 {current['top1']:.4f}; about {left:.0f} step(s) to the target "
                     f"(~{left * per_step / 60:.0f} min)")
        history["final"] = self._final(history, seed, current, target)
        self._save(history)
        return history

    def _step(self, number: int, current: Dict, delta: float) -> Optional[Dict]:
        folder = os.path.join(self.out, "steps", f"{number:03d}")
        path = os.path.join(folder, "proposals.json")
        spec = arch_lib.modeling_spec(current["spec"])
        if os.path.exists(path):
            with open(path) as f:
                proposals = json.load(f)
        else:
            self.oracle.reference = self.network(spec)
            t = time.time()
            proposals = propose(spec, current["latency"], delta, self.network, self.oracle,
                                self.config.spaces)
            os.makedirs(folder, exist_ok=True)
            files.atomic_write_json(path, proposals)
            self.log(f"step {number}: {len(proposals)} proposals in {time.time() - t:.0f} s "
                     f"(latency {min([p['latency'] for p in proposals] or [0]):.4f}-"
                     f"{max([p['latency'] for p in proposals] or [0]):.4f})")
        if not proposals:
            return None
        jobs = [self._job(f"step {number} {p['space']}", os.path.join(folder, p["space"]),
                          current["model"], spec, arch_lib.modeling_spec(p["spec"]),
                          self.config.train.train_steps,
                          self.config.train.seed + 1000 * number + i)
                for i, p in enumerate(proposals)]
        results = self._run(jobs, lambda i: f"{proposals[i]['edit']} "
                                            f"({proposals[i]['latency']:.4f})")
        finished = []
        for p, job, result in zip(proposals, jobs, results):
            p.update(model=os.path.join(job.run_dir, "final"), run_dir=job.run_dir)
            if "failed" in result:
                p.update(status="failed", error=result["failed"])
            else:
                p.update(status="ok", top1=result["top1"], seconds=result.get("seconds"),
                         **{k: result[k] for k in ("worker_pid", "started", "ended")
                            if k in result})
                finished.append(p)
        if not finished:
            raise SearchError(f"step {number}: every proposal failed (see above); fix the "
                              "cause and rerun the same command")
        k = select(finished, current["top1"], current["latency"], self.config.rule)
        chosen = finished[k]
        return {"step": number, "from_latency": current["latency"],
                "from_top1": current["top1"], "proposals": proposals,
                "chosen": {key: chosen[key] for key in (
                    "space", "kind", "edit", "width", "latency", "top1", "spec", "model",
                    "run_dir")},
                "cut": current["latency"] - chosen["latency"]}

    def _final(self, history, seed, current, target) -> Dict:
        folder = os.path.join(self.out, "final")
        run = os.path.join(folder, finetune.RUN)
        spec = arch_lib.modeling_spec(current["spec"])
        if self.config.final_steps and current is not seed:
            job = self._job("final", folder, current["model"], spec, None,
                            self.config.final_steps,
                            self.config.train.seed + 7)
            result = self._run([job], lambda i: f"final fine-tune ({self.config.final_steps} "
                                                "steps)")[0]
            if "failed" in result:
                raise SearchError(f"the final fine-tune failed: {result['failed']}")
            top1 = result["top1"]
        else:
            source = current.get("run_dir")
            if source and not os.path.exists(run):
                files.atomic_write_dir(run, lambda tmp: shutil.copytree(source, tmp,
                                                                  dirs_exist_ok=True))
            top1 = current["top1"]
        seed_network = self.network(arch_lib.modeling_spec(seed["spec"]))
        full = full_measurement(self.oracle, [seed_network, self.network(spec)])
        self.log(f"final: {current['latency']:.4f} {self.oracle.unit} by the search's oracle; "
                 f"measured in full: seed {full['seed']:.4f}, final {full['final']:.4f} "
                 f"({full['final'] / full['seed']:.3f} x); top1 {top1:.4f} "
                 f"(seed {seed['top1']:.4f}); run folder {run}")
        return {"run_dir": run if os.path.exists(run) else None, "top1": top1,
                "latency": current["latency"], "target": target,
                "meets_target": current["latency"] <= target, "full_measurement": full,
                "steps": len(history["steps"])}

