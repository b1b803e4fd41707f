"""Run the CharGPT benchmarks:

    python benchmarks/run.py [--quick] [--only SECTION,...]

SECTION: speed, memory, quality, data, time_to_quality, recipe (the default run); recipe_peers, recipe_levers.

Each section's results are written to benchmarks/results/<name>.json as soon as it finishes (atomically), together
with the machine description, and the Markdown report is re-rendered after every section, so a long run can be
watched, interrupted and resumed in parts (`--only quality` keeps the speed results already in the file).
"""

import logging
import os
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path


if __package__ in (None, ""):
    # Run as a script (python benchmarks/run.py): make the repository root importable so `benchmarks.*` resolves.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import HfArgumentParser  # noqa: E402

from benchmarks.common import load_results, machine_info, write_json_atomic, write_text_atomic  # noqa: E402
from benchmarks.report import render, summary_table  # noqa: E402
from benchmarks.settings import BenchmarkArguments, apply_quick, explicit_fields  # noqa: E402


logger = logging.getLogger("benchmarks")


def _section_runner(section: str):
    """The function that runs one section: (args, work_dir) -> results dict."""
    if section == "speed":
        from benchmarks.speed import run_speed

        return run_speed
    if section == "memory":
        from benchmarks.memory import run_memory

        return run_memory
    if section == "data":
        from benchmarks.data import run_data

        return run_data
    if section == "recipe":
        from benchmarks.recipe import run_recipe_section

        return run_recipe_section
    if section == "recipe_levers":
        from benchmarks.recipe_levers import run_recipe_levers_section

        return run_recipe_levers_section
    if section == "recipe_peers":
        from benchmarks.recipe_peers import run_recipe_peers_section

        return run_recipe_peers_section
    if section == "time_to_quality":
        from benchmarks.time_to_quality import run_time_to_quality

        return run_time_to_quality
    from benchmarks.quality import run_quality

    return run_quality


def _load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def report_path(args: BenchmarkArguments) -> Path:
    """The full run's report is the committed REPORT.md; other runs get <name>.md beside their JSON."""
    name = args.results_name()
    return Path(args.results_dir) / ("REPORT.md" if name == "full" else f"{name}.md")


def run(args: BenchmarkArguments, argv: list[str] | None = None) -> dict:
    """Run the requested sections, saving results and report after each; returns the results.

    results["runs"][section] records, per section, the command, settings, times and load averages of the run that
    produced it, since `--only` runs fill one results file in parts."""
    args = apply_quick(args, explicit_fields(argv or []))
    torch.set_num_threads(args.threads)
    json_path = Path(args.results_dir) / f"{args.results_name()}.json"
    results = load_results(json_path)
    machine = machine_info()
    # The machine of the sections already in the file stays; a section run elsewhere records its own (below).
    results.setdefault("machine", machine)
    runs = results.setdefault("runs", {})
    command = " ".join(["python benchmarks/run.py", *(argv or [])])
    with tempfile.TemporaryDirectory(prefix="chargpt-bench-") as tmp:
        work_dir = args.work_dir or tmp
        for section in args.sections():
            logger.info("=== %s ===", section)
            start, load_before = time.perf_counter(), _load_average()
            runs[section] = {
                "command": command,
                "quick": args.quick,
                "settings": vars(args),
                "started": _now(),
                "load_average_before": load_before,
                "machine": machine,
            }

            def save(partial, section=section):
                # Incremental results: a long section shows (and keeps) what it has measured so far.
                results[section] = {**partial, "partial": True}
                write_json_atomic(json_path, results)
                write_text_atomic(report_path(args), render(results))

            results[section] = _section_runner(section)(args, work_dir, save)
            # Other work on a shared machine shows in the load average; a reader of the numbers should see it.
            runs[section].update(
                {"finished": _now(), "seconds": time.perf_counter() - start, "load_average_after": _load_average()}
            )
            write_json_atomic(json_path, results)
            write_text_atomic(report_path(args), render(results))
            logger.info("%s done in %.1f min; results in %s", section, runs[section]["seconds"] / 60, json_path)
    return results


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    parser = HfArgumentParser(BenchmarkArguments)
    if len(argv) == 1 and argv[0].endswith(".json"):
        (args,) = parser.parse_json_file(json_file=os.path.abspath(argv[0]))
    else:
        (args,) = parser.parse_args_into_dataclasses(args=argv)
    results = run(args, argv)
    print(summary_table(results))
    print(f"\nresults: {Path(args.results_dir) / (args.results_name() + '.json')}\nreport: {report_path(args)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
