"""Fine-tuning levers of the classifier, each off by default and switched on by a `ClassifierTrainingArguments` field:

- an auxiliary language-modelling loss on the training texts (the first GPT paper's lambda, `aux_lm_weight`):
  `auxiliary_lm_loss`, added by `CharGPTTrainer.compute_loss`;
- discriminative learning rates and gradual unfreezing (ULMFiT, `layer_lr_decay` and `gradual_unfreezing`):
  `layer_depths` groups the parameters from the head down to the embeddings, `unfreeze_steps` says when each depth
  starts to train, and `CharGPTTrainer` builds the optimizer groups and gates their schedules;
- weight averaging (an exponential moving average of the weights, `ema_decay`): `WeightAveraging`, a callback that
  evaluates and saves the averaged weights.
"""

import functools
import re

import torch
from torch.nn import functional as F
from transformers import TrainerCallback


# A parameter inside decoder block i: CharGPT's and GPT-2's `h.<i>.`, Llama's `layers.<i>.`.
_BLOCK = re.compile(r"(?:^|\.)(?:h|layers)\.(\d+)\.")
# The input side of the model (token and position embeddings), which ULMFiT's schedule reaches last.
_EMBEDDING = re.compile(r"(?:^|\.)(?:wte|wpe|embed_tokens|embed_positions)\.")


def auxiliary_lm_loss(hidden_states, input_ids, attention_mask, embedding_weight):
    """The next-character loss of the texts a classifier is reading, through the tied LM head (the input embedding):
    (B, T, C) states, (B, T) ids and mask, (V, C) embedding -> the mean loss over the pairs of real tokens."""
    logits = hidden_states[:, :-1] @ embedding_weight.T  # (B, T-1, C) -> (B, T-1, V)
    targets = input_ids[:, 1:]
    if attention_mask is not None:  # a pair counts only when both characters are real (left or right padding)
        real = attention_mask[:, :-1].bool() & attention_mask[:, 1:].bool()
        targets = targets.masked_fill(~real, -100)
    return F.cross_entropy(logits.float().flatten(0, 1), targets.flatten(), ignore_index=-100)


def check_tied_head(model) -> None:
    """The auxiliary loss predicts characters with the input embedding, which is the LM head only in a tied model."""
    if not getattr(model.config, "tie_word_embeddings", False):
        raise ValueError(
            "--aux_lm_weight predicts the next character with the input embedding, which is the causal LM's head "
            "only when they are tied (tie_word_embeddings), and this model's are not: its LM head was not loaded "
            "into the classifier. Drop --aux_lm_weight for this model."
        )


def layer_depths(model) -> dict[str, int]:
    """Each trainable parameter's depth counted from the output: 0 for the head and the final norm, 1 for the last
    block, ..., n_blocks for the first, n_blocks + 1 for the embeddings."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    blocks = {int(m.group(1)) for n, _ in named if (m := _BLOCK.search(n))}
    n_blocks = max(blocks) + 1 if blocks else 0
    depths = {}
    for name, _ in named:
        if m := _BLOCK.search(name):
            depths[name] = n_blocks - int(m.group(1))
        elif _EMBEDDING.search(name):
            depths[name] = n_blocks + 1
        else:
            depths[name] = 0
    return depths


def unfreeze_steps(max_depth: int, fraction: float, num_training_steps: int) -> list[int]:
    """The step at which each depth 0..max_depth starts to train: the head at once, then one depth at a time, evenly
    over the first `fraction` of the steps (0: all at once)."""
    if max_depth == 0 or fraction == 0:
        return [0] * (max_depth + 1)
    span = fraction * num_training_steps
    return [round(depth * span / max_depth) for depth in range(max_depth + 1)]


def _gated(schedule, start: int, step: int) -> float:
    return schedule(step) if step >= start else 0.0


def gate_schedules(scheduler, starts: list[int]) -> None:
    """Give each optimizer group of a `LambdaLR` a learning rate of 0 before its start step (a frozen depth: its
    weights and decay stay unchanged while the layers above it adapt), then its own schedule. The gates hang on the
    scheduler's step count, so a resumed run unfreezes at the same steps."""
    if not isinstance(scheduler, torch.optim.lr_scheduler.LambdaLR):
        raise ValueError(
            f"--gradual_unfreezing gates the learning-rate schedule of each layer, which needs a schedule defined "
            f"step by step (linear, cosine, warmup_stable_decay, ...); {type(scheduler).__name__} is not one. "
            f"Choose another --lr_scheduler_type or drop --gradual_unfreezing."
        )
    # partial objects, not closures: LambdaLR's state_dict keeps a callable's __dict__, and a partial's is empty
    scheduler.lr_lambdas = [functools.partial(_gated, f, s) for f, s in zip(scheduler.lr_lambdas, starts)]
    step = scheduler.last_epoch
    for group, schedule in zip(scheduler.optimizer.param_groups, scheduler.lr_lambdas):
        group["lr"] = group["initial_lr"] * schedule(step)
    scheduler._last_lr = [group["lr"] for group in scheduler.optimizer.param_groups]


class WeightAveraging(TrainerCallback):
    """An exponential moving average of the trainable weights, updated after every optimizer step with the decay
    `min(decay, (1 + n) / (10 + n))` after n updates (so the first steps do not pull the average towards the
    initial weights). Every evaluation and checkpoint sees the averaged weights (the training steps go on from the
    raw ones), so the best checkpoint is chosen among averages, and the model at the end of training is an average.

    A run resumed from a checkpoint starts its average, and its raw weights, from the averaged weights saved there."""

    def __init__(self, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"The weight-averaging decay must be in (0, 1), got {decay}.")
        self.decay = decay
        self.updates = 0
        self.params = self.average = self.raw = None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.average = [p.detach().clone() for p in self.params]
        self.updates, self.raw = 0, None

    def on_step_begin(self, args, state, control, **kwargs):
        self._restore_raw()

    def on_step_end(self, args, state, control, **kwargs):
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with torch.no_grad():
            torch._foreach_lerp_(self.average, [p.detach() for p in self.params], 1 - decay)
        self.updates += 1
        if control.should_evaluate or control.should_save:
            self._swap_in_average()

    def on_train_end(self, args, state, control, **kwargs):
        # After load_best_model_at_end the model holds the best checkpoint, which was saved averaged; else it still
        # holds the raw weights of the last step (or the average, if the last step was evaluated).
        if self.raw is None and not (args.load_best_model_at_end and state.best_model_checkpoint):
            self._swap_in_average()
        self.raw = None

    def _swap_in_average(self):
        if self.raw is not None:
            return
        with torch.no_grad():
            self.raw = [p.detach().clone() for p in self.params]
            torch._foreach_copy_([p.data for p in self.params], self.average)

    def _restore_raw(self):
        if self.raw is None:
            return
        with torch.no_grad():
            torch._foreach_copy_([p.data for p in self.params], self.raw)
        self.raw = None


__all__ = [
    "WeightAveraging",
    "auxiliary_lm_loss",
    "check_tied_head",
    "gate_schedules",
    "layer_depths",
    "unfreeze_steps",
]
