"""CharGPT's recipe against the same recipe with transformers' GPT-2 and Llama (`--only recipe_peers`): reads the
output directories of `run_recipe.py` runs, one a model (`--recipe_peer_dirs chargpt=DIR gpt2=DIR llama=DIR`, from
`run_recipe.py [--peer gpt2|llama]`), and tabulates each one's held-out figures with their 95% intervals, the
validation figures its steps chose checkpoints by, and its wall times. Nothing trains here: the arms are long runs
(an hour each on two CPU cores), made by the commands the report prints.

A run stopped part way still counts for what it finished: its `recipe_progress.json` gives the finished steps, and
the held-out reports the evaluation wrote into the chat and sentiment directories give their figures.

Where the held-out reports hold the classifiers' row-by-row predictions, each peer arm also gets CharGPT's accuracy
minus its own, paired over the same test reviews (a tighter interval than two separate ones can give), against the
CharGPT arm of the same scale, labelled training reviews and held-out categories.
"""

import json
from pathlib import Path

from chargpt.evaluation.classification import classification_difference
from recipes.full import PROGRESS_FILE, headline_figures
from recipes.heldout import TASKS as HELDOUT_TASKS
from recipes.sentiment_splits import ONLINE_SHOPPING_CATEGORIES


TASKS = HELDOUT_TASKS["sequence-classification"]  # the classifier's tests: sentiment, cross_domain


def _read(path: Path) -> dict | None:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _step_metric(report: dict, step: str, key: str):
    """A final validation metric of one training step (`chat_training`, ...) from the recipe's report."""
    return ((report.get(step) or {}).get("eval") or {}).get(key)


def _english_keys(by_category: dict | None) -> dict | None:
    """A pooled cross-domain test's scores by category, keyed by the categories' English names."""
    if not by_category:
        return None
    english = {v: k for k, v in ONLINE_SHOPPING_CATEGORIES.items()}
    return {english.get(c, c): scores for c, scores in by_category.items()}


def read_arm(name: str, directory: Path) -> dict:
    """One arm's figures, validation metrics, wall times and settings from a recipe output directory."""
    report = _read(directory / "recipe_report.json")
    finished = report is not None
    report = report or _read(directory / PROGRESS_FILE)
    if report is None:
        raise FileNotFoundError(
            f"--recipe_peer_dirs {name}={directory}: no recipe_report.json or {PROGRESS_FILE} there; give the "
            f"--output_dir of a run_recipe.py run."
        )
    chat = _read(directory / "chat" / "heldout_evaluation.json") or {}
    sentiment = _read(directory / "sentiment" / "heldout_evaluation.json") or {}
    arguments = report.get("arguments", {})
    return {
        "name": name,
        "directory": str(directory),
        "model": report.get("model", arguments.get("peer") or "chargpt"),
        "finished": finished,
        "scale": arguments.get("scale"),
        "holdout_category": arguments.get("holdout_category", "books"),
        "extra_labelled": arguments.get("extra_labelled", True),
        "chat_from": report.get("chat_from"),
        "by_category": _english_keys((sentiment.get("cross_domain") or {}).get("by_category")),
        "figures": report.get("figures") or headline_figures(chat, sentiment),
        "intervals": report.get("intervals") or sentiment.get("intervals") or chat.get("intervals"),
        "validation": {
            "chat_loss": _step_metric(report, "chat_training", "eval_loss"),
            "review_lm_loss": _step_metric(report, "review_lm_training", "eval_loss"),
            "classifier_macro_f1": _step_metric(report, "classifier_training", "eval_macro_f1"),
        },
        "timings_seconds": report.get("timings_seconds", {}),
        "environment": report.get("environment"),
    }


def run_recipe_peers_section(args, work_dir: str, save=lambda partial: None) -> dict:
    """The section's results: every arm named in --recipe_peer_dirs, in the order given (the report groups them by
    the recipe's --scale, so one run can hold the CPU and the GPU arms)."""
    if not args.recipe_peer_dirs:
        raise ValueError(
            "--only recipe_peers reads finished recipe runs: give --recipe_peer_dirs chargpt=DIR gpt2=DIR llama=DIR "
            "(the --output_dir of run_recipe.py, run_recipe.py --peer gpt2 and run_recipe.py --peer llama)."
        )
    arms, predictions = [], []
    for item in args.recipe_peer_dirs:
        name, sep, directory = item.partition("=")
        if not sep or not name or not directory:
            raise ValueError(f"--recipe_peer_dirs takes NAME=DIR items, got {item!r}.")
        arms.append(read_arm(name, Path(directory)))
        predictions.append(read_predictions(Path(directory)))
    pair_with_chargpt(arms, predictions)
    return {"arms": arms}


def read_predictions(directory: Path) -> dict:
    """The classifier's row-by-row predictions on each test (`sentiment`, `cross_domain`) that its held-out report
    holds (reports written before they were recorded hold none)."""
    report = _read(directory / "sentiment" / "heldout_evaluation.json") or {}
    return {task: report[task]["predictions"] for task in TASKS if "predictions" in report.get(task, {})}


def pair_with_chargpt(arms: list[dict], predictions: list[dict]) -> None:
    """Give every peer arm `chargpt_minus_this`: CharGPT's accuracy minus the peer's on each test, paired over the
    same reviews (the paired bootstrap of `classification_difference`), against the first CharGPT arm of the same
    scale and labelled training reviews whose test rows are the same (equal `rows_sha256`)."""
    for i, arm in enumerate(arms):
        if arm["model"] == "chargpt":
            continue
        for j, other in enumerate(arms):
            same = [other[k] == arm[k] for k in ("scale", "extra_labelled", "holdout_category")]
            if other["model"] != "chargpt" or not all(same):
                continue
            ours, theirs = predictions[j], predictions[i]
            tasks = [t for t in TASKS if _same_test(ours, theirs, t)]
            if tasks:
                arm["chargpt_minus_this"] = {"against": other["name"]} | {
                    t: classification_difference(ours[t]["labels"], ours[t]["model"], theirs[t]["model"]) for t in tasks
                }
                break


def _same_test(a: dict, b: dict, task: str) -> bool:
    """Whether both hold predictions on `task` over the same rows (the digest covers each row's text and label)."""
    return task in a and task in b and a[task]["rows_sha256"] == b[task]["rows_sha256"]


__all__ = ["pair_with_chargpt", "read_arm", "read_predictions", "run_recipe_peers_section"]
