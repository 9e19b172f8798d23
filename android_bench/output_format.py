"""Parses the TFLite `benchmark_model` tool's output (current and older formats).

The tool prints one `count=... first=... curr=... min=... max=... avg=... std=...` line per
stage (warm-up, then the timed runs; newer builds add `p5= median= p95=`), then
`Inference timings in us: Init: ..., First inference: ..., Warmup (avg): ..., Inference (avg): ...`
and `Memory footprint delta from the start of the tool (MB): init=... overall=...`.
"""

import dataclasses
import re
from typing import Dict, List, Optional

_STATS = re.compile(r"count=(\d+)((?:\s+\w+=[-\d.e+]+)+)")
_FIELD = re.compile(r"(\w+)=([-\d.e+]+)")
_TIMINGS = re.compile(
    r"Inference timings in us:\s*Init:\s*([\d.e+]+),\s*First inference:\s*([\d.e+]+),\s*"
    r"Warmup \(avg\):\s*([\d.e+]+),\s*Inference \(avg\):\s*([\d.e+]+)")
_MEMORY = re.compile(r"Memory footprint delta.*?init=([\d.e+]+)\s+overall=([\d.e+]+)")


_NODE_TYPE_HEADER = "Summary by node type"


class BenchmarkOutputError(ValueError):
    """The tool's output has no timing line; the message quotes what it printed."""


@dataclasses.dataclass
class BenchmarkResult:
    count: int
    min_us: float
    max_us: float
    avg_us: float
    std_us: float
    first_us: Optional[float] = None
    p5_us: Optional[float] = None
    median_us: Optional[float] = None
    p95_us: Optional[float] = None
    init_us: Optional[float] = None
    first_inference_us: Optional[float] = None
    warmup_avg_us: Optional[float] = None
    inference_avg_us: Optional[float] = None
    memory_init_mb: Optional[float] = None
    memory_overall_mb: Optional[float] = None


def quote(output: str, lines: int = 15) -> str:
    tail = output.strip().splitlines()[-lines:]
    return "\n".join("    " + line for line in tail) if tail else "    (no output)"


def parse(output: str) -> BenchmarkResult:
    """The timed stage's statistics (the last stage `count=` line) plus the summary lines."""
    # Skip the op profiler's own "Timings (microseconds): count=..." / "Memory (bytes): ..."
    # lines, which come after the timed stage when --enable_op_profiling is on.
    stats = [m for m in _STATS.finditer(output)
             if not re.search(r"(Timings \(microseconds\)|Memory \(bytes\)):\s*$",
                              output[output.rfind("\n", 0, m.start()) + 1:m.start()])]
    if not stats:
        raise BenchmarkOutputError(
            "could not find a 'count=... avg=...' line in the benchmark output; it ended "
            "with:\n" + quote(output))
    last = stats[-1]
    fields = {k: float(v) for k, v in _FIELD.findall(last.group(2))}
    missing = [k for k in ("min", "max", "avg", "std") if k not in fields]
    if missing:
        raise BenchmarkOutputError(f"the statistics line lacks {missing}: {last.group(0)!r}")
    result = BenchmarkResult(
        count=int(last.group(1)), min_us=fields["min"], max_us=fields["max"],
        avg_us=fields["avg"], std_us=fields["std"], first_us=fields.get("first"),
        p5_us=fields.get("p5"), median_us=fields.get("median"), p95_us=fields.get("p95"))
    timings = _TIMINGS.search(output)
    if timings:
        (result.init_us, result.first_inference_us, result.warmup_avg_us,
         result.inference_avg_us) = (float(g) for g in timings.groups())
    memory = _MEMORY.search(output)
    if memory:
        result.memory_init_mb, result.memory_overall_mb = (float(g) for g in memory.groups())
    return result


def parse_op_profile(output: str) -> List[Dict]:
    """Rows of the last 'Summary by node type' table (printed with --enable_op_profiling).

    The table is tab-separated: [Node type] [count] [avg ms] [avg %] [cdf %] [mem KB]
    [times called]; node types may contain spaces (XNNPACK's names). [] when absent.
    """
    start = output.rfind(_NODE_TYPE_HEADER)
    if start < 0:
        return []
    rows = []
    lines = output[start:].splitlines()[1:]
    for line in lines:
        text = re.sub(r"^.*?\] ", "", line) if "stat_summarizer" in line else line
        if not text.strip():
            if rows:
                break
            continue
        cells = [c.strip() for c in text.split("\t") if c.strip()]
        if cells and cells[0].startswith("[Node type]"):
            continue
        if len(cells) < 4:
            break
        try:
            rows.append({"node_type": cells[0], "count": int(cells[1]),
                         "avg_ms": float(cells[2]), "avg_pct": float(cells[3].rstrip("%"))})
        except ValueError:
            break
    return rows
