"""One source of truth for model hyperparameters: the training scripts build `CharGPTConfig`'s defaults, changed only
by `--config_name`, `--config_overrides` and the size flags given; the benchmark builds its CharGPT the same way; and
the end of a run saves the model before anything that could fail (sample replies)."""

import json
import logging

import pytest

from chargpt import CharGPTConfig, CharGPTTokenizer
from chargpt.configuration_chargpt import PRESETS
from chargpt.data import CleaningConfig
from chargpt.training import (
    DEFAULT_PRESET,
    DialogueDataArguments,
    LMModelArguments,
    LMTrainingArguments,
    build_causal_lm_config,
    parse_arguments,
    train_causal_lm,
)

from ._helpers_training import tiny_tokenizer, write_pairs


@pytest.fixture(scope="module")
def tokenizer():
    return CharGPTTokenizer.from_texts(["你好，今天天气很好。", "我们去公园散步吧"])


def config_from_flags(tokenizer, *flags):
    (model_args,) = parse_arguments((LMModelArguments,), ["--tokenizer_name_or_path", "unused", *flags])
    return build_causal_lm_config(model_args, tokenizer)


def test_no_flags_give_the_default_preset_with_the_tokenizer_vocabulary(tokenizer):
    config = config_from_flags(tokenizer)
    defaults = CharGPTConfig.from_preset(DEFAULT_PRESET)
    for name in (
        "n_positions",
        "n_embd",
        "n_layer",
        "n_head",
        "n_inner",
        "resid_pdrop",
        "embd_pdrop",
        "attn_pdrop",
        *PRESETS[DEFAULT_PRESET],
    ):
        assert getattr(config, name) == getattr(defaults, name), name
    assert config.attn_pdrop == 0.0  # the fast attention path the benchmark times
    assert config.vocab_size == len(tokenizer)
    assert (config.pad_token_id, config.bos_token_id) == (tokenizer.pad_token_id, tokenizer.bos_token_id)


def test_config_overrides_and_size_flags_change_only_what_they_name(tokenizer):
    config = config_from_flags(
        tokenizer,
        "--preset",
        "course",
        "--config_overrides",
        "n_layer=3,attn_pdrop=0.1,activation_function=silu",
        "--n_embd",
        "64",
        "--n_head",
        "4",
        "--dropout",
        "0.2",
    )
    assert (config.n_layer, config.n_embd, config.n_head) == (3, 64, 4)
    assert config.n_inner == 4 * 64  # not chosen: follows the final width
    assert (config.attn_pdrop, config.resid_pdrop, config.embd_pdrop) == (0.1, 0.2, 0.2)
    assert config.activation_function == "silu"
    assert config.n_positions == CharGPTConfig().n_positions


def test_config_name_starts_from_a_saved_config(tokenizer, tmp_path):
    CharGPTConfig(n_embd=48, n_head=6, n_inner=100, n_layer=1).save_pretrained(tmp_path)
    config = config_from_flags(tokenizer, "--config_name", str(tmp_path), "--n_layer", "2")
    assert (config.n_embd, config.n_head, config.n_inner, config.n_layer) == (48, 6, 100, 2)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--config_overrides", "n_emb=64"], "n_emb"),
        (["--config_overrides", "n_embd=30"], "n_head"),
        (["--n_embd", "30"], "n_head"),
        (["--config_overrides", "attn_pdrop=1.5"], "attn_pdrop"),
    ],
)
def test_bad_overrides_are_a_clear_error_naming_the_field(tokenizer, flags, message):
    with pytest.raises(ValueError, match=message):
        config_from_flags(tokenizer, *flags)


def test_continuing_a_model_refuses_size_flags():
    with pytest.raises(ValueError, match="--n_layer"):
        LMModelArguments(tokenizer_name_or_path="t", model_name_or_path="m", n_layer=2)


def test_standard_transformers_names_are_validated_too():
    with pytest.raises(ValueError, match="must divide n_embd"):
        CharGPTConfig(hidden_size=30, num_attention_heads=4)
    with pytest.raises(ValueError, match="n_layer"):
        CharGPTConfig(num_hidden_layers=0)
    assert CharGPTConfig(hidden_size=64, num_attention_heads=4).n_embd == 64


def test_the_benchmark_builds_the_model_train_lm_builds():
    from benchmarks.peers import ModelDims, chargpt_config

    dims = ModelDims(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=64, dropout=0.1)
    ours = chargpt_config(dims)
    args = LMModelArguments(
        tokenizer_name_or_path="",
        preset="course",
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_inner=64,
        dropout=0.1,
    )
    built = build_causal_lm_config(
        args, None, vocab_size=100, pad_token_id=0, sep_token_id=2, bos_token_id=3, eos_token_id=4
    )
    assert ours.to_diff_dict() == built.to_diff_dict()
    assert ours.attn_pdrop == CharGPTConfig().attn_pdrop


def test_a_sample_prompt_longer_than_the_context_is_cut_after_the_final_save(tmp_path, caplog):
    pairs = write_pairs(tmp_path / "pairs.txt", n=40)
    tokenizer_dir = tiny_tokenizer(tmp_path / "tok", pairs.read_text(encoding="utf-8").splitlines())
    long_prompt = "你好" * 200  # far past the 64-token context
    with caplog.at_level(logging.WARNING):
        results = train_causal_lm(
            LMModelArguments(tokenizer_name_or_path=str(tokenizer_dir), n_positions=64, n_embd=32, n_layer=2, n_head=2),
            DialogueDataArguments(
                train_files=[str(pairs)],
                sample_prompts=[long_prompt, "你好"],
                validation_split_size=0,
                test_split_size=0,
            ),
            CleaningConfig(),
            LMTrainingArguments(
                output_dir=str(tmp_path / "out"),
                use_cpu=True,
                report_to="none",
                max_steps=2,
                eval_strategy="no",
                save_strategy="no",
                load_best_model_at_end=False,
            ),
        )
    out = tmp_path / "out"
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    samples = json.loads((out / "sample_replies.json").read_text(encoding="utf-8"))
    assert [s["prompt"] for s in samples] == [long_prompt, "你好"]
    assert len(results["samples"]["replies"]) == 2
    assert any("keeping its last" in r.getMessage() for r in caplog.records)
