"""What a loaded CharGPT does for a user: generation from prompts, replies to posts, classification, embeddings and
similarity. Everything here works on a PyTorch model or an int8 export (`chargpt.int8.Int8CharGPT`): both offer
`model(input_ids, attention_mask).logits`, `model.generate(...)`, `model.embed(...)`, `.config` and `.device`."""

import logging
from dataclasses import dataclass

import torch

from .modeling_chargpt import default_generation_config


logger = logging.getLogger(__name__)


def context_length(config) -> int:
    """The longest sequence a model reads: CharGPT's and GPT-2's `n_positions`, or `max_position_embeddings` (the
    native Qwen3 export)."""
    return getattr(config, "n_positions", None) or config.max_position_embeddings


def sampling_kwargs(
    temperature=None, top_k=None, top_p=None, repetition_penalty=None, max_new_tokens=None, do_sample=None
) -> dict:
    """generate() keyword arguments from the CLI's sampling flags; unset flags keep the model's generation_config.
    temperature 0 means greedy decoding."""
    kwargs = {}
    if temperature is not None:
        if temperature < 0:
            raise ValueError(f"--temperature must be >= 0 (0 = greedy), got {temperature}.")
        if temperature == 0:
            kwargs["do_sample"] = False
        else:
            kwargs.update(temperature=temperature, do_sample=True)
    if top_k is not None:
        if top_k < 0:
            raise ValueError(f"--top_k must be >= 0 (0 = off), got {top_k}.")
        kwargs["top_k"] = top_k
    if top_p is not None:
        if not 0 < top_p <= 1:
            raise ValueError(f"--top_p must be in (0, 1], got {top_p}.")
        kwargs["top_p"] = top_p
    if repetition_penalty is not None:
        if repetition_penalty <= 0:
            raise ValueError(f"--repetition_penalty must be > 0 (1 = off), got {repetition_penalty}.")
        kwargs["repetition_penalty"] = repetition_penalty
    if max_new_tokens is not None:
        if max_new_tokens < 1:
            raise ValueError(f"--max_new_tokens must be >= 1, got {max_new_tokens}.")
        kwargs["max_new_tokens"] = max_new_tokens
    if do_sample is not None and "do_sample" not in kwargs:
        kwargs["do_sample"] = do_sample
    return kwargs


def effective_max_new_tokens(model, kwargs: dict) -> int:
    """max_new_tokens from the kwargs or the model's generation_config (CharGPT's default if neither says), checked
    against the context: generation needs at least one prompt token, so max_new_tokens < n_positions. A default that
    does not fit (a model with a tiny context) is lowered to half the context; a value the caller asked for is an
    error."""
    generation_config = getattr(model, "generation_config", None)
    n_positions = context_length(model.config)
    value = kwargs.get("max_new_tokens")
    if value is None:
        value = getattr(generation_config, "max_new_tokens", None)
        value = value or default_generation_config(model.config).max_new_tokens
        if value > n_positions // 2:
            logger.warning(
                "The default max_new_tokens=%d leaves little room in the %d-token context; using %d.",
                value,
                n_positions,
                n_positions // 2,
            )
            value = max(1, n_positions // 2)
    if value >= n_positions:
        raise ValueError(
            f"max_new_tokens ({value}) must be below the model's context length n_positions="
            f"{n_positions}, since prompt + reply must fit in it."
        )
    return value


def encode(tokenizer, text: str, add_bos: bool = True) -> list[int]:
    """Token ids of `text` (after <bos>), without transformers' "longer than the maximum length" warning: callers
    here cut over-long inputs themselves, deliberately."""
    ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))
    return ([tokenizer.bos_token_id] if add_bos and tokenizer.bos_token_id is not None else []) + ids


@dataclass
class Generation:
    prompt: str
    samples: list[str]
    prompt_tokens_dropped: int = 0  # tokens cut from the front of an over-long prompt


@torch.no_grad()
def generate_texts(model, tokenizer, prompts: list[str], num_return_sequences: int = 1, **kwargs) -> list[Generation]:
    """Continue each prompt (after <bos>) `num_return_sequences` times. A prompt longer than n_positions -
    max_new_tokens keeps its most recent tokens; `prompt_tokens_dropped` says how many went."""
    if num_return_sequences < 1:
        raise ValueError(f"--num_return_sequences must be >= 1, got {num_return_sequences}.")
    max_new = effective_max_new_tokens(model, kwargs)
    budget = context_length(model.config) - max_new
    results = []
    for prompt in prompts:
        ids = torch.tensor([encode(tokenizer, prompt)])  # (1, T), starts with <bos>
        dropped = max(0, ids.shape[1] - budget)
        if dropped:
            ids = torch.cat([ids[:, :1], ids[:, 1 + dropped :]], dim=1)  # keep <bos> and the most recent tokens
        out = model.generate(
            ids.to(model.device),
            attention_mask=torch.ones_like(ids).to(model.device),
            num_return_sequences=num_return_sequences,
            **{**kwargs, "max_new_tokens": max_new},
        )
        samples = [tokenizer.decode(row[ids.shape[1] :], skip_special_tokens=True) for row in out]
        results.append(Generation(prompt, samples, dropped))
    return results


def chat_prompt_ids(tokenizer, messages: list[dict]) -> list[int]:
    """apply_chat_template(messages, add_generation_prompt=True, tokenize=True), tokenized in two steps so that a
    prompt longer than the context (about to be cut or windowed) does not trigger transformers' length warning."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return encode(tokenizer, text, add_bos=False)  # the template writes <bos> itself


def _reply_prompts(model, tokenizer, prompts: list, budget: int, max_new: int) -> list[list[int]]:
    """The ids of each prompt (a post through the chat template, or ids already built), cut to their latest
    `budget` tokens with a warning."""
    encoded = []
    for i, prompt in enumerate(prompts):
        ids = chat_prompt_ids(tokenizer, [{"role": "user", "content": prompt}]) if isinstance(prompt, str) else prompt
        if len(ids) > budget:
            logger.warning(
                "Prompt %d has %d tokens but only %d fit beside a %d-token reply in the %d-token context; keeping its "
                "last %d.",
                i,
                len(ids),
                budget,
                max_new,
                context_length(model.config),
                budget,
            )
            ids = ids[-budget:]
        encoded.append(list(ids))
    return encoded


def _left_padded(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows], device=device)
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
    return ids, mask


@torch.no_grad()
def sample_replies(
    model, tokenizer, prompts: list, batch_size: int = 32, seed: int | None = 0, **generate_kwargs
) -> list[str]:
    """One sampled reply per prompt: the one place a reply is sampled (a trained model's sample replies, held-out
    evaluation, the generation-config search, chat and the model card's conversations).

    A prompt is a post (`str`), read as a one-turn conversation through the chat template, or the token ids of a
    chat prompt already built (`chargpt.chat.ChatSession` windows a multi-turn history). Sampling follows the model's
    generation config; `generate_kwargs` override it (a `streamer` too, with one prompt per batch). A prompt longer
    than the context leaves beside `max_new_tokens` keeps its latest tokens, with a warning. Prompts of similar
    length are generated together in left-padded batches after `torch.manual_seed(seed)` (`seed=None` continues the
    current random state), so the replies depend on `seed` and `batch_size`. Replies are decoded without special
    tokens and stripped."""
    max_new = effective_max_new_tokens(model, generate_kwargs)
    budget = context_length(model.config) - max_new
    encoded = _reply_prompts(model, tokenizer, prompts, budget, max_new)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))  # similar lengths together: little padding
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    replies = [""] * len(encoded)
    model.eval()
    if seed is not None:
        torch.manual_seed(seed)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        ids, mask = _left_padded([encoded[i] for i in indices], pad, model.device)
        out = model.generate(input_ids=ids, attention_mask=mask, **{**generate_kwargs, "max_new_tokens": max_new})
        for i, row in zip(indices, out[:, ids.shape[1] :].tolist()):
            replies[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    return replies


# ----------------------------------------------------------------------------------------------------------------------
# Classification and embeddings
# ----------------------------------------------------------------------------------------------------------------------


def _batches(tokenizer, texts: list[str], batch_size: int, max_length: int):
    """Right-padded batches in order of length (less padding), yielding (indices, input_ids, mask, truncated); texts
    made only of unknown characters are refused first (`check_known_characters`)."""
    if batch_size < 1:
        raise ValueError(f"--batch_size must be >= 1, got {batch_size}.")
    characters = [encode(tokenizer, t, add_bos=False) for t in texts]
    check_known_characters(tokenizer, texts, characters)
    bos = [tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []
    encoded = [bos + ids for ids in characters]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        rows = [encoded[i][:max_length] for i in idx]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
        yield idx, ids, mask, [len(encoded[i]) > max_length for i in idx]


def label_names(config) -> list[str]:
    id2label = getattr(config, "id2label", None) or {}
    return [str(id2label.get(i, id2label.get(str(i), f"LABEL_{i}"))) for i in range(config.num_labels)]


@torch.no_grad()
def classify_texts(model, tokenizer, texts: list[str], batch_size: int = 32) -> list[dict]:
    """One dict per text, in input order: label, label_id, score (probability of that label), probabilities
    (label -> probability), truncated (text longer than the context; its first n_positions tokens were used).
    Multi-label models use sigmoids (and add `labels`, those >= 0.5); regression models give `score` only."""
    names = label_names(model.config)
    problem = getattr(model.config, "problem_type", None)
    results = [None] * len(texts)
    for idx, ids, mask, truncated in _batches(tokenizer, texts, batch_size, context_length(model.config)):
        logits = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits.float().cpu()
        for row, i in enumerate(idx):
            results[i] = _label_row(logits[row], names, problem, truncated[row])
    return results


def _label_row(logits: torch.Tensor, names: list[str], problem, truncated: bool) -> dict:
    if problem == "regression" or len(names) == 1 and problem is None:
        return {"label": "", "label_id": None, "score": float(logits[0]), "probabilities": {}, "truncated": truncated}
    probs = logits.sigmoid() if problem == "multi_label_classification" else logits.softmax(-1)
    best = int(probs.argmax())
    row = {
        "label": names[best],
        "label_id": best,
        "score": float(probs[best]),
        "probabilities": {n: float(p) for n, p in zip(names, probs)},
        "truncated": truncated,
    }
    if problem == "multi_label_classification":
        row["labels"] = [n for n, p in zip(names, probs) if p >= 0.5]
    return row


def check_known_characters(tokenizer, texts: list[str], encoded: list[list[int]] | None = None) -> None:
    """Refuse a text none of whose characters is in the vocabulary: the model would see only <unk> and still answer,
    so the answer would say nothing about the text. `encoded`: the texts' ids without <bos>, when already at hand."""
    unk = tokenizer.unk_token_id
    if encoded is None:
        encoded = [encode(tokenizer, t, add_bos=False) for t in texts]
    for n, (text, ids) in enumerate(zip(texts, encoded), start=1):
        if ids and unk is not None and all(i == unk for i in ids):
            raise ValueError(
                f"Text {n} ({text[:30]!r}) has no character the model's vocabulary knows (all {len(ids)} read as "
                f"<unk>), so any answer about it would be meaningless. Remove it, or use a model trained on such text."
            )


@torch.no_grad()
def embed_texts(model, tokenizer, texts: list[str], batch_size: int = 32) -> torch.Tensor:
    """(N, n_embd) L2-normalised masked-mean embeddings (`model.embed`), in input order, float32 on CPU."""
    if not hasattr(model, "embed"):
        raise ValueError(f"{type(model).__name__} has no embed() method; load a CharGPT model.")
    out = [None] * len(texts)
    for idx, ids, mask, _ in _batches(tokenizer, texts, batch_size, context_length(model.config)):
        vectors = model.embed(ids.to(model.device), attention_mask=mask.to(model.device)).float().cpu()
        for row, i in enumerate(idx):
            out[i] = vectors[row]
    return torch.stack(out) if out else torch.empty(0, model.config.n_embd)


def cosine_similarity(model, tokenizer, text_a: str, text_b: str) -> float:
    a, b = embed_texts(model, tokenizer, [text_a, text_b])
    return float(a @ b)  # both unit length


def most_similar(
    model, tokenizer, query: str, candidates: list[str], top_k: int = 5, batch_size: int = 32
) -> list[tuple[int, float]]:
    """The `top_k` candidates closest to `query` by cosine similarity: (index into candidates, score), best first."""
    if top_k < 1:
        raise ValueError(f"--top_k must be >= 1, got {top_k}.")
    if not candidates:
        raise ValueError("There are no candidate texts to compare with.")
    query_vec = embed_texts(model, tokenizer, [query])[0]
    scores = embed_texts(model, tokenizer, candidates, batch_size) @ query_vec
    best = scores.topk(min(top_k, len(candidates)))
    return [(int(i), float(s)) for s, i in zip(best.values, best.indices)]


__all__ = [
    "sampling_kwargs",
    "context_length",
    "effective_max_new_tokens",
    "encode",
    "Generation",
    "generate_texts",
    "chat_prompt_ids",
    "sample_replies",
    "label_names",
    "classify_texts",
    "check_known_characters",
    "embed_texts",
    "cosine_similarity",
    "most_similar",
]
