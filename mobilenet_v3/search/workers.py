"""The fine-tunes of a step as Ray tasks: a local Ray by default, a cluster with an address.

A local Ray listens on 127.0.0.1 only and starts no dashboard. Each fine-tune runs in a fresh
worker process (max_calls=1: its own TensorFlow, seeded from scratch) with `threads` CPU
threads and as many Ray CPUs. A task whose worker dies is retried once by Ray; a task that
raises is retried once, then reported as failed with its error: never counted as a result.
On a cluster every node needs this package installed and the output folder at the same path
(a shared file system): the proposals' run folders are written there.
"""

import dataclasses
import os
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence

from mobilenet_v3.search import finetune

RETRIES = 1


@dataclasses.dataclass
class RayConfig:
    address: Optional[str] = None      # None: start a local Ray on this machine
    workers: int = 2                   # local Ray: CPUs for fine-tunes (one task per CPU set)
    threads: int = 1                   # CPU threads (and Ray CPUs) per fine-tune
    dashboard: bool = False

    def validate(self):
        if self.workers < 1 or self.threads < 1:
            raise ValueError(f"workers and threads must be >= 1, got {self.workers}, "
                             f"{self.threads}")


def _worker_env(threads: int) -> Dict[str, str]:
    here = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    return {"TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
            "TF_NUM_INTRAOP_THREADS": str(threads), "TF_NUM_INTEROP_THREADS": "1",
            "OMP_NUM_THREADS": str(threads),
            "PYTHONPATH": here + (os.pathsep + path if path else "")}


def start(config: RayConfig):
    """Connects to the cluster, or starts a private local Ray (127.0.0.1, no dashboard):
    address='local' never joins a Ray another program left running on this machine."""
    import ray
    config.validate()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return ray
    env = {"env_vars": _worker_env(config.threads)}
    if config.address:
        ray.init(address=config.address, runtime_env=env, log_to_driver=True)
    else:
        ray.init(address="local", num_cpus=config.workers * config.threads,
                 include_dashboard=config.dashboard, _node_ip_address="127.0.0.1", runtime_env=env, log_to_driver=True,
                 configure_logging=False)
    return ray


def stop():
    import ray
    if ray.is_initialized():
        ray.shutdown()


def _run_job(job: finetune.Job) -> Dict:
    try:
        import tensorflow as tf
        threads = int(os.environ.get("TF_NUM_INTRAOP_THREADS", "1"))
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:
            pass     # already initialised in this process: the environment variables hold
        started = time.time()
        result = finetune.run(job)
        return dict(result, worker_pid=os.getpid(), started=started, ended=time.time())
    except Exception as e:   # reported to the driver with its cause, retried once by Ray
        raise RuntimeError(f"{job.name}: {type(e).__name__}: {e}\n{traceback.format_exc()}") \
            from None


def run_all(jobs: Sequence[finetune.Job], config: RayConfig,
            on_done: Callable[[int, Dict], None] = lambda i, r: None) -> List[Dict]:
    """Runs every job on Ray; a result per job in order: the metrics, or {'failed': reason}.
    `on_done(index, result)` is called as each one finishes."""
    ray = start(config)
    remote = ray.remote(num_cpus=config.threads, max_calls=1, max_retries=RETRIES,
                        retry_exceptions=True)(_run_job)
    pending = {remote.remote(job): i for i, job in enumerate(jobs)}
    results: List[Optional[Dict]] = [None] * len(jobs)
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        i = pending.pop(done[0])
        try:
            results[i] = ray.get(done[0])
        except Exception as e:      # RayTaskError, WorkerCrashedError, ...
            results[i] = {"failed": _reason(e)}
        on_done(i, results[i])
    return results


def _reason(error: Exception) -> str:
    """The first line of the task's own exception (a RayTaskError carries it as `cause`:
    "<job>: <type>: <message>"), else the last line of Ray's error (a crashed worker)."""
    cause = getattr(error, "cause", None)
    lines = str(cause if cause is not None else error).strip().splitlines()
    if not lines:
        return type(error).__name__
    return (lines[0] if cause is not None else lines[-1])[:500]
