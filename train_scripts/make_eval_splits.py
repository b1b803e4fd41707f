#!/usr/bin/env python
"""Write the fixed evaluation splits (recipes/) as files the training scripts read, so that a recipe
trains and selects checkpoints on exactly the parts that run_evaluation.py does not test on.

    python train_scripts/make_eval_splits.py --output_dir runs/splits
    python train_scripts/train_classifier.py --model_name_or_path runs/chat \\
        --train_files runs/splits/chnsenticorp_train.csv --validation_files runs/splits/chnsenticorp_validation.csv \\
        --test_files runs/splits/chnsenticorp_test.csv --class_names negative positive --output_dir runs/sentiment

Written: `chnsenticorp_{train,validation,test}.csv`, `online_shopping_holdout_CATEGORY_{train,validation,test}.csv`
(CATEGORY in English), `lccc_base_{train,validation,test}.jsonl` (dialogues), `lccc_base_posts.jsonl` (held-out posts
with their reference replies), and `NAME_splits.json` beside each with the protocol and counts. Keep the output
outside the repository: it is data. All flags: `--help`.
"""

import sys
from dataclasses import dataclass, field
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root: recipes/ is not installed

from chargpt.evaluation import write_split_files  # noqa: E402
from chargpt.training import parse_arguments, run_script  # noqa: E402
from recipes.dialogue_splits import LCCC_BASE_FILES, lccc_base_splits  # noqa: E402
from recipes.sentiment_splits import (  # noqa: E402
    CHNSENTICORP_FILE,
    DEFAULT_HOLDOUT_CATEGORY,
    ONLINE_SHOPPING_FILE,
    chnsenticorp_splits,
    cross_domain_splits,
    holdout_file_stem,
)


SPLITS = ("sentiment", "cross_domain", "dialogue")


@dataclass
class SplitArguments:
    output_dir: str = field(metadata={"help": "Folder for the split files (outside the repository)."})
    data_dir: str = field(default="../shared/data", metadata={"help": "Folder of the shared data (see its README)."})
    splits: list[str] = field(default_factory=lambda: list(SPLITS), metadata={"help": f"Which: {', '.join(SPLITS)}."})
    holdout_category: str = field(
        default=DEFAULT_HOLDOUT_CATEGORY,
        metadata={
            "help": "The online-shopping category held out (Chinese or English name), or several, comma-separated."
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed of the splits (run_evaluation.py's --seed must match)."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where the read corpora are cached (default: the datasets cache)."}
    )

    def __post_init__(self):
        unknown = [name for name in self.splits if name not in SPLITS]
        if unknown:
            raise ValueError(f"Unknown --splits {unknown}; choose from {list(SPLITS)}.")


def main(argv: list[str] | None = None) -> list:
    (args,) = parse_arguments((SplitArguments,), argv)
    data = args.data_dir.rstrip("/")
    written = []
    if "sentiment" in args.splits:
        splits, info = chnsenticorp_splits(f"{data}/{CHNSENTICORP_FILE}", args.seed, cache_dir=args.cache_dir)
        written += write_split_files(splits, args.output_dir, "chnsenticorp", info)
    if "cross_domain" in args.splits:
        path = f"{data}/{ONLINE_SHOPPING_FILE}"
        splits, info = cross_domain_splits(path, args.holdout_category, args.seed, cache_dir=args.cache_dir)
        written += write_split_files(splits, args.output_dir, holdout_file_stem(info["holdout_categories"]), info)
    if "dialogue" in args.splits:
        files = [f"{data}/{f}" for f in LCCC_BASE_FILES]
        splits, info = lccc_base_splits(files, args.seed, cache_dir=args.cache_dir)
        written += write_split_files(splits, args.output_dir, "lccc_base", info)
    for path in written:
        print(path)
    return written


if __name__ == "__main__":
    run_script(main)
