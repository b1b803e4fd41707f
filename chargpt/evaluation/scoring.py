"""Running a trained model over held-out data: a classifier's scores on labelled texts and a causal LM's perplexity on
dialogues (its replies to posts are sampled by `chargpt.tasks.sample_replies`). Works on any model with the
transformers interface (`logits`) and its tokenizer."""

import math

import torch
import torch.nn.functional as F
from datasets import Dataset

from ..data import build_lm_dataset, label_id
from ..tasks import classify_texts, label_names
from .classification import classification_scores


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


def classifier_scores(model, tokenizer, dataset: Dataset, batch_size: int = 32) -> dict:
    """Accuracy, macro-F1 and the number of rows of `model` on `dataset` (columns `text`, `label`, a `ClassLabel`);
    texts longer than the context are judged on their first tokens."""
    mapping = _label_map(label_names(model.config), dataset.features["label"].names)
    model.eval()
    rows = classify_texts(model, tokenizer, dataset["text"], batch_size=batch_size)
    predictions = [mapping[row["label_id"]] for row in rows]
    return {**classification_scores(dataset["label"], predictions), "truncated": sum(r["truncated"] for r in rows)}


@torch.no_grad()
def corpus_perplexity(model, tokenizer, dialogues: Dataset, batch_size: int = 16) -> dict:
    """Perplexity of `model` on dialogues (column `turns`) written with the chat template as in training (the
    latest turns that fit the context): the exponential of the mean loss over every predicted token, all dialogues
    pooled, so long dialogues weigh by their length (Trainer's `eval_loss` averages batches instead)."""
    encoded, too_long = build_lm_dataset(dialogues, tokenizer, model.config.n_positions)
    sequences = sorted(encoded["input_ids"], key=len)  # similar lengths together: little padding
    model.eval()
    total, tokens = 0.0, 0
    for start in range(0, len(sequences), batch_size):
        batch = sequences[start : start + batch_size]
        width = max(len(s) for s in batch)
        ids = torch.tensor([s + [tokenizer.pad_token_id] * (width - len(s)) for s in batch], device=model.device)
        mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in batch], device=model.device)
        logits = model(input_ids=ids, attention_mask=mask).logits.float()
        # Token t predicts token t + 1; padded positions are not targets.
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        total += F.cross_entropy(logits[:, :-1].transpose(1, 2), targets, ignore_index=-100, reduction="sum").item()
        tokens += int((targets != -100).sum())
    if not tokens:
        raise ValueError("No dialogue fits the model's context; there is nothing to compute a perplexity on.")
    loss = total / tokens
    return {
        "loss": loss,
        "perplexity": math.exp(loss),
        "tokens": tokens,
        "dialogues": len(sequences),
        "too_long_for_context": too_long,
    }


__all__ = [
    "classifier_scores",
    "corpus_perplexity",
]
