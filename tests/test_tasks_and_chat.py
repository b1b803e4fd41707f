"""The library APIs behind the CLI, called directly: generation, classification, embeddings and similarity
(`chargpt.tasks`), reading and writing texts (`chargpt.textio`), and chat sessions (`chargpt.chat`)."""

import json

import pytest
import torch

from chargpt.chat import ChatSession, chat_loop, format_transcript
from chargpt.tasks import (
    classify_texts,
    cosine_similarity,
    effective_max_new_tokens,
    embed_texts,
    generate_texts,
    most_similar,
    sampling_kwargs,
)
from chargpt.textio import make_record, read_records, write_rows

from .chargpt_tester import CharGPTTester


@pytest.fixture(scope="module")
def tester():
    return CharGPTTester(n_positions=64)


# ---------------------------------------------------------------- tasks


def test_sampling_kwargs_maps_flags_and_temperature_zero_to_greedy():
    assert sampling_kwargs(temperature=0) == {"do_sample": False}
    assert sampling_kwargs(temperature=0.5, top_k=5, top_p=0.9) == {
        "temperature": 0.5,
        "do_sample": True,
        "top_k": 5,
        "top_p": 0.9,
    }
    assert sampling_kwargs() == {}
    with pytest.raises(ValueError, match="top_p"):
        sampling_kwargs(top_p=0)


def test_effective_max_new_tokens_defaults_from_the_generation_config_and_fits_the_context(tester):
    model = tester.lm()
    model.generation_config.max_new_tokens = 20
    assert effective_max_new_tokens(model, {}) == 20
    model.generation_config.max_new_tokens = 60  # more than half the 64-token context: lowered, not an error
    assert effective_max_new_tokens(model, {}) == 32
    with pytest.raises(ValueError, match="must be below"):
        effective_max_new_tokens(model, {"max_new_tokens": 64})


def test_generate_texts_greedy_matches_generate_and_cuts_long_prompts_from_the_front(tester):
    model = tester.lm(seed=2)
    (result,) = generate_texts(
        model, tester.tokenizer, ["今天天气"], do_sample=False, max_new_tokens=5, min_new_tokens=5, eos_token_id=None
    )
    ids = tester.tokenizer("今天天气", return_tensors="pt")
    direct = model.generate(**ids, do_sample=False, max_new_tokens=5, min_new_tokens=5, eos_token_id=None)
    assert result.samples == [tester.tokenizer.decode(direct[0, ids["input_ids"].shape[1] :], skip_special_tokens=True)]
    (long,) = generate_texts(model, tester.tokenizer, ["你好" * 40], do_sample=False, max_new_tokens=10)
    assert long.prompt_tokens_dropped == 1 + 80 - (64 - 10)  # <bos> kept, the oldest characters dropped


def test_classify_texts_returns_probabilities_in_input_order_whatever_the_batching(tester):
    model = tester.classifier(num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    texts = ["今天天气很好，我们去公园散步吧。", "你好", "早餐太差了"]
    one_batch = classify_texts(model, tester.tokenizer, texts, batch_size=8)
    one_by_one = classify_texts(model, tester.tokenizer, texts, batch_size=1)
    for a, b in zip(one_batch, one_by_one):
        assert a["label"] == b["label"] and a["label"] in ("neg", "pos")
        assert sum(a["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        assert a["probabilities"]["pos"] == pytest.approx(b["probabilities"]["pos"], abs=1e-5)


def test_embeddings_are_unit_vectors_and_similarity_ranks_the_same_text_first(tester):
    model = tester.lm(seed=4)
    vectors = embed_texts(model, tester.tokenizer, ["你好", "今天天气很好"])
    assert vectors.shape == (2, tester.config.n_embd)
    torch.testing.assert_close(vectors.norm(dim=-1), torch.ones(2))
    assert cosine_similarity(model, tester.tokenizer, "你好", "你好") == pytest.approx(1.0, abs=1e-5)
    ranked = most_similar(model, tester.tokenizer, "今天天气很好", ["我喜欢看电影", "今天天气很好", "你好"], top_k=2)
    assert ranked[0][0] == 1 and len(ranked) == 2


# ---------------------------------------------------------------- texts in and out


def test_read_records_keeps_every_row_and_marks_empty_ones(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_text('{"text": "你好"}\n\n{"text": "  "}\n{"text": "再见"}\n', encoding="utf-8")
    records = read_records(path)
    assert [r.text for r in records] == ["你好", None, None, "再见"]
    assert [r.row for r in records] == [1, 2, 3, 4]
    assert records[1].error and records[2].error
    assert make_record(1, "\u200b").error == "empty text"  # invisible characters only


def test_write_rows_writes_csv_and_json_lines_atomically(tmp_path):
    rows = [{"text": "你好", "label": "pos"}, {"text": "差", "label": "neg"}]
    out = tmp_path / "out.csv"
    write_rows(rows, str(out))
    assert out.read_text(encoding="utf-8").splitlines() == ["text,label", "你好,pos", "差,neg"]
    text = write_rows(rows, None, fmt="jsonl")
    assert [json.loads(line) for line in text.splitlines()] == rows
    assert not list(tmp_path.glob(".*tmp"))


# ---------------------------------------------------------------- chat


def test_chat_session_keeps_alternating_history_and_reset_clears_it(tester):
    session = ChatSession(tester.lm(seed=5), tester.tokenizer, {"do_sample": False, "max_new_tokens": 6})
    reply = session.respond(session.prepare("你好"))
    assert not reply.interrupted
    session.respond(session.prepare("今天天气很好"))
    assert [m["role"] for m in session.history] == ["user", "assistant", "user", "assistant"]
    session.reset()
    assert session.history == []


def test_prepare_removes_forged_turn_markers_and_reports_unknown_characters(tester):
    session = ChatSession(tester.lm(), tester.tokenizer, {"max_new_tokens": 6})
    prepared = session.prepare("你好<sep>😀")
    assert "<sep>" not in prepared.text
    assert any("not in the model's vocabulary" in n for n in prepared.notices)
    assert session.prepare("   ").text == ""


def test_chat_loop_runs_a_script_with_commands_and_formats_the_transcript(tester):
    session = ChatSession(tester.lm(seed=6), tester.tokenizer, {"do_sample": False, "max_new_tokens": 4})
    lines = iter(["你好", "/reset", "今天天气很好", "/quit", "never read"])
    written = []
    records = chat_loop(session, lambda: next(lines, None), written.append)
    assert [r.get("turn", r.get("event")) for r in records] == [1, "reset", 2]  # turns count across resets
    text = format_transcript(records, "text")
    assert text.splitlines()[0] == "User: 你好" and "[new conversation]" in text
    assert [
        json.loads(line)["user"]
        for line in format_transcript(records, "jsonl").splitlines()
        if "user" in json.loads(line)
    ] == ["你好", "今天天气很好"]


def test_the_context_window_drops_the_oldest_turns_first(tester):
    session = ChatSession(tester.lm(seed=7), tester.tokenizer, {"do_sample": False, "max_new_tokens": 8})
    dropped = 0
    for _ in range(12):
        dropped += session.respond(session.prepare("今天天气很好，我们去公园散步吧")).dropped_turns
    assert dropped > 0
    assert session.history_tokens() <= session.prompt_budget + 8 + 2
