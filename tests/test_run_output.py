"""What a run shows and where: a classifier's new head said once in CharGPT's words (transformers' load report kept
for real surprises), a run's logs in its folder's run.log instead of the terminal (`--verbose` brings them back),
and the demo's one line per stage."""

import io
import logging
import sys
from contextlib import contextmanager
from pathlib import Path

import datasets
import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers.utils import logging as hf_logging

import recipes.demo as demo
from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTTokenizer
from chargpt.data import CleaningConfig
from chargpt.training.arguments import (
    ClassifierModelArguments,
    ClassifierTrainingArguments,
    DialogueDataArguments,
    LabelledDataArguments,
    LMModelArguments,
    LMTrainingArguments,
)
from chargpt.training.environment import logs_to_run_folder
from chargpt.training.models import classifier_from_pretrained
from chargpt.training.pipelines import train_causal_lm, train_classifier
from chargpt.training.run_directory import RUN_LOG, check_output_dir, inventory

from ._helpers_training import PHRASES, load_script, tiny_tokenizer, write_labelled_csv, write_pairs


HEAD_NOTICE = "classifier head: new, initialised randomly; the body comes from"


@pytest.fixture
def transformers_log():
    """What transformers' loggers write (they do not propagate to the root logger, so caplog does not see them)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger("transformers")
    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_warning()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)
    hf_logging.set_verbosity(level)


def causal_lm_dir(directory: Path, tie_word_embeddings: bool = True) -> tuple[Path, CharGPTForCausalLM]:
    """A tiny causal LM (hidden 32, 2 layers) saved with its tokenizer, as train_lm.py leaves one."""
    vocab_size = len(CharGPTTokenizer.from_pretrained(tiny_tokenizer(directory, PHRASES)))
    config = CharGPTConfig(
        vocab_size=vocab_size, n_positions=64, n_embd=32, n_layer=2, n_head=2, tie_word_embeddings=tie_word_embeddings
    )
    torch.manual_seed(0)
    model = CharGPTForCausalLM(config)
    model.save_pretrained(directory)
    return directory, model


def notices(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if HEAD_NOTICE in r.getMessage()]


# ----------------------------------------------------------------------------------------------------------------------
# The classifier's new head


@pytest.mark.parametrize("tied", [True, False], ids=["tied-lm-head", "untied-lm-head-in-checkpoint"])
def test_a_classifier_from_a_causal_lm_says_once_in_our_words_that_its_head_is_new(
    tmp_path, caplog, transformers_log, tied
):
    lm_dir, lm = causal_lm_dir(tmp_path / "lm", tie_word_embeddings=tied)
    with caplog.at_level(logging.INFO, logger="chargpt"):
        model = classifier_from_pretrained(str(lm_dir), num_labels=2)
    unused = "" if tied else "; its language-model head is not used"
    assert notices(caplog) == [f"{HEAD_NOTICE} {lm_dir}{unused}."]
    assert "LOAD REPORT" not in transformers_log.getvalue() and "MISSING" not in transformers_log.getvalue()
    assert torch.equal(model.transformer.wte.weight, lm.transformer.wte.weight)  # the body is the checkpoint's


@pytest.mark.parametrize("surprise", ["missing-body-weight", "unexpected-weight"])
def test_a_checkpoint_differing_by_more_than_the_head_still_gets_transformers_whole_report(
    tmp_path, caplog, transformers_log, surprise
):
    lm_dir, _ = causal_lm_dir(tmp_path / "lm")
    weights = load_file(lm_dir / "model.safetensors")
    if surprise == "missing-body-weight":
        key = "transformer.ln_f.weight"
        del weights[key]
    else:
        key = "transformer.adapter.weight"
        weights[key] = torch.zeros(2)
    save_file(weights, lm_dir / "model.safetensors", metadata={"format": "pt"})
    with caplog.at_level(logging.INFO, logger="chargpt"):
        classifier_from_pretrained(str(lm_dir), num_labels=2)
    report = transformers_log.getvalue()
    assert "LOAD REPORT" in report and key.removeprefix("transformer.") in report
    assert notices(caplog) == []


def test_a_classifier_continued_with_another_number_of_labels_keeps_transformers_report_and_error(
    tmp_path, caplog, transformers_log
):
    lm_dir, _ = causal_lm_dir(tmp_path / "lm")
    classifier_from_pretrained(str(lm_dir), num_labels=2).save_pretrained(tmp_path / "clf")
    caplog.clear()  # the first load's notice is right; only the second load's messages are under test
    with caplog.at_level(logging.INFO, logger="chargpt"), pytest.raises(RuntimeError, match="ignore_mismatched_sizes"):
        classifier_from_pretrained(str(tmp_path / "clf"), num_labels=3)
    assert "LOAD REPORT" in transformers_log.getvalue() and "MISMATCH" in transformers_log.getvalue()
    assert notices(caplog) == []


def test_train_classifier_says_the_head_is_new_once_and_shows_no_load_report(tmp_path, caplog, transformers_log):
    lm_dir, _ = causal_lm_dir(tmp_path / "lm")
    data = write_labelled_csv(tmp_path / "reviews.csv", n=24)
    with caplog.at_level(logging.INFO, logger="chargpt"):
        train_classifier(
            ClassifierModelArguments(model_name_or_path=str(lm_dir)),
            LabelledDataArguments(train_files=[str(data)], class_names=["negative", "positive"], max_length=32),
            CleaningConfig(),
            ClassifierTrainingArguments(
                output_dir=str(tmp_path / "clf"),
                use_cpu=True,
                report_to="none",
                max_steps=1,
                eval_strategy="no",
                save_strategy="no",
                load_best_model_at_end=False,
                per_device_train_batch_size=8,
            ),
        )
    assert notices(caplog) == [f"{HEAD_NOTICE} {lm_dir}."]
    assert "LOAD REPORT" not in transformers_log.getvalue()


# ----------------------------------------------------------------------------------------------------------------------
# A run's logs in its folder's run.log


@contextmanager
def terminal():
    """The terminal handlers the scripts have after `setup_logging` (chargpt's INFO on stdout through the root logger),
    and a console handler on transformers' logger (its own writes to a stream pytest does not capture per test), on
    the streams of the running test (`capfd`'s)."""
    root, library, chargpt = logging.getLogger(), logging.getLogger("transformers"), logging.getLogger("chargpt")
    to_stdout, to_stderr = logging.StreamHandler(sys.stdout), logging.StreamHandler(sys.stderr)
    level = chargpt.level
    root.addHandler(to_stdout)
    library.addHandler(to_stderr)
    chargpt.setLevel(logging.INFO)
    try:
        yield
    finally:
        root.removeHandler(to_stdout)
        library.removeHandler(to_stderr)
        chargpt.setLevel(level)


def tiny_lm_run(tmp_path, out: Path, **training) -> dict:
    """A few steps of a tiny causal LM, logging every step, finished with the final save."""
    tokenizer_dir = tmp_path / "tokenizer"
    pairs = write_pairs(tmp_path / "pairs.txt", n=24)
    if not tokenizer_dir.exists():
        tiny_tokenizer(tokenizer_dir, pairs.read_text(encoding="utf-8").splitlines())
    return train_causal_lm(
        LMModelArguments(tokenizer_name_or_path=str(tokenizer_dir), n_positions=64, n_embd=32, n_layer=2, n_head=2),
        DialogueDataArguments(train_files=[str(pairs)]),
        CleaningConfig(),
        LMTrainingArguments(
            output_dir=str(out),
            use_cpu=True,
            report_to="none",
            max_steps=2,
            logging_steps=1,
            eval_strategy="no",
            save_strategy="no",
            load_best_model_at_end=False,
            per_device_train_batch_size=8,
            seed=0,
            overwrite_output_dir=True,
            **training,
        ),
    )


def stage_with_library_warnings(tmp_path, out: Path, **training) -> None:
    tiny_lm_run(tmp_path, out, **training)
    hf_logging.get_logger("transformers.trainer").warning("a transformers warning")
    logging.getLogger("datasets.arrow_dataset").warning("a datasets warning")


def test_quiet_the_trainers_log_dicts_and_the_libraries_logs_go_to_run_log_not_the_terminal(tmp_path, capfd):
    out = tmp_path / "run"
    with terminal(), logs_to_run_folder(out) as log:
        stage_with_library_warnings(tmp_path, out, disable_tqdm=True)
    terminal_text = "".join(capfd.readouterr())
    text = (out / RUN_LOG).read_text(encoding="utf-8")
    for line in ("{'loss'", "'train_runtime'", "Causal LM with", "a transformers warning", "a datasets warning"):
        assert line in text and line not in terminal_text, line
    assert log.path == out / RUN_LOG and log.warnings >= 2
    # logged after the final save put the directory in place: the final directory holds the file still written to
    assert "Final model and results in" in text
    # the output-dir checks know the file as the run's own, not as a stranger's
    assert "run.log" in inventory(out)["ours"]


def test_verbose_brings_the_trainers_output_back_to_the_terminal_and_keeps_run_log(tmp_path, capfd):
    out = tmp_path / "run"
    with terminal(), logs_to_run_folder(out, verbose=True):
        stage_with_library_warnings(tmp_path, out, disable_tqdm=False)
    captured = capfd.readouterr()
    text = (out / RUN_LOG).read_text(encoding="utf-8")
    assert "'loss'" in captured.out and "Causal LM with" in captured.out and "a transformers warning" in captured.err
    assert "'loss'" in text and "a transformers warning" in text and "a datasets warning" in text


def test_the_terminal_is_as_before_once_the_stage_is_over(tmp_path, capfd):
    bars = hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    with terminal():
        with logs_to_run_folder(tmp_path / "run"):
            assert not hf_logging.is_progress_bar_enabled() and not datasets.is_progress_bar_enabled()
        assert (hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()) == bars
        print("printed")
        logging.getLogger("chargpt.test").info("logged")
        hf_logging.get_logger("transformers.trainer").warning("warned")
    captured = capfd.readouterr()
    assert "printed" in captured.out and "logged" in captured.out and "warned" in captured.err


def test_a_folder_holding_only_an_earlier_run_log_is_a_fresh_runs_and_each_run_appends_its_own(tmp_path):
    out = tmp_path / "run"
    for _ in range(2):
        with logs_to_run_folder(out):
            logging.getLogger("chargpt.test").warning("hello")
    check_output_dir(out, overwrite=False)  # refuses files that are not a CharGPT run's: not this one
    text = (out / RUN_LOG).read_text(encoding="utf-8")
    assert text.count("==== ") == 2 and text.count("hello") == 2


@pytest.mark.parametrize("how", ["argument", "RANK"])
def test_only_the_main_process_writes_run_log(tmp_path, monkeypatch, how):
    if how == "RANK":
        monkeypatch.setenv("RANK", "1")
    with logs_to_run_folder(tmp_path / "run", main_process=False if how == "argument" else None):
        logging.getLogger("chargpt.test").warning("hello")
    assert not (tmp_path / "run" / RUN_LOG).exists()


def test_a_file_in_place_of_the_folder_is_a_clear_error(tmp_path):
    (tmp_path / "a-file").write_text("")
    with pytest.raises(NotADirectoryError, match="a-file is a file"):
        with logs_to_run_folder(tmp_path / "a-file"):
            pass


# ----------------------------------------------------------------------------------------------------------------------
# The demo: one line per stage, --verbose


@pytest.fixture
def fake_stages(monkeypatch, tmp_path):
    """The demo's stages replaced by fakes that print a log dict as Trainer does and log a warning; records the
    `disable_tqdm` each Trainer would get."""
    seen = {"disable_tqdm": []}
    reviews = write_labelled_csv(tmp_path / "reviews.csv", n=8)

    def fake_training(*arguments, **_):
        training_args = arguments[3]
        seen["disable_tqdm"].append(training_args.disable_tqdm)
        print({"loss": 1.5, "epoch": 1.0})
        logging.getLogger("chargpt.training.fake").warning("a warning of the stage")
        return {
            "eval": {"eval_loss": 4.0, "eval_perplexity": 54.6},
            "test": {"test_perplexity": 60.0, "test_accuracy": 0.75, "test_macro_f1": 0.7},
            "samples": {"replies": []},
        }

    monkeypatch.setattr(demo, "build_vocabulary", lambda *_: (None, {"vocab_size": 99}))
    files, counts = dict.fromkeys(("train", "validation", "test"), reviews), {"train": 6, "validation": 1, "test": 1}
    monkeypatch.setattr(demo, "_split_reviews", lambda *_: (files, counts))
    monkeypatch.setattr(demo, "train_causal_lm", fake_training)
    monkeypatch.setattr(demo, "train_classifier", fake_training)
    return seen


STAGES = ["vocabulary", "reviews", "review language model", "chat model", "sentiment classifier"]


def test_the_demo_prints_one_line_per_stage_and_its_summary_the_rest_in_run_logs(tmp_path, capsys, fake_stages):
    out = tmp_path / "demo"
    load_script("run_demo.py").main(["--output_dir", str(out)])
    printed = capsys.readouterr().out
    lines = printed.splitlines()
    assert [line.split(":")[0] for line in lines[1:6]] == STAGES
    assert "best validation loss 4.000, perplexity 54.6" in lines[3] and "test perplexity 60.00" in lines[4]
    assert "test accuracy 0.7500, macro-F1 0.7000" in lines[5] and "a new head on the review language model" in lines[5]
    assert f"1 warning in {out / 'chat-model' / RUN_LOG}" in lines[4]
    assert "=== CharGPT demo ===" in printed and "wall time:" in printed
    assert "{'loss'" not in printed and "a warning of the stage" not in printed
    for folder in ("review-lm", "chat-model", "sentiment-classifier"):
        text = (out / folder / RUN_LOG).read_text(encoding="utf-8")
        assert "{'loss': 1.5" in text and "a warning of the stage" in text, folder
    assert fake_stages["disable_tqdm"] == [True, True, True]  # quiet: no progress bars to land in run.log


def test_demo_verbose_flag_brings_the_stages_output_back(tmp_path, capsys, fake_stages):
    load_script("run_demo.py").main(["--output_dir", str(tmp_path / "demo"), "--verbose"])
    printed = capsys.readouterr().out
    assert printed.count("{'loss': 1.5") == 3
    stages = printed.split("=== CharGPT demo ===")[0].splitlines()  # the summary repeats some stages' names
    assert [line.split(":")[0] for line in stages if line.split(":")[0] in STAGES] == STAGES
    assert "warning in" not in printed  # the warnings were on the terminal already
    assert fake_stages["disable_tqdm"] == [False, False, False]  # Trainer's progress bars as before
