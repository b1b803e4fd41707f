"""Training on a streamed corpus (`--streaming`): the arguments a stream needs, each process's shard, a resumed run
that continues at the right position of the stream, and two gloo processes against one."""

import itertools
import json
from collections import Counter

import pytest
from safetensors.torch import load_file
from transformers import TrainerCallback

from chargpt import CharGPTTokenizerFast
from chargpt.data import CleaningConfig, iter_dialogues
from chargpt.training import DialogueDataArguments, LMTrainingArguments
from chargpt.training.inputs import _head_counts, streamed_train_dataset
from chargpt.training.streaming import check_streaming_arguments

from ._helpers_training import (
    ACCELERATE_CONFIGS,
    TINY_MODEL_FLAGS,
    accelerate_script,
    free_port,
    python_script,
    run_command,
    tiny_tokenizer,
    write_pairs,
)
from .test_training import CrashAt, lm_run


STREAM = {"streaming": True, "validation_split_size": 0, "test_split_size": 0}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    pairs = write_pairs(root / "pairs.txt", n=64)
    more = root / "more.txt"
    more.write_text("".join(f"第{i}句\t回答{i}\n" for i in range(30)), encoding="utf-8")  # unlike any pair
    lines = pairs.read_text(encoding="utf-8").splitlines() + more.read_text(encoding="utf-8").splitlines()
    return root, pairs, more, tiny_tokenizer(root / "tok", lines)


def test_streaming_needs_max_steps_and_step_based_evaluation_and_saving(tmp_path):
    def args(**kw):
        return LMTrainingArguments(output_dir=str(tmp_path), use_cpu=True, report_to="none", **kw)

    with pytest.raises(ValueError, match="needs --max_steps"):
        check_streaming_arguments(args(eval_strategy="no", save_strategy="no", load_best_model_at_end=False))
    with pytest.raises(ValueError, match="--eval_strategy epoch would never eval"):
        check_streaming_arguments(args(max_steps=5, save_strategy="no", load_best_model_at_end=False))
    check_streaming_arguments(args(max_steps=5, eval_strategy="steps", save_strategy="steps", eval_steps=5))


def test_streamed_held_out_splits_must_be_counts():
    data = DialogueDataArguments(train_files=["x"], streaming=True, validation_split_size=0.05)
    with pytest.raises(ValueError, match="must be a number of dialogues"):
        _head_counts(data)
    assert _head_counts(DialogueDataArguments(train_files=["x"], validation_split_size=20, test_split_size=0)) == (
        20,
        0,
    )
    assert _head_counts(DialogueDataArguments(train_files=["x"], validation_files=["v"], test_split_size=3)) == (0, 3)


@pytest.mark.parametrize("files", [["pairs.txt"], ["pairs.txt", "more.txt"]], ids=["one-file", "two-files"])
def test_each_process_streams_a_disjoint_shard_and_together_they_cover_the_corpus(corpus, files):
    # One file: every second dialogue each; two files: one file each (split_dataset_by_node gives whole shards).
    root, _, _, tok_dir = corpus
    tokenizer = CharGPTTokenizerFast.from_pretrained(tok_dir)
    data = DialogueDataArguments(train_files=[str(root / f) for f in files], **STREAM)

    def sequences(rank, world):
        stream, _ = streamed_train_dataset(data, CleaningConfig(), tokenizer, 64, rank, world, repeat=False)
        return [tuple(row["input_ids"]) for row in stream]

    whole = sequences(0, 1)
    shards = [sequences(rank, 2) for rank in (0, 1)]
    assert all(shards) and not set(shards[0]) & set(shards[1])
    assert Counter(shards[0] + shards[1]) == Counter(whole) and len(whole) == {1: 64, 2: 94}[len(files)]


def test_held_out_head_dialogues_reach_no_process_even_when_each_reads_its_own_files(corpus):
    root, _, _, tok_dir = corpus
    tokenizer = CharGPTTokenizerFast.from_pretrained(tok_dir)
    data = DialogueDataArguments(train_files=[str(root / "pairs.txt"), str(root / "more.txt")], **STREAM)
    stream, _ = streamed_train_dataset(data, CleaningConfig(), tokenizer, 64, repeat=False)
    everything = [tuple(row["input_ids"]) for row in stream]
    head = list(itertools.islice(iter_dialogues(data.train_files), 2))  # what --validation_split_size 2 holds out
    shards = []
    for rank in (0, 1):  # two files, two processes: one file each
        stream, _ = streamed_train_dataset(data, CleaningConfig(), tokenizer, 64, rank, 2, held_out=head, repeat=False)
        shards += [tuple(row["input_ids"]) for row in stream]
    assert Counter(shards) == Counter(everything[2:])  # the stream's first two dialogues are the held-out ones


class TrainingBatches(TrainerCallback):
    """Records the input ids of every training forward pass, in order."""

    def __init__(self):
        self.batches = []

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        def record(module, inputs, kwargs):
            if module.training:
                self.batches.append(kwargs["input_ids"].tolist())

        model.register_forward_pre_hook(record, with_kwargs=True)


@pytest.mark.slow
def test_an_interrupted_streaming_run_resumes_at_the_right_position_of_the_stream(corpus, tmp_path):
    # 64 dialogues, 8 a batch: the stream repeats after 8 steps, so the checkpoint (step 10) lies in the second pass.
    root, pairs, _, tok_dir = corpus
    run = dict(max_steps=12, save_strategy="steps", save_steps=2, data=STREAM)
    straight = TrainingBatches()
    lm_run(tmp_path, "straight", tok_dir, pairs, callbacks=[straight], **run)
    first = TrainingBatches()
    with pytest.raises(RuntimeError, match="simulated crash"):
        lm_run(tmp_path, "run", tok_dir, pairs, callbacks=[first, CrashAt(11)], **run)
    resumed = TrainingBatches()
    lm_run(tmp_path, "run", tok_dir, pairs, callbacks=[resumed], resume_from_checkpoint="latest", **run)
    assert len(straight.batches) == 12 and straight.batches[8] == straight.batches[0]  # the second pass
    # Proven: the same batches in the same order, the resumed run starting right after checkpoint-10 ...
    assert first.batches == straight.batches[:11] and resumed.batches == straight.batches[10:]
    # ... and the same final weights (model, optimizer, scheduler and dropout RNG restored).
    a, b = (load_file(str(tmp_path / name / "model.safetensors")) for name in ("run", "straight"))
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    summary = json.loads((tmp_path / "run" / "data_summary.json").read_text())
    assert summary["streaming"] is True and summary["train"]["streaming"] is True


def lm_flags(output_dir, per_device_batch):
    return [
        "--tokenizer_name_or_path", "tok", "--train_files", "pairs.txt", *TINY_MODEL_FLAGS, "--dropout", "0",
        "--streaming", "--max_steps", 6, "--per_device_train_batch_size", per_device_batch, "--seed", "0",
        "--validation_split_size", "0", "--test_split_size", "0", "--eval_strategy", "no",
        "--load_best_model_at_end", "false", "--save_strategy", "no", "--report_to", "none", "--logging_steps", "1",
        # AdamW: the sharding, not the optimizer, is under test, and Muon's orthogonalisation magnifies the last-bit
        # differences of an all-reduce beyond the tight tolerance below (tests/test_distributed.py checks Muon)
        "--optim", "adamw_torch_fused", "--output_dir", output_dir,
    ]  # fmt: skip


@pytest.mark.slow
def test_two_gloo_processes_streaming_their_shards_train_like_one_process_on_the_whole_stream(corpus):
    # Process k keeps dialogues k, k+2, ...: each step's two batches of 4 are the one process's batch of 8, so the
    # parameters match only if the shards are disjoint, cover the stream and stay aligned step after step.
    root = corpus[0]
    run_command(python_script("train_lm.py", *lm_flags("one", 8), "--use_cpu"), cwd=root)
    launch = ["--config_file", ACCELERATE_CONFIGS / "cpu_2proc.yaml", "--main_process_port", free_port()]
    run_command(accelerate_script(launch, "train_lm.py", *lm_flags("two", 4)), cwd=root)
    one, two = (load_file(str(root / name / "model.safetensors")) for name in ("one", "two"))
    assert max((one[k] - two[k]).abs().max().item() for k in one) < 1e-5
    losses = [
        [e["loss"] for e in json.loads((root / name / "trainer_state.json").read_text())["log_history"] if "loss" in e]
        for name in ("one", "two")
    ]
    assert losses[0] == pytest.approx(losses[1], abs=1e-5) and len(losses[0]) == 6
