"""Running a trained model over held-out data: a classifier's predictions and scores on labelled texts and a causal
LM's losses and perplexity on dialogues (its replies to posts are sampled by `chargpt.tasks.sample_replies`), with
bootstrap intervals if asked. Works on any model with the transformers interface (`logits`) and its tokenizer."""

import math

import numpy as np
import torch
import torch.nn.functional as F
from datasets import Dataset

from ..data import build_lm_dataset, label_id
from ..tasks import classify_texts, context_length, label_names
from .classification import classification_scores
from .intervals import Statistic, ratio_statistic, with_intervals


def _label_map(model_names: list[str], names: list[str]) -> list[int]:
    """The evaluation label id of each of the classifier's labels, matched by name (or as an integer id, so a
    classifier trained without --class_names, whose labels are "0"/"1", matches negative/positive)."""
    mapped = [label_id(name, names) for name in model_names]
    if None in mapped or len(set(mapped)) != len(mapped):
        raise ValueError(
            f"The classifier's labels {model_names} do not match the evaluation's {names}; fine-tune it with "
            f"--class_names {' '.join(names)}."
        )
    return mapped


def classifier_predictions(model, tokenizer, dataset: Dataset, batch_size: int = 32) -> tuple[list[int], int]:
    """The evaluation label id `model` predicts for each row of `dataset` (columns `text`, `label`, a `ClassLabel`)
    and how many texts were longer than the context (judged on their first tokens)."""
    mapping = _label_map(label_names(model.config), dataset.features["label"].names)
    model.eval()
    rows = classify_texts(model, tokenizer, dataset["text"], batch_size=batch_size)
    return [mapping[row["label_id"]] for row in rows], sum(row["truncated"] for row in rows)


def classifier_scores(model, tokenizer, dataset: Dataset, batch_size: int = 32, intervals: bool = False) -> dict:
    """`classification_scores` of `model` on `dataset` (with `intervals`, their bootstrap intervals over the rows) and
    the number of `truncated` texts."""
    predictions, truncated = classifier_predictions(model, tokenizer, dataset, batch_size)
    return {**classification_scores(dataset["label"], predictions, intervals=intervals), "truncated": truncated}


@torch.no_grad()
def dialogue_losses(model, tokenizer, dialogues: Dataset, batch_size: int = 16) -> dict:
    """Each dialogue's summed token loss (`losses`, float64) and number of predicted tokens (`tokens`), in the
    dataset's order, of `model` on dialogues (column `turns`) written with the chat template as in training (the
    latest turns that fit the context), and `too_long_for_context`."""
    encoded, too_long = build_lm_dataset(dialogues, tokenizer, context_length(model.config))
    sequences = encoded["input_ids"]
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))  # similar lengths together: little padding
    losses, tokens = np.zeros(len(sequences)), np.zeros(len(sequences), dtype=np.int64)
    model.eval()
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        batch = [sequences[i] for i in chosen]
        width = max(len(s) for s in batch)
        ids = torch.tensor([s + [tokenizer.pad_token_id] * (width - len(s)) for s in batch], device=model.device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch], device=model.device)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        # Token t predicts token t + 1; padded positions are not targets (their loss is 0).
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        per_token = F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=-100, reduction="none")
        losses[chosen] = per_token.double().sum(dim=1).cpu().numpy()  # (B, T - 1) -> (B,)
        tokens[chosen] = (targets != -100).sum(dim=1).cpu().numpy()
    return {"losses": losses, "tokens": tokens, "too_long_for_context": too_long}


def loss_statistic(losses, tokens) -> Statistic:
    """The mean token loss of each resample of the dialogues: their summed losses over their tokens."""
    return ratio_statistic(losses, tokens)


def perplexity_statistic(losses, tokens) -> Statistic:
    """The corpus perplexity of each resample of the dialogues (see `chargpt.evaluation.intervals`)."""
    mean_loss = ratio_statistic(losses, tokens)
    return lambda indices: np.exp(mean_loss(indices))


def corpus_perplexity(model, tokenizer, dialogues: Dataset, batch_size: int = 16, intervals: bool = False) -> dict:
    """Perplexity of `model` on dialogues (`dialogue_losses`): the exponential of the mean loss over every predicted
    token, all dialogues pooled, so long dialogues weigh by their length (Trainer's `eval_loss` averages batches
    instead). With `intervals`, `loss` and `perplexity` are followed by their 95% bootstrap intervals over the
    dialogues (`loss_ci95`, `perplexity_ci95`)."""
    scored = dialogue_losses(model, tokenizer, dialogues, batch_size)
    losses, tokens = scored["losses"], scored["tokens"]
    if not tokens.sum():
        raise ValueError("No dialogue fits the model's context; there is nothing to compute a perplexity on.")
    loss = float(losses.sum() / tokens.sum())
    scores = {
        "loss": loss,
        "perplexity": math.exp(loss),
        "tokens": int(tokens.sum()),
        "dialogues": len(losses),
        "too_long_for_context": scored["too_long_for_context"],
    }
    if not intervals:
        return scores
    statistics = {"loss": loss_statistic(losses, tokens), "perplexity": perplexity_statistic(losses, tokens)}
    return with_intervals(scores, statistics, len(losses))


__all__ = [
    "classifier_predictions",
    "classifier_scores",
    "dialogue_losses",
    "loss_statistic",
    "perplexity_statistic",
    "corpus_perplexity",
]
