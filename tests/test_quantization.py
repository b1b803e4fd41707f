"""The int8 export (ONNX Runtime) beyond the model matrix's contract checks (tests/test_model_matrix.py): what the
graph stores, sizes, agreement with float32 on trained models and real reviews, the export's own check, the CLI, and
its loader's generate() settings and errors."""

import json
import os
import sys

import numpy as np
import pytest
import torch

from chargpt.cli import main
from chargpt.configuration_chargpt import ACTIVATIONS, PRESETS

from .chargpt_tester import ARCHITECTURES, SAMPLE_TEXTS, CharGPTTester


MATRIX_ACTIVATIONS = {
    arch.get("activation_function", PRESETS[arch.get("preset", "course")]["activation_function"])
    for arch in ARCHITECTURES.values()
}


pytest.importorskip("onnx", reason="the int8 export needs onnx: pip install 'chargpt[int8]'")
ort = pytest.importorskip("onnxruntime", reason="the int8 export runs on onnxruntime: pip install 'chargpt[int8]'")

from benchmarks.int8 import benchmark_int8  # noqa: E402
from chargpt.int8 import (  # noqa: E402  (after the skips: importing needs nothing, running needs both)
    CHECK_TOLERANCE,
    EXPORT_INFO_FILE,
    ExportCheckError,
    compare_on_texts,
    directory_bytes,
    export_int8,
    load_int8,
    relative_difference,
    weights_bytes,
)


def _train_briefly(model, tokenizer, steps: int = 60):
    """A few optimizer steps on the sample texts so that next-token distributions are peaked, as in a trained model
    (with random weights the top logits are near-ties that any rounding reorders)."""
    tokenizer.padding_side = "right"
    batch = tokenizer(SAMPLE_TEXTS, padding=True, return_tensors="pt")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    return model.eval()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A briefly trained tiny causal LM (hidden 64, 2 layers) saved with its tokenizer, and its int8 export."""
    root = tmp_path_factory.mktemp("int8")
    tester = CharGPTTester(n_positions=64, n_embd=64, n_inner=128)
    torch.manual_seed(0)
    model = _train_briefly(tester.lm(), tester.tokenizer)
    model.save_pretrained(root / "lm")
    tester.tokenizer.save_pretrained(root / "lm")
    assert main(["export-int8", str(root / "lm"), str(root / "lm-int8")]) == 0
    return {"model": model, "tokenizer": tester.tokenizer, "lm": str(root / "lm"), "int8": str(root / "lm-int8")}


@pytest.fixture(scope="module")
def trained_modern(tmp_path_factory):
    """A briefly trained tiny causal LM of the modern preset (rotary, RMSNorm, SwiGLU, QK-norm, no biases), saved with
    its tokenizer, and its int8 export."""
    root = tmp_path_factory.mktemp("int8-modern")
    tester = CharGPTTester(preset="modern", n_positions=64, n_embd=64, n_inner=None)
    torch.manual_seed(0)
    model = _train_briefly(tester.lm(), tester.tokenizer)
    model.save_pretrained(root / "lm")
    tester.tokenizer.save_pretrained(root / "lm")
    assert main(["export-int8", str(root / "lm"), str(root / "lm-int8")]) == 0
    return {"model": model, "tokenizer": tester.tokenizer, "lm": str(root / "lm"), "int8": str(root / "lm-int8")}


# --------------------------------------------------------------------------------------------------------------- graph


@pytest.mark.parametrize("activation", sorted(set(ACTIVATIONS) - MATRIX_ACTIVATIONS))
def test_activations_outside_the_model_matrix_export_exactly(activation, tmp_path):
    """Every activation the config accepts is exported somewhere: the matrix's architectures cover some, these the
    rest. The export's own check holds its float32 graph to PyTorch at 1e-4 (whole sequence and through the cache)."""
    tester = CharGPTTester(activation_function=activation, bias=False, initializer_range=0.2)
    info = export_int8(tester.lm(), tester.tokenizer, tmp_path / "out")
    assert info["checks"]["float32_graph"]["relative_difference"] <= 1e-4
    assert info["checks"]["int8"]["relative_difference"] <= CHECK_TOLERANCE["int8"]


# -------------------------------------------------------------------------------------------------------------- export


def assert_int8_greedy_continues_like_fp32(trained):
    """The int8 export's greedy continuation of three prompts equals the fp32 model's, token for token."""
    int8_model = load_int8(trained["int8"])
    tokenizer, model = trained["tokenizer"], trained["model"]
    for text in ("今天天气", "你好！", "这家酒店"):
        ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer.convert_tokens_to_ids(list(text))])
        kwargs = dict(do_sample=False, max_new_tokens=8, min_new_tokens=8, pad_token_id=0)
        expected = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
        assert torch.equal(int8_model.generate(ids, **kwargs), expected), text


def test_export_is_smaller_and_greedy_continuation_matches_fp32(trained):
    assert weights_bytes(trained["int8"]) < 0.4 * weights_bytes(trained["lm"])
    assert directory_bytes(trained["int8"]) < directory_bytes(trained["lm"])
    assert_int8_greedy_continues_like_fp32(trained)


def test_modern_preset_int8_export_greedy_continues_like_fp32(trained_modern):
    assert_int8_greedy_continues_like_fp32(trained_modern)
    info = json.loads(open(os.path.join(trained_modern["int8"], EXPORT_INFO_FILE), encoding="utf-8").read())
    assert info["checks"]["int8"]["top1_agreement"] >= 0.9 and info["tied_embedding_stored_twice"]
    assert info["method"].startswith("torch.onnx.export (dynamo, opset 23)") and "RMSNorms, rotary" in info["method"]


def test_modern_int8_graph_keeps_matrices_int8_and_norms_float32(trained_modern):
    import onnx

    config = trained_modern["model"].config
    graph = onnx.load(os.path.join(trained_modern["int8"], "model_int8.onnx")).graph
    matrices = [i for i in graph.initializer if len(i.dims) == 2]
    dtypes = [onnx.helper.tensor_dtype_to_np_dtype(i.data_type) for i in matrices]
    # c_attn, attn.c_proj, c_fc (fused gate and up), mlp.c_proj per block, and the head's own copy of the table
    assert dtypes.count(np.int8) == 4 * config.n_layer + 1
    assert dtypes.count(np.uint8) == 1 and len(dtypes) == 4 * config.n_layer + 2  # the lookup table; nothing float
    ops = [node.op_type for node in graph.node]
    assert ops.count("RMSNormalization") == 4 * config.n_layer + 1  # ln_1, ln_2, q_norm, k_norm per block, ln_f
    assert "LayerNormalization" not in ops and "MatMulInteger" in ops
    assert weights_bytes(trained_modern["int8"]) < 0.4 * weights_bytes(trained_modern["lm"])


def test_export_directory_is_self_contained_and_describes_itself(trained, tmp_path):
    files = set(os.listdir(trained["int8"]))
    assert {
        "model_int8.onnx",
        "config.json",
        "generation_config.json",
        "vocab.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        EXPORT_INFO_FILE,
    } <= files
    assert not any(name.endswith(".safetensors") for name in files)
    info = json.loads(open(os.path.join(trained["int8"], EXPORT_INFO_FILE), encoding="utf-8").read())
    assert info["task"] == "causal-lm" and info["source"] == trained["lm"] and info["tied_embedding_stored_twice"]
    assert info["size_ratio"] == pytest.approx(info["int8_weights_bytes"] / info["source_weights_bytes"], abs=1e-3)
    assert info["checks"]["int8"]["top1_agreement"] >= 0.9 and info["classifier_pooling"] is None
    assert info["checks"]["float32_graph"]["relative_difference"] <= 1e-4 and info["format_version"] == 2
    # The original weights are not needed: copy the export elsewhere and run it from there.
    import shutil

    moved = tmp_path / "copy"
    shutil.copytree(trained["int8"], moved)
    assert load_int8(moved).generate(torch.tensor([[3, 10, 11]]), max_new_tokens=3, do_sample=False).shape == (1, 6)


def test_a_tied_embedding_is_stored_as_two_int8_tables_and_no_float_one(trained):
    """The lookup and the head each get an int8 copy (one shared float table would leave the head in float32)."""
    import onnx

    config = trained["model"].config
    graph = onnx.load(os.path.join(trained["int8"], "model_int8.onnx")).graph
    tables = [i for i in graph.initializer if sorted(i.dims) == sorted([config.vocab_size, config.n_embd])]
    assert sorted(str(onnx.helper.tensor_dtype_to_np_dtype(t.data_type)) for t in tables) == ["int8", "uint8"]


def test_int8_classifier_export_agrees_with_fp32_on_padded_batches(tmp_path, capsys):
    tester = CharGPTTester(n_embd=64, n_inner=128)
    model = tester.classifier(num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    model.save_pretrained(tmp_path / "cls")
    tester.tokenizer.save_pretrained(tmp_path / "cls")
    data = tmp_path / "eval.csv"
    data.write_text("label,review\n" + "".join(f"{k % 2},{t}\n" for k, t in enumerate(SAMPLE_TEXTS)), encoding="utf-8")
    assert (
        main(
            [
                "export-int8",
                str(tmp_path / "cls"),
                str(tmp_path / "cls-int8"),
                "--eval_file",
                str(data),
                "--text_column",
                "review",
                "--label_column",
                "label",
            ]
        )
        == 0
    )
    assert "Agreement on" in capsys.readouterr().out
    info = json.loads((tmp_path / "cls-int8" / EXPORT_INFO_FILE).read_text(encoding="utf-8"))
    evaluation = info["evaluation"]
    assert evaluation["texts"] == len(SAMPLE_TEXTS) and {"accuracy_fp32", "accuracy_int8", "accuracy_change"} <= set(
        evaluation
    )
    from chargpt.tasks import classify_texts

    int8_model = load_int8(tmp_path / "cls-int8")
    expected = classify_texts(model, tester.tokenizer, SAMPLE_TEXTS, batch_size=3)
    got = classify_texts(int8_model, tester.tokenizer, SAMPLE_TEXTS, batch_size=3)
    for e, g in zip(expected, got):
        assert g["probabilities"]["pos"] == pytest.approx(e["probabilities"]["pos"], abs=0.02)
    assert main(["classify", str(tmp_path / "cls-int8"), "你好", ""]) == 0  # the CLI runs the export too
    assert [json.loads(line)["error"] for line in capsys.readouterr().out.splitlines()] == ["", "empty text"]


def test_export_reports_perplexity_change_on_an_eval_file(trained, tmp_path, capsys):
    texts = tmp_path / "texts.txt"
    texts.write_text("\n".join(SAMPLE_TEXTS) + "\n\n", encoding="utf-8")
    assert main(["export-int8", trained["lm"], str(tmp_path / "out"), "--eval_file", str(texts)]) == 0
    evaluation = json.loads((tmp_path / "out" / EXPORT_INFO_FILE).read_text(encoding="utf-8"))["evaluation"]
    assert evaluation["texts"] == len(SAMPLE_TEXTS)
    assert evaluation["perplexity_int8"] == pytest.approx(evaluation["perplexity_fp32"], rel=0.05)
    assert "Agreement on" in capsys.readouterr().out
    # Direct call gives the same numbers.
    direct = compare_on_texts(trained["model"], load_int8(tmp_path / "out"), trained["tokenizer"], SAMPLE_TEXTS)
    assert direct["perplexity_fp32"] == evaluation["perplexity_fp32"]


def test_export_refuses_to_overwrite_and_to_export_into_its_source(trained, tmp_path, capsys):
    assert main(["export-int8", trained["lm"], trained["int8"]]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert main(["export-int8", trained["lm"], trained["lm"]]) == 1
    assert "must differ" in capsys.readouterr().err
    assert main(["export-int8", trained["int8"], str(tmp_path / "x")]) == 1
    assert "already an int8 export" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


# ----------------------------------------------------------------------------------------------------------- generate


def test_int8_generate_sampling_is_seeded_and_returns_every_sequence(trained):
    int8_model = load_int8(trained["int8"])
    ids = torch.tensor([[3, 10, 11, 12]])
    torch.manual_seed(5)
    a = int8_model.generate(
        ids,
        do_sample=True,
        temperature=0.8,
        top_k=10,
        top_p=0.9,
        repetition_penalty=1.3,
        max_new_tokens=6,
        num_return_sequences=3,
    )
    torch.manual_seed(5)
    b = int8_model.generate(
        ids,
        do_sample=True,
        temperature=0.8,
        top_k=10,
        top_p=0.9,
        repetition_penalty=1.3,
        max_new_tokens=6,
        num_return_sequences=3,
    )
    assert torch.equal(a, b) and a.shape[0] == 3 and a.shape[1] <= 10 and torch.equal(a[:, :4], ids.repeat(3, 1))


def test_int8_generate_blocks_repeated_ngrams_like_generate(trained):
    """no_repeat_ngram_size (which a tuned generation config may hold) is applied as generate() applies it."""
    int8_model = load_int8(trained["int8"])
    tokenizer, model = trained["tokenizer"], trained["model"]
    ids = torch.tensor([[tokenizer.bos_token_id] + tokenizer.convert_tokens_to_ids(list("今天天气"))])
    kwargs = dict(do_sample=False, max_new_tokens=12, min_new_tokens=12, pad_token_id=0, no_repeat_ngram_size=2)
    out = int8_model.generate(ids, **kwargs)
    assert torch.equal(out, model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs))
    bigrams = list(zip(out[0, :-1].tolist(), out[0, 1:].tolist()))
    assert len(bigrams) == len(set(bigrams))


def test_int8_generate_streams_and_stops_at_stop_tokens(trained):
    int8_model = load_int8(trained["int8"])
    ids = torch.tensor([[3, 10, 11]])
    greedy = int8_model.generate(ids, do_sample=False, max_new_tokens=5, eos_token_id=None)
    first = int(greedy[0, 3])
    stopped = int8_model.generate(ids, do_sample=False, max_new_tokens=5, eos_token_id=[first, 4], min_new_tokens=0)
    assert stopped.tolist() == [[3, 10, 11, first]]
    # the chat default (at least one new token) keeps a stop id from ending the reply at once
    assert int8_model.generation_config.min_new_tokens == 1
    longer = int8_model.generate(ids, do_sample=False, max_new_tokens=5, eos_token_id=[first, 4])
    assert longer.shape[1] > 4 and int(longer[0, 3]) not in (first, 4)

    class Recorder:
        def __init__(self):
            self.puts, self.ended = [], False

        def put(self, value):
            self.puts.append(value.tolist())

        def end(self):
            self.ended = True

    recorder = Recorder()
    out = int8_model.generate(ids, do_sample=False, max_new_tokens=4, eos_token_id=None, streamer=recorder)
    assert recorder.puts[0] == [[3, 10, 11]] and [p[0] for p in recorder.puts[1:]] == out[0, 3:].tolist()
    assert recorder.ended


def test_int8_model_refuses_what_it_cannot_do(trained):
    int8_model = load_int8(trained["int8"])
    ids = torch.tensor([[3, 10, 11, 12]])
    with pytest.raises(ValueError, match="right padding"):
        int8_model(ids, attention_mask=torch.tensor([[0, 1, 1, 1]]))
    with pytest.raises(ValueError, match="num_beams"):
        int8_model.generate(ids, num_beams=2, max_new_tokens=2)
    with pytest.raises(ValueError, match="n_positions=64"):
        int8_model.generate(ids, max_new_tokens=61)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        int8_model(torch.tensor([[3, 10_000]]))
    with pytest.raises(ValueError, match="unknown arguments"):
        int8_model.generate(ids, max_new_tokens=2, temprature=0.5)


def test_load_int8_rejects_other_directories_and_newer_formats(trained, tmp_path):
    with pytest.raises(ValueError, match="not an int8 export"):
        load_int8(trained["lm"])
    import shutil

    newer = tmp_path / "newer"
    shutil.copytree(trained["int8"], newer)
    info = json.loads((newer / EXPORT_INFO_FILE).read_text(encoding="utf-8"))
    (newer / EXPORT_INFO_FILE).write_text(json.dumps({**info, "format_version": 99}), encoding="utf-8")
    with pytest.raises(ValueError, match="Upgrade chargpt or re-export"):
        load_int8(newer)


def test_chat_runs_on_the_int8_export_within_the_context(trained, tmp_path, monkeypatch, capsys):
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(["你好", "天气" * 3000] + ["今天天气很好"] * 4) + "\n"))
    transcript = tmp_path / "t.jsonl"
    assert main(["chat", trained["int8"], "--max_new_tokens", "16", "--transcript", str(transcript)]) == 0
    records = [json.loads(line) for line in open(transcript, encoding="utf-8")]
    assert [r["turn"] for r in records] == [1, 2, 3, 4, 5, 6]
    assert all(r["prompt_tokens"] <= 64 - 16 for r in records) and records[1]["user_chars_dropped"] > 0
    assert main(["chat", trained["int8"], "--device", "cuda"]) == 1
    assert "drop --device" in capsys.readouterr().err


def test_benchmark_reports_sizes_speeds_and_agreement(trained):
    result = benchmark_int8(trained["lm"], trained["int8"], new_tokens=8, prompt_tokens=4, repeats=1, num_threads=1)
    assert set(result["seconds_median"]) == {"torch_fp32", "onnx_int8", "torch_dynamic_int8", "onnx_fp32"}
    assert all(v > 0 for v in result["seconds_median"].values())
    assert result["sizes"]["int8_size_ratio"] < 0.4
    assert result["greedy_tokens_matching_fp32_before_first_difference"]["onnx_fp32"] == 8
    assert result["model"]["n_embd"] == 64 and result["threads"] == 1


# ------------------------------------------------------------------------------------------ classifier pooling


def test_export_check_fails_an_export_that_pools_a_mean_classifier_by_its_last_token(tmp_path, monkeypatch):
    """The bug of the first int8 export (every classifier pooled by its last token, whatever the config said) now
    fails the export itself: here the traced graph is made to pool by the last token, as that export did."""
    from chargpt.int8 import onnx_export
    from chargpt.modeling_chargpt import pool_sequence, real_tokens

    def last_token_forward(self, input_ids, attention_mask):
        hidden = self.model.transformer(input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        real = real_tokens(input_ids, attention_mask, None, *input_ids.shape, hidden.device)
        return self.model.score(pool_sequence(hidden, real, "last")), hidden

    monkeypatch.setattr(onnx_export.ClassifierGraph, "forward", last_token_forward)
    tester = CharGPTTester(preset="modern")
    model = tester.classifier(num_labels=3, classifier_pooling="mean")
    with pytest.raises(ExportCheckError, match="float32 export does not reproduce the model.*Nothing was written"):
        export_int8(model, tester.tokenizer, tmp_path / "out")
    assert not (tmp_path / "out").exists() and os.listdir(tmp_path) == []


def _reviews(shared_data, n: int):
    import csv
    import random

    with open(shared_data / "chnsenticorp" / "ChnSentiCorp_htl_train.csv", encoding="utf-8", newline="") as f:
        rows = [(r["review"].strip(), int(r["label"])) for r in csv.DictReader(f) if r["review"].strip()]
    random.Random(0).shuffle(rows)  # the file is sorted by label
    return rows[:n], rows[n : 2 * n]


@pytest.mark.slow
@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_int8_classifier_predicts_like_fp32_on_real_reviews(shared_data, tmp_path, pooling):
    """A tiny classifier trained briefly on 300 ChnSentiCorp hotel reviews, exported: on 300 other reviews its int8
    export gives the same label as the float model (the first runtime, pooling by the last token, agreed with a
    mean-pooled recipe classifier on 81% of reviews)."""
    from chargpt import CharGPTConfig, CharGPTForSequenceClassification, CharGPTTokenizer
    from chargpt.tasks import classify_texts

    train, held_out = _reviews(shared_data, 300)
    tokenizer = CharGPTTokenizer.from_texts([t for t, _ in train + held_out], model_max_length=96)
    config = CharGPTConfig.from_preset(
        "modern",
        vocab_size=len(tokenizer),
        n_positions=96,
        n_embd=64,
        n_head=4,
        n_layer=2,
        num_labels=2,
        classifier_pooling=pooling,
    )
    torch.manual_seed(0)
    model = CharGPTForSequenceClassification(config).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    tokenizer.padding_side = "right"
    for step in range(60):
        chunk = [train[(step * 16 + k) % len(train)] for k in range(16)]
        batch = tokenizer([t for t, _ in chunk], padding=True, truncation=True, max_length=96, return_tensors="pt")
        model(**batch, labels=torch.tensor([y for _, y in chunk])).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()
    info = export_int8(
        model, tokenizer, tmp_path / "int8", eval_texts=[t for t, _ in held_out], eval_labels=[y for _, y in held_out]
    )
    texts = [t for t, _ in held_out]
    expected = [r["label_id"] for r in classify_texts(model, tokenizer, texts, batch_size=16)]  # as the export's
    got = [r["label_id"] for r in classify_texts(load_int8(tmp_path / "int8"), tokenizer, texts, batch_size=16)]
    agreement = float(np.mean(np.equal(expected, got)))
    assert info["evaluation"]["prediction_agreement"] == pytest.approx(agreement, abs=1e-4)
    assert agreement >= 0.99, f"int8 agrees with fp32 on {agreement:.3f} of the held-out reviews"
    assert 0.2 < float(np.mean(expected)) < 0.95  # the float model learned something, not one constant label


def test_load_int8_refuses_a_config_its_runtime_does_not_implement(tmp_path):
    tester = CharGPTTester()
    export_int8(tester.classifier(num_labels=2, classifier_pooling="mean"), tester.tokenizer, tmp_path / "cls")
    config = json.loads((tmp_path / "cls" / "config.json").read_text(encoding="utf-8"))
    (tmp_path / "cls" / "config.json").write_text(json.dumps({**config, "classifier_pooling": "max"}), encoding="utf-8")
    with pytest.raises(ValueError, match="int8 runtime does not implement.*classifier_pooling"):
        load_int8(tmp_path / "cls")
    (tmp_path / "cls" / "config.json").write_text(json.dumps(config), encoding="utf-8")
    info = json.loads((tmp_path / "cls" / EXPORT_INFO_FILE).read_text(encoding="utf-8"))
    (tmp_path / "cls" / EXPORT_INFO_FILE).write_text(
        json.dumps({**info, "task": "token-classification"}), encoding="utf-8"
    )
    with pytest.raises(ValueError, match="task 'token-classification'"):
        load_int8(tmp_path / "cls")


def test_a_version_1_mean_classifier_folder_pools_by_the_mean_and_says_to_re_export(tmp_path, caplog):
    """A folder of the first export format: its graph (written node by node, as benchmarks/int8_hand_graph.py still
    does) gives the head's logits at every position, and the runtime pools them as the config says."""
    import onnx

    from benchmarks.int8_hand_graph import build_onnx_model

    tester = CharGPTTester()
    model = tester.classifier(num_labels=2, classifier_pooling="mean")
    export_int8(model, tester.tokenizer, tmp_path / "cls")
    onnx.save_model(build_onnx_model(model, int8=True), tmp_path / "cls" / "model_int8.onnx")
    info = json.loads((tmp_path / "cls" / EXPORT_INFO_FILE).read_text(encoding="utf-8"))
    old = {k: v for k, v in info.items() if k not in ("checks", "classifier_pooling")}
    (tmp_path / "cls" / EXPORT_INFO_FILE).write_text(json.dumps({**old, "format_version": 1}), encoding="utf-8")
    with caplog.at_level("WARNING", logger="chargpt.int8.runtime"):
        loaded = load_int8(tmp_path / "cls")
    assert "Export it again" in caplog.text and loaded.padding_sides == ("right",)
    batch = tester.batch(padding_side="right")
    with torch.no_grad():
        expected = model(**batch).logits
    assert relative_difference(loaded(**batch).logits, expected) <= CHECK_TOLERANCE["int8"]
    last = tester.classifier(num_labels=2, classifier_pooling="last")(**batch).logits
    assert relative_difference(loaded(**batch).logits, last) > CHECK_TOLERANCE["int8"]  # not the last token's
