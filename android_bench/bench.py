"""Benchmark .tflite files on a phone: push the tool and models, run pinned, parse, tabulate.

The run follows paper 6.1.2: `taskset <large-core mask> benchmark_model --graph=...
--num_threads=1`, batch 1, each model in turn with a cool-down between them. Each run writes
to its own timestamped folder under --output_dir (`latest` points at the newest), after every
model and again after a failure or Ctrl-C, so nothing measured is lost; errors name the model.
"""

import csv
import dataclasses
import io
import json
import os
import posixpath
import shlex
import tempfile
import time
import urllib.request
from typing import Callable, Dict, List, Optional, Sequence

from android_bench import output_format
from android_bench.device import (Adb, DeviceError, Phone, ShellResult, list_devices,
                                  pick_device, taskset_mask)

# The official nightly prebuilt of the TFLite benchmark tool for 64-bit ARM Android
# (tensorflow.org/lite/performance/measurement).
PREBUILT_URL = ("https://storage.googleapis.com/tensorflow-nightly-public/prod/tensorflow/"
                "release/lite/tools/nightly/latest/android_aarch64_benchmark_model")
DELEGATES = ("none", "xnnpack", "gpu", "nnapi")


@dataclasses.dataclass
class BenchConfig:
    models: Sequence[str]
    output_dir: str
    benchmark_binary: Optional[str] = None   # local path of benchmark_model
    allow_download: bool = False             # fetch PREBUILT_URL when no binary is given
    serial: Optional[str] = None
    adb_path: str = "adb"
    num_threads: int = 1
    warmup_runs: int = 20
    num_runs: int = 50
    delegate: str = "xnnpack"                # none | xnnpack | gpu | nnapi
    cores: Optional[Sequence[int]] = None    # default: the large cores
    cooldown_seconds: float = 10.0
    repeats: int = 1
    op_profiling: bool = False               # benchmark_model --enable_op_profiling
    remote_dir: str = "/data/local/tmp/mobilenet_v3_bench"
    cleanup: bool = True

    def validate(self):
        """Every input problem, before anything touches the phone."""
        if not self.models:
            raise ValueError("no models to benchmark: pass --models=a.tflite,b.tflite (or the "
                             "paths as arguments)")
        missing = [m for m in self.models if not os.path.isfile(m)]
        if missing:
            raise FileNotFoundError(f"model file(s) not found: {missing}")
        not_tflite = [m for m in self.models if not is_tflite(m)]
        if not_tflite:
            raise ValueError(f"not TFLite model(s) (no 'TFL3' file identifier at bytes 4-8): "
                             f"{not_tflite}")
        names = [os.path.basename(m) for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model file names must be distinct on the phone: {names}")
        if self.delegate not in DELEGATES:
            raise ValueError(f"--delegate must be one of {DELEGATES}, got {self.delegate!r}")
        for flag, value, low in (("num_threads", self.num_threads, 1),
                                 ("num_runs", self.num_runs, 1),
                                 ("repeats", self.repeats, 1),
                                 ("warmup_runs", self.warmup_runs, 0),
                                 ("cooldown_seconds", self.cooldown_seconds, 0)):
            if value < low:
                raise ValueError(f"--{flag}={value:g}: must be >= {low}")
        if self.cores is not None and (not self.cores or any(c < 0 for c in self.cores)):
            raise ValueError(f"--cores={','.join(map(str, self.cores))}: need one or more CPU "
                             "numbers >= 0, e.g. --cores=4,5,6,7")


def is_tflite(path: str) -> bool:
    """A TFLite flatbuffer carries the file identifier 'TFL3' at bytes 4-8."""
    with open(path, "rb") as f:
        return f.read(8)[4:8] == b"TFL3"


class BenchmarkFailed(RuntimeError):
    """A model's run failed; the results measured before it are in `partial`."""

    def __init__(self, message: str, partial: List[Dict]):
        super().__init__(message)
        self.partial = partial


class Interrupted(BenchmarkFailed):
    """Ctrl-C during the run; the results so far were written and the phone cleaned."""


def resolve_binary(config: BenchConfig, cache_dir: str) -> str:
    """The local benchmark_model to push: the given path, or the prebuilt when allowed."""
    if config.benchmark_binary:
        if not os.path.isfile(config.benchmark_binary):
            raise FileNotFoundError(f"benchmark binary not found: {config.benchmark_binary!r}")
        return config.benchmark_binary
    cached = os.path.join(cache_dir, "android_aarch64_benchmark_model")
    if os.path.isfile(cached):
        return cached
    if not config.allow_download:
        raise FileNotFoundError(
            "no benchmark binary: pass --benchmark_binary=/path/to/benchmark_model (built with "
            "bazel for android_arm64) or --allow_download to fetch the official prebuilt from "
            f"{PREBUILT_URL}")
    os.makedirs(cache_dir, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=cache_dir, prefix=".download-")
    try:
        with urllib.request.urlopen(PREBUILT_URL, timeout=120) as response, \
                os.fdopen(fd, "wb") as f:
            f.write(response.read())
        os.replace(tmp, cached)
    except OSError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise FileNotFoundError(f"could not download the benchmark tool from {PREBUILT_URL}: "
                                f"{e}") from None
    return cached


def benchmark_command(config: BenchConfig, binary: str, graph: str, mask: str) -> str:
    """The shell command run on the phone."""
    args = [f"--graph={graph}", f"--num_threads={config.num_threads}",
            f"--warmup_runs={config.warmup_runs}", f"--num_runs={config.num_runs}"]
    if config.delegate == "xnnpack":
        args.append("--use_xnnpack=true")
    elif config.delegate == "none":
        args.append("--use_xnnpack=false")
    elif config.delegate == "gpu":
        args.append("--use_gpu=true")
    elif config.delegate == "nnapi":
        args.append("--use_nnapi=true")
    if config.op_profiling:
        args.append("--enable_op_profiling=true")
    return " ".join(["taskset", mask, shlex.quote(binary)] + [shlex.quote(a) for a in args])


def connect(config: BenchConfig) -> Phone:
    adb = Adb(config.adb_path)
    serial = pick_device(list_devices(adb), config.serial)
    return Phone(adb.for_serial(serial))


def describe(phone: Phone, config: BenchConfig) -> Dict:
    """The phone's facts and the cores to pin to, checked against the CPUs it has."""
    info = phone.info()
    phone.require_supported_abi(info["abi"])
    freqs = phone.max_frequencies()
    cpus = sorted(freqs)
    if config.cores:
        unknown = sorted(set(config.cores) - set(cpus))
        if unknown:
            raise ValueError(f"--cores={','.join(map(str, config.cores))}: device "
                             f"{phone.serial} has no CPU {unknown}; its CPUs are {cpus}")
    cores = sorted(set(config.cores)) if config.cores else phone.large_cores(freqs)
    info.update(cpus=cpus, cores=cores, mask=taskset_mask(cores))
    return info


def run(config: BenchConfig, log: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep) -> Dict:
    """Benchmarks every model into a new run folder under output_dir (see new_run_dir).

    results.{json,csv,md} are rewritten after every model and once more at the end, also
    after a failure or Ctrl-C; earlier runs' folders are never touched."""
    config.validate()
    os.makedirs(config.output_dir, exist_ok=True)
    local_binary = resolve_binary(config, os.path.join(config.output_dir, ".cache"))
    phone = connect(config)
    info = describe(phone, config)
    log(f"{info['manufacturer']} {info['model']} ({info['serial']}), Android {info['android']},"
        f" {info['abi']}; pinned to cores {info['cores']} (mask {info['mask']})")
    run_dir = new_run_dir(config.output_dir)
    info["run_dir"] = run_dir
    results: List[Dict] = []
    status = "failed: unexpected error"
    try:
        _push_all(phone, config, local_binary)
        _measure_all(phone, config, info, results, log, sleep)
        status = "complete"
    except (DeviceError, BenchmarkFailed) as e:
        status = f"failed: {e}"
        raise BenchmarkFailed(f"{e}\n{len(results)} result(s) measured before it were kept in "
                              f"{run_dir}", results) from None
    except KeyboardInterrupt:
        status = "interrupted"
        raise Interrupted(f"interrupted: {len(results)} result(s) measured before it were kept"
                          f" in {run_dir}", results) from None
    finally:
        write_results(run_dir, info, config, results, status)
        point_latest(config.output_dir, run_dir)
        if config.cleanup:
            try:
                phone.adb.shell(f"rm -rf {shlex.quote(config.remote_dir)}")
            except DeviceError:
                log(f"could not remove {config.remote_dir} from the phone (disconnected?)")
    log(f"results in {run_dir} (also {os.path.join(config.output_dir, 'latest')})")
    return {"device": info, "results": results, "run_dir": run_dir}


def _push_all(phone: Phone, config: BenchConfig, local_binary: str):
    remote_binary = posixpath.join(config.remote_dir, "benchmark_model")
    phone.adb.shell(f"mkdir -p {shlex.quote(config.remote_dir)}")
    phone.adb.push(local_binary, remote_binary)
    phone.adb.shell(f"chmod 755 {shlex.quote(remote_binary)}")
    for path in config.models:
        try:
            phone.adb.push(path, posixpath.join(config.remote_dir, os.path.basename(path)))
        except DeviceError as e:
            raise DeviceError(f"while pushing {os.path.basename(path)}: {e}") from None


def _measure_all(phone: Phone, config: BenchConfig, info: Dict, results: List[Dict],
                 log: Callable[[str], None], sleep: Callable[[float], None]):
    """Each model in turn, `repeats` times, appending a row to `results` after each."""
    remote_binary = posixpath.join(config.remote_dir, "benchmark_model")
    for repeat in range(config.repeats):
        for path in config.models:
            if results:
                sleep(config.cooldown_seconds)
            graph = posixpath.join(config.remote_dir, os.path.basename(path))
            command = benchmark_command(config, remote_binary, graph, info["mask"])
            try:
                row = _measure(phone, config, info["run_dir"], path, repeat, command)
            except DeviceError as e:
                raise DeviceError(f"while benchmarking {os.path.basename(path)}: {e}") from None
            results.append(row)
            write_results(info["run_dir"], info, config, results, "running")
            log(f"{row['model']}: avg {row['avg_us'] / 1000:.2f} ms, min "
                f"{row['min_us'] / 1000:.2f} ms over {row['count']} runs")


def _measure(phone: Phone, config: BenchConfig, run_dir: str, path: str, repeat: int,
             command: str) -> Dict:
    """One run of the tool: its output saved under raw/, a result row or BenchmarkFailed."""
    name = os.path.basename(path)
    result = phone.adb.shell_status(command)
    raw = _save_raw(run_dir, name, repeat, result)
    if result.status != 0:
        printed = output_format.quote(result.stdout + "\n" + result.stderr)
        raise BenchmarkFailed(f"{name}: benchmark_model exited with status {result.status} "
                              f"(the tool failed, not adb); it printed:\n{printed}\n"
                              f"(full output in {raw})", [])
    try:
        parsed = output_format.parse(result.stdout)
    except output_format.BenchmarkOutputError as e:
        raise BenchmarkFailed(f"{name}: {e}\n(full output in {raw})", []) from None
    row = dict(model=name, path=path, repeat=repeat, size_bytes=os.path.getsize(path),
               command=command, **dataclasses.asdict(parsed))
    if config.op_profiling:
        row["op_profile"] = output_format.parse_op_profile(result.stdout)
    return row


def _save_raw(run_dir: str, model: str, repeat: int, result: ShellResult) -> str:
    """The tool's stdout, and its stderr when it printed any, as raw/<model>.r<repeat>.txt."""
    text = result.stdout
    if result.stderr.strip():
        text += f"\n---- stderr ----\n{result.stderr}"
    text += f"\n---- exit status {result.status} ----\n"
    path = os.path.join(run_dir, "raw", f"{model}.r{repeat}.txt")
    _write_atomic(path, text)
    return path


def new_run_dir(output_dir: str) -> str:
    """A fresh output_dir/<YYYYmmdd-HHMMSS>[-N] folder: each run writes only its own."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = os.path.join(output_dir, stamp if n == 1 else f"{stamp}-{n}")
        try:
            os.mkdir(path)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"could not make a new run folder under {output_dir}")


def point_latest(output_dir: str, run_dir: str):
    """output_dir/latest -> the newest run folder, swapped atomically."""
    link = os.path.join(output_dir, "latest")
    tmp = link + f".tmp{os.getpid()}"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(os.path.basename(run_dir), tmp)
    os.replace(tmp, link)


def _write_atomic(path: str, text: str):
    """Write to a temporary file beside `path`, then rename over it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
    try:
        with os.fdopen(fd, "w", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        os.remove(tmp)
        raise


# ---- tables ------------------------------------------------------------------------------

def _model_facts(path: str) -> Dict:
    """MAdds, params and top-1 from the export report beside the file, when there is one."""
    report_path = os.path.splitext(path)[0] + ".json"
    if not os.path.exists(report_path):
        return {}
    with open(report_path) as f:
        report = json.load(f)
    facts = {"format": report.get("format")}
    if "eval" in report:
        facts["top1"] = report["eval"].get("top1")
    model = report.get("model")
    if model:
        facts["network"] = (f"V3-{model['name'].capitalize()} {model['alpha']:g}"
                            + (" minimalistic" if model.get("minimalistic") else "")
                            + f" @{model['input_shape'][0]}")
    return facts


def summarize(results: List[Dict]) -> List[Dict]:
    """One row per model: the mean over repeats of avg, the min of min."""
    rows = {}
    for r in results:
        row = rows.setdefault(r["model"], dict(model=r["model"], size_mb=r["size_bytes"] / 1e6,
                                              avgs=[], mins=[], medians=[], path=r["path"]))
        row["avgs"].append(r["avg_us"])
        row["mins"].append(r["min_us"])
        if r.get("median_us") is not None:
            row["medians"].append(r["median_us"])
    table = []
    for row in rows.values():
        facts = _model_facts(row["path"])
        table.append({
            "model": row["model"], "network": facts.get("network", row["model"]),
            "format": facts.get("format", ""), "top1": facts.get("top1"),
            "size_mb": round(row["size_mb"], 3),
            "avg_ms": round(sum(row["avgs"]) / len(row["avgs"]) / 1000, 3),
            "min_ms": round(min(row["mins"]) / 1000, 3),
            "median_ms": round(sum(row["medians"]) / len(row["medians"]) / 1000, 3)
            if row["medians"] else None,
            "repeats": len(row["avgs"])})
    return table


def markdown_table(info: Dict, table: List[Dict]) -> str:
    """Paper Table 3/4 layout: network, top-1, size, then latency on this phone."""
    phone = info.get("model", "phone")
    lines = [f"Device: {info.get('manufacturer', '')} {phone} ({info.get('serial', '')}), "
             f"Android {info.get('android', '?')}, {info.get('abi', '?')}, cores "
             f"{info.get('cores')} (taskset {info.get('mask')}), 1 thread",
             "", f"| network | format | top-1 | size MB | {phone} avg ms | min ms | median ms |",
             "|---|---|---|---|---|---|---|"]
    for row in table:
        top1 = f"{100 * row['top1']:.1f}" if row["top1"] is not None else ""
        median = f"{row['median_ms']:.2f}" if row["median_ms"] is not None else ""
        lines.append(f"| {row['network']} | {row['format']} | {top1} | {row['size_mb']:.2f} | "
                     f"{row['avg_ms']:.2f} | {row['min_ms']:.2f} | {median} |")
    return "\n".join(lines) + "\n"


def write_results(run_dir: str, info: Dict, config: BenchConfig, results: List[Dict],
                  status: str = "complete"):
    """results.json (everything), results.csv (one row per run), results.md (the table)."""
    table = summarize(results)
    _write_atomic(os.path.join(run_dir, "results.json"), json.dumps({
        "status": status, "device": info, "settings": dataclasses.asdict(config),
        "runs": results, "table": table}, indent=2, default=str))
    fields = ["model", "repeat", "size_bytes", "count", "avg_us", "min_us", "max_us", "std_us",
              "p5_us", "median_us", "p95_us", "init_us", "first_inference_us",
              "memory_overall_mb"]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(results)
    _write_atomic(os.path.join(run_dir, "results.csv"), out.getvalue())
    md = [markdown_table(info, table)]
    if status != "complete":
        md.append(f"\nRun status: {status}\n")
    for r in results:
        if r.get("op_profile"):
            md.append(f"\n{r['model']} (repeat {r['repeat']}): time by op type\n\n"
                      "| op type | count | avg ms | % |\n|---|---|---|---|\n")
            md.extend(f"| {o['node_type']} | {o['count']} | {o['avg_ms']:.3f} | "
                      f"{o['avg_pct']:.1f} |\n" for o in r["op_profile"])
    _write_atomic(os.path.join(run_dir, "results.md"), "".join(md))
