"""The batched data path (chargpt.data.sequences) against the one-dialogue-at-a-time reference: chat-template ids of
real and random dialogues, truncation to the latest turns that fit, packing, labelled texts and streamed datasets,
with the slow and the fast tokenizer."""

import json
import random

import pytest
from datasets import Dataset, IterableDataset

from chargpt import CharGPTTokenizer, CharGPTTokenizerFast
from chargpt.data import (
    build_lm_dataset,
    dialogues_to_input_ids,
    encode_texts,
    pack_sequences,
    render_chats,
    tokenize_labelled,
)
from chargpt.data.sequences import _chat_messages


def reference_ids(turns, tokenizer, max_length, max_turns=None, max_history_chars=None, min_turns=2):
    """The pre-batching definition, one apply_chat_template call per attempt: latest turns that fit."""
    start = max(0, len(turns) - max_turns) if max_turns else 0
    if max_history_chars is not None:
        while start < len(turns) - 1 and sum(len(t) for t in turns[start:-1]) > max_history_chars:
            start += 1
    while len(turns) - start >= min(min_turns, len(turns)):
        ids = tokenizer.apply_chat_template(_chat_messages(turns[start:]), tokenize=True, return_dict=False)
        if len(ids) <= max_length:
            return list(ids)
        start += 1
    return None


def random_dialogues(n, seed, alphabet):
    rng = random.Random(seed)
    word = lambda: "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))  # noqa: E731
    return [[word() for _ in range(rng.randint(1, 8))] for _ in range(n)]


@pytest.fixture(scope="module")
def real_dialogues(shared_data):
    data = json.loads((shared_data / "lccc_base" / "lccc_base_test_part.json").read_text(encoding="utf-8"))
    kdconv = json.loads((shared_data / "kdconv" / "kdconv_film_dev.json").read_text(encoding="utf-8"))
    lccc = [[t.replace(" ", "") for t in d] for d in data[:600]]
    return lccc + [[m["message"] for m in d["messages"]] for d in kdconv[:40]]


@pytest.fixture(scope="module", params=[CharGPTTokenizer, CharGPTTokenizerFast], ids=["slow", "fast"])
def tokenizers(request, real_dialogues):
    texts = [t for d in real_dialogues[::2] for t in d]  # the other half brings unknown characters
    return request.param.from_texts(texts, normalization="NFKC", model_max_length=4096)


@pytest.mark.parametrize(
    "limits",
    [
        dict(max_length=4096),
        dict(max_length=40),
        dict(max_length=24, max_turns=3),
        dict(max_length=64, max_history_chars=20),
        dict(max_length=12),
    ],
)
def test_batched_chat_ids_equal_one_apply_chat_template_per_dialogue_on_real_corpora(
    tokenizers, real_dialogues, limits
):
    got = dialogues_to_input_ids(real_dialogues, tokenizers, **limits)
    expected = [reference_ids(d, tokenizers, **limits) for d in real_dialogues]
    assert got == expected
    if limits["max_length"] in (12, 4096):
        assert (None in got) == (limits["max_length"] == 12)  # many last turn pairs need more than 12 tokens


def test_rendering_the_default_template_by_joining_gives_the_jinja_string(tokenizers):
    # 400 dialogues are two texts for a fast tokenizer; "<bos>" inside a turn sends its text down the slow road.
    dialogues = random_dialogues(400, seed=1, alphabet="你好<sep>>\u200bＡa \n") + [[""], ["x"], ["前<bos>后", "好"]]
    jinja = [tokenizers.apply_chat_template(_chat_messages(d), tokenize=False) for d in dialogues]
    assert render_chats(tokenizers, dialogues) == jinja
    assert dialogues_to_input_ids(dialogues, tokenizers, 4096, min_turns=1) == [
        reference_ids(d, tokenizers, 4096, min_turns=1) for d in dialogues
    ]


def test_a_custom_chat_template_is_rendered_through_jinja(tokenizers):
    tok = type(tokenizers)(
        vocab=tokenizers.get_vocab(),
        chat_template="{% for m in messages %}{{ m['content'] }}{{ eos_token }}{% endfor %}",
    )
    dialogues = [["你好", "好"], ["今天"]]
    assert render_chats(tok, dialogues) == ["你好<eos>好<eos>", "今天<eos>"]
    assert dialogues_to_input_ids(dialogues, tok, 64, min_turns=1) == [
        reference_ids(d, tok, 64, min_turns=1) for d in dialogues
    ]


def test_fast_encoding_ignores_truncation_left_on_the_backend_by_an_earlier_call():
    tok = CharGPTTokenizerFast.from_texts(["一二三四五"])
    tok(["一二三四五"], truncation=True, max_length=2)  # transformers leaves this set on the Rust backend
    assert encode_texts(tok, ["一二三四五"]) == [tok("一二三四五", add_special_tokens=False)["input_ids"]]
    assert len(encode_texts(tok, ["一二三四五"])[0]) == 5


def test_slow_and_fast_build_identical_lm_and_labelled_datasets(real_dialogues):
    texts = [t for d in real_dialogues for t in d]
    slow = CharGPTTokenizer.from_texts(texts[::3], normalization="NFKC")
    fast = CharGPTTokenizerFast.from_texts(texts[::3], normalization="NFKC")
    dialogues = Dataset.from_dict({"turns": real_dialogues})
    (a, dropped_a), (b, dropped_b) = (build_lm_dataset(dialogues, t, 48) for t in (slow, fast))
    assert a["input_ids"] == b["input_ids"] and dropped_a == dropped_b > 0
    assert pack_sequences(a, 32)["input_ids"] == pack_sequences(b, 32)["input_ids"]
    labelled = Dataset.from_dict({"text": texts[:500], "label": [i % 2 for i in range(500)]})
    assert tokenize_labelled(labelled, slow, 20).to_dict() == tokenize_labelled(labelled, fast, 20).to_dict()


def test_a_streamed_dataset_is_encoded_and_packed_like_the_map_style_one(real_dialogues):
    tok = CharGPTTokenizerFast.from_texts([t for d in real_dialogues for t in d])
    rows = real_dialogues * 2  # more than one batch of 1000
    mapped, _ = build_lm_dataset(Dataset.from_dict({"turns": rows}), tok, 40)
    streamed, dropped = build_lm_dataset(IterableDataset.from_generator(lambda: ({"turns": d} for d in rows)), tok, 40)
    assert dropped is None and isinstance(streamed, IterableDataset)
    assert [r["input_ids"] for r in streamed] == mapped["input_ids"]
    packed = pack_sequences(streamed, 32)
    assert [r["input_ids"] for r in packed] == pack_sequences(mapped, 32)["input_ids"]
