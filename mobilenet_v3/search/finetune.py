"""One proposal's fine-tune: inherit the parent's weights, train T steps, evaluate (or a
NAS trial: the same from scratch).

Each proposal is a normal train.py run folder (`<proposal>/run`), started from its inherited
weights (`<proposal>/inherited`, a model.keras folder that --init_weights takes), so a killed
fine-tune resumes from its checkpoint and a finished one is read back from final/eval.json.
Runs in a Ray worker or in-process; everything it needs travels in the `Job`.
"""

import dataclasses
import json
import os
import time
from typing import Dict, Optional

from mobilenet_v3.specs import ArchSpec

INHERITED, RUN = "inherited", "run"


@dataclasses.dataclass
class Job:
    name: str                   # 'step 3 / b4.exp' (reports)
    folder: str                 # the proposal's folder: inherited/ and run/
    parent: Optional[str]       # the parent's model folder (model.keras + model_config.json);
    #                             None: train.model from scratch (a NAS trial)
    child_spec: Optional[ArchSpec]   # None: the parent itself (the seed's evaluation)
    train: object               # training.TrainConfig; model_dir/init_weights set by run()
    evaluate_only: bool = False

    @property
    def inherited(self) -> str:
        return os.path.join(self.folder, INHERITED)

    @property
    def run_dir(self) -> str:
        return os.path.join(self.folder, RUN)


def write_inherited(job: Job) -> None:
    """The child network with the parent's weights, narrowed (inherit.py), as a model folder."""
    import tf_keras
    from mobilenet_v3 import files
    from mobilenet_v3.modeling.builders import build_model
    from mobilenet_v3.search import arch as arch_lib, inherit
    from mobilenet_v3.training import run_dir as run_dir_lib
    if os.path.exists(os.path.join(job.inherited, run_dir_lib.MODEL_FILE)):
        return
    parent = run_dir_lib.load_trained(job.parent)
    parent_spec = arch_lib.spec_of(parent.config)
    child_spec = job.child_spec or parent_spec
    config = arch_lib.with_spec(parent.config, child_spec)
    tf_keras.utils.set_random_seed(0)
    child = build_model(config)
    inherit.transfer(parent.model, parent_spec, child, child_spec)

    def fill(folder):
        child.save(os.path.join(folder, run_dir_lib.MODEL_FILE))
        with open(os.path.join(folder, run_dir_lib.MODEL_CONFIG_FILE), "w") as f:
            json.dump(config.to_flat(), f, indent=2)
        with open(os.path.join(folder, run_dir_lib.LABELS_FILE), "w") as f:
            f.write("\n".join(parent.labels) + "\n")
    files.atomic_write_dir(job.inherited, fill)


def _finished(job: Job) -> Optional[Dict]:
    from mobilenet_v3.training import run_dir as run_dir_lib
    path = os.path.join(job.run_dir, "eval_only.json") if job.evaluate_only else \
        os.path.join(job.run_dir, "final", run_dir_lib.EVAL_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def run(job: Job) -> Dict:
    """Fine-tunes (or only evaluates) the job's network; returns its held-out metrics."""
    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    start = time.time()
    done = _finished(job)
    if done is not None:
        return dict(done, resumed=True, seconds=0.0, run_dir=job.run_dir)
    if job.parent is not None:
        write_inherited(job)
    from mobilenet_v3.training import Trainer
    train = dataclasses.replace(job.train, model_dir=job.run_dir,
                                init_weights=job.inherited if job.parent else None)
    if job.evaluate_only:
        trainer = Trainer(train)
        trainer.restore_or_initialize()
        result = trainer.evaluate(use_ema=False)
        os.makedirs(job.run_dir, exist_ok=True)
        from mobilenet_v3 import files
        files.atomic_write_json(os.path.join(job.run_dir, "eval_only.json"), result)
    else:
        result = Trainer(train).run()
        if result.get("preempted"):
            raise RuntimeError(f"{job.name}: stopped by SIGTERM at step {result['step']}")
    return dict(result, resumed=False, seconds=time.time() - start, run_dir=job.run_dir)
