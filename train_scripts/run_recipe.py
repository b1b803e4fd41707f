#!/usr/bin/env python
"""CharGPT's full recipe on the shared Chinese data (../shared/data), end to end on one machine:

    python train_scripts/run_recipe.py --output_dir runs/recipe

1. the fixed evaluation splits (as make_eval_splits.py writes them) and one character vocabulary;
2. a chat model on every dialogue corpus (LCCC toy and LCCC-base training part, KdConv, CPED), best validation
   checkpoint;
3. its sampling defaults chosen on LCCC-base validation posts and saved in its generation_config.json;
4. a sentiment classifier fine-tuned from it on the hotel reviews and eight online-shopping categories (the ninth,
   --holdout_category, is the cross-domain test);
5. both measured on the held-out tests (run_evaluation.py's report, with the TF-IDF floor fit on the classifier's
   own training files) and published with model cards under OUTPUT_DIR/published.
OUTPUT_DIR/recipe_report.json holds each step's wall time and every figure. All flags: `--help`.

`--scale gpu` runs the same steps with a larger model in bf16, larger batches and more epochs, sized for about ten
minutes on one large GPU (docs/training.md, "The GPU scale"); without CUDA it refuses, unless `--use_cpu` asks for a
CPU smoke run of those settings (in fp32):

    python train_scripts/run_recipe.py --scale gpu --output_dir runs/recipe-gpu
    python train_scripts/run_recipe.py --scale gpu --use_cpu --max_train_samples 200 --max_eval_samples 100 \\
        --generation_posts 20 --output_dir runs/recipe-gpu-smoke

The scale sets defaults only: a flag given explicitly keeps its value (`--scale gpu --chat_epochs 1`).

An arm that differs only in its review steps reuses a finished run's vocabulary, chat model and sampling settings
instead of training them again (the chat settings and split files must be that run's; its checkpoints are not
copied), e.g. the classifier fine-tuned on the hotel reviews alone beside the default mixed run:

    python train_scripts/run_recipe.py --chat_from runs/recipe --extra_labelled false --output_dir runs/recipe-hotel
"""

import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: recipes/ is not installed

from chargpt.training import parse_arguments, run_script, setup_logging  # noqa: E402
from recipes.full import RecipeArguments, run_recipe  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    (args,) = parse_arguments((RecipeArguments,), argv)
    setup_logging()
    report = run_recipe(args)
    print(f"\n=== CharGPT recipe ({report['model']}) ===")
    figures = report["figures"]
    for name, value in figures.items():
        if not name.endswith("_ci95"):  # printed beside its figure: 0.8600 [0.8290, 0.8890]
            interval = figures.get(f"{name}_ci95")
            print(f"{name}: {value:.4f}" + (f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else ""))
    if report.get("intervals"):
        settings = report["intervals"]
        method = f"{settings['confidence']:.0%} {settings['method']}"
        print(f"[low, high]: {method} interval, {settings['resamples']} resamples, seed {settings['seed']}")
    print("wall time (s): " + ", ".join(f"{k} {v:.0f}" for k, v in report["timings_seconds"].items()))
    print(f"report: {args.output_dir}/recipe_report.json")
    return report


if __name__ == "__main__":
    run_script(main)
