"""The classifier's fine-tuning levers, measured on validation only (`--only recipe_levers --recipe_dir DIR`): from a
finished `run_recipe.py` run, each lever of `--levers` retrains the recipe's classifier from the same review-LM body,
with the same data, settings and seed and that lever alone switched on (`RecipeArguments.classifier_*`, which pass
to `train_classifier.py`'s flags), into DIR/levers/<name>. Every model, the recipe's own classifier (the baseline)
included, then classifies the two validation splits:

- the balanced hotel validation split, which every run also uses to pick its best checkpoint;
- the online-shopping validation split (the training categories' held-back reviews), which no run chooses by.

A lever is kept only if its accuracy minus the baseline's, paired over the same reviews, has a 95% interval above 0
on both. The test splits are not read here: a kept lever goes into the recipe, whose evaluation reads them once.

`--levers aux_lm+ema` switches several levers on in one classifier run. Each run records its settings and training
time in DIR/levers/<name>/lever.json; a later call that asks for the same lever with the same settings scores that
model again instead of retraining it, so a combination can be added to a table without paying for the others twice.
"""

import json
import time
from dataclasses import fields
from pathlib import Path

from chargpt.data import CleaningConfig, load_labelled
from chargpt.evaluation.classification import classification_difference, classification_scores
from chargpt.evaluation.scoring import classifier_predictions
from chargpt.files import write_json_atomic
from chargpt.loading import load_model_and_tokenizer
from recipes.full import RecipeArguments, inference_device, train_sentiment_classifier, written_split_paths


# Each lever's recipe settings: the first GPT paper's auxiliary weight; ULMFiT's factor of 2.6 between layers, with
# one depth unfrozen at a time over the first half of the single epoch; an average over about the last 500 steps
# (about a third of the CPU recipe's epoch of 1,660 steps: 53,133 reviews in batches of 32).
LEVERS = {
    "aux_lm": {"classifier_aux_lm_weight": 0.5},
    "ulmfit": {"classifier_layer_lr_decay": 1 / 2.6, "classifier_gradual_unfreezing": 0.5},
    "ema": {"classifier_ema_decay": 0.998},
}
VALIDATION_SPLITS = ("hotel", "shop")
LEVER_RECORD = "lever.json"


def recipe_arguments(directory: Path) -> RecipeArguments:
    """The arguments a finished recipe run recorded, its output folder included."""
    path = directory / "recipe_report.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"--recipe_dir {directory}: no recipe_report.json there; give the --output_dir of a finished "
            f"run_recipe.py run (the levers retrain its classifier from its review-LM body)."
        )
    recorded = json.loads(path.read_text(encoding="utf-8"))["arguments"]
    known = {f.name for f in fields(RecipeArguments)}
    return RecipeArguments(**{k: v for k, v in recorded.items() if k in known})


def _validation_splits(files: dict) -> dict:
    """Each validation split of the run, read once for every model."""
    return {
        name: load_labelled(str(files[name]["validation"]), label_names=["negative", "positive"])[0]
        for name in VALIDATION_SPLITS
    }


def _validation_predictions(args: RecipeArguments, model_dir: Path, splits: dict) -> dict:
    """The model's predicted label ids on each validation split."""
    model, tokenizer = load_model_and_tokenizer(
        model_dir, task="sequence-classification", device=inference_device(args)
    )
    return {
        name: classifier_predictions(model, tokenizer, split, args.inference_batch_size)[0]
        for name, split in splits.items()
    }


def _scores(splits: dict, predictions: dict, baseline: dict | None) -> dict:
    scores = {}
    for name, split in splits.items():
        labels = split["label"]
        scores[name] = classification_scores(labels, predictions[name], intervals=True)
        if baseline is not None:
            scores[name]["minus_baseline"] = classification_difference(labels, predictions[name], baseline[name])
    return scores


def _kept(scores: dict) -> bool:
    return all(scores[name]["minus_baseline"]["accuracy_ci95"][0] > 0 for name in VALIDATION_SPLITS)


def _chosen_levers(text: str) -> dict:
    """The settings of each lever of --levers by name; a+b merges a's and b's."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    parts = {name: name.split("+") for name in names}
    unknown = [p for name in names for p in parts[name] if p not in LEVERS]
    if unknown or not names or any(len(set(p)) < len(p) for p in parts.values()):
        raise ValueError(
            f"--levers takes a comma-separated subset of {list(LEVERS)}, each alone or several joined by + "
            f"(aux_lm+ema), got {text!r}."
        )
    return {name: {k: v for p in parts[name] for k, v in LEVERS[p].items()} for name in names}


def _trained(out: Path, settings: dict) -> dict | None:
    """What an earlier call recorded for this lever (lever.json), if its model exists and had these settings."""
    path = out / LEVER_RECORD
    if not path.is_file() or not (out / "sentiment" / "config.json").is_file():
        return None
    record = json.loads(path.read_text(encoding="utf-8"))
    return record if record.get("settings") == settings else None


def run_recipe_levers_section(args, work_dir: str, save=lambda partial: None) -> dict:
    """Retrain the recipe's classifier once per lever and compare each with the recipe's own on validation."""
    if not args.recipe_dir:
        raise ValueError(
            "--only recipe_levers retrains the classifier of a finished recipe run: give --recipe_dir (the "
            "--output_dir of run_recipe.py)."
        )
    chosen = _chosen_levers(args.levers)
    directory = Path(args.recipe_dir)
    recipe = recipe_arguments(directory)
    files = written_split_paths(directory / "splits")
    body = directory / ("review-lm" if recipe.review_lm_epochs > 0 else "chat")
    splits = _validation_splits(files)
    baseline = _validation_predictions(recipe, directory / "sentiment", splits)
    results = {
        "recipe_dir": str(directory),
        "baseline": {"scores": _scores(splits, baseline, None)},
        "levers": {},
        "rule": "kept if accuracy minus the baseline's (paired) has a 95% interval above 0 on both validation splits",
    }
    save(results)
    cleaning = CleaningConfig(min_turns=1)
    for name, settings in chosen.items():
        lever_args = RecipeArguments(**{**vars(recipe), **settings})
        out = directory / "levers" / name
        record = _trained(out, settings)
        if record is None:
            start = time.perf_counter()
            training = train_sentiment_classifier(lever_args, out, body, files, cleaning)
            record = {
                "settings": settings,
                "train_seconds": round(time.perf_counter() - start, 1),
                "selection_macro_f1": training.get("eval", {}).get("eval_macro_f1"),
            }
            write_json_atomic(out / LEVER_RECORD, record)
        else:
            record = {**record, "reused": True}
        scores = _scores(splits, _validation_predictions(lever_args, out / "sentiment", splits), baseline)
        results["levers"][name] = {**record, "scores": scores, "kept": _kept(scores)}
        save(results)
    return results


__all__ = ["LEVERS", "recipe_arguments", "run_recipe_levers_section"]
