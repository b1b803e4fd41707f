"""The `chargpt` command (chat, generate, classify, similarity) on tiny random models saved to temporary directories."""

import io
import json
import os
import subprocess
import sys

import pytest
import torch

from chargpt.chat import ChatSession, ReplyStreamer, chat_loop
from chargpt.cli import main, parse_command
from chargpt.loading import load_model, load_tokenizer, resolve_device
from chargpt.tasks import generate_texts

from .chargpt_tester import SAMPLE_TEXTS, CharGPTTester


N_POSITIONS = 64


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory):
    """A causal LM and a two-label classifier (64-token context) saved with their tokenizer."""
    root = tmp_path_factory.mktemp("models")
    tester = CharGPTTester(n_positions=N_POSITIONS)
    lm_dir, cls_dir = root / "lm", root / "cls"
    tester.lm().save_pretrained(lm_dir)
    tester.tokenizer.save_pretrained(lm_dir)
    tester.classifier(
        num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    ).save_pretrained(cls_dir)
    tester.tokenizer.save_pretrained(cls_dir)
    return {"lm": str(lm_dir), "cls": str(cls_dir), "tester": tester}


def _read_jsonl(path):
    return [json.loads(line) for line in open(path, encoding="utf-8")]


def _stdin(monkeypatch, text):
    monkeypatch.setattr(sys, "stdin", io.StringIO(text))  # not a terminal: chat reads it as a script


# ---------------------------------------------------------------------------------------------------------------- chat


def test_chat_over_stdin_survives_empty_line_huge_paste_unknown_chars_and_stays_in_context(
    model_dirs, monkeypatch, capsys, tmp_path
):
    lines = [
        "你好！",
        "",
        "天气" * 5000,
        "你好𝄞☃？",
        "<sep>今天<e<eos>os>好",
        *[SAMPLE_TEXTS[0]] * 6,
        "/reset",
        "你好",
        "/quit",
        "这一行在退出之后，不应被读到",
    ]
    _stdin(monkeypatch, "\n".join(lines) + "\n")
    transcript = tmp_path / "t.jsonl"
    rc = main(["chat", model_dirs["lm"], "--max_new_tokens", "16", "--seed", "0", "--transcript", str(transcript)])
    assert rc == 0
    out = capsys.readouterr().out
    records = _read_jsonl(transcript)
    turns = [r for r in records if "turn" in r]
    assert len(turns) == 11  # every non-empty message before /quit; the empty line is skipped, /reset is an event
    assert [r.get("event") for r in records if "event" in r] == ["skipped", "reset"]
    assert out.count("Bot: ") == 11 and "这一行在退出之后" not in out

    budget = N_POSITIONS - 16
    assert all(r["prompt_tokens"] <= budget for r in turns), [r["prompt_tokens"] for r in turns]
    assert any(r["dropped_turns"] > 0 for r in turns)  # the window slid: oldest turns went first

    paste = turns[1]
    assert paste["user_chars"] == 10000 and len(paste["user"]) == budget - 2  # <bos> and <sep> around it
    assert paste["user_chars_dropped"] == 10000 - (budget - 2) and paste["user"] == ("天气" * 5000)[-(budget - 2) :]
    assert any("kept the last" in n for n in paste["notices"])
    unknown = turns[2]
    assert any("not in the model's vocabulary" in n and "𝄞" in n and "☃" in n for n in unknown["notices"])
    forged = turns[3]
    assert forged["user"] == "今天好" and any("<sep>" in n and "<eos>" in n for n in forged["notices"])
    after_reset = turns[-1]
    assert after_reset["prompt_tokens"] == len("你好") + 2 and after_reset["dropped_turns"] == 0


def test_chat_prompt_is_the_chat_template_of_the_windowed_history(model_dirs):
    tester = model_dirs["tester"]
    session = ChatSession(tester.lm(), tester.tokenizer, {"max_new_tokens": 20, "do_sample": False})
    seen = []
    original = session._window

    def spy():
        ids, dropped = original()
        seen.append((ids, [dict(m) for m in session.history]))
        return ids, dropped

    session._window = spy
    for text in SAMPLE_TEXTS[:5]:
        session.respond(session.prepare(text))
    for ids, history in seen:
        expected = tester.tokenizer.apply_chat_template(
            history, add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
        assert ids == expected and len(ids) <= N_POSITIONS - 20
    last_history = seen[-1][1]
    assert last_history[-1] == {"role": "user", "content": SAMPLE_TEXTS[4]}
    assert {"role": "user", "content": SAMPLE_TEXTS[0]} not in last_history  # the oldest turn was dropped first
    assert session.history_tokens() <= N_POSITIONS


def test_chat_interrupt_mid_reply_keeps_partial_reply_and_the_session_goes_on(model_dirs, monkeypatch):
    tester = model_dirs["tester"]
    tokenizer = tester.tokenizer
    # Greedy with eos suppressed for 10 tokens, so every reply streams at least 10 tokens.
    session = ChatSession(tester.lm(), tokenizer, {"max_new_tokens": 12, "min_new_tokens": 10, "do_sample": False})
    calls = {"n": 0}
    original_put = ReplyStreamer.put

    def put(self, value):
        calls["n"] += 1
        if calls["n"] == 4:  # the prompt, two tokens, then Ctrl-C
            raise KeyboardInterrupt
        return original_put(self, value)

    monkeypatch.setattr(ReplyStreamer, "put", put)
    shown = []
    reply = session.respond(session.prepare("你好"), on_text=shown.append)
    assert reply.interrupted and reply.text == "".join(shown)
    assert len(session.history) == 2 and session.history[1] == {"role": "assistant", "content": reply.text}
    follow_up = session.respond(session.prepare("今天天气很好"))
    assert not follow_up.interrupted and [m["role"] for m in session.history] == ["user", "assistant"] * 2


def test_chat_cli_interrupt_during_streaming_then_continues_and_ctrl_c_at_prompt_exits(
    model_dirs, monkeypatch, capsys, tmp_path
):
    replies = {"n": 0}
    original_put = ReplyStreamer.put

    def put(self, value):
        if not self._prompt_seen:
            replies["n"] += 1
        elif replies["n"] == 2:  # the first generated token of the second reply
            raise KeyboardInterrupt
        return original_put(self, value)

    monkeypatch.setattr(ReplyStreamer, "put", put)
    _stdin(monkeypatch, "你好\n今天天气很好\n我们去公园散步吧\n")
    transcript = tmp_path / "t.txt"
    assert main(["chat", model_dirs["lm"], "--max_new_tokens", "8", "--transcript", str(transcript)]) == 0
    out = capsys.readouterr().out
    assert out.count("[interrupted]") == 1 and out.count("Bot: ") == 3
    text = transcript.read_text(encoding="utf-8")
    assert text.count("User: ") == 3 and "[interrupted]" in text

    # Ctrl-C while waiting for input ends the loop cleanly and keeps what was said.
    def reader():
        if reader.calls:
            raise KeyboardInterrupt
        reader.calls += 1
        return "你好"

    reader.calls = 0
    tester = model_dirs["tester"]
    records = chat_loop(ChatSession(tester.lm(), tester.tokenizer, {"max_new_tokens": 4}), reader, lambda s: None)
    assert [r["turn"] for r in records] == [1]


def test_chat_end_of_input_ctrl_d_exits_cleanly(model_dirs, monkeypatch, capsys):
    _stdin(monkeypatch, "")
    assert main(["chat", model_dirs["lm"], "--max_new_tokens", "4"]) == 0
    assert "Bot:" not in capsys.readouterr().out


def test_chat_refuses_a_reply_budget_beyond_the_context(model_dirs, monkeypatch, capsys):
    _stdin(monkeypatch, "你好\n")
    assert main(["chat", model_dirs["lm"], "--max_new_tokens", str(N_POSITIONS)]) == 1
    assert "n_positions=64" in capsys.readouterr().err


def test_chat_rejects_bad_sampling_flags_with_a_clear_error(model_dirs, capsys):
    assert main(["chat", model_dirs["lm"], "--top_p", "1.5"]) == 1
    assert "--top_p must be in (0, 1]" in capsys.readouterr().err


def test_chat_script_file_and_sampling_seed_give_reproducible_transcripts(model_dirs, tmp_path, capsys):
    script = tmp_path / "script.txt"
    script.write_text("你好！\n最近怎么样？\n/reset\n早餐太差了\n", encoding="utf-8")
    outputs = []
    for k in range(2):
        transcript = tmp_path / f"t{k}.jsonl"
        args = [
            "chat",
            model_dirs["lm"],
            "--script",
            str(script),
            "--transcript",
            str(transcript),
            "--seed",
            "7",
            "--temperature",
            "1.0",
            "--top_k",
            "20",
            "--top_p",
            "0.95",
            "--repetition_penalty",
            "1.2",
            "--max_new_tokens",
            "10",
        ]
        assert main(args) == 0
        outputs.append([r for r in _read_jsonl(transcript)])
    assert outputs[0] == outputs[1] and len([r for r in outputs[0] if "turn" in r]) == 3
    assert "User: 你好！" in capsys.readouterr().out


def test_chat_runs_in_a_subprocess_reading_piped_stdin(model_dirs, tmp_path):
    transcript = tmp_path / "t.jsonl"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chargpt.cli",
            "chat",
            model_dirs["lm"],
            "--max_new_tokens",
            "6",
            "--seed",
            "0",
            "--transcript",
            str(transcript),
        ],
        input="你好\n\n今天天气很好\n",
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("Bot: ") == 2 and "Empty message" in proc.stdout
    assert [r["user"] for r in _read_jsonl(transcript) if "turn" in r] == ["你好", "今天天气很好"]


# ------------------------------------------------------------------------------------------------------------ generate


def test_generate_prompts_from_arguments_or_a_file_with_several_samples_each(model_dirs, tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("今天天气\n\n早餐\n", encoding="utf-8")
    out = tmp_path / "samples.jsonl"
    rc = main(
        [
            "generate",
            model_dirs["lm"],
            "--prompt_file",
            str(prompts),
            "--num_return_sequences",
            "3",
            "--max_new_tokens",
            "5",
            "--seed",
            "0",
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    rows = _read_jsonl(out)
    assert [(r["row"], r["prompt"], r["sample"]) for r in rows] == [
        (row, p, k) for row, p in ((1, "今天天气"), (3, "早餐")) for k in (1, 2, 3)
    ]
    assert all(len(r["continuation"]) <= 5 for r in rows)
    captured = capsys.readouterr()
    assert "Skipped 1 empty prompts (rows 2)" in captured.err and captured.out.count("--- sample") == 6
    assert main(["generate", model_dirs["lm"], "你好", "早餐", "--max_new_tokens", "3", "--temperature", "0"]) == 0
    assert capsys.readouterr().out.count("=== prompt") == 2


def test_generate_keeps_the_recent_part_of_an_overlong_prompt(model_dirs):
    tester = model_dirs["tester"]
    results = generate_texts(tester.lm(), tester.tokenizer, ["你好" * 100], max_new_tokens=10, do_sample=False)
    assert results[0].prompt_tokens_dropped == 1 + 200 - (N_POSITIONS - 10)
    assert len(results[0].samples) == 1


def test_arguments_can_come_from_a_json_file(model_dirs, tmp_path, capsys):
    args = tmp_path / "args.json"
    args.write_text(
        json.dumps({"model_dir": model_dirs["lm"], "prompt": ["你好"], "max_new_tokens": 3, "temperature": 0}),
        encoding="utf-8",
    )
    assert main(["generate", str(args)]) == 0
    assert "=== prompt (row 1): 你好" in capsys.readouterr().out


# ------------------------------------------------------------------------------------------------------------ classify


def test_classify_csv_keeps_empty_rows_with_an_error_and_writes_probabilities(model_dirs, tmp_path, capsys):
    data = tmp_path / "reviews.csv"
    data.write_text(
        'label,review\n1,"房间很干净,服务也好"\n0,\n1,"他说""很好""\n第二行"\n0,   \n1,早餐太差了\n', encoding="utf-8"
    )
    out = tmp_path / "labels.csv"
    rc = main(
        [
            "classify",
            model_dirs["cls"],
            "--input_file",
            str(data),
            "--text_column",
            "review",
            "--output",
            str(out),
            "--batch_size",
            "2",
        ]
    )
    assert rc == 0
    import csv

    rows = list(csv.DictReader(open(out, encoding="utf-8")))
    assert [r["row"] for r in rows] == ["1", "2", "3", "4", "5"]  # nothing lost, input order
    assert [r["error"] for r in rows] == ["", "empty text", "", "empty text", ""]
    assert rows[2]["text"] == '他说"很好"\n第二行'
    for r in (rows[0], rows[2], rows[4]):
        probs = {"negative": float(r["prob_negative"]), "positive": float(r["prob_positive"])}
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert r["label"] == max(probs, key=probs.get) and float(r["score"]) == pytest.approx(max(probs.values()))
    assert "2 empty rows kept with an error field (empty text)" in capsys.readouterr().err


def test_classify_batched_and_padded_equals_one_by_one(model_dirs):
    from chargpt.tasks import classify_texts

    model = load_model(model_dirs["cls"], "sequence-classification")
    tokenizer = load_tokenizer(model_dirs["cls"])
    texts = ["你好", SAMPLE_TEXTS[0], "早餐太差了，再也不会来了！", "好"]
    batched = classify_texts(model, tokenizer, texts, batch_size=4)
    single = [classify_texts(model, tokenizer, [t], batch_size=1)[0] for t in texts]
    for a, b in zip(batched, single):
        assert a["label"] == b["label"]
        assert a["probabilities"]["positive"] == pytest.approx(b["probabilities"]["positive"], abs=1e-5)


def test_classify_jsonl_and_plain_text_inputs_print_json_lines(model_dirs, tmp_path, capsys):
    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text('{"text": "你好", "id": 1}\n\n{"text": "", "id": 2}\n{"text": "早餐太差了"}\n', encoding="utf-8")
    assert main(["classify", model_dirs["cls"], "--input_file", str(jsonl)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["row"], r["error"]) for r in rows] == [(1, ""), (2, "empty line"), (3, "empty text"), (4, "")]
    assert set(rows[0]["probabilities"]) == {"negative", "positive"}
    plain = tmp_path / "texts.txt"
    plain.write_text("你好\n\n早餐\n", encoding="utf-8")
    assert main(["classify", model_dirs["cls"], "--input_file", str(plain)]) == 0
    assert [json.loads(line)["error"] for line in capsys.readouterr().out.splitlines()] == ["", "empty text", ""]


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_classify_wrong_column_name_is_a_clear_error_listing_the_columns(model_dirs, tmp_path, capsys, suffix):
    data = tmp_path / f"reviews.{suffix}"
    if suffix == "csv":
        data.write_text("label,review\n1,很好\n", encoding="utf-8")
    else:
        data.write_text('{"label": 1, "review": "很好"}\n', encoding="utf-8")
    assert main(["classify", model_dirs["cls"], "--input_file", str(data), "--text_column", "txt"]) == 1
    err = capsys.readouterr().err
    assert "'txt'" in err and "label, review" in err and "--text_column" in err


def test_classify_refuses_a_causal_lm_and_chat_refuses_a_classifier(model_dirs, capsys):
    assert main(["classify", model_dirs["lm"], "你好"]) == 1
    assert "needs a model fine-tuned for sequence classification" in capsys.readouterr().err
    assert main(["generate", model_dirs["cls"], "你好"]) == 1
    assert "needs a causal language model" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------------- similarity


def test_similarity_of_two_texts_is_a_cosine(model_dirs, capsys):
    assert main(["similarity", model_dirs["lm"], "今天天气很好", "今天天气很好"]) == 0
    assert float(capsys.readouterr().out) == pytest.approx(1.0, abs=1e-5)
    assert main(["similarity", model_dirs["cls"], "今天天气很好", "早餐太差了"]) == 0  # any head: the base model
    assert -1.0 <= float(capsys.readouterr().out) <= 1.0


def test_similarity_top_k_lines_of_a_file_skips_and_reports_empty_lines(model_dirs, tmp_path, capsys):
    candidates = tmp_path / "candidates.txt"
    candidates.write_text(
        "\n".join([SAMPLE_TEXTS[1], "", SAMPLE_TEXTS[0], "  ", SAMPLE_TEXTS[4]]) + "\n", encoding="utf-8"
    )
    out = tmp_path / "ranking.jsonl"
    rc = main(
        [
            "similarity",
            model_dirs["lm"],
            "--query",
            SAMPLE_TEXTS[0],
            "--candidates_file",
            str(candidates),
            "--top_k",
            "2",
            "--output",
            str(out),
        ]
    )
    assert rc == 0
    rows = _read_jsonl(out)
    assert len(rows) == 2 and rows[0]["row"] == 3 and rows[0]["score"] == pytest.approx(1.0, abs=1e-5)
    assert rows[0]["score"] >= rows[1]["score"]
    assert "Skipped 2 empty candidates (rows 2, 4)" in capsys.readouterr().err


def test_similarity_argument_errors_are_clear(model_dirs, tmp_path, capsys):
    assert main(["similarity", model_dirs["lm"], "只有一句"]) == 1
    assert "exactly two texts" in capsys.readouterr().err
    data = tmp_path / "c.csv"
    data.write_text("id,sentence\n1,你好\n", encoding="utf-8")
    assert main(["similarity", model_dirs["lm"], "--query", "你好", "--candidates_file", str(data)]) == 1
    assert "its columns are: id, sentence" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- loading and options


def test_foreign_model_type_needs_trust_remote_code_and_then_runs_its_own_code(model_dirs, tmp_path, capsys):
    import shutil

    foreign = tmp_path / "someone_elses_chargpt"
    shutil.copytree(model_dirs["lm"], foreign)
    config = json.loads((foreign / "config.json").read_text(encoding="utf-8"))
    config["model_type"] = "someone_elses_chargpt"  # unknown to the installed package: only its own code can load it
    (foreign / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert main(["generate", str(foreign), "你好", "--max_new_tokens", "3"]) == 1
    assert "--trust_remote_code" in capsys.readouterr().err
    assert main(["generate", str(foreign), "你好", "--max_new_tokens", "3", "--trust_remote_code"]) == 0
    model = load_model(str(foreign), "causal-lm", trust_remote_code=True)
    assert type(model).__module__.startswith("transformers_modules")  # the directory's code, not chargpt's


def test_gpu_options_are_parsed_and_refused_without_cuda(model_dirs, capsys):
    _, (model_args, *_) = parse_command(
        ["chat", model_dirs["lm"], "--device", "cuda", "--dtype", "float16", "--compile"]
    )
    assert (model_args.device, model_args.dtype, model_args.compile) == ("cuda", "float16", True)
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA; the refusal below is for machines without it")
    assert resolve_device("auto").type == "cpu"
    assert main(["generate", model_dirs["lm"], "你好", "--device", "cuda"]) == 1
    assert "no CUDA GPU" in capsys.readouterr().err
    assert main(["generate", model_dirs["lm"], "你好", "--dtype", "float16"]) == 1
    assert "float16 is for GPUs" in capsys.readouterr().err


def test_missing_model_directory_and_unknown_command_are_reported(tmp_path, capsys):
    assert main(["chat", str(tmp_path / "nope")]) == 1
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["talk", str(tmp_path)])
    assert exit_info.value.code == 2


def test_texts_come_from_the_command_line_or_a_file_not_both(model_dirs, tmp_path, capsys):
    data = tmp_path / "texts.txt"
    data.write_text("你好\n", encoding="utf-8")
    assert main(["classify", model_dirs["cls"], "早餐", "--input_file", str(data)]) == 1
    assert "not both" in capsys.readouterr().err
    assert main(["classify", model_dirs["cls"]]) == 1
    assert "No texts given" in capsys.readouterr().err


def test_invisible_only_texts_count_as_empty(tmp_path):
    from chargpt.textio import read_records

    data = tmp_path / "texts.txt"
    data.write_text("你好\n\ufeff\u200b \n早餐\n", encoding="utf-8")
    assert [r.error for r in read_records(data)] == ["", "empty text", ""]


def test_real_chnsenticorp_csv_with_quoted_fields_loses_no_row(shared_data):
    import csv

    from chargpt.textio import read_records

    path = shared_data / "chnsenticorp" / "ChnSentiCorp_htl_train.csv"
    with open(path, encoding="utf-8-sig", newline="") as f:
        expected = sum(1 for _ in csv.DictReader(f))
    records = read_records(path, "review")
    assert len(records) == expected and records[-1].row == expected
    assert {r.fields["label"] for r in records} == {"0", "1"}
    with pytest.raises(ValueError, match="its columns are: label, review"):
        read_records(path, "text")
