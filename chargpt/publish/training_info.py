"""What the card says about training, mined from a Trainer output directory: the settings (trainer_state.json,
training_args.json, train_results.json), the data (data_summary.json), the evaluation rows of the model-index
(eval_results.json / test_results.json, all_results.json or the log) and the held-out report with its baselines
(heldout_evaluation.json)."""

import glob
import json
import math
import os


_SKIPPED_RESULT_KEYS = (
    "runtime",
    "samples_per_second",
    "steps_per_second",
    "epoch",
    "samples",
    "model_preparation_time",
    "step",
    "total_flos",
)
_TRAINING_ARGS_KEYS = (
    "learning_rate",
    "lr_scheduler_type",
    "warmup_ratio",
    "warmup_steps",
    "weight_decay",
    "adam_beta1",
    "adam_beta2",
    "max_grad_norm",
    "per_device_train_batch_size",
    "gradient_accumulation_steps",
    "num_train_epochs",
    "max_steps",
    "block_size",
    "max_seq_length",
    "seed",
    "bf16",
    "fp16",
)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON: {err}") from err


def _find_trainer_state(directory: str) -> str | None:
    """trainer_state.json in the directory, else in its newest checkpoint-N."""
    if os.path.isfile(os.path.join(directory, "trainer_state.json")):
        return directory
    checkpoints = [
        d
        for d in glob.glob(os.path.join(directory, "checkpoint-*"))
        if os.path.isfile(os.path.join(d, "trainer_state.json")) and d.rsplit("-", 1)[-1].isdigit()
    ]
    return max(checkpoints, key=lambda d: int(d.rsplit("-", 1)[-1])) if checkpoints else None


def collect_training_info(directory: str, task: str, notes: list[str]) -> dict:
    """Settings, evaluation rows (split, metric, value, 95% interval or None), baseline rows, how the intervals were
    computed and log history from a Trainer output directory."""
    if not os.path.isdir(directory):
        raise ValueError(f"Training directory {directory!r} does not exist.")
    info = {
        "state_dir": _find_trainer_state(directory),
        "settings": [],
        "eval_rows": [],
        "baseline_rows": [],
        "intervals": None,
        "log_history": [],
        "data_rows": [],
    }
    if info["state_dir"] is None:
        notes.append(f"No trainer_state.json in {directory}: the card has no training log or settings from it.")
    else:
        state = _read_json(os.path.join(info["state_dir"], "trainer_state.json"))
        info["log_history"] = state.get("log_history", [])
        info["settings"] += _state_settings(state, info["log_history"])
    args_path = os.path.join(directory, "training_args.json")
    if os.path.isfile(args_path):
        args = _read_json(args_path)
        info["settings"] += [(k, args[k]) for k in _TRAINING_ARGS_KEYS if isinstance(args.get(k), (int, float, str))]
    train_results = os.path.join(directory, "train_results.json")
    if os.path.isfile(train_results):
        results = _read_json(train_results)
        info["settings"] += [
            (label, _round(results[key]))
            for key, label in (("train_samples", "training examples"), ("train_loss", "mean training loss"))
            if key in results
        ]
    summary = os.path.join(directory, "data_summary.json")
    info["data_rows"] = _data_summary_rows(_read_json(summary)) if os.path.isfile(summary) else []
    heldout, info["baseline_rows"], info["intervals"] = heldout_rows(directory)
    info["eval_rows"] = _eval_rows(directory, task, info["log_history"]) + heldout
    if not info["eval_rows"]:
        notes.append(
            f"No evaluation results (eval_results.json, test_results.json or eval entries in the log) in "
            f"{directory}: the card has no model-index."
        )
    return info


def _data_summary_rows(summary: dict) -> list[tuple]:
    """(part, text) rows from the training scripts' data_summary.json: counts per split, sources, cleaning."""
    rows = []
    for key, value in summary.items():
        if isinstance(value, dict):
            pieces = [
                f"{k}: {v}"
                for k, v in value.items()
                if isinstance(v, (int, float, str)) and not isinstance(v, bool) and k != "from_cache"
            ]
            pieces += [f"{k}: {v}" for k, v in value.items() if isinstance(v, bool)] if key == "cleaning" else []
            if isinstance(value.get("dropped"), dict) and value["dropped"]:
                pieces.append("dropped: " + ", ".join(f"{k} {v}" for k, v in value["dropped"].items()))
            if isinstance(value.get("sources"), list) and value["sources"]:
                pieces.append("sources: " + ", ".join(os.path.basename(str(s)) for s in value["sources"]))
            if pieces:
                rows.append((key, "; ".join(pieces)))
        elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
            rows.append((key, value))
        elif isinstance(value, list) and value and all(isinstance(v, (str, int)) for v in value):
            rows.append((key, ", ".join(map(str, value))))
    return rows


def _state_settings(state: dict, history: list[dict]) -> list[tuple]:
    rows = [
        ("optimizer steps", state.get("global_step")),
        ("epochs", _round(state.get("epoch"))),
        ("batch size per device", state.get("train_batch_size")),
    ]
    losses = [e["loss"] for e in history if "loss" in e]
    rates = [e["learning_rate"] for e in history if "learning_rate" in e]
    runtime = [e["train_runtime"] for e in history if "train_runtime" in e]
    if losses:
        rows.append(("final training loss", _round(losses[-1])))
    if rates:
        rows.append(("peak learning rate", f"{max(rates):.3g}"))
    if runtime:
        rows.append(("training time", f"{runtime[-1] / 60:.1f} min"))
    return [(k, v) for k, v in rows if v is not None]


def _round(value, digits: int = 4):
    return round(value, digits) if isinstance(value, float) else value


def _eval_rows(directory: str, task: str, history: list[dict]) -> list[tuple]:
    """(split, metric, value, None) from eval_results.json / test_results.json (or all_results.json), else the last
    eval entry of the log (the None: no interval). A causal LM's loss also gives its perplexity (exp of the mean token
    loss) if none is recorded."""
    sources = {}
    all_results = os.path.join(directory, "all_results.json")
    for split, name, prefix in (("validation", "eval_results.json", "eval_"), ("test", "test_results.json", "test_")):
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            sources[split] = _read_json(path)
        elif os.path.isfile(all_results):
            picked = {k: v for k, v in _read_json(all_results).items() if k.startswith(prefix)}
            if picked:
                sources[split] = picked
    if not sources:
        evals = [e for e in history if "eval_loss" in e]
        if evals:
            sources["validation"] = evals[-1]
    rows = []
    for split, results in sources.items():
        metrics = {}
        for key, value in results.items():
            name = key.removeprefix("eval_").removeprefix("test_")
            if isinstance(value, bool) or not isinstance(value, (int, float)) or name.endswith(_SKIPPED_RESULT_KEYS):
                continue
            if not math.isfinite(value):
                continue
            metrics[name] = value
        if task == "causal-lm" and "loss" in metrics and "perplexity" not in metrics and metrics["loss"] < 50:
            metrics["perplexity"] = math.exp(metrics["loss"])
        rows += [(split, name, round(float(v), 4), None) for name, v in metrics.items()]
    return rows


def _interval(scores: dict, metric: str) -> list | None:
    """The figure's 95% interval, rounded as the figure is; None in reports written before intervals existed."""
    interval = scores.get(f"{metric}_ci95")
    return [_round(float(bound)) for bound in interval] if interval else None


def heldout_rows(directory: str) -> tuple[list[tuple], list[tuple], dict | None]:
    """Rows from the held-out report that train_scripts/run_evaluation.py writes (heldout_evaluation.json), if the
    directory has one: the model's (split, metric, value, interval) on the fixed sentiment and cross-domain tests,
    LCCC-base held-out perplexity and its replies to the held-out posts; apart, the baselines measured in the same run
    (split, baseline, metric, value, interval): the TF-IDF floor and the human references; and how the intervals were
    computed (the report's `intervals`). An interval is `[low, high]`, or None in a report without one. Only the
    model's rows go into the model-index, where every result is read as the model's."""
    path = os.path.join(directory, "heldout_evaluation.json")
    if not os.path.isfile(path):
        return [], [], None
    report = _read_json(path)
    rows, baselines = _sentiment_rows(report)
    if "perplexity" in report:
        scores = report["perplexity"]["model"]
        split = "LCCC-base held-out dialogues"
        rows.append((split, "perplexity", _round(scores["perplexity"]), _interval(scores, "perplexity")))
    if "replies" in report:
        replies = report["replies"]
        split = f"replies to {replies['model']['n']} held-out posts"
        metrics = ("distinct_1", "distinct_2", "repetition_share")
        rows += [(split, m, _round(replies["model"][m]), _interval(replies["model"], m)) for m in metrics]
        if "references" in replies:
            human = replies["references"]
            baselines += [
                (split, "the human replies to the same posts", m, _round(human[m]), _interval(human, m))
                for m in metrics
            ]
    return rows, baselines, report.get("intervals")


def _sentiment_rows(report: dict) -> tuple[list[tuple], list[tuple]]:
    """The model's rows and the TF-IDF floor's of the sentiment and cross-domain tests (see `heldout_rows`)."""
    rows, baselines = [], []
    for task in ("sentiment", "cross_domain"):
        if task not in report:
            continue
        test = (
            "ChnSentiCorp balanced held-out test"
            if task == "sentiment"
            else f"cross-domain test (held-out category {report[task]['split'].get('holdout_category', '?')})"
        )
        model = report[task]["model"]
        rows += [(test, m, _round(model[m]), _interval(model, m)) for m in ("accuracy", "macro_f1")]
        if "tfidf_logreg" in report[task]:
            floor = report[task]["tfidf_logreg"]
            name = "TF-IDF character 1-3-grams + logistic regression, same training files"
            baselines += [
                (test, name, m, _round(floor[m]), _interval(floor, m)) for m in ("accuracy", "macro_f1") if m in floor
            ]
    return rows, baselines


__all__ = ["collect_training_info", "heldout_rows"]
