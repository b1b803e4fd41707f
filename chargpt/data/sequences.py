"""From cleaned corpora to what the tokenizer and the model see: every cleaned text (for building a vocabulary),
dialogues as chat-template token ids (latest turns that fit), text documents as `<bos>text<eos>` windows,
causal-LM packing into fixed blocks, and labelled texts as `input_ids` with `labels`. Tokenizers are called on
batches (a fast tokenizer encodes a batch in Rust), and map-style and streamed (`IterableDataset`) corpora take the
same path."""

import itertools
from collections.abc import Iterable, Iterator

from datasets import Dataset, IterableDataset
from transformers.utils import logging

from ..tokenization_chargpt import DEFAULT_CHAT_TEMPLATE
from .dialogue import iter_dialogues
from .labelled import iter_labelled


logger = logging.get_logger(__name__)


def _chat_messages(turns: list[str]) -> list[dict]:
    """Alternating user/assistant messages ending with the assistant, the reply the model learns to write."""
    n = len(turns)
    return [{"role": "assistant" if (n - 1 - i) % 2 == 0 else "user", "content": t} for i, t in enumerate(turns)]


def encode_texts(tokenizer, texts: list[str], add_special_tokens: bool = False) -> list[list[int]]:
    """Token ids of `texts` in one batched call, by default without added special tokens (a rendered chat template
    writes its own). A fast tokenizer is called through its Rust backend directly: the ids are those of
    `tokenizer(texts)`, without the offsets and attention masks the data path does not use."""
    if not texts:
        return []
    backend = _rust_backend(tokenizer)
    if backend is not None:
        return [e.ids for e in backend.encode_batch_fast(texts, add_special_tokens=add_special_tokens)]
    return tokenizer(texts, add_special_tokens=add_special_tokens, return_attention_mask=False)["input_ids"]


def _rust_backend(tokenizer):
    """The `tokenizers.Tokenizer` of a fast tokenizer, when it can be called directly with the same result."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    # transformers leaves the truncation or padding of the last call set on the backend; the wrapper resets it.
    if backend is None or backend.truncation is not None or backend.padding is not None:
        return None
    return backend


def render_chats(tokenizer, dialogues: list[list[str]]) -> list[str]:
    """`apply_chat_template(..., tokenize=False)` of each dialogue (turns as alternating user/assistant messages).
    CharGPT's own template is rendered by joining the turns, which gives the same string without a Jinja call per
    dialogue; any other template goes through Jinja."""
    if tokenizer.chat_template == DEFAULT_CHAT_TEMPLATE:
        bos, sep, eos = str(tokenizer.bos_token), str(tokenizer.sep_token), str(tokenizer.eos_token)
        return [bos + sep.join(turns) + eos for turns in dialogues]
    if not dialogues:
        return []
    return tokenizer.apply_chat_template([_chat_messages(turns) for turns in dialogues], tokenize=False)


# Dialogues per text handed to the tokenizer by `encode_chats`: one long text costs a fast tokenizer far less than
# many short ones (fewer per-text allocations), and 200 LCCC dialogues are a few thousand characters.
_CHATS_PER_TEXT = 200


def _cut_at(ids: list[int], marker: int, parts: int) -> list[list[int]] | None:
    """`ids` cut before each `marker`, if it starts with one and holds exactly `parts` of them; else None."""
    starts, i = [], -1
    try:
        while True:
            i = ids.index(marker, i + 1)
            starts.append(i)
    except ValueError:
        pass
    if len(starts) != parts or (starts and starts[0] != 0):
        return None
    return [ids[a:b] for a, b in zip(starts, starts[1:] + [len(ids)])]


def encode_chats(tokenizer, rendered: list[str]) -> list[list[int]]:
    """Token ids of rendered chat strings (`render_chats`). With CharGPT's own template every string is
    `<bos>...<eos>` and special tokens are matched before normalisation, so a text of many dialogues encodes to
    their ids one after the other: they are encoded `_CHATS_PER_TEXT` at a time and cut at each `<bos>`. A text
    whose `<bos>` count is off (a turn holding the literal text "<bos>") is encoded dialogue by dialogue. Other
    tokenizers and templates encode each string on its own."""
    if tokenizer.chat_template != DEFAULT_CHAT_TEMPLATE or len(rendered) < 2 or _rust_backend(tokenizer) is None:
        return encode_texts(tokenizer, rendered)
    groups = [rendered[i : i + _CHATS_PER_TEXT] for i in range(0, len(rendered), _CHATS_PER_TEXT)]
    bos, out = tokenizer.bos_token_id, []
    for group, ids in zip(groups, encode_texts(tokenizer, ["".join(g) for g in groups])):
        parts = _cut_at(ids, bos, len(group))
        out.extend(parts if parts is not None else encode_texts(tokenizer, group))
    return out


def _first_turn(turns: list[str], max_turns: int | None, max_history_chars: int | None) -> int:
    """Index of the oldest turn kept by `max_turns` and `max_history_chars` (the last turn is always kept)."""
    start = max(0, len(turns) - max_turns) if max_turns else 0
    if max_history_chars is not None:
        history = sum(len(t) for t in turns[start:-1])
        while start < len(turns) - 1 and history > max_history_chars:
            history -= len(turns[start])
            start += 1
    return start


def dialogues_to_input_ids(
    dialogues: list[list[str]],
    tokenizer,
    max_length: int,
    max_turns: int | None = None,
    max_history_chars: int | None = None,
    min_turns: int = 2,
) -> list[list[int] | None]:
    """`dialogue_to_input_ids` for a batch of dialogues: one batched tokenizer call for all of them; only the rare
    dialogue that does not fit `max_length` is encoded again, one oldest turn fewer at a time."""
    starts = [_first_turn(turns, max_turns, max_history_chars) for turns in dialogues]
    first = encode_chats(tokenizer, render_chats(tokenizer, [t[s:] for t, s in zip(dialogues, starts)]))
    out = []
    for turns, start, ids in zip(dialogues, starts, first):
        least = min(min_turns, len(turns))  # fewest turns a sequence may keep
        while len(turns) - start >= least and len(ids) > max_length:
            start += 1
            if len(turns) - start >= least:
                ids = encode_texts(tokenizer, render_chats(tokenizer, [turns[start:]]))[0]
        out.append(list(ids) if len(turns) - start >= least and len(ids) <= max_length else None)
    return out


def dialogue_to_input_ids(
    turns: list[str],
    tokenizer,
    max_length: int,
    max_turns: int | None = None,
    max_history_chars: int | None = None,
    min_turns: int = 2,
) -> list[int] | None:
    """Token ids of a dialogue through the tokenizer's chat template (the format used at inference), keeping the
    latest turns that fit: at most `max_turns` turns, at most `max_history_chars` characters before the last turn,
    at most `max_length` tokens. The oldest turns go first; a turn is never cut. None when even the last `min_turns`
    turns do not fit."""
    return dialogues_to_input_ids([turns], tokenizer, max_length, max_turns, max_history_chars, min_turns)[0]


def _encode_batch(tokenizer, max_length, max_turns, max_history_chars):
    def encode(batch):
        out = dialogues_to_input_ids(batch["turns"], tokenizer, max_length, max_turns, max_history_chars)
        return {"input_ids": [ids for ids in out if ids is not None]}

    return encode


def build_lm_dataset(
    dialogues: Dataset | IterableDataset,
    tokenizer,
    max_length: int,
    max_turns: int | None = None,
    max_history_chars: int | None = None,
    num_proc: int | None = None,
) -> tuple[Dataset | IterableDataset, int | None]:
    """Dialogues -> `input_ids` through the chat template (see `dialogue_to_input_ids`), a batch of 1000 dialogues
    per tokenizer call; also returns how many dialogues did not fit `max_length` and were dropped (None for a
    streamed dataset, which is encoded lazily). Labels are made by the collator (= input_ids)."""
    encode = _encode_batch(tokenizer, max_length, max_turns, max_history_chars)
    if isinstance(dialogues, IterableDataset):
        return dialogues.map(encode, batched=True, batch_size=1000, remove_columns=["turns"]), None
    encoded = dialogues.map(
        encode, batched=True, remove_columns=dialogues.column_names, num_proc=num_proc, desc="chat template"
    )
    dropped = len(dialogues) - len(encoded)
    if dropped:
        logger.warning(
            f"{dropped} of {len(dialogues)} dialogues do not fit {max_length} tokens even with only their last turns; "
            "dropped."
        )
    return encoded, dropped


def _document_windows(ids: list[int], bos: int, eos: int, max_length: int) -> list[list[int]]:
    """`<bos> ids <eos>` cut into consecutive windows of at most `max_length` tokens; a last window of one token
    (nothing to predict from) is dropped."""
    whole = [bos, *ids, eos]
    windows = [whole[i : i + max_length] for i in range(0, len(whole), max_length)]
    return [w for w in windows if len(w) >= 2]


def build_text_lm_dataset(texts: Dataset, tokenizer, max_length: int, num_proc: int | None = None) -> Dataset:
    """Text documents (column `text`) -> `input_ids`, each document as `<bos>text<eos>` whatever the chat template
    (a review is not a conversation). A document longer than `max_length` tokens is cut into consecutive windows
    rather than dropped, so that long reviews still teach the model: more sequences than documents means some were
    cut. Labels are made by the collator (= input_ids)."""
    if tokenizer.bos_token_id is None or tokenizer.eos_token_id is None:
        raise ValueError("Text documents are written as <bos>text<eos>; the tokenizer needs bos and eos tokens.")
    if max_length < 2:
        raise ValueError(f"max_length must be >= 2 for <bos>text<eos> documents, got {max_length}.")
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id

    def encode(batch):
        rows = encode_texts(tokenizer, batch["text"])
        return {"input_ids": [w for ids in rows for w in _document_windows(ids, bos, eos, max_length)]}

    return texts.map(encode, batched=True, remove_columns=texts.column_names, num_proc=num_proc, desc="text documents")


def pack_sequences(
    dataset: Dataset | IterableDataset, block_size: int, num_proc: int | None = None
) -> Dataset | IterableDataset:
    """Causal-LM packing: concatenate the `input_ids` of consecutive samples and cut them into blocks of exactly
    `block_size` tokens (the tail of each 1000-sample group that does not fill a block is dropped). Each sample keeps
    its `<bos>`/`<eos>`, so the model sees where one dialogue ends and the next begins. A streamed dataset is packed
    lazily, group by group."""
    if block_size < 2:
        raise ValueError(f"block_size must be >= 2, got {block_size}.")

    def group(batch):
        flat = list(itertools.chain.from_iterable(batch["input_ids"]))
        usable = len(flat) // block_size * block_size
        return {"input_ids": [flat[i : i + block_size] for i in range(0, usable, block_size)]}

    if isinstance(dataset, IterableDataset):
        return dataset.map(group, batched=True, batch_size=1000, remove_columns=["input_ids"])
    return dataset.map(
        group, batched=True, batch_size=1000, remove_columns=dataset.column_names, num_proc=num_proc, desc="packing"
    )


def tokenize_labelled(dataset: Dataset, tokenizer, max_length: int, num_proc: int | None = None) -> Dataset:
    """`text`, `label` -> `input_ids`, `attention_mask`, `labels` (texts longer than `max_length` keep their start)."""

    def encode(batch):
        if _rust_backend(tokenizer) is not None and tokenizer.truncation_side == "right":
            # What tokenizer(texts, truncation=True, max_length) gives, without the wrapper's per-text overhead.
            ids = [ids[:max_length] for ids in encode_texts(tokenizer, batch["text"], add_special_tokens=True)]
            mask = [[1] * len(row) for row in ids]
        else:
            enc = tokenizer(batch["text"], truncation=True, max_length=max_length)
            ids, mask = enc["input_ids"], enc["attention_mask"]
        return {"input_ids": ids, "attention_mask": mask, "labels": batch["label"]}

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, num_proc=num_proc, desc="tokenizing")


def iterate_texts(sources: Iterable, kind: str, **options) -> Iterator[str]:
    """Every cleaned text of dialogue (`kind="dialogues"`: each turn) or labelled (`"labelled"`) sources, for
    building a vocabulary. `options` go to `iter_dialogues` / `iter_labelled`."""
    if kind == "dialogues":
        for row in iter_dialogues(sources, **options):
            yield from row["turns"]
    elif kind == "labelled":
        for row in iter_labelled(sources, **options):
            yield row["text"]
    else:
        raise ValueError(f"kind must be 'dialogues' or 'labelled', got {kind!r}.")


__all__ = [
    "encode_texts",
    "render_chats",
    "encode_chats",
    "dialogues_to_input_ids",
    "dialogue_to_input_ids",
    "build_lm_dataset",
    "build_text_lm_dataset",
    "pack_sequences",
    "tokenize_labelled",
    "iterate_texts",
]
