"""A training run whose weights turn NaN stops at the next training log with `TrainingDiverged`, a one-line error
that names the step, the weight and the fix, instead of training and evaluating NaN weights to the end (found when the
Llama peer's classifier diverged on the first GPU run and trained 1,248 NaN steps before the evaluation refused it)."""

import pytest
import torch
from transformers import TrainerCallback

from chargpt.data import CleaningConfig
from chargpt.training import (
    DialogueDataArguments,
    LMModelArguments,
    LMTrainingArguments,
    TrainingDiverged,
    train_causal_lm,
)

from ._helpers_training import TINY_MODEL_FLAGS, tiny_tokenizer, write_pairs


class _PoisonAt(TrainerCallback):
    """Puts a NaN into one weight at the end of step `step` (what a diverging optimizer step does)."""

    def __init__(self, step: int):
        self.step = step
        self.steps_seen = 0

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.steps_seen = state.global_step
        if state.global_step == self.step:
            with torch.no_grad():
                next(model.parameters()).view(-1)[0] = float("nan")


def _train(tmp_path, callbacks, max_steps: int = 8):
    pairs = write_pairs(tmp_path / "pairs.txt", n=40)
    tokenizer_dir = tiny_tokenizer(tmp_path / "tok", pairs.read_text(encoding="utf-8").splitlines())
    size = dict(zip(TINY_MODEL_FLAGS[::2], TINY_MODEL_FLAGS[1::2]))
    return train_causal_lm(
        LMModelArguments(tokenizer_name_or_path=str(tokenizer_dir), **{k[2:]: int(v) for k, v in size.items()}),
        DialogueDataArguments(train_files=[str(pairs)], validation_split_size=0, test_split_size=0),
        CleaningConfig(),
        LMTrainingArguments(
            output_dir=str(tmp_path / "out"),
            use_cpu=True,
            report_to="none",
            max_steps=max_steps,
            logging_steps=2,
            eval_strategy="no",
            save_strategy="no",
            load_best_model_at_end=False,
            per_device_train_batch_size=8,
        ),
        callbacks=callbacks,
    )


def test_nan_weights_stop_training_at_the_next_log_naming_the_step_the_weight_and_the_fix(tmp_path):
    poison = _PoisonAt(step=3)
    with pytest.raises(TrainingDiverged) as error:
        _train(tmp_path, [poison])
    message = str(error.value)
    assert message.startswith("Training diverged by step 4: weight transformer.")  # the first log after step 3
    assert "--learning_rate" in message and "fp32" in message and str(tmp_path / "out") in message
    assert poison.steps_seen == 4  # stopped there, not after all 8 steps
    assert isinstance(error.value, ValueError)  # the scripts print it as one `error:` line, exit status 2


def test_a_finite_run_is_not_stopped(tmp_path):
    results = _train(tmp_path, [_PoisonAt(step=-1)], max_steps=4)
    assert results["train"]["epoch"] > 0
