"""One plain training loop for both contenders: AdamW, linear warm-up then cosine decay, gradient clipping.

Written out (rather than Trainer) so that the comparison is exactly controlled: the same batches in the same order,
the same schedule and the same number of steps reach both models.
"""

import logging
import math
import random
import time

import torch
import torch.nn.functional as F

from .speed import precision_context


logger = logging.getLogger(__name__)

FREEZE_MODES = ("none", "all", "last-2")


def encode_dialog(tokenizer, turns: list[str]) -> list[int]:
    """`<bos>turn<sep>turn...<eos>`, the chat template's format, as ids (one id per character)."""
    ids = [tokenizer.bos_token_id]
    for i, turn in enumerate(turns):
        ids += tokenizer.convert_tokens_to_ids(list(tokenizer.normalize(turn)))
        ids.append(tokenizer.eos_token_id if i == len(turns) - 1 else tokenizer.sep_token_id)
    return ids


def pack_blocks(sequences: list[list[int]], block_len: int) -> torch.Tensor:
    """Concatenate sequences and cut the stream into (N, block_len) blocks, dropping the last partial block, as
    run_clm.py's group_texts does."""
    stream = [i for seq in sequences for i in seq]
    n_blocks = len(stream) // block_len
    if n_blocks == 0:
        raise ValueError(f"The training text ({len(stream)} tokens) is shorter than one block of {block_len}.")
    return torch.tensor(stream[: n_blocks * block_len], dtype=torch.long).view(n_blocks, block_len)


def lr_at(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up to `peak`, then cosine decay to a tenth of it at `total`."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def _optimizer(model, lr: float, weight_decay: float = 0.01):
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("No trainable parameters: check the freezing mode.")
    return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, betas=(0.9, 0.95))


def train_lm(
    model,
    blocks: torch.Tensor,
    steps: int,
    batch_size: int,
    lr: float,
    precision: str = "fp32",
    seed: int = 0,
    warmup_fraction: float = 0.05,
    log_every: int = 50,
) -> dict:
    """Next-token training on packed blocks for exactly `steps` steps; batches drawn in a seed-fixed order."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(blocks), generator=generator)
    optimizer = _optimizer(model, lr)
    warmup = max(1, int(steps * warmup_fraction))
    model.train()
    losses, position, start = [], 0, time.perf_counter()
    for step in range(steps):
        if position + batch_size > len(order):  # next epoch, new order
            order, position = torch.randperm(len(blocks), generator=generator), 0
        batch = blocks[order[position : position + batch_size]]
        position += batch_size
        for group in optimizer.param_groups:
            group["lr"] = lr_at(step, steps, lr, warmup)
        with precision_context(precision):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if log_every and (step + 1) % log_every == 0:
            logger.info("step %d/%d loss %.3f", step + 1, steps, sum(losses[-log_every:]) / log_every)
    seconds = time.perf_counter() - start
    return {
        "steps": steps,
        "batch_size": batch_size,
        "block_len": blocks.shape[1],
        "lr": lr,
        "precision": precision,
        "seconds": seconds,
        "tokens_per_s": steps * batch_size * blocks.shape[1] / seconds,
        "final_train_loss": sum(losses[-20:]) / len(losses[-20:]),
        "epochs": steps * batch_size / len(blocks),
    }


def _pad_right(sequences: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    return ids, mask


@torch.no_grad()
def perplexity(model, sequences: list[list[int]], pad_id: int, batch_size: int = 32) -> dict:
    """Per-token perplexity over whole held-out sequences (each evaluated alone, padded on the right): exp of the
    summed next-token NLL over every predicted token (characters, `<sep>` and `<eos>`) divided by their number."""
    model.eval()
    total_nll, total_tokens = 0.0, 0
    for start in range(0, len(sequences), batch_size):
        ids, mask = _pad_right(sequences[start : start + batch_size], pad_id)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        targets = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
        total_nll += F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100, reduction="sum"
        ).item()
        total_tokens += int((targets != -100).sum())
    return {
        "perplexity": math.exp(total_nll / total_tokens),
        "nll_per_token": total_nll / total_tokens,
        "tokens": total_tokens,
    }


def freeze(model, mode: str) -> dict:
    """`none`: train everything; `all`: train only the classification head; `last-2`: train the last two blocks,
    the final LayerNorm and the head. Works for CharGPT and GPT-2 alike (same attribute names)."""
    if mode not in FREEZE_MODES:
        raise ValueError(f"freeze mode must be one of {FREEZE_MODES}, got {mode!r}.")
    body = model.transformer
    for p in body.parameters():
        p.requires_grad = mode == "none"
    if mode == "last-2":
        for module in [*body.h[-2:], body.ln_f]:
            for p in module.parameters():
                p.requires_grad = True
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"mode": mode, "trainable_parameters": trainable}


def encode_review(tokenizer, text: str, max_len: int) -> list[int]:
    """`<bos>review<eos>`, the review cut to `max_len` tokens in all; the pooled last token is then `<eos>`, which the
    LM saw closing every review in pretraining."""
    chars = tokenizer.convert_tokens_to_ids(list(tokenizer.normalize(text)))[: max_len - 2]
    return [tokenizer.bos_token_id, *chars, tokenizer.eos_token_id]


def length_bucketed_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffle, sort within windows of 50 batches by length (less padding), then shuffle the batches."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for start in range(0, len(order), window):
        chunk = sorted(order[start : start + window], key=lambda i: lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    rng.shuffle(batches)
    return batches


def _classifier_inputs(examples, indices, pad_id: int, unmasked: bool):
    ids, mask = _pad_right([examples[i][0] for i in indices], pad_id)
    if unmasked:
        # The ablation: padding not masked. With an all-ones mask the model also pools the last position, which for
        # all but the longest row is a padding token.
        mask = torch.ones_like(mask)
    return ids, mask


def train_classifier(
    model,
    examples: list,
    epochs: int,
    batch_size: int,
    lr: float,
    pad_id: int,
    unmasked: bool = False,
    precision: str = "fp32",
    seed: int = 0,
) -> dict:
    """Fine-tune on [(ids, label)]; the loss is the model's own (cross-entropy on the pooled token)."""
    rng = random.Random(seed)
    lengths = [len(ids) for ids, _ in examples]
    steps = epochs * math.ceil(len(examples) / batch_size)
    optimizer = _optimizer(model, lr)
    warmup = max(1, int(0.06 * steps))
    model.train()
    step, start, losses = 0, time.perf_counter(), []
    for _ in range(epochs):
        for indices in length_bucketed_batches(lengths, batch_size, rng):
            ids, mask = _classifier_inputs(examples, indices, pad_id, unmasked)
            labels = torch.tensor([examples[i][1] for i in indices])
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, steps, lr, warmup)
            with precision_context(precision):
                loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
    return {
        "epochs": epochs,
        "steps": steps,
        "lr": lr,
        "batch_size": batch_size,
        "seconds": time.perf_counter() - start,
        "final_train_loss": sum(losses[-20:]) / len(losses[-20:]),
    }


@torch.no_grad()
def predict_classifier(model, examples: list, pad_id: int, unmasked: bool = False, batch_size: int = 64) -> list[int]:
    """Predicted labels for [(ids, label)], in order."""
    model.eval()
    predictions = [0] * len(examples)
    lengths = [len(ids) for ids, _ in examples]
    order = sorted(range(len(examples)), key=lambda i: lengths[i])
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        ids, mask = _classifier_inputs(examples, indices, pad_id, unmasked)
        for i, label in zip(indices, model(input_ids=ids, attention_mask=mask).logits.argmax(-1).tolist()):
            predictions[i] = label
    return predictions
