"""A stand-in for the Android `benchmark_model` tool: really runs --graph with the LiteRT
interpreter on the host and prints its timings in the real tool's format
($FAKE_BENCHMARK_FORMAT: 'new' with p5/median/p95, 'old' without, 'garbage').

$FAKE_BENCHMARK_FAIL=message makes it fail like the real tool: the message on stderr, exit
status $FAKE_BENCHMARK_EXIT (default 1); before any output when $FAKE_BENCHMARK_FAIL_AT=start
(as the Android linker fails), else after the start-up lines (as a model or delegate error).
$FAKE_BENCHMARK_ONLY=name limits 'garbage' and the failure to the --graph of that file name.
"""

import os
import sys
import time

import numpy as np


def flag(argv, name, default=None):
    for a in argv:
        if a.startswith(f"--{name}="):
            return a.split("=", 1)[1]
    return default


def stats(samples, fmt):
    s = np.array(samples)
    line = (f"count={len(s)} first={int(s[0])} curr={int(s[-1])} min={int(s.min())} "
            f"max={int(s.max())} avg={s.mean():.0f} std={int(s.std())}")
    if fmt == "new":
        line += (f" p5={int(np.percentile(s, 5))} median={int(np.median(s))} "
                 f"p95={int(np.percentile(s, 95))}")
    return line


def affected(argv):
    only = os.environ.get("FAKE_BENCHMARK_ONLY")
    return not only or os.path.basename(flag(argv, "graph", "")) == only


def fail_if_asked(argv, stage):
    message = os.environ.get("FAKE_BENCHMARK_FAIL")
    if message and affected(argv) and os.environ.get("FAKE_BENCHMARK_FAIL_AT", "load") == stage:
        print(message, file=sys.stderr)
        sys.exit(int(os.environ.get("FAKE_BENCHMARK_EXIT", "1")))


def main(argv):
    fail_if_asked(argv, "start")
    fmt = os.environ.get("FAKE_BENCHMARK_FORMAT", "new")
    fmt = "new" if fmt == "garbage" and not affected(argv) else fmt
    graph = flag(argv, "graph")
    threads = int(flag(argv, "num_threads", "1"))
    warmup, runs = int(flag(argv, "warmup_runs", "1")), int(flag(argv, "num_runs", "50"))
    print("INFO: STARTING!")
    print(f"INFO: Num threads: [{threads}]")
    print(f"INFO: Graph: [{graph}]")
    sys.stdout.flush()
    fail_if_asked(argv, "load")
    if fmt == "garbage":
        print("Segmentation fault (core dumped)?? no timings here")
        return 0
    if not graph or not os.path.exists(graph):
        print(f"ERROR: Could not open '{graph}'.", file=sys.stderr)
        return 1
    from ai_edge_litert.interpreter import Interpreter
    start = time.perf_counter()
    it = Interpreter(model_path=graph, num_threads=threads)
    it.allocate_tensors()
    init_us = (time.perf_counter() - start) * 1e6
    print(f"INFO: Loaded model {graph}")
    print(f"INFO: The input model file size (MB): {os.path.getsize(graph) / 1e6:.6f}")
    print(f"INFO: Initialized session in {init_us / 1000:.3f}ms.")
    inp = it.get_input_details()[0]
    it.set_tensor(inp["index"], np.zeros(inp["shape"], inp["dtype"]))

    def timed(n):
        out = []
        for _ in range(n):
            t = time.perf_counter()
            it.invoke()
            out.append((time.perf_counter() - t) * 1e6)
        return out
    warm = timed(max(warmup, 1))
    print("INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but "
          "terminate if exceeding 150 seconds.")
    print("INFO: " + stats(warm, fmt))
    print(f"INFO: Running benchmark for at least {runs} iterations and at least 1 seconds but "
          "terminate if exceeding 150 seconds.")
    timed_runs = timed(runs)
    print("INFO: " + stats(timed_runs, fmt))
    print(f"INFO: Inference timings in us: Init: {init_us:.0f}, First inference: "
          f"{warm[0]:.0f}, Warmup (avg): {np.mean(warm):.0f}, Inference (avg): "
          f"{np.mean(timed_runs):.0f}")
    print("INFO: Note: as the benchmark tool itself affects memory footprint, the following "
          "is only APPROXIMATE to the actual memory footprint of the model at runtime. Take "
          "the information at your one discretion.")
    print("INFO: Memory footprint delta from the start of the tool (MB): init=5.66016 "
          "overall=14.5078")
    if flag(argv, "enable_op_profiling") == "true":
        print_op_profile(graph, threads)
    return 0


def print_op_profile(graph, threads):
    """The tool's 'Summary by node type' table, from real per-op timings on the host."""
    from mobilenet_v3.bench import op_profile
    with open(graph, "rb") as f:
        times = op_profile.op_type_times(f.read(), threads, runs=5)
    total = sum(v["ms"] for k, v in times.items() if k != "_total")
    print("Profiling Info for Benchmark Initialization:")
    print("============================== Summary by node type ==============================")
    print("\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t"
          "  [mem KB]\t[times called]")
    print("\t         ModifyGraphWithDelegate\t        1\t     1.000\t   100.000%\t   "
          "100.000%\t     0.000\t        1")
    print("")
    print("Operator-wise Profiling Info for Regular Benchmark Runs:")
    print("============================== Summary by node type ==============================")
    print("\t             [Node type]\t  [count]\t  [avg ms]\t    [avg %]\t    [cdf %]\t"
          "  [mem KB]\t[times called]")
    cdf = 0.0
    for name, v in times.items():
        if name == "_total":
            continue
        share = 100 * v["ms"] / total
        cdf += share
        print(f"\t{name:>24}\t{v['count']:>9}\t{v['ms']:>10.3f}\t{share:>10.3f}%\t"
              f"{cdf:>10.3f}%\t     0.000\t{v['count']:>9}")
    print("")
    print("Timings (microseconds): count=5 first=1 curr=1 min=1 max=1 avg=1 std=0")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
