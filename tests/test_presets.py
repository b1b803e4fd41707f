"""The architecture options (rotary positions, RMSNorm, gated MLP, squared ReLU, QK-norm) and the presets `course` and
`modern`: configuration errors, old config files, the modules each option builds, initialisation, freezing and the
model card. The model's contract checks for every preset and option are in test_model_matrix.py."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTForSequenceClassification
from chargpt.configuration_chargpt import PRESETS, default_inner_size
from chargpt.publish import architecture_summary
from chargpt.training.models import apply_freezing

from .chargpt_tester import ARCHITECTURES, CharGPTTester


# The architecture fields a preset sets (its dropout the tester overrides with 0).
ARCHITECTURE_FIELDS = (
    "position_embedding_type",
    "normalization",
    "activation_function",
    "gated_mlp",
    "qk_norm",
    "bias",
)


@pytest.fixture(params=list(ARCHITECTURES))
def tester(request):
    return CharGPTTester(**ARCHITECTURES[request.param])


def _norms(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, (torch.nn.LayerNorm, torch.nn.RMSNorm))}


# ---------------------------------------------------------------- configuration


def test_presets_set_their_architecture_and_keyword_arguments_win():
    modern = CharGPTConfig.from_preset("modern", vocab_size=100, n_embd=64, n_head=4, bias=True)
    assert (modern.position_embedding_type, modern.normalization, modern.activation_function) == (
        "rope",
        "rmsnorm",
        "silu",
    )
    assert modern.gated_mlp and modern.qk_norm and modern.bias and modern.vocab_size == 100
    assert modern.n_inner == default_inner_size(64, gated=True) == 192  # 8/3 * 64 rounded up to a multiple of 32
    assert CharGPTConfig.from_preset("modern", n_embd=256, n_head=8).n_inner == 704
    # `course` is the class defaults, so every config.json written before the options existed means the course design
    assert CharGPTConfig.from_preset("course").to_dict() == CharGPTConfig().to_dict()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"position_embedding_type": "rope", "n_embd": 36, "n_head": 4}, "must be even"),  # head size 9
        ({"position_embedding_type": "alibi"}, "position_embedding_type"),
        ({"normalization": "batchnorm"}, "normalization"),
        ({"rope_theta": 0.0}, "rope_theta"),
        ({"gated_mlp": "yes"}, "gated_mlp"),
        ({"qk_norm": 1}, "qk_norm"),
    ],
)
def test_config_rejects_invalid_architecture_options_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CharGPTConfig(**kwargs)


def test_unknown_preset_names_the_presets():
    with pytest.raises(ValueError, match=r"Unknown CharGPT preset 'llama'.*\['course', 'modern'\]"):
        CharGPTConfig.from_preset("llama")


def test_config_json_written_before_the_options_loads_as_the_course_design(tmp_path):
    tester = CharGPTTester()
    model = tester.lm(seed=3)
    model.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text(encoding="utf-8"))
    for key in ("position_embedding_type", "rope_theta", "normalization", "gated_mlp", "qk_norm"):
        config.pop(key)
    (tmp_path / "config.json").write_text(json.dumps(config), encoding="utf-8")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert {f: getattr(loaded.config, f) for f in ARCHITECTURE_FIELDS} == {
        f: PRESETS["course"][f] for f in ARCHITECTURE_FIELDS
    }
    assert loaded.transformer.wpe is not None and isinstance(loaded.transformer.ln_f, torch.nn.LayerNorm)
    batch = tester.batch()
    torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------- modules and initialisation


def test_options_build_the_modules_they_name():
    modern = CharGPTTester(preset="modern").lm()
    attn, mlp = modern.transformer.h[0].attn, modern.transformer.h[0].mlp
    assert modern.transformer.wpe is None and isinstance(modern.transformer.ln_f, torch.nn.RMSNorm)
    assert isinstance(attn.q_norm, torch.nn.RMSNorm) and attn.q_norm.weight.shape == (32 // 4,)
    assert mlp.c_fc.out_features == 2 * modern.config.n_inner and mlp.c_fc.bias is None
    course = CharGPTTester(preset="course").lm()
    assert course.transformer.wpe.weight.shape == (64, 32) and not hasattr(course.transformer.h[0].attn, "q_norm")
    assert course.transformer.h[0].mlp.c_fc.out_features == course.config.n_inner


def test_norm_weights_start_at_one_and_biases_at_zero(tester):
    norms = _norms(tester.lm())
    assert len(norms) == 2 * tester.config.n_layer + 1 + (2 * tester.config.n_layer if tester.config.qk_norm else 0)
    for name, norm in norms.items():
        assert norm.weight.eq(1).all(), name
        if getattr(norm, "bias", None) is not None:
            assert norm.bias.eq(0).all(), name


def test_norm_weights_missing_from_a_checkpoint_load_as_one(tmp_path):
    # from_pretrained builds the model without initialising it and fills only what the checkpoint lacks through
    # _init_weights; RMSNorm (including the per-head q_norm/k_norm) must come out as ones there too.
    from safetensors.torch import load_file, save_file

    model = CharGPTTester(preset="modern").lm()
    with torch.no_grad():
        for norm in _norms(model).values():
            norm.weight.fill_(2.0)
    model.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    kept = {k: v for k, v in weights.items() if "norm" not in k and "ln_" not in k}
    save_file(kept, tmp_path / "model.safetensors", metadata={"format": "pt"})
    loaded = CharGPTForCausalLM.from_pretrained(tmp_path)
    norms = _norms(loaded)
    assert len(weights) - len(kept) == len(norms) == 4 * loaded.config.n_layer + 1
    assert all(norm.weight.eq(1).all() for norm in norms.values())


# ---------------------------------------------------------------- what sits around the model


def test_freezing_a_rotary_classifier_trains_the_last_blocks_final_norm_and_head():
    model = CharGPTTester(preset="modern").classifier(num_labels=2)
    total = sum(p.numel() for p in model.parameters())
    apply_freezing(model, "last-1")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        n for n, _ in model.named_parameters() if n.startswith(("transformer.h.1.", "transformer.ln_f.", "score."))
    }
    assert "transformer.h.1.attn.q_norm.weight" in trainable
    # with no position table, freezing every block but none leaves only the token embedding frozen
    frozen = total - apply_freezing(model, "last-2")["trainable"]
    assert frozen == model.transformer.wte.weight.numel()


def test_model_card_describes_the_architecture(tmp_path, capsys):
    from chargpt.cli import main

    assert architecture_summary(CharGPTConfig()) == "pre-LayerNorm, learned positions"
    assert architecture_summary(CharGPTConfig.from_preset("modern")) == (
        "pre-RMSNorm, rotary positions, SwiGLU feed-forward, QK-norm"
    )
    tester = CharGPTTester(preset="modern")
    model = tester.classifier(num_labels=2)
    model.save_pretrained(tmp_path / "cls")
    tester.tokenizer.save_pretrained(tmp_path / "cls")
    assert main(["publish", str(tmp_path / "cls"), str(tmp_path / "out"), "--verify_load", "false"]) == 0, (
        capsys.readouterr().err
    )
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "a GPT-style decoder (pre-RMSNorm, rotary positions, SwiGLU feed-forward, QK-norm)" in card
    assert "| Positions | rotary (theta 10000) |" in card and "| Normalisation | RMSNorm |" in card
    assert "| QK-norm | yes |" in card and "| Gated feed-forward | yes |" in card
    loaded = CharGPTForSequenceClassification.from_pretrained(tmp_path / "out")
    assert loaded.transformer.wpe is None
