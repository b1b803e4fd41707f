"""The recipe on the held-out splits (`--only recipe`): train_scripts/run_recipe.py's chat model and sentiment
classifier (or an existing recipe output, `--recipe_dir`), and beside them, in the same run, transformers' GPT-2
trained on the recipe's own training sequences for the chat model's training wall time, measured on the same
held-out dialogues and posts. The TF-IDF floor comes with the recipe's evaluation (fit on the classifier's training
files).

GPT-2 gets the dimensions, tokenizer, batches, schedule shape (warm-up, stable, decay) and weight decay of the recipe's
chat model and AdamW at its best time-to-quality learning rate (--ttq_lr_gpt2); its step count is the chat model's
training seconds over GPT-2's measured seconds per step. Its replies are sampled with the recipe's tuned settings.
Its figures carry 95% bootstrap intervals as the recipe's own do (`<name>_ci95`, chargpt.evaluation.intervals).
"""

import copy
import json
import logging
import time
from pathlib import Path

import torch
from transformers import DataCollatorForLanguageModeling, GPT2LMHeadModel, TrainerCallback

from chargpt import CharGPTConfig
from chargpt.data import CleaningConfig
from chargpt.evaluation import corpus_perplexity, reply_metrics
from chargpt.loading import load_model_and_tokenizer
from chargpt.tasks import sample_replies
from chargpt.training import CharGPTTrainer, CharGPTTrainingArguments, DialogueDataArguments
from chargpt.training.inputs import lm_datasets
from recipes.dialogue_splits import LCCC_BASE_FILES, lccc_base_splits
from recipes.full import RecipeArguments, chat_files, chat_training_arguments, run_recipe
from recipes.peers import peer_causal_lm


logger = logging.getLogger(__name__)


def _recipe(args, work_dir: str) -> tuple[Path, dict]:
    """The recipe's output directory and report: the given one, or a fresh run (quick: a few hundred rows)."""
    if args.recipe_dir:
        directory = Path(args.recipe_dir)
        path = directory / "recipe_report.json"
        if not path.is_file():
            raise FileNotFoundError(f"--recipe_dir {directory} has no recipe_report.json; run run_recipe.py first.")
        return directory, json.loads(path.read_text(encoding="utf-8"))
    directory = Path(work_dir) / "recipe"
    # The recipe's own seed (42, the fixed splits'), not the benchmark's
    recipe_args = RecipeArguments(output_dir=str(directory), data_dir=args.data_dir, publish=False)
    if args.quick:
        recipe_args.max_train_samples, recipe_args.generation_posts = 400, 20
    return directory, run_recipe(recipe_args)


def _gpt2_like(chat_config: CharGPTConfig) -> GPT2LMHeadModel:
    """GPT-2 at its defaults with the chat model's width, depth, heads, context and special tokens: the recipe's GPT-2
    peer (recipes/peers.py)."""
    size = {k: getattr(chat_config, k) for k in ("n_embd", "n_layer", "n_head", "n_positions")}
    ids = {k: getattr(chat_config, k) for k in ("pad_token_id", "sep_token_id", "bos_token_id", "eos_token_id")}
    return peer_causal_lm("gpt2", chat_config.vocab_size, size, **ids)


def _training_args(recipe_args: RecipeArguments, args, out_dir: str, max_steps: int) -> CharGPTTrainingArguments:
    """GPT-2's Trainer settings: the chat model's batch, schedule shape and weight decay; AdamW at its own rate."""
    chat = chat_training_arguments(recipe_args, Path(out_dir))
    return CharGPTTrainingArguments(
        output_dir=out_dir,
        max_steps=max_steps,
        per_device_train_batch_size=chat.per_device_train_batch_size,
        optim="adamw_torch_fused",
        learning_rate=args.ttq_lr_gpt2,
        lr_scheduler_type="warmup_stable_decay",
        warmup_steps=chat.warmup_steps,
        decay_fraction=chat.decay_fraction,
        weight_decay=chat.weight_decay,
        eval_strategy="no",
        save_strategy="no",
        logging_strategy="no",
        logging_first_step=False,
        report_to="none",
        load_best_model_at_end=False,
        use_cpu=not torch.cuda.is_available(),
        seed=args.seed,
        disable_tqdm=True,
    )


class _StepTimes(TrainerCallback):
    def __init__(self):
        self.marks = []

    def on_step_end(self, *args, **kwargs):
        self.marks.append(time.perf_counter())


def train_gpt2_baseline(directory: Path, recipe: dict, args, work_dir: str) -> dict:
    """GPT-2 on the recipe's training sequences for the chat model's training time; its held-out figures."""
    model_dir = directory / "chat"
    chat, tokenizer = load_model_and_tokenizer(model_dir, task="causal-lm")
    recipe_args = RecipeArguments(**recipe["arguments"])
    files = {"dialogue": {s: directory / "splits" / f"lccc_base_{s}.jsonl" for s in ("train", "validation")}}
    data_args = DialogueDataArguments(
        train_files=chat_files(recipe_args, files),
        validation_files=[str(files["dialogue"]["validation"])],
        packing=True,
        block_size=chat.config.n_positions,
        max_train_samples=recipe_args.max_train_samples,
    )
    datasets_, _ = lm_datasets(data_args, CleaningConfig(), tokenizer, chat.config.n_positions, args.seed)
    collator = DataCollatorForLanguageModeling(tokenizer, mlm=False)
    torch.manual_seed(args.seed)
    model = _gpt2_like(chat.config)
    # Seconds per step from ten steps of a copy (the first three, which warm caches, not counted).
    timer = _StepTimes()
    CharGPTTrainer(
        model=copy.deepcopy(model),
        args=_training_args(recipe_args, args, work_dir, 10),
        train_dataset=datasets_["train"],
        data_collator=collator,
        callbacks=[timer],
    ).train()
    rate = (timer.marks[-1] - timer.marks[2]) / (len(timer.marks) - 3)
    budget = recipe["chat_training"]["train"]["train_runtime"]
    max_steps = max(10, int(budget / rate))
    logger.info("GPT-2 baseline: %.3f s/step -> %d steps for the chat model's %.0f s", rate, max_steps, budget)
    trainer = CharGPTTrainer(
        model=model,
        args=_training_args(recipe_args, args, work_dir, max_steps),
        train_dataset=datasets_["train"],
        data_collator=collator,
    )
    train = trainer.train().metrics
    model.eval()
    model.generation_config = copy.deepcopy(chat.generation_config)  # the recipe's tuned sampling settings
    splits, _ = lccc_base_splits([Path(args.data_dir) / f for f in LCCC_BASE_FILES], recipe_args.seed)
    replies = sample_replies(model, tokenizer, splits["posts"]["post"], 32, recipe_args.seed)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "steps": max_steps,
        "train_seconds": train["train_runtime"],
        "seconds_per_step": rate,
        "learning_rate": args.ttq_lr_gpt2,
        **_perplexity(corpus_perplexity(model, tokenizer, splits["test"], intervals=True)),
        "replies": reply_metrics(replies, intervals=True),
        "samples": [{"post": p, "reply": r} for p, r in zip(splits["posts"]["post"][:5], replies[:5])],
    }


def _perplexity(scores: dict) -> dict:
    """`perplexity` and, where the scores have it (recipe reports written since intervals exist), `perplexity_ci95`."""
    return {key: scores[key] for key in ("perplexity", "perplexity_ci95") if key in scores}


def run_recipe_section(args, work_dir: str, save=lambda partial: None) -> dict:
    directory, recipe = _recipe(args, work_dir)
    chat_eval = recipe["evaluation"]["chat"]
    result = {
        "recipe_dir": str(directory),
        "arguments": recipe["arguments"],
        "timings_seconds": recipe["timings_seconds"],
        "figures": recipe["figures"],
        "sampling": recipe.get("sampling_search", {}),
        "sentiment": recipe["evaluation"]["sentiment"],
        "intervals": recipe.get("intervals"),
        "chat": {
            "train_seconds": recipe["chat_training"]["train"]["train_runtime"],
            **_perplexity(chat_eval["perplexity"]["model"]),
            "replies": chat_eval["replies"]["model"],
            "references": chat_eval["replies"]["references"],
            "samples": chat_eval["replies"]["samples"][:5],
        },
    }
    save(result)
    result["gpt2"] = train_gpt2_baseline(directory, recipe, args, work_dir)
    result["perplexity_ratio_vs_gpt2"] = result["chat"]["perplexity"] / result["gpt2"]["perplexity"]
    return result


__all__ = ["run_recipe_section", "train_gpt2_baseline"]
