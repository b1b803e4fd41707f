"""Nothing a user gave is lost or silently wrong on the training side (issue 14): build_vocab never changes a trained
model's vocabulary, a run refuses an output_dir it would spoil, results of an earlier run never mix with a new one,
the final directory appears in one step, `latest` resumes from the newest complete checkpoint, and the scripts end
on a user's error with one line and exit status 2."""

import json
import logging
import os
import subprocess

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers.trainer_utils import get_last_checkpoint, sort_checkpoints

from chargpt import CharGPTTokenizer
from chargpt.data import CleaningConfig, load_dialogues
from chargpt.training import (
    ClassifierModelArguments,
    ClassifierTrainingArguments,
    LabelledDataArguments,
    LMTrainingArguments,
    VocabArguments,
    build_vocabulary,
    check_output_dir,
    checkpoint_problem,
    clean_interrupted_saves,
    resolve_checkpoint,
    run_directory,
    run_script,
    train_classifier,
)
from chargpt.training.run_directory import install_final_directory, staging_directory

from ._helpers_training import python_script, script_env, tiny_tokenizer, write_pairs
from .test_training import CrashAt, FirstStep, lm_run


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    pairs = write_pairs(root / "pairs.txt", n=64)
    tokenizer_dir = tiny_tokenizer(root / "tokenizer", pairs.read_text(encoding="utf-8").splitlines())
    return root, pairs, tokenizer_dir


def fake_checkpoint(folder, step: int, complete: bool = True):
    """A checkpoint folder as Trainer leaves it: weights, then trainer_state.json last (absent when not complete)."""
    folder.mkdir(parents=True)
    save_file({"w": torch.zeros(2)}, str(folder / "model.safetensors"))
    if complete:
        (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    return folder


def snapshot(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def names(folder) -> set[str]:
    return {p.name for p in folder.iterdir()}


def dead_pid() -> int:
    """The id of a process that has ended (what a killed run's staging folder is named after)."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def leftovers(folder) -> list[str]:
    """Staging or backup folders of a final save beside `folder`."""
    return sorted(p.name for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.final-"))


def user_error(script: str, *args, cwd) -> str:
    """Run a script that must stop on a user's error: exit status 2, one `error:` line, no traceback."""
    result = subprocess.run(
        python_script(script, *args), cwd=cwd, env=script_env(), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, f"{script}: {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


# ----------------------------------------------------------------------------------------------------------------------
# A. build_vocab never changes a trained model's vocabulary; a tokenizer is replaced only when asked, in one step


def test_build_vocab_refuses_a_trained_model_folder_even_with_overwrite_and_leaves_it_alone(corpus, tmp_path):
    _, pairs, tokenizer_dir = corpus
    model_dir = tiny_tokenizer(tmp_path / "model", ["你好"])
    (model_dir / "config.json").write_text("{}")
    save_file({"w": torch.zeros(2)}, str(model_dir / "model.safetensors"))
    before = snapshot(model_dir)
    for overwrite in (False, True):
        args = VocabArguments(output_dir=str(model_dir), dialogue_files=[str(pairs)], overwrite_output_dir=overwrite)
        with pytest.raises(ValueError, match="vocabulary of a trained model must not change.*another --output_dir"):
            build_vocabulary(args, CleaningConfig())
    assert snapshot(model_dir) == before


def test_build_vocab_replaces_a_tokenizer_only_with_overwrite_and_keeps_the_users_files(corpus, tmp_path):
    _, pairs, _ = corpus
    out = tiny_tokenizer(tmp_path / "tok", ["你好"])
    (out / "notes.txt").write_text("mine")
    args = VocabArguments(output_dir=str(out), dialogue_files=[str(pairs)])
    with pytest.raises(ValueError, match="already holds a tokenizer.*--overwrite_output_dir"):
        build_vocabulary(args, CleaningConfig())
    assert len(CharGPTTokenizer.from_pretrained(out)) < 10  # untouched
    args.overwrite_output_dir = True
    tokenizer, report = build_vocabulary(args, CleaningConfig())
    assert len(CharGPTTokenizer.from_pretrained(out)) == len(tokenizer) == report["vocab_size"] > 10
    assert (out / "notes.txt").read_text() == "mine"
    build_vocabulary(VocabArguments(output_dir=str(tmp_path / "fresh"), dialogue_files=[str(pairs)]), CleaningConfig())
    assert names(out) == names(tmp_path / "fresh") | {"notes.txt"}  # and nothing of the old tokenizer's
    assert leftovers(out) == []


def test_a_stopped_vocabulary_save_leaves_the_old_tokenizer_whole_and_the_next_run_cleans_up(
    corpus, tmp_path, monkeypatch
):
    _, pairs, _ = corpus
    out = tiny_tokenizer(tmp_path / "tok", ["你好"])
    before = snapshot(out)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # stopped just before the new directory is put in place

    monkeypatch.setattr(run_directory, "exchange_paths", killed)
    args = VocabArguments(output_dir=str(out), dialogue_files=[str(pairs)], overwrite_output_dir=True)
    with pytest.raises(KeyboardInterrupt):
        build_vocabulary(args, CleaningConfig())
    assert snapshot(out) == before and len(leftovers(out)) == 1
    monkeypatch.undo()
    build_vocabulary(args, CleaningConfig())
    assert leftovers(out) == [] and len(CharGPTTokenizer.from_pretrained(out)) > 10


def test_build_vocab_on_an_empty_file_is_an_error_naming_it(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    args = VocabArguments(output_dir=str(tmp_path / "tok"), dialogue_files=[str(empty)])
    with pytest.raises(ValueError, match=f"No text to build a vocabulary from in {empty}"):
        build_vocabulary(args, CleaningConfig())
    assert not (tmp_path / "tok").exists()


# ----------------------------------------------------------------------------------------------------------------------
# B. A run refuses, before any work, an output_dir holding a finished model or the user's files


def finished_model_with_notes(folder):
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "chargpt"}')
    save_file({"w": torch.zeros(2)}, str(folder / "model.safetensors"))
    (folder / "notes.txt").write_text("my notes")
    return snapshot(folder)


REFUSAL = (
    r"already holds a finished model \(config.json, model.safetensors\); files that are not a CharGPT run's "
    r"\(notes.txt\).*another --output_dir.*--overwrite_output_dir"
)


def test_lm_run_refuses_a_folder_with_a_finished_model_and_notes_before_reading_anything(corpus, tmp_path):
    _, _, tokenizer_dir = corpus
    before = finished_model_with_notes(tmp_path / "out")
    with pytest.raises(ValueError, match=REFUSAL):
        lm_run(tmp_path, "out", tokenizer_dir, tmp_path / "no-such-data.txt")  # save_strategy "no", as reported
    assert snapshot(tmp_path / "out") == before


def test_classifier_run_refuses_a_folder_with_a_finished_model_and_notes_before_loading_anything(tmp_path):
    before = finished_model_with_notes(tmp_path / "clf")
    with pytest.raises(ValueError, match=REFUSAL):
        train_classifier(
            ClassifierModelArguments(model_name_or_path=str(tmp_path / "no-such-model")),
            LabelledDataArguments(train_files=[str(tmp_path / "no-such-data.csv")]),
            CleaningConfig(),
            ClassifierTrainingArguments(output_dir=str(tmp_path / "clf"), use_cpu=True, report_to="none"),
        )
    assert snapshot(tmp_path / "clf") == before


def test_output_dir_check_allows_our_own_files_and_resuming_and_names_checkpoints(tmp_path):
    (tmp_path / "runs").mkdir()
    for name in ("test_results.json", "loss.png", ".all_results.json.123.tmp"):
        (tmp_path / name).write_text("x")
    check_output_dir(tmp_path, overwrite=False)  # only files our runs write, no model: a new run may go ahead
    fake_checkpoint(tmp_path / "checkpoint-4", 4)
    with pytest.raises(ValueError, match=r"holds checkpoints \(checkpoint-4/\).*--resume_from_checkpoint latest"):
        check_output_dir(tmp_path, overwrite=False)
    check_output_dir(tmp_path, overwrite=False, resuming_here=True)
    check_output_dir(tmp_path, overwrite=True)
    with pytest.raises(NotADirectoryError, match="is a file"):
        check_output_dir(tmp_path / "loss.png", overwrite=True)


# ----------------------------------------------------------------------------------------------------------------------
# C and D. A rerun leaves exactly its own files (plus checkpoints and the user's), put in place in one step


@pytest.mark.slow
def test_rerun_with_overwrite_keeps_only_the_new_runs_files_its_checkpoints_and_the_users_notes(corpus, tmp_path):
    _, pairs, tokenizer_dir = corpus
    first = lm_run(tmp_path, "lm", tokenizer_dir, pairs, save_strategy="steps", save_steps=1, max_steps=3)
    out = tmp_path / "lm"
    assert "test" in first and (out / "test_results.json").is_file()
    (out / "notes.txt").write_text("my notes")
    (out / "data").mkdir()
    (out / "data" / "raw.txt").write_text("raw")
    rerun = dict(save_strategy="steps", save_steps=2, data={"test_split_size": 0})
    second = lm_run(tmp_path, "lm", tokenizer_dir, pairs, overwrite_output_dir=True, **rerun)
    assert "test" not in second and not (out / "test_results.json").exists()
    lm_run(tmp_path, "fresh", tokenizer_dir, pairs, **rerun)
    # exactly what the same run writes into an empty folder (its checkpoint-2 and -4, not the first run's
    # checkpoint-3 or test_results.json), plus the user's files
    assert names(out) == names(tmp_path / "fresh") | {"notes.txt", "data"}
    assert {"checkpoint-2", "checkpoint-4", "model.safetensors", "all_results.json"} <= names(out)
    assert (out / "notes.txt").read_text() == "my notes" and (out / "data" / "raw.txt").read_text() == "raw"
    assert not any(k.startswith("test_") for k in json.loads((out / "all_results.json").read_text()))
    assert json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())["global_step"] == 4
    final, checkpoint = (load_file(str(folder / "model.safetensors")) for folder in (out, out / "checkpoint-4"))
    assert all(torch.equal(final[k], checkpoint[k]) for k in final)  # the new run's checkpoint
    assert leftovers(out) == []


def test_final_directory_replaces_ours_keeps_checkpoints_logs_and_user_files_and_a_clashing_user_file(
    tmp_path, monkeypatch
):
    out = tmp_path / "run"
    out.mkdir()
    for name in ("config.json", "test_results.json"):
        (out / name).write_text("old")
    for name in ("notes.txt", "README.md"):
        (out / name).write_text("mine")
    fake_checkpoint(out / "checkpoint-2", 2)
    (out / "runs" / "a").mkdir(parents=True)
    (out / "runs" / "a" / "events").write_text("log")
    exchange, swappable = run_directory.exchange_paths, run_directory._swappable
    # one renameat2; two renames where the system has none; files moved one by one where the parent is not writable
    for mode in ("exchange", "renames", "in place"):
        monkeypatch.setattr(run_directory, "exchange_paths", exchange if mode == "exchange" else lambda a, b: False)
        monkeypatch.setattr(run_directory, "_swappable", swappable if mode != "in place" else lambda out: False)
        staging = staging_directory(out, 1234)
        expected = out / ".final-tmp-1234" if mode == "in place" else tmp_path / ".run.final-tmp-1234"
        assert staging == expected
        staging.mkdir()
        for name in ("config.json", "README.md"):
            (staging / name).write_text("new")
        install_final_directory(staging, out)
        assert snapshot(out)["config.json"] == b"new" and snapshot(out)["README.md"] == b"new"
        assert "test_results.json" not in snapshot(out)  # an earlier run's result never sits beside a new model
        assert (out / "notes.txt").read_text() == "mine" and (out / "README.md.previous").read_text() == "mine"
        assert (out / "runs" / "a" / "events").read_text() == "log"
        assert checkpoint_problem(out / "checkpoint-2") is None
        assert leftovers(out) == [] and not staging.exists()
        (out / "README.md.previous").rename(out / "README.md")
        (out / "test_results.json").write_text("old")


def test_folders_left_by_a_stopped_final_save_are_cleaned_or_put_in_place(tmp_path, caplog):
    out, other, pid = tmp_path / "run", tmp_path / "other", dead_pid()
    # stopped while staging: the old directory is whole, the staging folder goes
    out.mkdir()
    (out / "config.json").write_text("old")
    (tmp_path / f".run.final-tmp-{pid}").mkdir()
    # stopped between the two renames: output_dir is missing, the complete staging folder takes its place
    (tmp_path / f".other.final-tmp-{pid}").mkdir()
    (tmp_path / f".other.final-tmp-{pid}" / "config.json").write_text("new")
    (tmp_path / f".other.final-old-{pid}").mkdir()
    # a staging folder of a process that still runs is only reported
    live = tmp_path / f".run.final-tmp-{os.getppid()}"
    live.mkdir()
    with caplog.at_level(logging.WARNING, logger="chargpt"):
        clean_interrupted_saves(out)
        clean_interrupted_saves(other)
    assert (out / "config.json").read_text() == "old" and leftovers(out) == [live.name]
    assert (other / "config.json").read_text() == "new" and leftovers(other) == []
    assert "left by a final save that was stopped" in caplog.text and "which still runs" in caplog.text


# ----------------------------------------------------------------------------------------------------------------------
# E. `latest` is the newest complete checkpoint


def test_checkpoint_is_complete_only_with_a_whole_trainer_state_and_weights(tmp_path):
    complete = fake_checkpoint(tmp_path / "checkpoint-1", 1)
    assert checkpoint_problem(complete) is None
    (tmp_path / "checkpoint-2").mkdir()
    assert "no trainer_state.json" in checkpoint_problem(tmp_path / "checkpoint-2")
    cut = fake_checkpoint(tmp_path / "checkpoint-3", 3)
    (cut / "trainer_state.json").write_text('{"global_st')
    assert "cut short" in checkpoint_problem(cut)
    bare = fake_checkpoint(tmp_path / "checkpoint-4", 4)
    (bare / "model.safetensors").unlink()
    assert "no model weights" in checkpoint_problem(bare)


def test_latest_skips_incomplete_checkpoints_and_sets_them_aside_where_trainer_does_not_look(tmp_path, caplog):
    fake_checkpoint(tmp_path / "checkpoint-10", 10)
    fake_checkpoint(tmp_path / "checkpoint-20", 20, complete=False)
    (tmp_path / "checkpoint-30").mkdir()
    args = LMTrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", resume_from_checkpoint="latest"
    )
    with caplog.at_level(logging.WARNING, logger="chargpt"):
        assert resolve_checkpoint(args) == str(tmp_path / "checkpoint-10")
    assert "checkpoint-20 is incomplete" in caplog.text and "checkpoint-30 is incomplete" in caplog.text
    assert (tmp_path / "incomplete-checkpoint-20" / "model.safetensors").is_file()  # moved aside, not deleted
    assert (tmp_path / "incomplete-checkpoint-30").is_dir()
    assert get_last_checkpoint(str(tmp_path)) == str(tmp_path / "checkpoint-10")
    assert sort_checkpoints(str(tmp_path)) == [str(tmp_path / "checkpoint-10")]  # what rotation counts and deletes
    args.resume_from_checkpoint = str(tmp_path / "incomplete-checkpoint-20")
    with pytest.raises(ValueError, match=r"incomplete checkpoint \(no trainer_state.json.*resume from .*checkpoint-10"):
        resolve_checkpoint(args)


def test_latest_after_a_kill_during_the_first_checkpoint_starts_afresh_instead_of_failing_every_restart(tmp_path):
    (tmp_path / "checkpoint-5").mkdir()
    args = LMTrainingArguments(
        output_dir=str(tmp_path), use_cpu=True, report_to="none", resume_from_checkpoint="latest"
    )
    for _ in range(2):  # a job script restarting with the same flags
        assert resolve_checkpoint(args) is None
    assert names(tmp_path) == {"incomplete-checkpoint-5"}


@pytest.mark.slow
def test_latest_after_a_kill_mid_checkpoint_resumes_from_the_previous_one_and_ends_like_an_uninterrupted_run(
    corpus, tmp_path
):
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
    out = tmp_path / "run"
    # As a kill leaves them: checkpoint-4 without its trainer_state.json, checkpoint-6 just created.
    (out / "checkpoint-4" / "trainer_state.json").unlink()
    (out / "checkpoint-6").mkdir()
    first = FirstStep()
    lm_run(tmp_path, "run", tokenizer_dir, pairs, callbacks=[first], resume_from_checkpoint="latest", **run)
    assert first.first == 3  # resumed from checkpoint-2
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 8
    assert sorted(p.name for p in out.glob("*checkpoint-*")) == [
        "checkpoint-6",
        "checkpoint-8",
        "incomplete-checkpoint-4",
        "incomplete-checkpoint-6",
    ]
    lm_run(tmp_path, "straight", tokenizer_dir, pairs, **run)
    resumed, straight = (load_file(str(folder / "model.safetensors")) for folder in (out, tmp_path / "straight"))
    assert max((resumed[k] - straight[k]).abs().max().item() for k in straight) < 1e-6


# ----------------------------------------------------------------------------------------------------------------------
# F. Clear one-line errors, exit status 2 for a user's mistake, 130 for Ctrl-C


def test_a_folder_given_as_data_file_is_named_as_a_folder(tmp_path):
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "train.txt").write_text("你好\t好\n")
    with pytest.raises(IsADirectoryError, match=r"corpus is a directory \(it holds train.txt\); pass the data file"):
        load_dialogues([str(tmp_path / "corpus")])


def test_empty_training_data_is_an_error_naming_the_file(corpus, tmp_path):
    _, _, tokenizer_dir = corpus
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match=f"{empty}: no rows left after reading and cleaning"):
        lm_run(tmp_path, "out", tokenizer_dir, empty)


def test_a_tokenizer_path_without_a_vocabulary_is_an_error_not_a_five_token_model(corpus, tmp_path):
    _, pairs, _ = corpus
    (tmp_path / "wrong-folder").mkdir()
    with pytest.raises(FileNotFoundError, match="wrong-folder holds no vocabulary"):
        lm_run(tmp_path, "out", tmp_path / "wrong-folder", pairs)
    assert not (tmp_path / "out").exists()


def test_run_script_turns_user_errors_into_one_line_and_status_2_ctrl_c_into_130_and_keeps_bug_tracebacks(capsys):
    def fails(error):
        def main(argv):
            raise error

        return main

    errors = (ValueError("bad\n  value"), FileNotFoundError("x.txt"), IsADirectoryError("d"), NotADirectoryError("f"))
    for error in errors:
        with pytest.raises(SystemExit) as exit_info:
            run_script(fails(error))
        assert exit_info.value.code == 2
        assert capsys.readouterr().err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_info:
        run_script(fails(KeyboardInterrupt()))
    assert exit_info.value.code == 130
    with pytest.raises(RuntimeError, match="a bug"):
        run_script(fails(RuntimeError("a bug")))


def test_run_script_shuts_the_process_group_down_after_success_and_after_an_error(tmp_path):
    """A process group left to the interpreter's exit can abort a finished gloo run (seen in CI: exit -6 after the
    model was written); run_script destroys it either way."""
    import torch.distributed as dist

    def main_ok(argv):
        assert dist.is_initialized()

    def main_bad(argv):
        raise ValueError("bad flag")

    for main in (main_ok, main_bad):
        store = dist.FileStore(str(tmp_path / f"store-{main.__name__}"), 1)
        dist.init_process_group("gloo", store=store, rank=0, world_size=1)
        try:
            run_script(main)
        except SystemExit as exit_info:
            assert exit_info.code == 2
        assert not dist.is_initialized(), main.__name__


def script_cases(root, tokenizer_dir) -> dict:
    """For each script, the arguments of a user's mistake (as a reviewer made them) and what its error line says."""
    model = tiny_tokenizer(root / "model", ["你好"])
    (model / "config.json").write_text("{}")
    finished_model_with_notes(root / "classifier")
    (root / "empty.txt").write_text("")
    (root / "a-file").write_text("")
    return {
        "build_vocab.py": (["--output_dir", "model", "--dialogue_files", "empty.txt"], "model holds a trained model"),
        "train_lm.py": (
            ["--tokenizer_name_or_path", tokenizer_dir, "--train_files", "empty.txt"]
            + ["--output_dir", "lm", "--use_cpu"],
            "empty.txt: no rows left after reading and cleaning",
        ),
        "train_classifier.py": (
            ["--model_name_or_path", "model", "--train_files", "x.csv", "--output_dir", "classifier", "--use_cpu"],
            "classifier already holds a finished model (config.json, model.safetensors); files that are not",
        ),
        "run_demo.py": (["--output_dir", "a-file"], "a-file is a file"),
    }


@pytest.mark.slow
@pytest.mark.parametrize("script", ["build_vocab.py", "train_lm.py", "train_classifier.py", "run_demo.py"])
def test_every_script_exits_2_with_one_error_line_naming_the_file_on_a_users_mistake(corpus, tmp_path, script):
    _, _, tokenizer_dir = corpus
    args, expected = script_cases(tmp_path, tokenizer_dir)[script]
    before = snapshot(tmp_path)
    line = user_error(script, *args, cwd=tmp_path)
    assert expected in line
    assert snapshot(tmp_path) == before and not (tmp_path / "lm").exists()


@pytest.mark.slow
def test_a_missing_model_folder_is_one_line_naming_it_not_a_hub_id_error(tmp_path):
    line = user_error(
        "train_classifier.py",
        "--model_name_or_path",
        "./no/such/model",
        "--train_files",
        "x.csv",
        "--output_dir",
        "out",
        "--use_cpu",
        cwd=tmp_path,
    )
    assert "--model_name_or_path ./no/such/model: no such folder" in line
