"""Tokenizer: vocabulary building, round trips on mixed text, normalisation, padding, truncation, chat template."""

import json

import pytest

from chargpt import CharGPTTokenizer, normalize_text


MIXED = "你好，World! 123 测试 😀 — ok?\n第二行\t制表"


@pytest.fixture
def tokenizer():
    return CharGPTTokenizer.from_texts([MIXED, "今天天气很好。", "我们去公园吧！"])


def test_special_tokens_have_fixed_ids_matching_the_config_defaults(tokenizer):
    ids = [tokenizer.convert_tokens_to_ids(t) for t in ("<pad>", "<unk>", "<sep>", "<bos>", "<eos>")]
    assert ids == [0, 1, 2, 3, 4]
    assert (tokenizer.pad_token_id, tokenizer.sep_token_id, tokenizer.bos_token_id) == (0, 2, 3)


def test_one_token_per_character_including_spaces_and_emoji(tokenizer):
    assert tokenizer.tokenize("你 好😀") == ["你", " ", "好", "😀"]


def test_round_trip_restores_mixed_text_exactly(tokenizer):
    ids = tokenizer(MIXED)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and len(ids) == len(MIXED) + 1
    assert tokenizer.decode(ids, skip_special_tokens=True) == MIXED


def test_characters_missing_from_the_vocabulary_become_unk(tokenizer):
    text = "你好龘靐"  # the last two characters are not in the vocabulary
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert ids[2:] == [tokenizer.unk_token_id] * 2
    assert tokenizer.decode(ids) == "你好<unk><unk>"
    assert tokenizer.decode(ids, skip_special_tokens=True) == "你好"


def test_from_texts_is_deterministic_and_orders_by_frequency_then_code_point():
    a = CharGPTTokenizer.from_texts(["bba", "c", "ab"])
    b = CharGPTTokenizer.from_texts(["ab", "c", "bba"])
    assert a.get_vocab() == b.get_vocab()
    # b: 3, a: 2, c: 1 -> ids 5, 6, 7 after the five special tokens
    assert [a.convert_tokens_to_ids(c) for c in "bac"] == [5, 6, 7]


def test_from_texts_min_frequency_and_max_size():
    tok = CharGPTTokenizer.from_texts(["aaab", "bc"], min_frequency=2)
    assert set(tok.get_vocab()) - {"<pad>", "<unk>", "<sep>", "<bos>", "<eos>"} == {"a", "b"}
    capped = CharGPTTokenizer.from_texts(["aaabbc"], max_size=6)
    assert len(capped) == 6 and "a" in capped.get_vocab() and "b" not in capped.get_vocab()
    with pytest.raises(ValueError, match="min_frequency"):
        CharGPTTokenizer.from_texts(["a"], min_frequency=0)
    with pytest.raises(ValueError, match="max_size"):
        CharGPTTokenizer.from_texts(["a"], max_size=3)
    with pytest.raises(TypeError, match="strings"):
        CharGPTTokenizer.from_texts(["a", 5])


def test_nfkc_normalisation_is_applied_when_building_and_when_encoding():
    tok = CharGPTTokenizer.from_texts(["ＡＢＣ１２３，"], normalization="NFKC")
    assert "A" in tok.get_vocab() and "Ａ" not in tok.get_vocab()
    assert tok.decode(tok("Ａ１，")["input_ids"], skip_special_tokens=True) == "A1,"
    assert tok.normalize("ｘ") == "x"


def test_invisible_control_characters_are_stripped_but_newline_and_tab_kept():
    text = "\ufeff你\u200b好\x07\n\t"
    assert normalize_text(text) == "你好\n\t"
    assert normalize_text(text, strip_control_chars=False) == text
    tok = CharGPTTokenizer.from_texts(["你好"])
    assert tok.tokenize("\ufeff你\u200b好") == ["你", "好"]


def test_unknown_normalization_is_rejected():
    with pytest.raises(ValueError, match="normalization"):
        CharGPTTokenizer(normalization="NFD?")


def test_right_and_left_padding_with_attention_masks(tokenizer):
    tokenizer.padding_side = "right"
    right = tokenizer(["你好", "今天天气很好"], padding=True)
    assert right["input_ids"][0][-1] == tokenizer.pad_token_id
    assert right["attention_mask"][0] == [1, 1, 1, 0, 0, 0, 0]
    tokenizer.padding_side = "left"
    left = tokenizer(["你好", "今天天气很好"], padding=True)
    assert left["input_ids"][0][:4] == [0, 0, 0, 0] and left["attention_mask"][0] == [0, 0, 0, 0, 1, 1, 1]


def test_truncation_uses_model_max_length():
    tok = CharGPTTokenizer.from_texts(["一二三四五六七八九十"], model_max_length=5)
    ids = tok("一二三四五六七八九十", truncation=True)["input_ids"]
    assert len(ids) == 5 and ids[0] == tok.bos_token_id
    assert len(tok("一二三四五六七八九十", truncation=True, max_length=3)["input_ids"]) == 3


def test_batch_encoding_to_tensors(tokenizer):
    batch = tokenizer(["你好", "今天天气很好"], padding=True, return_tensors="pt")
    assert batch["input_ids"].shape == batch["attention_mask"].shape == (2, 7)


def test_chat_template_renders_dialogue_as_training_data_and_as_a_prompt(tokenizer):
    messages = [
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "今天天气很好"},
        {"role": "user", "content": "我们去公园吧"},
    ]
    assert tokenizer.apply_chat_template(messages, tokenize=False) == "<bos>你好<sep>今天天气很好<sep>我们去公园吧<eos>"
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert prompt == "<bos>你好<sep>今天天气很好<sep>我们去公园吧<sep>"
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=False)
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.sep_token_id
    assert ids.count(tokenizer.sep_token_id) == 3


def test_chat_template_rejects_system_messages(tokenizer):
    with pytest.raises(Exception, match="system"):
        tokenizer.apply_chat_template([{"role": "system", "content": "x"}], tokenize=False)


def test_add_characters_appends_new_ids_and_skips_known_ones(tokenizer):
    before = len(tokenizer)
    assert tokenizer.add_characters(["龘", "你", "靐", "龘"]) == 2
    assert len(tokenizer) == before + 2
    assert tokenizer.convert_tokens_to_ids("靐") == before + 1
    assert tokenizer.decode(tokenizer("龘靐")["input_ids"], skip_special_tokens=True) == "龘靐"
    with pytest.raises(ValueError, match="single characters"):
        tokenizer.add_characters(["ab"])


def test_save_and_load_round_trip_keeps_vocab_settings_and_template(tokenizer, tmp_path):
    tok = CharGPTTokenizer.from_texts(["ＡＢ你好"], normalization="NFKC", model_max_length=77)
    tok.add_characters(["龘"])
    tok.save_pretrained(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert vocab["龘"] == len(tok) - 1
    loaded = CharGPTTokenizer.from_pretrained(tmp_path)
    assert loaded.get_vocab() == tok.get_vocab()
    assert loaded.normalization == "NFKC" and loaded.model_max_length == 77
    assert loaded.chat_template == tok.chat_template
    assert loaded("Ａ龘")["input_ids"] == tok("Ａ龘")["input_ids"]


def test_vocabulary_without_special_tokens_is_rejected(tmp_path):
    path = tmp_path / "vocab.json"
    path.write_text(json.dumps({"a": 0, "b": 1}), encoding="utf-8")
    with pytest.raises(ValueError, match="special tokens"):
        CharGPTTokenizer(vocab_file=str(path))


def test_special_token_text_inside_user_input_is_treated_as_that_token(tokenizer):
    # Documented behaviour shared with every transformers tokenizer: the literal text "<sep>" is the separator.
    ids = tokenizer("你<sep>好", add_special_tokens=False)["input_ids"]
    assert ids[1] == tokenizer.sep_token_id and len(ids) == 3
