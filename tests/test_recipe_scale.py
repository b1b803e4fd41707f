"""`--scale` of the full recipe (recipes/full.py, train_scripts/run_recipe.py): the CPU scale hands every step the
arguments it was handed before the scale existed, the GPU scale a larger model in bf16 with larger batches and more
epochs, a value given explicitly wins over either scale, and the GPU scale refuses to start without CUDA unless
`--use_cpu` asks for its CPU smoke run. Nothing trains: only arguments are built."""

import json
from dataclasses import asdict

import pytest
import torch

from chargpt import CharGPTConfig, CharGPTForCausalLM
from chargpt.training import parse_arguments, run_script
from chargpt.training.arguments import (
    ClassifierModelArguments,
    ClassifierTrainingArguments,
    DialogueDataArguments,
    LabelledDataArguments,
    LMModelArguments,
    LMTrainingArguments,
)
from recipes.full import (
    SCALES,
    RecipeArguments,
    chat_arguments,
    chat_files,
    check_device,
    classifier_arguments,
    evaluation_arguments,
    review_files,
    review_lm_arguments,
    run_recipe,
    sampling_search_arguments,
)
from recipes.heldout import EvaluationArguments

from ._helpers_training import load_script


# A value for each scaled field that neither scale uses, so that keeping it can only come from the explicit value.
EXPLICIT = {
    "n_embd": 96,
    "n_layer": 3,
    "n_head": 4,
    "chat_dropout": 0.3,
    "chat_batch_size": 8,
    "chat_epochs": 2.0,
    "review_lm_epochs": 0.0,  # 0 skips the step: falsy, and still an explicit value
    "classifier_epochs": 2.0,
    "classifier_batch_size": 16,
    "inference_batch_size": 8,
}


def split_files(root) -> dict:
    """The paths `write_splits` returns, without writing them (the builders only name them)."""
    names = {"hotel": "chnsenticorp", "shop": "online_shopping_holdout_books", "dialogue": "lccc_base"}
    suffix = {"hotel": "csv", "shop": "csv", "dialogue": "jsonl"}
    return {
        key: {s: root / "splits" / f"{name}_{s}.{suffix[key]}" for s in ("train", "validation", "test")}
        for key, name in names.items()
    }


def steps(args: RecipeArguments, out, files) -> dict:
    """Every step's arguments as the recipe builds them now."""
    return {
        "chat": chat_arguments(args, out, files),
        "review_lm": review_lm_arguments(args, out, files),
        "classifier": classifier_arguments(args, out, out / "review-lm", files),
        "evaluation_chat": evaluation_arguments(args, out / "chat"),
        "evaluation_sentiment": evaluation_arguments(args, out / "sentiment", review_files(args, files)),
    }


def steps_before_the_scale(args: RecipeArguments, out, files) -> dict:
    """Every step's arguments exactly as recipes/full.py built them before `--scale` existed (a copy of that code,
    the record the CPU scale is held to)."""
    common = dict(
        seed=args.seed,
        overwrite_output_dir=True,
        use_cpu=not torch.cuda.is_available(),
        report_to="none",
        disable_tqdm=True,
        save_total_limit=1,
    )
    chat = (
        LMModelArguments(
            tokenizer_name_or_path=str(out / "tokenizer"),
            n_positions=args.chat_context,
            n_embd=None,
            n_layer=None,
            n_head=None,
        ),
        DialogueDataArguments(
            train_files=chat_files(args, files),
            validation_files=[str(files["dialogue"]["validation"])],
            test_files=[str(files["dialogue"]["test"])],
            packing=True,
            block_size=args.chat_context,
            max_train_samples=args.max_train_samples,
        ),
        LMTrainingArguments(
            output_dir=str(out / "chat"),
            num_train_epochs=1.0,
            per_device_train_batch_size=16,
            eval_strategy="steps",
            eval_steps=0.1,
            save_strategy="best",
            load_best_model_at_end=True,
            **common,
        ),
    )
    review_lm = (
        LMModelArguments(tokenizer_name_or_path=str(out / "tokenizer"), model_name_or_path=str(out / "chat")),
        DialogueDataArguments(
            train_files=[],
            text_files=review_files(args, files),
            validation_files=[],
            validation_split_size=0.02,
            test_split_size=0,
            packing=True,
            block_size=args.chat_context,
            max_train_samples=args.max_train_samples,
        ),
        LMTrainingArguments(
            output_dir=str(out / "review-lm"),
            num_train_epochs=1.0,
            per_device_train_batch_size=16,
            eval_strategy="epoch",
            save_strategy="best",
            load_best_model_at_end=True,
            **common,
        ),
    )
    classifier = (
        ClassifierModelArguments(model_name_or_path=str(out / "review-lm"), freeze="none", pooling="mean"),
        LabelledDataArguments(
            train_files=review_files(args, files),
            validation_files=[str(files["hotel"]["validation"])],
            test_files=[],
            test_split_size=0,
            class_names=["negative", "positive"],
            max_length=args.classifier_max_length,
            max_train_samples=args.max_train_samples,
        ),
        ClassifierTrainingArguments(
            output_dir=str(out / "sentiment"),
            num_train_epochs=1.0,
            learning_rate=5e-4,
            per_device_train_batch_size=32,
            eval_strategy="steps",
            eval_steps=0.2,
            save_strategy="best",
            load_best_model_at_end=True,
            train_sampling_strategy="group_by_length",
            **common,
        ),
    )

    def evaluation(model_dir, tfidf_train_files=None):
        return EvaluationArguments(
            model_name_or_path=str(model_dir),
            data_dir=args.data_dir,
            holdout_category=args.holdout_category,
            seed=args.seed,
            tfidf_baseline=tfidf_train_files is not None,
            tfidf_train_files=list(tfidf_train_files or []),
        )

    return {
        "chat": chat,
        "review_lm": review_lm,
        "classifier": classifier,
        "evaluation_chat": evaluation(out / "chat"),
        "evaluation_sentiment": evaluation(out / "sentiment", review_files(args, files)),
    }


def comparable(arguments):
    """An argument object as a plain dict: TrainingArguments through `to_dict()`, the other dataclasses whole."""
    return arguments.to_dict() if hasattr(arguments, "to_dict") else asdict(arguments)


def flatten(step_arguments: dict) -> dict:
    """{step/part: dict} over every step's argument objects."""
    flat = {}
    for step, value in step_arguments.items():
        parts = value if isinstance(value, tuple) else (value,)
        for i, part in enumerate(parts):
            flat[f"{step}/{type(part).__name__}/{i}"] = comparable(part)
    return flat


def differences(a: dict, b: dict) -> dict:
    """{step/part: sorted keys whose values differ} between two `flatten` results."""
    assert a.keys() == b.keys()
    found = {name: sorted(k for k in a[name] if a[name][k] != b[name].get(k)) for name in a}
    return {name: keys for name, keys in found.items() if keys}


# ----------------------------------------------------------------------------------------------------------------------
# The CPU scale: nothing changes


def test_cpu_scale_is_the_default_and_resolves_to_the_recipes_former_defaults():
    args = RecipeArguments()
    assert args.scale == "cpu" and args.use_cpu is False and args.bf16 is False
    former = dict(chat_epochs=1.0, n_embd=None, n_layer=None, n_head=None, chat_batch_size=16, review_lm_epochs=1.0)
    former.update(classifier_epochs=1.0, generation_posts=500, chat_context=256, classifier_learning_rate=5e-4)
    assert {k: getattr(args, k) for k in former} == former
    assert (args.classifier_batch_size, args.inference_batch_size, args.max_eval_samples) == (32, 32, None)


@pytest.mark.parametrize("argv", [[], ["--scale", "cpu"]], ids=["no-flag", "scale-cpu"])
def test_cpu_scale_hands_every_step_exactly_the_arguments_of_before(tmp_path, argv):
    (args,) = parse_arguments((RecipeArguments,), ["--output_dir", str(tmp_path / "out"), *argv])
    out, files = tmp_path / "out", split_files(tmp_path / "out")
    now, before = flatten(steps(args, out, files)), flatten(steps_before_the_scale(args, out, files))
    assert differences(now, before) == {}
    assert now == before
    # The sampling search: the posts as before, 32 a generate() call (the search's own default) and the CPU.
    assert sampling_search_arguments(args) == {"n_posts": 500, "batch_size": 32, "device": "cpu"}


def test_cpu_scale_keeps_quick_run_flags_working_as_before(tmp_path):
    argv = ["--output_dir", str(tmp_path / "out"), "--max_train_samples", "200", "--classifier_epochs", "2"]
    (args,) = parse_arguments((RecipeArguments,), argv)
    out, files = tmp_path / "out", split_files(tmp_path / "out")
    found = differences(flatten(steps(args, out, files)), flatten(steps_before_the_scale(args, out, files)))
    # Only what --classifier_epochs 2 changes (the epochs, and the evaluations every 0.2 / 2 of them) differs.
    assert found == {"classifier/ClassifierTrainingArguments/2": ["eval_steps", "num_train_epochs"]}
    _, data_args, training_args = classifier_arguments(args, out, out / "review-lm", files)
    assert (training_args.num_train_epochs, training_args.eval_steps, data_args.max_train_samples) == (2.0, 0.1, 200)


# ----------------------------------------------------------------------------------------------------------------------
# The GPU scale


def test_gpu_scale_sets_a_larger_model_bf16_and_larger_batches_and_epochs(tmp_path):
    args = RecipeArguments(scale="gpu", output_dir=str(tmp_path / "out"))
    out, files = tmp_path / "out", split_files(tmp_path / "out")
    (chat_model, _, chat_training), (_, _, review_training), (_, _, classifier_training) = (
        chat_arguments(args, out, files),
        review_lm_arguments(args, out, files),
        classifier_arguments(args, out, out / "review-lm", files),
    )
    assert (chat_model.n_embd, chat_model.n_layer, chat_model.n_head, chat_model.n_positions) == (512, 8, 8, 256)
    assert chat_model.dropout == 0.1  # chosen on validation on the first GPU; the CPU scale keeps the preset's
    assert RecipeArguments().chat_dropout is None
    assert (chat_training.num_train_epochs, chat_training.per_device_train_batch_size) == (8.0, 64)
    assert (review_training.num_train_epochs, review_training.per_device_train_batch_size) == (4.0, 64)
    assert (classifier_training.num_train_epochs, classifier_training.per_device_train_batch_size) == (3.0, 128)
    assert classifier_training.eval_steps == pytest.approx(0.2 / 3)  # still five evaluations an epoch
    assert chat_training.bf16 and review_training.bf16 and classifier_training.bf16
    # Sampling search and evaluation on the GPU, 128 posts a generate() call; the posts stay as many as the test has.
    assert sampling_search_arguments(args) == {"n_posts": 500, "batch_size": 128, "device": "cuda"}
    for evaluation in (evaluation_arguments(args, out / "chat"), evaluation_arguments(args, out / "sentiment", [])):
        assert (evaluation.device, evaluation.batch_size) == ("cuda", 128)


def test_gpu_scale_model_has_the_parameter_count_its_sizing_assumes():
    # docs/training.md's arithmetic: 27,611,136 parameters with the recipe's 4,501-character vocabulary, of which
    # 27,601,408 in matrix products (the tied head counted once as a product); train_lm.py's size has 5,972,864.
    sizes = {}
    for scale in ("cpu", "gpu"):
        args = RecipeArguments(scale=scale)
        size = {k: getattr(args, k) for k in ("n_embd", "n_layer", "n_head") if getattr(args, k) is not None}
        config = CharGPTConfig.from_preset("modern", vocab_size=4501, n_positions=args.chat_context, **size)
        with torch.device("meta"):
            model = CharGPTForCausalLM(config)
        matrices = sum(p.numel() for n, p in model.named_parameters() if p.ndim == 2 and "wte" not in n)
        sizes[scale] = (model.num_parameters(), matrices + config.vocab_size * config.n_embd)
    assert sizes == {"cpu": (5_972_864, 5_969_152), "gpu": (27_611_136, 27_601_408)}


def test_gpu_scale_smoke_run_differs_from_the_gpu_run_only_in_precision_and_device(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # both then build CPU Trainer arguments
    out, files = tmp_path / "out", split_files(tmp_path / "out")
    gpu = RecipeArguments(scale="gpu", output_dir=str(out))
    smoke = RecipeArguments(scale="gpu", output_dir=str(out), use_cpu=True)
    assert {k for k, v in asdict(gpu).items() if asdict(smoke)[k] != v} == {"use_cpu", "bf16"}
    assert (gpu.bf16, smoke.bf16) == (True, False)
    found = differences(flatten(steps(gpu, out, files)), flatten(steps(smoke, out, files)))
    training = ["LMTrainingArguments/2", "LMTrainingArguments/2", "ClassifierTrainingArguments/2"]
    expected = {f"{step}/{part}": ["bf16"] for step, part in zip(("chat", "review_lm", "classifier"), training)}
    expected.update({f"evaluation_{m}/EvaluationArguments/0": ["device"] for m in ("chat", "sentiment")})
    assert found == expected
    assert sampling_search_arguments(smoke) == {**sampling_search_arguments(gpu), "device": "cpu"}


# ----------------------------------------------------------------------------------------------------------------------
# Precedence: a scale sets defaults, an explicit value wins


@pytest.mark.parametrize("scale", sorted(SCALES))
@pytest.mark.parametrize("name", sorted(EXPLICIT))
def test_a_flag_given_explicitly_wins_over_the_scale(scale, name):
    (args,) = parse_arguments((RecipeArguments,), ["--scale", scale, f"--{name}", str(EXPLICIT[name])])
    assert getattr(args, name) == EXPLICIT[name]
    others = {k: v for k, v in SCALES[scale].items() if k not in (name, "bf16")}
    assert {k: getattr(args, k) for k in others} == others  # the rest still come from the scale


@pytest.mark.parametrize("name", [n for n, v in SCALES["cpu"].items() if v is not None and n != "bf16"])
def test_an_explicit_value_equal_to_the_cpu_default_is_kept_at_the_gpu_scale(name):
    # A scale that replaced values equal to the dataclass's old default would lose `--scale gpu --chat_batch_size 16`.
    value = SCALES["cpu"][name]
    (args,) = parse_arguments((RecipeArguments,), ["--scale", "gpu", f"--{name}", str(value)])
    assert getattr(args, name) == value != SCALES["gpu"][name]


@pytest.mark.parametrize(
    "argv, bf16",
    [
        (["--scale", "gpu", "--bf16", "false"], False),
        (["--scale", "cpu", "--bf16", "true"], True),
        (["--scale", "gpu", "--use_cpu"], False),
        (["--scale", "gpu", "--use_cpu", "--bf16", "true"], True),
    ],
)
def test_bf16_given_explicitly_wins_over_the_scale_and_the_smoke_runs_fp32_otherwise(argv, bf16):
    (args,) = parse_arguments((RecipeArguments,), argv)
    assert args.bf16 is bf16


def test_explicit_epochs_reach_the_training_arguments_of_a_gpu_scale_run(tmp_path):
    argv = ["--scale", "gpu", "--chat_epochs", "1", "--n_embd", "256", "--output_dir", str(tmp_path / "out")]
    (args,) = parse_arguments((RecipeArguments,), argv)
    model_args, _, training_args = chat_arguments(args, tmp_path / "out", split_files(tmp_path / "out"))
    assert (training_args.num_train_epochs, training_args.per_device_train_batch_size) == (1.0, 64)
    assert (model_args.n_embd, model_args.n_layer, model_args.n_head) == (256, 8, 8)


def test_a_json_file_sets_values_over_the_scale_too(tmp_path):
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps({"scale": "gpu", "chat_epochs": 1, "output_dir": str(tmp_path / "out")}))
    (args,) = parse_arguments((RecipeArguments,), [str(path)])
    assert (args.chat_epochs, args.review_lm_epochs, args.n_embd, args.bf16) == (1, 4.0, 512, True)


def test_resolved_arguments_rebuild_to_the_same_arguments():
    # benchmarks/recipe.py rebuilds the recipe's arguments from recipe_report.json's "arguments" (asdict).
    for args in (
        RecipeArguments(),
        RecipeArguments(scale="gpu", chat_epochs=1),
        RecipeArguments(scale="gpu", use_cpu=True),
    ):
        assert RecipeArguments(**asdict(args)) == args


def test_unknown_scale_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"--scale must be one of \('cpu', 'gpu'\), got 'tpu'"):
        RecipeArguments(scale="tpu")


# ----------------------------------------------------------------------------------------------------------------------
# The GPU scale without a GPU


def test_gpu_scale_without_cuda_refuses_before_writing_anything_and_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    out = tmp_path / "out"
    with pytest.raises(ValueError) as error:
        run_recipe(RecipeArguments(scale="gpu", output_dir=str(out), data_dir=str(tmp_path)))
    message = str(error.value)
    assert "PyTorch sees no CUDA device" in message
    assert "--use_cpu" in message and "--scale cpu" in message and "--max_train_samples" in message
    assert not out.exists()


def test_run_recipe_script_prints_the_refusal_as_one_error_line_and_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    script = load_script("run_recipe.py")
    with pytest.raises(SystemExit) as exit_info:
        run_script(script.main, ["--scale", "gpu", "--output_dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: --scale gpu is sized for one CUDA GPU") and "--use_cpu" in err


def test_use_cpu_lets_the_gpu_scale_start_on_a_cpu(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    check_device(RecipeArguments(scale="gpu", use_cpu=True))
    check_device(RecipeArguments(scale="cpu"))  # the CPU scale never asks for CUDA
    # Past the device check the recipe goes on to its data, which this folder lacks.
    with pytest.raises(FileNotFoundError, match="The recipe needs the shared data"):
        run_recipe(RecipeArguments(scale="gpu", use_cpu=True, output_dir=str(tmp_path / "out"), data_dir=str(tmp_path)))


def test_gpu_scale_on_a_gpu_without_bf16_refuses_and_names_bf16_false(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    with pytest.raises(ValueError, match="add --bf16 false to train in fp32"):
        check_device(RecipeArguments(scale="gpu"))
    check_device(RecipeArguments(scale="gpu", bf16=False))  # the fix passes
