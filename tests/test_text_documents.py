"""Text documents for the causal LM (domain-adaptive pretraining): the reader, the <bos>text<eos> windows, the
arguments' checks, and train_lm.py continuing a tiny model on reviews, alone and mixed with dialogues."""

import json

import pytest
from datasets import Dataset

from chargpt import CharGPTTokenizer
from chargpt.data import CorpusSummary, DataFormatError, build_text_lm_dataset, iter_texts, load_texts
from chargpt.training import DialogueDataArguments

from ._helpers_training import load_script, tiny_tokenizer, write_labelled_csv, write_pairs


def test_text_files_give_one_document_a_line_or_a_column_and_count_every_drop(tmp_path):
    lines = tmp_path / "notes.txt"
    lines.write_text("今天天气很好\n\n你 好 吗\n今天天气很好\n", encoding="utf-8")  # blank line, LCCC spacing, repeat
    only_text = tmp_path / "texts.csv"
    only_text.write_text("text\n没有标签的一行\n", encoding="utf-8")
    reviews = write_labelled_csv(tmp_path / "reviews.csv", n=4)
    summary = CorpusSummary()
    rows = list(iter_texts([lines, only_text, reviews], summary=summary))
    assert [r["text"] for r in rows][:3] == ["今天天气很好", "你好吗", "没有标签的一行"] and len(rows) == 7
    assert summary.read == 8 and summary.kept == 7 and dict(summary.dropped) == {"duplicate": 1}
    assert summary.by_source == {
        str(lines): {"read": 3, "kept": 2},
        str(only_text): {"read": 1, "kept": 1},
        str(reviews): {"read": 4, "kept": 4},
    }
    dataset, cached = load_texts([lines, reviews], cache_dir=str(tmp_path / "cache"))
    assert dataset.column_names == ["text"] and len(dataset) == 6 and cached.kept == 6


def test_a_csv_without_a_text_column_is_a_clear_error(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("label,body\n1,很好\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"bad\.csv, header: found no text column .* Pass --text_column"):
        list(iter_texts([path]))


def test_documents_are_bos_text_eos_cut_into_context_windows():
    tokenizer = CharGPTTokenizer.from_texts(["很好的酒店"])
    bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
    texts = Dataset.from_dict({"text": ["很好", "很好的酒店很好的酒店"]})
    encoded = build_text_lm_dataset(texts, tokenizer, max_length=5)["input_ids"]
    ids = tokenizer.convert_tokens_to_ids(list("很好的酒店"))
    assert encoded[0] == [bos, ids[0], ids[1], eos]
    # 12 tokens -> windows of 5, 5 and 2: nothing lost, every window still predicts something
    assert encoded[1:] == [[bos, *ids[:4]], [ids[4], *ids[:4]], [ids[4], eos]]
    with pytest.raises(ValueError, match="max_length must be >= 2"):
        build_text_lm_dataset(texts, tokenizer, max_length=1)


def test_lm_data_arguments_need_some_training_data_and_refuse_streamed_documents():
    with pytest.raises(ValueError, match="give --train_files .*, --text_files .*, or both"):
        DialogueDataArguments()
    with pytest.raises(ValueError, match="--text_files are read into memory and cannot be streamed"):
        DialogueDataArguments(text_files=["reviews.csv"], streaming=True)
    assert DialogueDataArguments(text_files=["reviews.csv"]).train_files == []


TINY_LM = ["--config_overrides", "n_embd=32,n_layer=2,n_head=2,n_positions=64"]
QUICK = [
    "--max_steps",
    "3",
    "--per_device_train_batch_size",
    "8",
    "--use_cpu",
    "--report_to",
    "none",
    "--eval_strategy",
    "no",
    "--save_strategy",
    "no",
    "--load_best_model_at_end",
    "false",
    "--seed",
    "0",
]


def test_train_lm_continues_a_model_on_reviews_alone_and_mixed_with_dialogues(tmp_path):
    pairs = write_pairs(tmp_path / "pairs.txt", n=40)
    reviews = write_labelled_csv(tmp_path / "reviews.csv", n=40)
    texts = pairs.read_text(encoding="utf-8").splitlines() + reviews.read_text(encoding="utf-8").splitlines()
    tokenizer = tiny_tokenizer(tmp_path / "tokenizer", texts)
    train_lm = load_script("train_lm.py").main
    train_lm(
        [
            "--tokenizer_name_or_path",
            str(tokenizer),
            "--train_files",
            str(pairs),
            *TINY_LM,
            *QUICK,
            "--output_dir",
            str(tmp_path / "chat"),
        ]
    )
    # Domain-adaptive pretraining: the chat model continued on the reviews' text, then on reviews and dialogues.
    results = train_lm(
        [
            "--model_name_or_path",
            str(tmp_path / "chat"),
            "--tokenizer_name_or_path",
            str(tmp_path / "chat"),
            "--text_files",
            str(reviews),
            *QUICK,
            "--output_dir",
            str(tmp_path / "reviews"),
        ]
    )
    assert results["train"]["train_samples"] == 36  # 40 reviews less 5% validation and 5% test
    summary = json.loads((tmp_path / "reviews" / "data_summary.json").read_text(encoding="utf-8"))
    assert "train" not in summary and summary["text_documents"]["train"]["documents"] == 36
    results = train_lm(
        [
            "--model_name_or_path",
            str(tmp_path / "reviews"),
            "--tokenizer_name_or_path",
            str(tmp_path / "reviews"),
            "--train_files",
            str(pairs),
            "--text_files",
            str(reviews),
            *QUICK,
            "--output_dir",
            str(tmp_path / "mixed"),
        ]
    )
    assert results["train"]["train_samples"] == 36 + 36
    summary = json.loads((tmp_path / "mixed" / "data_summary.json").read_text(encoding="utf-8"))
    assert summary["validation"]["sequences"] == 2 and summary["text_documents"]["validation"]["sequences"] == 2


def test_train_lm_reports_bad_text_input_in_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("label,body\n1,很好\n", encoding="utf-8")
    tokenizer = tiny_tokenizer(tmp_path / "tokenizer", ["很好"])
    script = load_script("train_lm.py")
    with pytest.raises(SystemExit) as exit_info:
        script.run_script(
            script.main,
            [
                "--tokenizer_name_or_path",
                str(tokenizer),
                "--text_files",
                str(bad),
                *TINY_LM,
                *QUICK,
                "--output_dir",
                str(tmp_path / "out"),
            ],
        )
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert exit_info.value.code == 2 and error.startswith("error: ") and "found no text column" in error
