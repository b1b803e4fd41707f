"""The GGUF export (llama.cpp / ollama): the file as gguf's reader sees it, the model as transformers' GGUF loading
rebuilds it (logits within each file type's tolerance, greedy continuations), the byte-level tokenizer llama.cpp
runs (its tokens spell exactly CharGPT's vocabulary, its merges never cross a character, and BPE over them gives
CharGPT's ids), the self-check, and every refusal. llama.cpp itself is run by benchmarks/llama_cpp_check.py."""

import os

import pytest
import torch

from chargpt import CharGPTTokenizerFast
from chargpt.export import ExportCheckError, UnsupportedOptionError
from chargpt.export.checks import probe_inputs, relative_difference, task_output
from chargpt.export.gguf import (
    GGUF_TOLERANCE,
    bytes_to_unicode,
    export_gguf,
    gguf_vocabulary,
    load_gguf_in_transformers,
)

from .chargpt_tester import CharGPTTester, matrix_model, move_norm_weights
from .test_tokenization_fast import random_texts


gguf = pytest.importorskip("gguf", reason="the GGUF export needs the optional `gguf` package (chargpt[gguf])")


FILE_TYPES = list(GGUF_TOLERANCE)
PROMPT = "今天天气很好，"


def fast_tokenizer(tester):
    """The tester's vocabulary in the fast tokenizer with NFKC, as train_lm.py builds one."""
    return CharGPTTokenizerFast(vocab=tester.tokenizer.vocab, normalization="NFKC", model_max_length=64)


@pytest.fixture(scope="module")
def modern():
    tester, model = matrix_model("modern", "lm")
    return model, fast_tokenizer(tester)


@pytest.fixture(scope="module")
def exported(modern, tmp_path_factory):
    """The modern tiny causal LM exported once per file type: {file type: (path, export info)}."""
    model, tokenizer = modern
    root = tmp_path_factory.mktemp("gguf")
    return {
        t: (root / f"model-{t}.gguf", export_gguf(model, tokenizer, root / f"model-{t}.gguf", t)) for t in FILE_TYPES
    }


def fields(path) -> dict:
    reader = gguf.GGUFReader(str(path))
    return {key: field.contents() for key, field in reader.fields.items()}, reader.tensors


def test_file_read_back_holds_qwen3_sizes_tokenizer_settings_and_every_tensor_shape(modern, exported):
    model, tokenizer = modern
    config = model.config
    meta, tensors = fields(exported["f32"][0])
    head_dim = config.n_embd // config.n_head
    expected = {
        "general.architecture": "qwen3",
        "general.file_type": 0,
        "qwen3.context_length": config.n_positions,
        "qwen3.embedding_length": config.n_embd,
        "qwen3.block_count": config.n_layer,
        "qwen3.feed_forward_length": config.n_inner,
        "qwen3.attention.head_count": config.n_head,
        "qwen3.attention.head_count_kv": config.n_head,
        "qwen3.attention.key_length": head_dim,
        "qwen3.attention.value_length": head_dim,
        "qwen3.vocab_size": config.vocab_size,
        "tokenizer.ggml.model": "gpt2",
        "tokenizer.ggml.pre": "qwen2",
        "tokenizer.ggml.bos_token_id": 3,
        "tokenizer.ggml.eos_token_id": 4,
        "tokenizer.ggml.eot_token_id": 2,
        "tokenizer.ggml.unknown_token_id": 1,
        "tokenizer.ggml.padding_token_id": 0,
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.ggml.add_eos_token": False,
    }
    assert {key: meta.get(key) for key in expected} == expected
    assert meta["qwen3.attention.layer_norm_rms_epsilon"] == pytest.approx(config.layer_norm_epsilon)
    assert meta["qwen3.rope.freq_base"] == pytest.approx(config.rope_theta)
    description = meta["general.description"]
    assert "NFKC" in description and "llama.cpp and ollama do not" in description and "<unk>" in description
    assert len(meta["tokenizer.ggml.tokens"]) == config.vocab_size
    shapes = {t.name: tuple(int(n) for n in t.shape) for t in tensors}
    E, V, F = config.n_embd, config.vocab_size, config.n_inner
    assert shapes.pop("token_embd.weight") == (E, V) and shapes.pop("output_norm.weight") == (E,)
    assert "output.weight" not in shapes  # tied: llama.cpp reads the head from token_embd
    per_layer = {
        "attn_norm": (E,),
        "attn_q": (E, E),
        "attn_k": (E, E),
        "attn_v": (E, E),
        "attn_q_norm": (head_dim,),
        "attn_k_norm": (head_dim,),
        "attn_output": (E, E),
        "ffn_norm": (E,),
        "ffn_gate": (E, F),
        "ffn_up": (E, F),
        "ffn_down": (F, E),
    }
    assert shapes == {
        f"blk.{i}.{name}.weight": shape for i in range(config.n_layer) for name, shape in per_layer.items()
    }


@pytest.mark.parametrize("file_type", FILE_TYPES)
def test_transformers_gguf_loading_gives_chargpt_logits_within_the_file_types_tolerance(modern, exported, file_type):
    model, _ = modern
    path, info = exported[file_type]
    loaded = load_gguf_in_transformers(str(path), model.config.n_embd // model.config.n_head)
    ids, mask = probe_inputs(model.config)
    relative = relative_difference(
        task_output(loaded, ids, mask, "causal-lm"), task_output(model, ids, mask, "causal-lm")
    )
    assert relative <= GGUF_TOLERANCE[file_type]
    assert info["checks"]["relative_difference"] == pytest.approx(relative, rel=1e-3)
    matrix_type = {"f32": "F32", "f16": "F16", "q8_0": "Q8_0"}[file_type]
    assert info["checks"]["tensor_types"] == ({"F32": 24} if file_type == "f32" else {"F32": 9, matrix_type: 15})
    assert info["bytes"] == os.path.getsize(path)


def test_greedy_generation_of_the_loaded_gguf_equals_chargpts(modern, exported):
    model, tokenizer = modern
    loaded = load_gguf_in_transformers(str(exported["f32"][0]), model.config.n_embd // model.config.n_head)
    batch = tokenizer(PROMPT, return_tensors="pt")
    settings = dict(do_sample=False, max_new_tokens=40, min_new_tokens=40, eos_token_id=None, pad_token_id=0)
    expected = model.generate(**batch, **settings)
    assert torch.equal(loaded.generate(**batch, **settings), expected)
    assert len(set(expected[0, -40:].tolist())) > 1


def test_q8_0_keeps_matrices_whose_rows_are_not_whole_blocks_in_f16(tmp_path):
    tester = CharGPTTester(preset="modern", n_embd=48, n_head=4, n_inner=64, initializer_range=0.3)
    model = move_norm_weights(tester.lm(seed=1))
    info = export_gguf(model, fast_tokenizer(tester), tmp_path / "m.gguf", "q8_0")
    _, tensors = fields(tmp_path / "m.gguf")
    types = {t.name: t.tensor_type.name for t in tensors}
    assert types["blk.0.ffn_down.weight"] == "Q8_0"  # rows of 64 values: two blocks
    assert types["blk.0.attn_q.weight"] == types["token_embd.weight"] == "F16"  # rows of 48 values
    assert types["blk.0.attn_q_norm.weight"] == "F32"
    assert info["checks"]["relative_difference"] <= GGUF_TOLERANCE["q8_0"]


def test_an_untied_head_is_written_as_output_and_read_back(tmp_path):
    tester = CharGPTTester(preset="modern", initializer_range=0.3, tie_word_embeddings=False)
    model = move_norm_weights(tester.lm(seed=1))
    info = export_gguf(model, fast_tokenizer(tester), tmp_path / "m.gguf")
    _, tensors = fields(tmp_path / "m.gguf")
    assert "output.weight" in {t.name for t in tensors}
    assert info["checks"]["relative_difference"] <= GGUF_TOLERANCE["f32"] and info["checks"]["greedy_tokens_equal"]


# --------------------------------------------------------------------------------------------------- the tokenizer


def test_embedding_rows_past_the_tokenizer_become_unused_tokens_so_ids_stay_rows(tmp_path):
    tester = CharGPTTester(preset="modern", initializer_range=0.3)
    model = move_norm_weights(tester.model(seed=1, vocab_size=len(tester.tokenizer) + 3))
    info = export_gguf(model, fast_tokenizer(tester), tmp_path / "m.gguf")
    meta, _ = fields(tmp_path / "m.gguf")
    assert len(meta["tokenizer.ggml.tokens"]) == model.config.vocab_size
    assert meta["tokenizer.ggml.token_type"][-4:] == [gguf.TokenType.NORMAL] + [gguf.TokenType.UNUSED] * 3
    assert info["checks"]["relative_difference"] <= GGUF_TOLERANCE["f32"]


def test_stored_tokens_decode_to_exactly_chargpts_vocabulary_and_merges_never_cross_a_character(modern, exported):
    _, tokenizer = modern
    meta, _ = fields(exported["f32"][0])
    to_byte = {ch: b for b, ch in bytes_to_unicode().items()}
    decoded = [bytes(to_byte[ch] for ch in token).decode("utf-8") for token in meta["tokenizer.ggml.tokens"]]
    assert decoded == sorted(tokenizer.get_vocab(), key=tokenizer.get_vocab().get)
    types = meta["tokenizer.ggml.token_type"]
    assert [t for t, kind in zip(decoded, types) if kind == gguf.TokenType.CONTROL] == [
        "<pad>",
        "<unk>",
        "<sep>",
        "<bos>",
        "<eos>",
    ]
    assert all(kind == gguf.TokenType.NORMAL for t, kind in zip(decoded, types) if not t.startswith("<"))
    characters = [t.encode("utf-8") for t in decoded[5:]]
    for merge in meta["tokenizer.ggml.merges"]:
        left, right = (bytes(to_byte[ch] for ch in side) for side in merge.split(" "))
        # the left side is a character's leading bytes (never a whole character), the right side its next byte
        assert len(right) == 1 and 0x80 <= right[0] < 0xC0 and left[0] >= 0xC0
        assert any(c.startswith(left + right) and len(c) > len(left) for c in characters)
    multibyte = [c for c in characters if len(c) > 1]
    assert len(meta["tokenizer.ggml.merges"]) == len({c[:k] for c in multibyte for k in range(2, len(c) + 1)})


def test_chat_template_gives_chargpts_prompt_when_rendered_with_only_bos_and_eos_as_llama_cpp_does(modern, exported):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    _, tokenizer = modern
    template = ImmutableSandboxedEnvironment().from_string(fields(exported["f32"][0])[0]["tokenizer.chat_template"])
    chat = [
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "你好！"},
        {"role": "user", "content": "天气"},
    ]
    for generation_prompt, messages in ((True, chat), (False, chat[:2])):
        rendered = template.render(
            messages=messages, add_generation_prompt=generation_prompt, bos_token="<bos>", eos_token="<eos>"
        )
        assert rendered == tokenizer.apply_chat_template(
            messages, add_generation_prompt=generation_prompt, tokenize=False
        )
    assert rendered == "<bos>你好<sep>你好！<eos>"


def test_our_byte_alphabet_is_gpt2s():
    from transformers.convert_slow_tokenizer import bytes_to_unicode as transformers_bytes_to_unicode

    assert bytes_to_unicode() == transformers_bytes_to_unicode()


def byte_level_bpe(text: str, ranks: dict, token_ids: dict) -> list[int]:
    """llama.cpp's byte-level BPE, reduced to what a CharGPT file exercises: spell the text in the byte alphabet,
    merge the lowest-ranked adjacent pair (leftmost first) until none is left, look each piece up; a piece that is no
    token falls back to its single bytes, which are tokens only when ASCII. No pre-tokenizer split at all: the
    merges alone must keep to characters."""
    table = bytes_to_unicode()
    pieces = [table[b] for b in text.encode("utf-8")]
    while True:
        pairs = [(ranks[(a, b)], i) for i, (a, b) in enumerate(zip(pieces, pieces[1:])) if (a, b) in ranks]
        if not pairs:
            break
        _, i = min(pairs)
        pieces[i : i + 2] = [pieces[i] + pieces[i + 1]]
    ids = []
    for piece in pieces:
        if piece in token_ids:
            ids.append(token_ids[piece])
        else:
            ids += [token_ids[chr(b)] for b in piece.encode("utf-8") if b < 0x80 and chr(b) in token_ids]
    return ids


def test_byte_level_bpe_over_the_stored_merges_gives_chargpts_ids_and_drops_unknown_characters():
    # no special-token text; the few 3000-piece texts left out, for time (this BPE is quadratic)
    texts = [t.replace("<", "") for t in random_texts(400, seed=11, excluded=set()) if len(t) < 1000]
    tokenizer = CharGPTTokenizerFast.from_texts(texts[:200], normalization="NFKC")
    tokens, _, merges = gguf_vocabulary(tokenizer, len(tokenizer))
    ranks = {tuple(m.split(" ")): rank for rank, m in enumerate(merges)}
    token_ids = {token: i for i, token in enumerate(tokens)}
    unknown = 0
    for text in texts:
        expected = tokenizer(text, add_special_tokens=False)["input_ids"]
        unknown += expected.count(tokenizer.unk_token_id)
        got = byte_level_bpe(tokenizer.normalize(text), ranks, token_ids)  # llama.cpp is given normalized text
        assert got == [i for i in expected if i != tokenizer.unk_token_id]
    assert unknown > 100  # the second half of the texts brings characters the vocabulary lacks


# ---------------------------------------------------------------------------------------------- checks and refusals


def test_a_file_that_does_not_reproduce_the_model_is_never_written(modern, tmp_path, monkeypatch):
    from chargpt.export import gguf as gguf_export

    model, tokenizer = modern
    real = gguf_export.gguf_tensors

    def queries_and_keys_swapped(model, file_type):
        for name, array, kind in real(model, file_type):
            yield (
                name.replace("attn_q.", "attn_K.").replace("attn_k.", "attn_q.").replace("attn_K.", "attn_k."),
                array,
                kind,
            )

    monkeypatch.setattr(gguf_export, "gguf_tensors", queries_and_keys_swapped)
    with pytest.raises(ExportCheckError, match="does not reproduce the model.*logits"):
        export_gguf(model, tokenizer, tmp_path / "bad.gguf")
    assert os.listdir(tmp_path) == []


def test_an_existing_file_is_replaced_only_with_overwrite(modern, tmp_path):
    model, tokenizer = modern
    path = tmp_path / "m.gguf"
    path.write_text("not a model")
    with pytest.raises(ValueError, match="already exists; pass --overwrite"):
        export_gguf(model, tokenizer, path)
    assert path.read_text() == "not a model"
    export_gguf(model, tokenizer, path, "q8_0", overwrite=True)
    assert fields(path)[0]["general.file_type"] == gguf.LlamaFileType.MOSTLY_Q8_0


def refused(case: str):
    """(model, tokenizer) of a configuration the GGUF export refuses."""
    if case in ("course", "cls-last", "cls-mean"):
        tester, model = matrix_model("course", "lm") if case == "course" else matrix_model("modern", case)
        return model, fast_tokenizer(tester)
    overrides = {"relu2": {"activation_function": "relu2"}, "no_qk_norm": {"qk_norm": False}}[case]
    tester = CharGPTTester(preset="modern", **overrides)
    return tester.lm(), fast_tokenizer(tester)


REFUSALS = {
    "course": (ValueError, "supports rotary \\(modern\\) models.*with --format transformers"),
    "cls-last": (ValueError, "for causal language models.*classifier"),
    "cls-mean": (ValueError, "for causal language models.*classifier"),
    "relu2": (UnsupportedOptionError, "activation_function='relu2' has no native equivalent"),
    "no_qk_norm": (UnsupportedOptionError, "qk_norm=False has no native equivalent"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_each_configuration_gguf_cannot_hold_is_refused_by_name_and_nothing_is_written(case, tmp_path):
    model, tokenizer = refused(case)
    error, message = REFUSALS[case]
    with pytest.raises(error, match=message):
        export_gguf(model, tokenizer, tmp_path / "m.gguf")
    assert os.listdir(tmp_path) == []


def test_an_unknown_file_type_is_refused(modern, tmp_path):
    model, tokenizer = modern
    with pytest.raises(ValueError, match="file_type must be one of f32, f16, q8_0; got 'q4_0'"):
        export_gguf(model, tokenizer, tmp_path / "m.gguf", "q4_0")
