"""The fast tokenizer against the slow one (the reference): the same ids, tokens and decoding on many random texts,
the same chat template, batches, vocabulary growth and files; plus what only the fast one has (offsets,
tokenizer.json) and how AutoTokenizer picks it."""

import json
import random
import sys
import unicodedata

import pytest
from tokenizers import Tokenizer
from transformers import AutoTokenizer

from chargpt import CharGPTTokenizer, CharGPTTokenizerFast, normalize_text


SPECIALS = ["<pad>", "<unk>", "<sep>", "<bos>", "<eos>"]

# Characters that stress one part of the pipeline each; the property test mixes them at random.
POOLS = {
    "cjk": [chr(c) for c in range(0x4E00, 0x4E00 + 400)],
    "latin": list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ .,!?'\"-"),
    "digits": list("0123456789"),
    "full_width": [chr(c) for c in range(0xFF01, 0xFF5F)] + ["\u3000"],
    "emoji": ["😀", "👍", "🏻", "👨\u200d👩\u200d👧", "❤\ufe0f", "🇨🇳", "🎉"],
    "controls": [chr(c) for c in (*range(0x00, 0x20), *range(0x7F, 0xA0))],
    "format": ["\u200b", "\u200c", "\u200d", "\u200e", "\u2060", "\ufeff", "\u00ad", "\U000e0001", "\U000e0041"],
    "combining": [chr(c) for c in range(0x0300, 0x0370)] + ["\u3099", "\u309a"],
    "compatibility": list("ﬁﬂ①②⑽㍿㎏½Ⅻ™ｶﾞ℃ǅ"),
    "hangul_jamo": [chr(c) for c in (*range(0x1100, 0x1113), *range(0x1161, 0x1176))],
    "specials": ["<sep>", "<bos>", "<eos>", "<pad>", "<unk>", "<se", "p>", "<", ">"],
    "whitespace": ["\n", "\t", " ", "\r\n", "\u00a0", "\u2028"],
}
CONFIGS = [(norm, strip) for norm in (None, "NFC", "NFKC") for strip in (True, False)]


def _nfkc_gap() -> set[str]:
    """Characters whose NFKC differs between Python and the `tokenizers` normaliser: compatibility characters added
    to Unicode after the Rust tables (12.0 or later), which the fast tokenizer leaves as they are."""
    fast = CharGPTTokenizerFast(normalization="NFKC", strip_control_chars=False)
    candidates = (chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    changed = (ch for ch in candidates if not unicodedata.is_normalized("NFKC", ch))
    return {ch for ch in changed if unicodedata.normalize("NFKC", ch) != fast.normalize(ch)}


@pytest.fixture(scope="module")
def nfkc_gap():
    return _nfkc_gap()


def _any_code_point(rng: random.Random, excluded: set[str]) -> str:
    while True:
        code = rng.randrange(sys.maxunicode + 1)
        if not 0xD800 <= code <= 0xDFFF and chr(code) not in excluded:
            return chr(code)


def random_texts(n: int, seed: int, excluded: set[str]) -> list[str]:
    """Seeded random texts: empty, short, medium and a few long ones, drawing each piece from a random pool (or any
    code point: mostly characters no vocabulary holds)."""
    rng = random.Random(seed)
    names = sorted(POOLS)
    texts = []
    for i in range(n):
        length = rng.choice([0, 1, 3, 10, 30, 80]) if i % 50 else 3000
        pieces = [
            _any_code_point(rng, excluded) if rng.random() < 0.1 else rng.choice(POOLS[rng.choice(names)])
            for _ in range(length)
        ]
        texts.append("".join(pieces))
    return texts


def pair(texts, normalization=None, strip=True, **kwargs):
    slow = CharGPTTokenizer.from_texts(texts, normalization=normalization, strip_control_chars=strip, **kwargs)
    fast = CharGPTTokenizerFast.from_texts(texts, normalization=normalization, strip_control_chars=strip, **kwargs)
    return slow, fast


@pytest.mark.parametrize("normalization,strip", CONFIGS)
def test_fast_gives_the_slow_ids_tokens_and_decoding_on_random_texts(normalization, strip, nfkc_gap):
    texts = random_texts(600, seed=CONFIGS.index((normalization, strip)), excluded=nfkc_gap)
    # The vocabulary covers the first half only, so the second half brings unknown characters.
    slow, fast = pair(texts[: len(texts) // 2], normalization, strip, model_max_length=10**6)
    vocab = slow.get_vocab()
    assert fast.get_vocab() == vocab
    batch = fast(texts)["input_ids"]
    for text, fast_ids in zip(texts, batch):
        ids = slow(text)["input_ids"]
        assert fast_ids == ids, ascii(text)[:300]
        assert fast(text, add_special_tokens=False)["input_ids"] == ids[1:], ascii(text)[:300]
        # The slow tokenizer names an unknown character by itself until it converts it to an id; the fast one says
        # <unk> at once.
        assert fast.tokenize(text) == [t if t in vocab else "<unk>" for t in slow.tokenize(text)], ascii(text)[:300]
        for skip in (False, True):
            assert fast.decode(ids, skip_special_tokens=skip) == slow.decode(ids, skip_special_tokens=skip)


def test_only_compatibility_characters_newer_than_the_rust_tables_normalise_differently(nfkc_gap):
    # The documented gap: NFKC differs on a few dozen characters (72 with Python 3.11's Unicode 14, e.g. the Reiwa
    # era sign), each of which the fast tokenizer keeps as it is; NFC has no gap.
    assert "\u32ff" in nfkc_gap and len(nfkc_gap) < 200
    fast = CharGPTTokenizerFast(normalization="NFKC", strip_control_chars=False)
    assert all(fast.normalize(ch) == ch for ch in nfkc_gap)
    nfc = CharGPTTokenizerFast(normalization="NFC", strip_control_chars=False)
    changed = [
        chr(c) for c in range(0x30000) if not 0xD800 <= c <= 0xDFFF and not unicodedata.is_normalized("NFC", chr(c))
    ]
    assert [ch for ch in changed if nfc.normalize(ch) != unicodedata.normalize("NFC", ch)] == []


def test_fast_strips_exactly_the_invisible_characters_python_does_over_all_code_points():
    every = "".join(chr(c) for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF)
    assert CharGPTTokenizerFast().normalize(every) == normalize_text(every)


def test_special_tokens_are_matched_on_the_raw_text_by_both_tokenizers():
    slow, fast = pair(["你好ab<>sep≯"], "NFKC")
    for text in ("你<sep>好", "＜sep＞", "<se\u200bp>", "<sep>\u0338你", "a<bos><eos>b"):
        assert fast(text)["input_ids"] == slow(text)["input_ids"], text
    assert fast("＜sep＞", add_special_tokens=False)["input_ids"] == [fast.convert_tokens_to_ids(c) for c in "<sep>"]
    assert fast("<sep>\u0338你", add_special_tokens=False)["input_ids"][0] == fast.sep_token_id


def test_offsets_point_into_the_original_text_through_normalisation():
    _, fast = pair(["你好fi1"], "NFKC")
    text = "你\u200b好ﬁ①"
    enc = fast(text, return_offsets_mapping=True)
    assert enc["input_ids"][0] == fast.bos_token_id and enc["offset_mapping"][0] == (0, 0)
    assert enc["offset_mapping"][1:] == [(0, 1), (2, 3), (3, 4), (3, 4), (4, 5)]  # ﬁ -> f, i: both from "ﬁ"
    assert [text[a:b] for a, b in enc["offset_mapping"][1:]] == ["你", "好", "ﬁ", "ﬁ", "①"]


def test_chat_template_renders_and_encodes_alike():
    slow, fast = pair(["你好今天天气很好我们去公园吧"])
    messages = [
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "今天天气很好"},
        {"role": "user", "content": "我们去公园吧"},
    ]
    for prompt in (False, True):
        kwargs = dict(add_generation_prompt=prompt)
        assert fast.apply_chat_template(messages, tokenize=False, **kwargs) == slow.apply_chat_template(
            messages, tokenize=False, **kwargs
        )
        assert fast.apply_chat_template(messages, return_dict=False, **kwargs) == slow.apply_chat_template(
            messages, return_dict=False, **kwargs
        )
    with pytest.raises(Exception, match="system"):
        fast.apply_chat_template([{"role": "system", "content": "x"}], tokenize=False)


@pytest.mark.parametrize("side", ["left", "right"])
def test_batches_with_padding_truncation_and_tensors_are_identical(side):
    slow, fast = pair(["一二三四五六七八九十你好"], model_max_length=6)
    slow.padding_side = fast.padding_side = side
    texts = ["你好", "一二三四五六七八九十", "", "一"]
    for kwargs in (
        dict(padding=True),
        dict(padding="max_length", truncation=True),
        dict(truncation=True, max_length=3),
    ):
        assert fast(texts, **kwargs).data == slow(texts, **kwargs).data, kwargs
    tensors = fast(texts, padding=True, return_tensors="pt")
    assert tensors["input_ids"].tolist() == slow(texts, padding=True, return_tensors="pt")["input_ids"].tolist()


def test_add_characters_gives_the_same_ids_as_the_slow_tokenizer():
    slow, fast = pair(["你好"])
    for tok in (slow, fast):
        assert tok.add_characters(["龘", "你", "靐", "龘"]) == 2
    assert fast.get_vocab() == slow.get_vocab() and len(fast) == len(slow)
    assert fast("龘靐你")["input_ids"] == slow("龘靐你")["input_ids"]
    assert fast.decode(fast("龘靐")["input_ids"], skip_special_tokens=True) == "龘靐"
    with pytest.raises(ValueError, match="single characters"):
        fast.add_characters(["ab"])


def test_save_writes_tokenizer_json_and_vocab_json_and_both_classes_load_it(tmp_path):
    _, fast = pair(["ＡＢ你好"], "NFKC", model_max_length=77)
    fast.add_characters(["龘"])
    fast.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["auto_map"]["AutoTokenizer"] == [
        "tokenization_chargpt.CharGPTTokenizer",
        "tokenization_chargpt_fast.CharGPTTokenizerFast",
    ]
    assert {"tokenizer.json", "vocab.json", "tokenization_chargpt_fast.py", "tokenization_chargpt.py"} <= {
        p.name for p in tmp_path.iterdir()
    }
    text = "Ａ龘\u200b你"
    expected = fast(text)["input_ids"]
    # tokenizer.json is a complete pipeline for any `tokenizers` runtime, without transformers or chargpt.
    assert Tokenizer.from_file(str(tmp_path / "tokenizer.json")).encode(text).ids == expected
    for cls in (CharGPTTokenizerFast, CharGPTTokenizer):
        loaded = cls.from_pretrained(tmp_path)
        assert loaded(text)["input_ids"] == expected
        assert (loaded.normalization, loaded.model_max_length, loaded.get_vocab()) == ("NFKC", 77, fast.get_vocab())


def test_a_directory_with_only_vocab_json_loads_as_the_fast_tokenizer(tmp_path):
    slow, _ = pair(["ＡＢ你好"], "NFKC")
    slow.save_pretrained(tmp_path)  # what directories saved before the fast tokenizer hold
    assert not (tmp_path / "tokenizer.json").exists()
    fast = CharGPTTokenizerFast.from_pretrained(tmp_path)
    auto = AutoTokenizer.from_pretrained(tmp_path)
    assert type(auto) is CharGPTTokenizerFast
    assert fast("ＡＢ你")["input_ids"] == auto("ＡＢ你")["input_ids"] == slow("ＡＢ你")["input_ids"]


def test_a_directory_with_only_tokenizer_json_loads_its_vocabulary(tmp_path):
    _, fast = pair(["你好世界"])
    fast.save_pretrained(tmp_path)
    (tmp_path / "vocab.json").unlink()
    assert CharGPTTokenizerFast.from_pretrained(tmp_path).get_vocab() == fast.get_vocab()


def test_auto_tokenizer_returns_the_fast_tokenizer_and_transformers_5_ignores_use_fast(tmp_path):
    # transformers 5's AutoTokenizer drops `use_fast`; the slow tokenizer is loaded by its class.
    _, fast = pair(["你好"])
    fast.save_pretrained(tmp_path)
    assert type(AutoTokenizer.from_pretrained(tmp_path)) is CharGPTTokenizerFast
    assert type(AutoTokenizer.from_pretrained(tmp_path, use_fast=False)) is CharGPTTokenizerFast
    assert type(CharGPTTokenizer.from_pretrained(tmp_path)) is CharGPTTokenizer
