"""Time to quality: validation loss against training wall time for GPT-2, transformers' Llama, CharGPT's course preset
and CharGPT's modern preset, each trained by transformers' Trainer on the same batches for the same wall-clock budget.

Every contender has the same width, depth and heads and a parameter count within a few percent; each trains with its
own optimizer and the peak learning rate that was best for it on the validation split (benchmarks/NOTES.md), and the
same warmup-stable-decay schedule. A wall-clock budget has no step count, which the schedule needs: each contender first
times a few steps of its own, and its run gets the steps that fill the budget at that rate. Evaluation pauses the
clock, so the curves show training time only.
"""

import copy
import logging
import math
import random
import tempfile
import time
from pathlib import Path

import torch
from transformers import TrainerCallback

from chargpt import CharGPTForCausalLM, CharGPTTokenizer
from chargpt.data import load_dialogues
from chargpt.training import LMModelArguments, build_causal_lm_config
from chargpt.training.arguments import CharGPTTrainingArguments
from chargpt.training.trainer import CharGPTTrainer
from recipes.peers import PEERS, peer_causal_lm

from .loop import encode_dialog, pack_blocks


logger = logging.getLogger(__name__)

# Every dialogue corpus in ../shared/data.
DIALOGUE_FILES = (
    "lccc/lccc_toy_train_pairs.txt",
    "lccc/lccc_toy_train_dialogs.json",
    "lccc_base/lccc_base_valid_part.json",
    "lccc_base/lccc_base_test_part.json",
    "kdconv/kdconv_film_dev.json",
    "kdconv/kdconv_film_test.json",
    "kdconv/kdconv_music_dev.json",
    "kdconv/kdconv_music_test.json",
    "kdconv/kdconv_travel_dev.json",
    "kdconv/kdconv_travel_test.json",
    "cped/cped_dialogues.json",
)
CONTENDERS = ("gpt2", "llama", "chargpt-course", "chargpt-modern")


def load_blocks(args) -> dict:
    """All dialogues, split by dialogue (fixed seed) into training and validation, encoded with a character
    tokenizer built from the training split and packed into blocks of `ttq_block_len` tokens."""
    paths = [str(Path(args.data_dir) / name) for name in DIALOGUE_FILES]
    missing = [p for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"Missing dialogue corpora {missing}; pass --data_dir pointing at ../shared/data.")
    dataset, _ = load_dialogues(paths)
    dialogues = [turns for turns in dataset["turns"] if len(turns) >= 2]
    random.Random(args.seed).shuffle(dialogues)
    n_valid = max(1, int(len(dialogues) * args.ttq_validation_share))
    valid, train = dialogues[:n_valid], dialogues[n_valid:]
    tokenizer = CharGPTTokenizer.from_texts(
        [t for d in train for t in d], min_frequency=2, model_max_length=args.ttq_block_len
    )
    train_blocks = pack_blocks([encode_dialog(tokenizer, d) for d in train], args.ttq_block_len)
    valid_blocks = pack_blocks([encode_dialog(tokenizer, d) for d in valid], args.ttq_block_len)
    return {
        "tokenizer": tokenizer,
        "train": train_blocks,
        "valid": valid_blocks[: args.ttq_valid_blocks],
        "n_dialogues": {"train": len(train), "valid": len(valid)},
        "n_characters": sum(len(t) for d in dialogues for t in d),
    }


def build_contender(name: str, vocab_size: int, args) -> torch.nn.Module:
    """A freshly initialised model of the shared size (args.n_embd, n_layer, n_head; context ttq_block_len)."""
    size = dict(n_embd=args.n_embd, n_layer=args.n_layer, n_head=args.n_head)
    ids = dict(pad_token_id=0, bos_token_id=3, eos_token_id=4)
    if name in PEERS:  # transformers' own classes as the recipe's peers build them (recipes/peers.py)
        return peer_causal_lm(name, vocab_size, dict(size, n_positions=args.ttq_block_len), **ids)
    if name.startswith("chargpt-"):  # what train_lm.py builds for --preset course|modern
        model_args = LMModelArguments(
            tokenizer_name_or_path="", preset=name.split("-", 1)[1], n_positions=args.ttq_block_len, **size
        )
        config = build_causal_lm_config(model_args, None, vocab_size=vocab_size, sep_token_id=2, **ids)
        return CharGPTForCausalLM(config)
    raise ValueError(f"Unknown contender {name!r}; choose from {CONTENDERS}.")


def optimizer_settings(name: str, args) -> dict:
    """The optimizer and peak learning rate of a contender: CharGPT's modern preset trains as train_lm.py's default
    (Muon + AdamW), the others with AdamW, each at the learning rate that was best for it on validation data."""
    if name == "chargpt-modern":
        return {
            "optimizer": args.ttq_modern_optimizer,
            "learning_rate": args.ttq_lr_modern,
            "muon_ns_steps": args.ttq_muon_ns_steps,
        }
    rates = {"gpt2": args.ttq_lr_gpt2, "llama": args.ttq_lr_llama, "chargpt-course": args.ttq_lr_course}
    return {"optimizer": "adamw", "learning_rate": rates[name]}


@torch.no_grad()
def validation_loss(model, blocks: torch.Tensor, batch_size: int = 32) -> float:
    """Mean next-token loss over the validation blocks (all the same length, so the mean of batch means is exact up
    to the last batch, which is weighted by its size)."""
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, len(blocks), batch_size):
        batch = blocks[start : start + batch_size]
        total += model(input_ids=batch, labels=batch).loss.item() * len(batch)
    model.train(was_training)
    return total / len(blocks)


class _BlockDataset(torch.utils.data.Dataset):
    def __init__(self, blocks):
        self.blocks = blocks

    def __len__(self):
        return len(self.blocks)

    def __getitem__(self, i):
        return {"input_ids": self.blocks[i], "labels": self.blocks[i]}


class WallClockCurve(TrainerCallback):
    """Validation loss every `eval_every` steps against training time, with the clock paused while evaluating; stops
    the run if it overshoots the budget by `overrun` (the step rate was measured on a few steps only)."""

    def __init__(self, valid_blocks, eval_every: int, budget_s: float, overrun: float = 1.1):
        self.valid, self.eval_every, self.limit = valid_blocks, eval_every, budget_s * overrun
        self.curve, self.paused, self.start = [], 0.0, None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.start = time.perf_counter()
        self.curve.append({"seconds": 0.0, "step": 0, "loss": validation_loss(model, self.valid)})
        self.paused = time.perf_counter() - self.start

    def elapsed(self) -> float:
        return time.perf_counter() - self.start - self.paused

    def on_step_end(self, args, state, control, model=None, **kwargs):
        elapsed = self.elapsed()
        over = elapsed > self.limit
        if state.global_step % self.eval_every == 0 or state.global_step >= state.max_steps or over:
            pause = time.perf_counter()
            self.curve.append(
                {"seconds": elapsed, "step": state.global_step, "loss": validation_loss(model, self.valid)}
            )
            self.paused += time.perf_counter() - pause
        if over:
            control.should_training_stop = True


def _trainer(model, blocks, args, name: str, max_steps: int, out_dir: str, callbacks=()):
    settings = optimizer_settings(name, args)
    optimizer = settings.pop("optimizer")  # the report's name: "muon", or "adamw" for Trainer's default --optim
    training_args = CharGPTTrainingArguments(
        optim=optimizer if optimizer != "adamw" else CharGPTTrainingArguments.optim,
        output_dir=out_dir,
        max_steps=max_steps,
        per_device_train_batch_size=args.ttq_batch_size,
        lr_scheduler_type="warmup_stable_decay",
        warmup_steps=args.ttq_warmup_share,
        decay_fraction=args.ttq_decay_share,
        weight_decay=args.ttq_weight_decay,
        adam_beta2=0.95,
        max_grad_norm=1.0,
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        logging_first_step=False,
        report_to="none",
        load_best_model_at_end=False,
        use_cpu=True,
        seed=args.seed,
        dataloader_num_workers=0,
        disable_tqdm=True,
        **settings,
    )
    return CharGPTTrainer(
        model=model, args=training_args, train_dataset=_BlockDataset(blocks), callbacks=list(callbacks)
    )


def seconds_per_step(model, blocks, args, name: str, out_dir: str, steps: int = 10, skip: int = 3) -> float:
    """Training seconds per step of a copy of `model` (the first `skip` steps, which warm caches, not counted)."""
    marks = []

    class _Marks(TrainerCallback):
        def on_step_end(self, *a, **k):
            marks.append(time.perf_counter())

    _trainer(copy.deepcopy(model), blocks, args, name, steps, out_dir, [_Marks()]).train()
    return (marks[-1] - marks[skip - 1]) / (len(marks) - skip)


def run_contender(name: str, data: dict, args, out_dir: str) -> dict:
    torch.manual_seed(args.seed)
    model = build_contender(name, len(data["tokenizer"]), args)
    n_params = sum(p.numel() for p in model.parameters())
    rate = seconds_per_step(model, data["train"], args, name, out_dir)
    max_steps = max(10, int(args.ttq_budget_s / rate))
    eval_every = max(1, max_steps // args.ttq_evaluations)
    curve = WallClockCurve(data["valid"], eval_every, args.ttq_budget_s)
    logger.info("%s: %.3f s/step -> %d steps in %.0f s", name, rate, max_steps, args.ttq_budget_s)
    _trainer(model, data["train"], args, name, max_steps, out_dir, [curve]).train()
    tokens = args.ttq_batch_size * args.ttq_block_len
    final = curve.curve[-1]
    if final["step"] < max_steps:
        logger.warning("%s: stopped at the time limit after %d of %d steps", name, final["step"], max_steps)
    return {
        "parameters": n_params,
        "steps": final["step"],
        "planned_steps": max_steps,
        "seconds": final["seconds"],
        "tokens_per_second": final["step"] * tokens / final["seconds"],
        "calibrated_seconds_per_step": rate,
        "final_loss": final["loss"],
        "final_perplexity": math.exp(final["loss"]),
        "curve": curve.curve,
        **optimizer_settings(name, args),
    }


def first_time_at(curve: list[dict], target: float) -> float | None:
    """Training seconds at which the validation loss first reaches `target`, interpolated linearly between the two
    evaluations around the crossing; None if it never does."""
    for before, after in zip(curve, curve[1:]):
        if after["loss"] <= target:
            if before["loss"] <= target:
                return before["seconds"]
            share = (before["loss"] - target) / (before["loss"] - after["loss"])
            return before["seconds"] + share * (after["seconds"] - before["seconds"])
    return None


def loss_at(curve: list[dict], seconds: float) -> float:
    """Validation loss at `seconds` of training, interpolated linearly between evaluations; the last loss for a
    time after the run's end."""
    for before, after in zip(curve, curve[1:]):
        if after["seconds"] >= seconds:
            share = (seconds - before["seconds"]) / max(after["seconds"] - before["seconds"], 1e-9)
            return before["loss"] + share * (after["loss"] - before["loss"])
    return curve[-1]["loss"]


def summarise(runs: dict) -> dict:
    """Times to reach GPT-2's and Llama's final losses, as seconds and as shares of their own run times, and
    perplexity ratios at equal wall time: each model's loss when the reference run ended (runs end a little before
    or after the budget, since their step counts come from a measured rate)."""
    summary = {}
    for reference in ("gpt2", "llama"):
        if reference not in runs:
            continue
        target, ref_time = runs[reference]["final_loss"], runs[reference]["seconds"]
        for name, run in runs.items():
            reached = first_time_at(run["curve"], target)
            summary.setdefault(name, {})[f"time_to_{reference}_loss"] = reached
            summary[name][f"time_ratio_vs_{reference}"] = None if reached is None else reached / ref_time
            summary[name][f"loss_at_{reference}_end"] = loss_at(run["curve"], ref_time)
            summary[name][f"perplexity_ratio_vs_{reference}"] = math.exp(loss_at(run["curve"], ref_time) - target)
    return summary


def plot_curves(runs: dict, path: Path) -> str | None:
    """Validation loss against training time, one line per contender, as a PNG; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, run in runs.items():
        ax.plot([p["seconds"] for p in run["curve"][1:]], [p["loss"] for p in run["curve"][1:]], marker=".", label=name)
    if "gpt2" in runs:
        ax.axhline(runs["gpt2"]["final_loss"], color="grey", linestyle=":", label="GPT-2 final loss")
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel("validation loss (nats per token)")
    ax.set_title("Time to quality: same data, same budget")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def run_time_to_quality(args, work_dir: str, save=lambda partial: None) -> dict:
    data = load_blocks(args)
    result = {
        "settings": {
            "budget_s": args.ttq_budget_s,
            "batch_size": args.ttq_batch_size,
            "block_len": args.ttq_block_len,
            "threads": args.threads,
            "schedule": f"warmup {args.ttq_warmup_share}, decay {args.ttq_decay_share} (WSD)",
        },
        "data": {
            "files": list(DIALOGUE_FILES),
            "vocab_size": len(data["tokenizer"]),
            "train_blocks": len(data["train"]),
            "valid_blocks": len(data["valid"]),
            "dialogues": data["n_dialogues"],
            "characters": data["n_characters"],
        },
        "runs": {},
    }
    for name in args.ttq_contenders.split(","):
        with tempfile.TemporaryDirectory(dir=work_dir) as out_dir:
            result["runs"][name] = run_contender(name.strip(), data, args, out_dir)
        result["summary"] = summarise(result["runs"])
        save(result)
    result["plot"] = plot_curves(result["runs"], Path(args.results_dir) / f"{args.results_name()}_time_to_quality.png")
    return result


__all__ = ["CONTENDERS", "DIALOGUE_FILES", "first_time_at", "loss_at", "run_time_to_quality", "summarise"]
