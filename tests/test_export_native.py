"""The native transformers export beyond the model matrix (which holds its logits, cache, generation, padding,
embeddings and reloading to PyTorch): long greedy and seeded continuations, the tokenizer on hostile text, the files an
engine reads, the command line, and refusals that write nothing."""

import json
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from chargpt import CharGPTTokenizerFast
from chargpt.cli import main
from chargpt.export import export_native

from .chargpt_tester import matrix_model
from .test_tokenization_fast import random_texts


PRESETS = ["modern", "course"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Each preset's tiny causal LM (with a fast NFKC tokenizer, as train_lm.py builds one) and its native export."""
    root = tmp_path_factory.mktemp("native")
    result = {}
    for preset in PRESETS:
        tester, model = matrix_model(preset, "lm")
        tokenizer = CharGPTTokenizerFast(vocab=tester.tokenizer.vocab, normalization="NFKC", model_max_length=64)
        export_native(model, tokenizer, root / preset)
        result[preset] = (model, tokenizer, root / preset)
    return result


@pytest.mark.parametrize("preset", PRESETS)
def test_fifty_greedy_tokens_and_seeded_samples_equal_chargpt_for_three_prompts(exported, preset):
    model, tokenizer, directory = exported[preset]
    native = AutoModelForCausalLM.from_pretrained(directory).eval()
    settings = dict(max_new_tokens=50, min_new_tokens=50, eos_token_id=None, pad_token_id=0)
    for prompt in ("你好", "今天天气很好，", "我喜欢"):
        batch = tokenizer(prompt, return_tensors="pt")
        greedy = model.generate(**batch, do_sample=False, **settings)
        assert torch.equal(native.generate(**batch, do_sample=False, **settings), greedy), prompt
        assert len(set(greedy[0, -50:].tolist())) > 1
        samples = []
        for m in (model, native):
            torch.manual_seed(7)
            samples.append(m.generate(**batch, do_sample=True, temperature=1.2, top_p=0.95, top_k=0, **settings))
        assert torch.equal(samples[0], samples[1]), prompt


@pytest.mark.parametrize("preset", PRESETS)
def test_native_tokenizer_gives_chargpt_ids_and_text_on_hostile_random_texts(exported, preset):
    _, tokenizer, directory = exported[preset]
    native = AutoTokenizer.from_pretrained(directory)
    assert type(native).__name__ in ("PreTrainedTokenizerFast", "TokenizersBackend")
    for text in random_texts(300, seed=3, excluded=set()) + ["<sep>今天<e<eos>os>好", "ＡＢＣ①ﬁ"]:
        ids = tokenizer(text)["input_ids"]
        assert native(text)["input_ids"] == ids, repr(text[:40])
        assert native.decode(ids, skip_special_tokens=True) == tokenizer.decode(ids, skip_special_tokens=True)
    chat = [{"role": "user", "content": "你好"}, {"role": "assistant", "content": "你好！"}]
    assert native.apply_chat_template(
        chat, add_generation_prompt=True, tokenize=True, return_dict=False
    ) == tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False)
    # the template writes <bos> itself: no double <bos> and none missing
    rendered = native.apply_chat_template(chat[:1], add_generation_prompt=True, tokenize=False)
    assert rendered == "<bos>你好<sep>"


def test_files_carry_what_engines_read_and_no_code(exported):
    model, _, directory = exported["modern"]
    assert not list(directory.glob("*.py"))
    config = json.loads((directory / "config.json").read_text())
    assert "auto_map" not in config and config["model_type"] == "qwen3"
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == model.config.rope_theta
    assert config["rms_norm_eps"] == model.config.layer_norm_epsilon == 1e-5
    assert config["head_dim"] * config["num_attention_heads"] == config["hidden_size"]
    assert config["num_key_value_heads"] == config["num_attention_heads"] and config["tie_word_embeddings"]
    generation = GenerationConfig.from_pretrained(directory)
    stops = {model.config.sep_token_id, model.config.eos_token_id}
    assert set(generation.eos_token_id) == stops  # end of turn and end of text
    assert (generation.do_sample, generation.temperature, generation.top_p) == (True, 0.7, 0.9)
    tokenizer_config = json.loads((directory / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"


def test_cli_exports_a_chargpt_folder_and_refuses_mean_pooling_writing_nothing(tmp_path, capsys):
    tester, model = matrix_model("course", "lm")
    model.save_pretrained(tmp_path / "lm")
    tester.tokenizer.save_pretrained(tmp_path / "lm")
    assert main(["export", str(tmp_path / "lm"), str(tmp_path / "out"), "--format", "transformers"]) == 0
    assert "GPT2LMHeadModel" in capsys.readouterr().out
    info = json.loads((tmp_path / "out" / "chargpt_export.json").read_text())
    assert info["checks"]["greedy_tokens_equal"] and info["checks"]["relative_difference"] <= 1e-4
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "out").__class__.__name__ == "GPT2LMHeadModel"

    tester, classifier = matrix_model("modern", "cls-mean")
    classifier.save_pretrained(tmp_path / "cls")
    tester.tokenizer.save_pretrained(tmp_path / "cls")
    assert main(["export", str(tmp_path / "cls"), str(tmp_path / "cls-out"), "--format", "transformers"]) == 1
    error = capsys.readouterr().err
    assert "classifier_pooling='mean'" in error and error.count("\n") == 1
    assert not os.path.exists(tmp_path / "cls-out")
    assert (
        main(["export", str(tmp_path / "lm"), str(tmp_path / "x"), "--format", "transformers", "--type", "q8_0"]) == 1
    )
    assert "--type q8_0 applies to --format gguf only" in capsys.readouterr().err


def test_an_export_that_would_not_reproduce_the_model_is_refused(tmp_path, monkeypatch):
    """The export's own check catches a wrong tensor layout (here: q and k swapped in the table) and writes
    nothing."""
    from chargpt.export import native

    swapped = tuple((s, (t[1], t[0], t[2]) if "c_attn" in s else t, how) for s, t, how in native.QWEN3.tensors)
    monkeypatch.setattr(native, "QWEN3", native.Target(**{**native.QWEN3.__dict__, "tensors": swapped}))
    monkeypatch.setattr(native, "TARGET_BY_POSITIONS", {**native.TARGET_BY_POSITIONS, "rope": native.QWEN3})
    tester, model = matrix_model("modern", "lm")
    with pytest.raises(native.ExportCheckError, match="does not reproduce the model"):
        export_native(model, tester.tokenizer, tmp_path / "out")
    assert not os.path.exists(tmp_path / "out")
