"""Muon + AdamW through the Trainer's hooks, the warmup-stable-decay schedule, the presets in the training arguments,
and the time-to-quality benchmark's bookkeeping."""

import copy
import json
import math
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from transformers import HfArgumentParser, LlamaConfig, LlamaForCausalLM, TrainerCallback, TrainingArguments
from transformers.training_args import OptimizerNames

from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTForSequenceClassification
from chargpt.training import (
    ClassifierTrainingArguments,
    LMModelArguments,
    LMTrainingArguments,
    build_causal_lm_config,
)
from chargpt.training.optimizers import MuonWithAdamW, split_parameters
from chargpt.training.trainer import CharGPTTrainer

from ._helpers_training import tiny_tokenizer, write_pairs
from .test_training import CrashAt, FirstStep, lm_run


def tiny(preset="modern", cls=CharGPTForCausalLM, **fields):
    torch.manual_seed(0)
    config = CharGPTConfig.from_preset(preset, vocab_size=50, n_embd=32, n_layer=2, n_head=4, n_positions=32, **fields)
    return cls(config)


def names_of(model, params) -> set[str]:
    ids = {id(p) for p in params}
    return {n for n, p in model.named_parameters() if id(p) in ids}


def test_muon_gets_exactly_the_block_matrices_and_adamw_the_rest():
    model = tiny()
    groups = split_parameters(model, decay_names={"transformer.wte.weight"})
    matrices = ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
    assert names_of(model, groups["muon"]) == {f"transformer.h.{i}.{m}.weight" for i in range(2) for m in matrices}
    assert names_of(model, groups["adamw_decay"]) == {"transformer.wte.weight"}  # the tied head is the same tensor
    no_decay = names_of(model, groups["adamw_no_decay"])
    assert "transformer.ln_f.weight" in no_decay and "transformer.h.0.attn.q_norm.weight" in no_decay
    total = sum(len(g) for g in groups.values())
    assert total == len(list(model.parameters()))


def test_classifier_head_and_frozen_parameters_stay_out_of_muon():
    model = tiny(cls=CharGPTForSequenceClassification, num_labels=2)
    model.transformer.h[0].requires_grad_(False)
    groups = split_parameters(model, decay_names=set())
    muon = names_of(model, groups["muon"])
    assert "score.weight" not in muon and not any(n.startswith("transformer.h.0.") for n in muon)
    assert "score.weight" in names_of(model, groups["adamw_no_decay"])
    assert not any(n.startswith("transformer.h.0.") for g in groups.values() for n in names_of(model, g))


def test_other_architectures_split_too_llama_head_is_not_a_hidden_matrix():
    torch.manual_seed(0)
    model = LlamaForCausalLM(
        LlamaConfig(
            vocab_size=40,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            num_key_value_heads=4,
        )
    )
    muon = names_of(model, split_parameters(model, set())["muon"])
    assert "lm_head.weight" not in muon and "model.embed_tokens.weight" not in muon
    assert "model.layers.0.mlp.gate_proj.weight" in muon and len(muon) == 7


def test_scheduler_drives_both_optimizers_and_a_step_moves_every_parameter():
    model = tiny()
    optimizer = MuonWithAdamW(split_parameters(model, set()), lr=1e-2, weight_decay=0.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 0.25)
    assert {g["lr"] for g in optimizer.muon.param_groups + optimizer.adamw.param_groups} == {2.5e-3}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ids = torch.randint(5, 50, (2, 8))
    model(ids, labels=ids).loss.backward()
    optimizer.step()
    scheduler.step()
    moved = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert moved == set(before)
    optimizer.zero_grad()
    assert all(p.grad is None for p in model.parameters())


def test_state_dict_round_trip_continues_identically_and_a_foreign_state_is_refused():
    ids = torch.randint(5, 50, (2, 8))

    def train(model, optimizer, steps):
        for _ in range(steps):
            model(ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad()

    a = tiny()
    opt_a = MuonWithAdamW(split_parameters(a, set()), lr=1e-2, weight_decay=0.1)
    train(a, opt_a, 2)
    b = tiny()
    b.load_state_dict(a.state_dict())
    opt_b = MuonWithAdamW(split_parameters(b, set()), lr=1e-2, weight_decay=0.1)
    opt_b.load_state_dict(copy.deepcopy(opt_a.state_dict()))  # a copy, as a checkpoint on disk is
    train(a, opt_a, 1)
    train(b, opt_b, 1)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name
    with pytest.raises(ValueError, match="not a Muon\\+AdamW state"):
        opt_b.load_state_dict(torch.optim.AdamW(b.parameters()).state_dict())


def test_muon_without_hidden_matrices_to_train_is_a_clear_error():
    model = tiny()
    model.transformer.h.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable 2-D weight.*--optim adamw_torch_fused"):
        MuonWithAdamW(split_parameters(model, set()), lr=1e-3, weight_decay=0.0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("optimizers")
    pairs = write_pairs(root / "pairs.txt", n=64)
    return pairs, tiny_tokenizer(root / "tokenizer", pairs.read_text(encoding="utf-8").splitlines())


class Rates(TrainerCallback):
    """The learning rate of every param group at the start of each step, and the optimizer."""

    def __init__(self):
        self.rates, self.optimizer = [], None

    def on_step_begin(self, args, state, control, optimizer=None, **kwargs):
        self.optimizer = optimizer
        self.rates.append([g["lr"] for g in optimizer.param_groups])


def test_trainer_builds_muon_and_the_warmup_stable_decay_schedule(corpus, tmp_path):
    pairs, tokenizer_dir = corpus
    rates = Rates()
    lm_run(
        tmp_path,
        "run",
        tokenizer_dir,
        pairs,
        callbacks=[rates],
        max_steps=10,
        optim="muon",
        learning_rate=1e-2,
        lr_scheduler_type="warmup_stable_decay",
        warmup_steps=2,
        decay_fraction=0.3,
        data={"validation_split_size": 0, "test_split_size": 0},
    )
    assert isinstance(getattr(rates.optimizer, "optimizer", rates.optimizer), MuonWithAdamW)
    per_step = [set(r) for r in rates.rates]
    assert all(len(s) == 1 for s in per_step)  # one schedule for both optimizers' groups
    lrs = [s.pop() for s in per_step]
    assert lrs[0] < lrs[1] < 1e-2  # warm-up over 2 steps
    assert lrs[2:7] == [pytest.approx(1e-2)] * 5  # stable until the last 30 percent (3 of 10 steps)
    assert lrs[7] > lrs[8] > lrs[9] > 0  # decay


@pytest.mark.slow
def test_resume_restores_the_muon_state_and_ends_like_an_uninterrupted_run(corpus, tmp_path):
    pairs, tokenizer_dir = corpus
    run = dict(
        max_steps=6,
        save_strategy="steps",
        save_steps=2,
        optim="muon",
        learning_rate=1e-2,
        lr_scheduler_type="warmup_stable_decay",
        data={"validation_split_size": 0, "test_split_size": 0},
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        lm_run(tmp_path, "run", tokenizer_dir, pairs, callbacks=[CrashAt(5)], **run)
    first = FirstStep()
    lm_run(tmp_path, "run", tokenizer_dir, pairs, callbacks=[first], resume_from_checkpoint="latest", **run)
    assert first.first == 5
    assert json.loads((tmp_path / "run" / "trainer_state.json").read_text())["global_step"] == 6
    lm_run(tmp_path, "straight", tokenizer_dir, pairs, **run)
    resumed, straight = (load_file(str(tmp_path / d / "model.safetensors")) for d in ("run", "straight"))
    assert max((resumed[k] - straight[k]).abs().max().item() for k in straight) < 1e-6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"optim": "sgdd"}, "--optim must be 'muon'.*or one of Trainer's optimizers.*adafactor"),
        ({"decay_fraction": 0.0}, "--decay_fraction must be in"),
        ({"muon_ns_steps": 0}, "--muon_ns_steps must be >= 1"),
    ],
)
def test_bad_optimizer_arguments_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        LMTrainingArguments(output_dir=str(tmp_path), **kwargs)


def built_optimizer(args, model=None):
    optimizer = CharGPTTrainer(model=model or tiny(), args=args).create_optimizer()
    return getattr(optimizer, "optimizer", optimizer)  # accelerate may wrap it


def test_one_optimizer_flag_optim_chooses_muon_or_any_trainer_optimizer(tmp_path):
    """`--optim` alone chooses: Muon by default for the causal LM, and a Trainer optimizer given there is the one
    that trains (it was once ignored beside a second flag, `--optimizer`, which no longer exists)."""
    from transformers.optimization import Adafactor

    parser = HfArgumentParser(LMTrainingArguments)
    no_eval = {"use_cpu": True, "report_to": "none", "eval_strategy": "no", "load_best_model_at_end": False}
    common = [f"--{k}={v}" for k, v in no_eval.items()] + ["--output_dir", str(tmp_path / "t")]
    (default,) = parser.parse_args_into_dataclasses(common)
    assert default.optim == "muon" and isinstance(built_optimizer(default), MuonWithAdamW)
    (adafactor,) = parser.parse_args_into_dataclasses([*common, "--optim", "adafactor"])
    assert adafactor.optim == OptimizerNames.ADAFACTOR and isinstance(built_optimizer(adafactor), Adafactor)
    with pytest.raises(ValueError, match="not used by the HfArgumentParser.*--optimizer"):
        parser.parse_args_into_dataclasses([*common, "--optimizer", "muon"])
    classifier = ClassifierTrainingArguments(output_dir=str(tmp_path / "c"), **no_eval)
    assert classifier.optim == TrainingArguments.optim  # Trainer's own default for fine-tuning
    muon = ClassifierTrainingArguments(output_dir=str(tmp_path / "c"), optim="muon", **no_eval)
    assert isinstance(built_optimizer(muon, tiny(cls=CharGPTForSequenceClassification, num_labels=2)), MuonWithAdamW)
    (from_json,) = parser.parse_dict({"output_dir": str(tmp_path / "j"), "optim": "muon", **no_eval})
    assert from_json.to_dict()["optim"] == "muon"  # as saved in training_args.json


def test_presets_in_the_model_arguments():
    fixed = dict(vocab_size=60, pad_token_id=0, sep_token_id=2, bos_token_id=3, eos_token_id=4)
    modern = build_causal_lm_config(LMModelArguments(tokenizer_name_or_path="", n_embd=48, n_head=4), None, **fixed)
    assert (modern.position_embedding_type, modern.normalization, modern.gated_mlp) == ("rope", "rmsnorm", True)
    assert modern.n_inner == 128  # 8/3 x 48, rounded up to a multiple of 32: of the final size, not the default's
    course = build_causal_lm_config(LMModelArguments(tokenizer_name_or_path="", preset="course"), None, **fixed)
    assert course.to_diff_dict() == CharGPTConfig(**fixed).to_diff_dict()
    with pytest.raises(ValueError, match="--preset must be one of"):
        LMModelArguments(tokenizer_name_or_path="", preset="fancy")
    with pytest.raises(ValueError, match="--config_name and --preset both"):
        LMModelArguments(tokenizer_name_or_path="", preset="course", config_name="x")
    with pytest.raises(ValueError, match="--preset"):
        LMModelArguments(tokenizer_name_or_path="", model_name_or_path="m", preset="course")


def test_time_to_quality_interpolates_the_crossing_and_reports_ratios():
    from benchmarks.time_to_quality import first_time_at, loss_at, summarise

    curve = [{"seconds": 0, "loss": 8.0}, {"seconds": 10, "loss": 6.0}, {"seconds": 20, "loss": 4.0}]
    assert first_time_at(curve, 5.0) == pytest.approx(15.0)
    assert first_time_at(curve, 7.0) == pytest.approx(5.0)
    assert first_time_at(curve, 3.0) is None
    runs = {
        "gpt2": {"final_loss": 5.0, "seconds": 30.0, "final_perplexity": 148.0, "curve": curve},
        "fast": {"final_loss": 4.0, "seconds": 20.0, "final_perplexity": 54.6, "curve": curve},
    }
    runs["fast"]["curve"] = [{"seconds": 0, "loss": 8.0}, {"seconds": 10, "loss": 4.5}, {"seconds": 40, "loss": 3.0}]
    summary = summarise(runs)
    assert summary["fast"]["time_ratio_vs_gpt2"] == pytest.approx((10 * 3 / 3.5) / 30)  # 5.0 crossed at 8.57 s
    assert summary["gpt2"]["time_ratio_vs_gpt2"] == pytest.approx(0.5)  # its curve crosses 5.0 at 15 s of 30
    # equal wall time: "fast" at GPT-2's 30 s (loss 3.5), not at its own end (40 s, loss 3.0)
    assert summary["fast"]["loss_at_gpt2_end"] == pytest.approx(3.5)
    assert summary["fast"]["perplexity_ratio_vs_gpt2"] == pytest.approx(math.exp(3.5 - 5.0))
    assert loss_at(curve, 100) == 4.0


def test_time_to_quality_contenders_have_about_the_same_size():
    from benchmarks.time_to_quality import CONTENDERS, build_contender

    args = SimpleNamespace(n_embd=64, n_layer=2, n_head=4, ttq_block_len=32)
    sizes = {name: sum(p.numel() for p in build_contender(name, 200, args).parameters()) for name in CONTENDERS}
    smallest = min(sizes.values())
    assert max(sizes.values()) <= smallest * 1.15, sizes


def test_lora_factors_are_not_hidden_matrices_and_muon_falls_back_to_adamw_without_any(tmp_path, caplog):
    peft = pytest.importorskip("peft")
    model = peft.get_peft_model(tiny(), peft.LoraConfig(r=2, target_modules=["c_attn", "c_fc"]))
    groups = split_parameters(model, set())
    assert groups["muon"] == []  # base weights frozen, adapters left to AdamW
    assert any("lora_A" in n for n in names_of(model, groups["adamw_no_decay"] + groups["adamw_decay"]))
    model = tiny()
    model.transformer.h.requires_grad_(False)
    args = LMTrainingArguments(
        output_dir=str(tmp_path / "t"),
        use_cpu=True,
        report_to="none",
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
    )
    trainer = CharGPTTrainer(model=model, args=args)
    with caplog.at_level("WARNING"):
        optimizer = trainer.create_optimizer()
    assert not isinstance(optimizer, MuonWithAdamW) and isinstance(optimizer, torch.optim.AdamW)
    assert trainer.args.optim == TrainingArguments.optim  # records Trainer's default AdamW, which trains instead
    assert "no hidden weight matrix trains here" in caplog.text


def test_muon_on_a_torch_without_it_says_how_to_go_on(monkeypatch):
    monkeypatch.delattr(torch.optim, "Muon")
    with pytest.raises(ValueError, match=r"torch >= 2.9.*--optim adamw_torch_fused"):
        MuonWithAdamW(split_parameters(tiny(), set()), lr=1e-3, weight_decay=0.0)
