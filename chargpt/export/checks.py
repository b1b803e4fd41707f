"""How every export of a CharGPT model is held to the PyTorch model: one probe batch, the task's own output on it
(pooled classifier logits; next-token logits from the whole sequence and through the key/value cache) and one
measure of distance. The int8 export, the native transformers export and the GGUF export all check themselves with
these and refuse to write a model that does not reproduce the original."""

import torch

from ..modeling_chargpt import CACHE_NAME


# How far an export's task output may stray from the float model's: the root-mean-square of the difference as a
# fraction of the root-mean-square of the float logits (`relative_difference`). A float32 form (the int8 export's
# float graph, the native checkpoint) differs from PyTorch by float rounding only, so its strict bound catches any
# structural drift (another pooling, a dropped norm, a wrong rotary turn), which moves the output by a large fraction
# of itself. The int8 bound only has to catch quantization gone wrong (saturating kernels, a badly scaled matrix):
# int8 rounding moves logits by a few percent, up to about a tenth on the tiny random test models with large weights.
CHECK_TOLERANCE = {"float32": 1e-4, "int8": 0.25}


class ExportCheckError(ValueError):
    """The export does not reproduce the model's output; nothing was written."""


def relative_difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    """RMS of (got - expected) over RMS of expected (0 when equal; about 1 or more when unrelated)."""
    got, expected = got.detach().float(), expected.detach().float()
    rms = expected.pow(2).mean().sqrt().clamp(min=1e-12)
    return float((got - expected).pow(2).mean().sqrt() / rms)


def model_task(model) -> str:
    """'causal-lm' or 'sequence-classification', from the head the model carries."""
    if getattr(model, "lm_head", None) is not None:
        return "causal-lm"
    if getattr(model, "score", None) is not None:
        return "sequence-classification"
    raise ValueError(
        f"{type(model).__name__} has neither an LM head (lm_head) nor a classification head (score); export a "
        f"CharGPTForCausalLM or CharGPTForSequenceClassification."
    )


def probe_inputs(config, n_tokens: int = 32, seed: int = 0):
    """Fixed pseudo-random token ids (4, T) without special tokens, right-padded to four different lengths, and
    their attention mask: the batch every export check runs."""
    T = min(n_tokens, config.n_positions if hasattr(config, "n_positions") else config.max_position_embeddings)
    low = 5 if config.vocab_size > 5 else 0  # skip the special tokens where there are others
    ids = torch.randint(low, config.vocab_size, (4, T), generator=torch.Generator().manual_seed(seed))
    lengths = torch.tensor([T, max(1, T - 5), max(1, T // 2), min(3, T)])
    mask = (torch.arange(T)[None, :] < lengths[:, None]).long()
    return ids.masked_fill(mask == 0, config.pad_token_id or 0), mask


@torch.no_grad()
def task_output(model, input_ids, attention_mask, task: str) -> torch.Tensor:
    """What a user gets from the model for the probe: a classifier's pooled logits (B, num_labels); a causal LM's
    next-token logits at every real position (N, V), once from the whole sequence and once fed through the key/value
    cache (all but the last 4 tokens at once, then a token at a time, as generation runs), concatenated. `model` is a
    PyTorch model (CharGPT's or a native transformers one) or a runtime with `logits_through_cache`."""
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits
    if task == "sequence-classification":
        return logits
    full = logits[attention_mask.bool()]
    row = input_ids[:1]  # the unpadded row
    split = max(1, row.shape[1] - 4)  # a few steps exercise the cache path (positions after it, masks, concatenation)
    if hasattr(model, "logits_through_cache"):
        cached = model.logits_through_cache(row, split)
    else:
        cached = logits_through_cache(model, row, split)
    return torch.cat([full, cached[0]], dim=0)


@torch.no_grad()
def logits_through_cache(model, input_ids, split: int) -> torch.Tensor:
    """Logits (B, T, V) of a PyTorch causal LM (CharGPT's or a native one) fed the first `split` tokens at once,
    then one token at a time through its key/value cache, as generation runs."""
    out = model(input_ids=input_ids[:, :split], use_cache=True)
    steps, cache = [out.logits], out[CACHE_NAME]
    for t in range(split, input_ids.shape[1]):
        out = model(input_ids=input_ids[:, t : t + 1], **{CACHE_NAME: cache}, use_cache=True)
        steps.append(out.logits)
        cache = out[CACHE_NAME]
    return torch.cat(steps, dim=1)


__all__ = [
    "CHECK_TOLERANCE",
    "ExportCheckError",
    "logits_through_cache",
    "model_task",
    "probe_inputs",
    "relative_difference",
    "task_output",
]
