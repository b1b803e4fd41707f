"""The architecture options (rotary positions, RMSNorm, gated MLP, squared ReLU, QK-norm) and the presets `course` and
`modern`: the checks the course design has in test_modeling.py, run for both presets and for each option alone, plus
configuration errors, old config files, freezing and the model card."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import AutoModelForCausalLM, DynamicCache

from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTForSequenceClassification
from chargpt.configuration_chargpt import PRESETS, default_inner_size
from chargpt.modeling_chargpt import CACHE_NAME
from chargpt.publish import architecture_summary
from chargpt.training.models import apply_freezing

from .chargpt_tester import CharGPTTester


# CharGPTTester arguments: both presets, and each option alone on the course design.
ARCHITECTURES = {
    "course": {"preset": "course"},
    "modern": {"preset": "modern"},
    "rope": {"position_embedding_type": "rope"},
    "rmsnorm": {"normalization": "rmsnorm"},
    "gated_mlp": {"gated_mlp": True},
    "relu2": {"activation_function": "relu2"},
    "qk_norm": {"qk_norm": True},
}
# The architecture fields a preset sets (its dropout the tester overrides with 0).
ARCHITECTURE_FIELDS = (
    "position_embedding_type", "normalization", "activation_function", "gated_mlp", "qk_norm", "bias",
)


@pytest.fixture(params=list(ARCHITECTURES))
def tester(request):
    return CharGPTTester(**ARCHITECTURES[request.param])


def _norms(model):
    return {name: m for name, m in model.named_modules() if isinstance(m, (torch.nn.LayerNorm, torch.nn.RMSNorm))}


# ---------------------------------------------------------------- configuration


def test_presets_set_their_architecture_and_keyword_arguments_win():
    modern = CharGPTConfig.from_preset("modern", vocab_size=100, n_embd=64, n_head=4, bias=True)
    assert (modern.position_embedding_type, modern.normalization, modern.activation_function) == ("rope", "rmsnorm",
                                                                                                  "silu")
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
    assert {f: getattr(loaded.config, f) for f in ARCHITECTURE_FIELDS} == {f: PRESETS["course"][f] for f in
                                                                           ARCHITECTURE_FIELDS}
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


# ---------------------------------------------------------------- forward, losses, save/load


def test_forward_shapes_scalar_loss_and_backward_reach_every_parameter(tester):
    model = tester.lm().train()
    batch = tester.batch()
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    out = model(**batch, labels=labels)
    assert out.logits.shape == (*batch["input_ids"].shape, tester.config.vocab_size)
    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_save_load_round_trip_through_auto_model_within_1e_5(tester, tmp_path):
    model = tester.lm(seed=7)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert isinstance(loaded, CharGPTForCausalLM)
    fields = (*ARCHITECTURE_FIELDS, "rope_theta", "n_inner")
    assert {f: getattr(loaded.config, f) for f in fields} == {f: getattr(model.config, f) for f in fields}
    assert loaded.lm_head.weight.data_ptr() == loaded.transformer.wte.weight.data_ptr()
    batch = tester.batch()
    torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, atol=1e-5, rtol=1e-5)


REMOTE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["chargpt"] = None  # only the directory's own code can be used
    import json, torch
    from transformers import AutoModelForCausalLM
    lm = AutoModelForCausalLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    ids = torch.tensor([[3, 10, 11, 12]])
    out = lm.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=6, eos_token_id=None)
    print(json.dumps({"module": type(lm).__module__, "wpe": lm.transformer.wpe is None, "generated": out[0].tolist(),
                      "logits": lm(ids).logits[0, -1].tolist()}))
    """
)


@pytest.mark.slow
def test_modern_directory_loads_with_trust_remote_code_in_a_fresh_process_without_chargpt(tmp_path):
    tester = CharGPTTester(preset="modern")
    model = tester.lm(seed=11)
    model.save_pretrained(tmp_path / "model")
    script = tmp_path / "load.py"
    script.write_text(REMOTE_SCRIPT, encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path / "modules")}
    result = subprocess.run([sys.executable, str(script), str(tmp_path / "model")], capture_output=True, text=True,
                            env=env, timeout=300, cwd="/")
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["module"].startswith("transformers_modules.") and report["wpe"] is True
    ids = torch.tensor([[3, 10, 11, 12]])
    with torch.no_grad():
        expected = model(ids).logits[0, -1]
    assert torch.allclose(torch.tensor(report["logits"]), expected, atol=1e-5)
    greedy = model.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False, max_new_tokens=6,
                            eos_token_id=None)
    assert report["generated"] == greedy[0].tolist()


# ---------------------------------------------------------------- cache and generation


def test_cached_incremental_forward_matches_full_forward(tester):
    model = tester.lm()
    ids = tester.batch(("今天天气很好，我们去公园",))["input_ids"]
    full = model(input_ids=ids, use_cache=False).logits
    cache = DynamicCache(config=model.config)
    first = model(input_ids=ids[:, :5], cache=cache, use_cache=True)
    steps = [first.logits]
    for t in range(5, ids.shape[1]):
        steps.append(model(input_ids=ids[:, t : t + 1], cache=first[CACHE_NAME], use_cache=True).logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_greedy_generation_is_identical_with_and_without_cache(tester):
    model = tester.lm(seed=3)
    prompt = tester.batch(("今天天气",))
    kwargs = dict(do_sample=False, max_new_tokens=20, eos_token_id=None)
    with_cache = model.generate(**prompt, use_cache=True, **kwargs)
    assert with_cache.shape[1] == prompt["input_ids"].shape[1] + 20
    assert torch.equal(with_cache, model.generate(**prompt, use_cache=False, **kwargs))


def test_static_cache_generation_equals_dynamic_on_a_left_padded_batch(tester):
    model = tester.model(seed=2, initializer_range=0.5)
    batch = tester.batch(["你好", "今天天气很好，我们", "我喜欢看"], padding_side="left")
    kwargs = dict(do_sample=False, max_new_tokens=12, eos_token_id=None, pad_token_id=0)
    dynamic = model.generate(**batch, **kwargs)
    assert torch.equal(model.generate(**batch, cache_implementation="static", **kwargs), dynamic)


def test_left_padded_batch_generates_the_same_tokens_as_each_prompt_alone(tester):
    # initializer_range 0.5: peaked next-token distributions, so the check is not decided by near-ties
    model = tester.model(seed=5, initializer_range=0.5)
    prompts = ["你好", "今天天气很好，我们", "我喜欢看"]
    kwargs = dict(do_sample=False, max_new_tokens=12, eos_token_id=None, pad_token_id=0)
    batch = tester.batch(prompts, padding_side="left")
    batched = model.generate(**batch, **kwargs)[:, batch["input_ids"].shape[1] :]
    for i, prompt in enumerate(prompts):
        alone = tester.batch((prompt,))
        single = model.generate(**alone, **kwargs)[0, alone["input_ids"].shape[1] :]
        assert torch.equal(batched[i], single), f"prompt {prompt!r} differs when batched"


# ---------------------------------------------------------------- classification, embeddings, checkpointing


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_classifier_pools_the_last_real_token_whatever_the_padding_side(tester, padding_side):
    model = tester.classifier(num_labels=3)
    alone = model(**tester.batch(("你好",))).logits
    padded = model(**tester.batch(("你好", "今天天气很好"), padding_side=padding_side))
    torch.testing.assert_close(padded.logits[0], alone[0], atol=1e-5, rtol=1e-5)
    labels = torch.tensor([0, 2])
    torch.testing.assert_close(model(**tester.batch(("你好", "今天天气很好")), labels=labels).loss,
                               torch.nn.functional.cross_entropy(padded.logits, labels), atol=1e-5, rtol=1e-5)


def test_embed_gives_unit_vectors_that_do_not_depend_on_padding(tester):
    model = tester.lm()
    alone = model.embed(**tester.batch(("你好",)))
    for side in ("left", "right"):
        padded = model.embed(**tester.batch(("你好", "今天天气很好"), padding_side=side))
        torch.testing.assert_close(padded[0], alone[0], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(padded.norm(dim=-1), torch.ones(2))


def test_gradient_checkpointing_gives_the_same_gradients(tester):
    batch = tester.batch()
    grads = []
    for checkpointing in (False, True):
        model = tester.lm(seed=9).train()
        if checkpointing:
            enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
            enable()
            assert model.transformer.gradient_checkpointing
        model(**batch, labels=batch["input_ids"]).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5, msg=name)


# ---------------------------------------------------------------- what sits around the model


def test_freezing_a_rotary_classifier_trains_the_last_blocks_final_norm_and_head():
    model = CharGPTTester(preset="modern").classifier(num_labels=2)
    total = sum(p.numel() for p in model.parameters())
    apply_freezing(model, "last-1")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {n for n, _ in model.named_parameters()
                         if n.startswith(("transformer.h.1.", "transformer.ln_f.", "score."))}
    assert "transformer.h.1.attn.q_norm.weight" in trainable
    # with no position table, freezing every block but none leaves only the token embedding frozen
    frozen = total - apply_freezing(model, "last-2")["trainable"]
    assert frozen == model.transformer.wte.weight.numel()


def test_model_card_describes_the_architecture(tmp_path, capsys):
    from chargpt.cli import main

    assert architecture_summary(CharGPTConfig()) == "pre-LayerNorm, learned positions"
    assert architecture_summary(CharGPTConfig.from_preset("modern")) == (
        "pre-RMSNorm, rotary positions, SwiGLU feed-forward, QK-norm")
    tester = CharGPTTester(preset="modern")
    model = tester.classifier(num_labels=2)
    model.save_pretrained(tmp_path / "cls")
    tester.tokenizer.save_pretrained(tmp_path / "cls")
    assert main(["publish", str(tmp_path / "cls"), str(tmp_path / "out"), "--verify_load", "false"]) == 0, (
        capsys.readouterr().err)
    card = (tmp_path / "out" / "README.md").read_text(encoding="utf-8")
    assert "a GPT-style decoder (pre-RMSNorm, rotary positions, SwiGLU feed-forward, QK-norm)" in card
    assert "| Positions | rotary (theta 10000) |" in card and "| Normalisation | RMSNorm |" in card
    assert "| QK-norm | yes |" in card and "| Gated feed-forward | yes |" in card
    loaded = CharGPTForSequenceClassification.from_pretrained(tmp_path / "out")
    assert loaded.transformer.wpe is None
