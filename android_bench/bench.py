"""Benchmark .tflite files on a phone: push the tool and models, run pinned, parse, tabulate.

The run follows paper 6.1.2: `taskset <large-core mask> benchmark_model --graph=...
--num_threads=1`, batch 1, each model in turn with a cool-down between them. Results measured
before a failure are written out before the error is raised, and the error names the model.
"""

import csv
import dataclasses
import json
import os
import posixpath
import shlex
import tempfile
import time
import urllib.request
from typing import Callable, Dict, List, Optional, Sequence

from android_bench import output_format
from android_bench.device import Adb, DeviceError, Phone, list_devices, pick_device, taskset_mask

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
        if not self.models:
            raise ValueError("no models to benchmark")
        missing = [m for m in self.models if not os.path.isfile(m)]
        if missing:
            raise FileNotFoundError(f"model file(s) not found: {missing}")
        names = [os.path.basename(m) for m in self.models]
        if len(set(names)) != len(names):
            raise ValueError(f"model file names must be distinct on the phone: {names}")
        if self.delegate not in DELEGATES:
            raise ValueError(f"delegate must be one of {DELEGATES}, got {self.delegate!r}")
        if self.num_threads < 1 or self.num_runs < 1 or self.warmup_runs < 0 \
                or self.repeats < 1 or self.cooldown_seconds < 0:
            raise ValueError("num_threads, num_runs and repeats must be >= 1; warmup_runs and "
                             "cooldown_seconds >= 0")


class BenchmarkFailed(RuntimeError):
    """A model's run failed; the results measured before it are in `partial`."""

    def __init__(self, message: str, partial: List[Dict]):
        super().__init__(message)
        self.partial = partial


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


def run(config: BenchConfig, log: Callable[[str], None] = print,
        sleep: Callable[[float], None] = time.sleep) -> Dict:
    """Benchmarks every model; writes results.{json,csv,md} (also after a failure)."""
    config.validate()
    os.makedirs(config.output_dir, exist_ok=True)
    local_binary = resolve_binary(config, os.path.join(config.output_dir, ".cache"))
    phone = connect(config)
    info = phone.info()
    phone.require_supported_abi(info["abi"])
    cores = list(config.cores) if config.cores else phone.large_cores()
    mask = taskset_mask(cores)
    info.update(cores=cores, mask=mask)
    log(f"{info['manufacturer']} {info['model']} ({info['serial']}), Android {info['android']},"
        f" {info['abi']}; pinned to cores {cores} (mask {mask})")
    remote_binary = posixpath.join(config.remote_dir, "benchmark_model")
    results: List[Dict] = []
    current = None
    try:
        phone.adb.shell(f"mkdir -p {shlex.quote(config.remote_dir)}")
        phone.adb.push(local_binary, remote_binary)
        phone.adb.shell(f"chmod 755 {shlex.quote(remote_binary)}")
        for path in config.models:
            current = path
            phone.adb.push(path, posixpath.join(config.remote_dir, os.path.basename(path)))
        for repeat in range(config.repeats):
            for i, path in enumerate(config.models):
                current = path
                if results:
                    sleep(config.cooldown_seconds)
                graph = posixpath.join(config.remote_dir, os.path.basename(path))
                command = benchmark_command(config, remote_binary, graph, mask)
                output = phone.adb.shell(command)
                try:
                    parsed = output_format.parse(output)
                except output_format.BenchmarkOutputError as e:
                    raw = _save_raw(config.output_dir, path, output)
                    raise BenchmarkFailed(f"{os.path.basename(path)}: {e}\n(raw output saved to "
                                          f"{raw})", results) from None
                row = dict(model=os.path.basename(path), path=path, repeat=repeat,
                           size_bytes=os.path.getsize(path), command=command,
                           **dataclasses.asdict(parsed))
                if config.op_profiling:
                    row["op_profile"] = output_format.parse_op_profile(output)
                results.append(row)
                log(f"{row['model']}: avg {parsed.avg_us / 1000:.2f} ms, min "
                    f"{parsed.min_us / 1000:.2f} ms over {parsed.count} runs")
    except DeviceError as e:
        raise BenchmarkFailed(f"while benchmarking {os.path.basename(current or '-')}: {e}; "
                              f"{len(results)} result(s) measured before it were kept",
                              results) from None
    finally:
        write_results(config.output_dir, info, config, results)
        if config.cleanup:
            try:
                phone.adb.shell(f"rm -rf {shlex.quote(config.remote_dir)}")
            except DeviceError:
                log(f"could not remove {config.remote_dir} from the phone (disconnected?)")
    return {"device": info, "results": results}


def _save_raw(output_dir: str, model: str, output: str) -> str:
    folder = os.path.join(output_dir, "raw")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, os.path.basename(model) + ".txt")
    with open(path, "w") as f:
        f.write(output)
    return path


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


def write_results(output_dir: str, info: Dict, config: BenchConfig, results: List[Dict]):
    table = summarize(results)
    with open(os.path.join(output_dir, "results.json"), "w") as f:
        json.dump({"device": info, "settings": {
            k: v for k, v in dataclasses.asdict(config).items() if k != "models"},
            "runs": results, "table": table}, f, indent=2, default=str)
    fields = ["model", "repeat", "size_bytes", "count", "avg_us", "min_us", "max_us", "std_us",
              "p5_us", "median_us", "p95_us", "init_us", "first_inference_us",
              "memory_overall_mb"]
    with open(os.path.join(output_dir, "results.csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)
    with open(os.path.join(output_dir, "results.md"), "w") as f:
        f.write(markdown_table(info, table))
        for r in results:
            if r.get("op_profile"):
                f.write(f"\n{r['model']} (repeat {r['repeat']}): time by op type\n\n"
                        "| op type | count | avg ms | % |\n|---|---|---|---|\n")
                f.writelines(f"| {o['node_type']} | {o['count']} | {o['avg_ms']:.3f} | "
                             f"{o['avg_pct']:.1f} |\n" for o in r["op_profile"])
