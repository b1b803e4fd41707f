"""Shared helpers: machine description, interleaved timing, medians and ratios, atomic JSON results."""

import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from chargpt import files


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else platform.processor()."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """The matrix-relevant instruction-set flags the CPU reports (they decide whether bf16 is fast)."""
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "fma")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [flag for flag in wanted if flag in have]
    except OSError:
        pass
    return []


def machine_info() -> dict:
    """Everything a reader needs to judge where the numbers came from."""
    import transformers

    info = {
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cuda_device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    try:
        import sklearn

        info["scikit_learn"] = sklearn.__version__
    except ImportError:
        info["scikit_learn"] = None
    return info


def median(values) -> float:
    return float(statistics.median(values))


def interleaved_times(fns: dict[str, Callable[[], None]], repetitions: int, warmup: int = 1) -> dict[str, list[float]]:
    """Time each callable `repetitions` times in the order A B A B ..., after `warmup` untimed calls of each.

    The machines are shared and noisy: interleaving puts both contenders under the same background load at nearly
    the same moment, so the per-round ratios (see `paired_ratio`) stay meaningful even when absolute times drift.
    """
    if repetitions < 1:
        raise ValueError(f"repetitions must be >= 1, got {repetitions}.")
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repetitions):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def paired_ratio(ours_times: list[float], peer_times: list[float]) -> float:
    """Median over rounds of peer_time / our_time: > 1 means we are faster. Each round's two timings were taken
    back to back, so dividing within a round cancels most of the machine's drift."""
    if len(ours_times) != len(peer_times) or not ours_times:
        raise ValueError("paired_ratio needs two equally long, non-empty lists of timings from the same rounds.")
    return median([p / o for o, p in zip(ours_times, peer_times)])


def best_ratio(ours_times: list[float], peer_times: list[float]) -> float:
    """Fastest peer time / fastest own time: the comparison of each contender at its least disturbed, a check on
    `paired_ratio` when bursts of other work hit some rounds and not others."""
    return min(peer_times) / min(ours_times)


def write_json_atomic(path: Path, data: dict) -> None:
    """Write JSON atomically (chargpt.files): a crash never leaves a half-written result."""
    files.write_json_atomic(path, data, indent=1)


def write_text_atomic(path: Path, text: str) -> None:
    files.atomic_write_text(path, text)


def load_results(path: Path) -> dict:
    """An earlier results file (so that `--only` runs add their section to it), or an empty one."""
    path = Path(path)
    if not path.exists():
        return {}
    with open(path, encoding="utf-8") as f:
        try:
            return json.load(f)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON ({err}); delete it or pick another --name.") from err


def target(name: str, value: float | None, threshold: float, higher_is_better: bool = True) -> dict:
    """A target record: the measured value, the threshold and whether it was met (None when not measured)."""
    if value is None:
        met = None
    else:
        met = value >= threshold if higher_is_better else value <= threshold
    return {"name": name, "value": value, "threshold": threshold, "higher_is_better": higher_is_better, "met": met}
