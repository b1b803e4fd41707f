#!/usr/bin/env python
"""Measure a trained CharGPT on the fixed held-out splits (recipes/) and write one JSON report.

    python train_scripts/run_evaluation.py --model_name_or_path runs/sentiment --tfidf_baseline
    python train_scripts/run_evaluation.py --model_name_or_path runs/chat --output_file runs/chat-eval.json

A classifier gets accuracy and macro-F1 on the balanced ChnSentiCorp test (250 + 250 reviews) and on the
cross-domain test (one online-shopping category, `--holdout_category`; meaningful for a classifier trained without
it, e.g. on the `online_shopping_holdout_*_train.csv` that make_eval_splits.py writes). A causal LM gets its
perplexity on held-out LCCC-base dialogues and Distinct-1/2, the share of repetitive replies and more on its replies
to 500 held-out posts, sampled with its own generation config, beside the same figures for the human replies. Every
figure comes with its 95% percentile-bootstrap interval, printed as [low, high] after it.
The report (MODEL_DIR/heldout_evaluation.json by default) is written atomically. All flags: `--help`; a JSON file
with the same keys can replace the flags.
"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: recipes/ is not installed

from chargpt.files import write_json_atomic  # noqa: E402
from chargpt.training import parse_arguments, run_script  # noqa: E402
from recipes.heldout import EvaluationArguments, evaluate_model  # noqa: E402


def _figure(scores: dict, name: str, digits: int = 4, percent: bool = False) -> str:
    """`0.8600 [0.8290, 0.8890]`: a figure and, when the report has it, its 95% interval."""
    form = ".1%" if percent else f".{digits}f"
    text = format(scores[name], form)
    interval = scores.get(f"{name}_ci95")
    return text + (f" [{format(interval[0], form)}, {format(interval[1], form)}]" if interval else "")


def _print_summary(report: dict) -> None:
    for task in ("sentiment", "cross_domain"):
        if task in report:
            scores = report[task]["model"]
            line = f"{task}: accuracy {_figure(scores, 'accuracy')}, macro-F1 {_figure(scores, 'macro_f1')} "
            line += f"({scores['n']} rows)"
            if "tfidf_logreg" in report[task]:
                line += f"; TF-IDF floor {_figure(report[task]['tfidf_logreg'], 'accuracy')}"
            if "model_minus_tfidf_logreg" in report[task]:
                line += f", model - floor {_figure(report[task]['model_minus_tfidf_logreg'], 'accuracy')} (paired)"
            print(line)
    if "perplexity" in report:
        scores = report["perplexity"]["model"]
        print(
            f"perplexity: {_figure(scores, 'perplexity', 2)} ({scores['dialogues']} dialogues, {scores['tokens']} "
            "tokens)"
        )
    if "replies" in report:
        model, human = report["replies"]["model"], report["replies"]["references"]
        print(
            f"replies: distinct-1 {_figure(model, 'distinct_1', 3)}, distinct-2 {_figure(model, 'distinct_2', 3)}, "
            f"repetitive {_figure(model, 'repetition_share', percent=True)} (references: "
            f"{_figure(human, 'distinct_2', 3)}, {_figure(human, 'repetition_share', percent=True)})"
        )
    if "intervals" in report:
        settings = report["intervals"]
        print(
            f"[low, high]: {settings['confidence']:.0%} {settings['method']} interval, {settings['resamples']} "
            f"resamples, seed {settings['seed']}"
        )


def main(argv: list[str] | None = None) -> dict:
    (args,) = parse_arguments((EvaluationArguments,), argv)
    report = evaluate_model(args)
    output_file = args.output_file or f"{args.model_name_or_path.rstrip('/')}/heldout_evaluation.json"
    write_json_atomic(output_file, report)
    _print_summary(report)
    print(f"Report: {output_file}")
    return report


if __name__ == "__main__":
    run_script(main)
