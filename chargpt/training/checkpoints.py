"""The checkpoint a run resumes from: which `checkpoint-STEP/` folders are complete, setting aside the ones a killed
run left half written, and `resolve_checkpoint`, which also refuses an output_dir a new run must not write into."""

import json
import re
import shutil
from pathlib import Path

from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.utils import logging as hf_logging

from .arguments import CharGPTTrainingArguments
from .run_directory import RUN_LOGS, check_output_dir, clean_interrupted_saves


logger = hf_logging.get_logger(__name__)

# What `Trainer.get_last_checkpoint` and checkpoint rotation recognise (rotation globs `checkpoint-*`, so a folder
# set aside must not start with that prefix, or it would be counted, and maybe deleted, as a checkpoint).
_CHECKPOINT = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
INCOMPLETE_PREFIX = "incomplete-"
_WEIGHTS = ("*.safetensors", "pytorch_model*.bin", "adapter_model.bin", "pytorch_model_fsdp_*", "global_step*")
_RESUME_LATEST = ("latest", "last", "auto", "true", "True")
_NO_RESUME = (None, "", "false", "False", "no")


def checkpoint_problem(folder) -> str | None:
    """Why `folder` is not a complete checkpoint, or None when it is.

    Complete means: `trainer_state.json` parses as a JSON object with `global_step`, and model weights are there.
    `Trainer._save_checkpoint` writes straight into `checkpoint-STEP/` (no staging folder) in this order: the model
    (config, weights, tokenizer), optimizer, scheduler, scaler and RNG state, and `trainer_state.json` last, with a
    plain open-and-write. A kill at any point before the end therefore leaves that file missing or cut short."""
    folder = Path(folder)
    state = folder / "trainer_state.json"
    if not state.is_file():
        return "no trainer_state.json (Trainer writes it last)"
    try:
        data = json.loads(state.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "trainer_state.json is cut short"
    if not isinstance(data, dict) or "global_step" not in data:
        return "trainer_state.json has no global_step"
    if not any(next(folder.glob(pattern), None) for pattern in _WEIGHTS):
        return "no model weights"
    return None


def _checkpoints(output_dir: Path) -> list[Path]:
    """The `checkpoint-STEP` folders of `output_dir`, oldest step first."""
    if not output_dir.is_dir():
        return []
    found = [p for p in output_dir.iterdir() if p.is_dir() and _CHECKPOINT.match(p.name)]
    return sorted(found, key=lambda p: int(_CHECKPOINT.match(p.name).group(1)))


def latest_complete_checkpoint(output_dir) -> str | None:
    """The newest complete `checkpoint-STEP` in `output_dir` (see `checkpoint_problem`), or None."""
    complete = [p for p in _checkpoints(Path(output_dir)) if checkpoint_problem(p) is None]
    return str(complete[-1]) if complete else None


def set_aside_incomplete_checkpoints(output_dir) -> list[Path]:
    """Rename every incomplete `checkpoint-STEP` to `incomplete-checkpoint-STEP` (nothing is deleted), with a warning
    naming each and why; returns the new paths. Neither `latest` nor Trainer's rotation then sees them."""
    moved = []
    for folder in _checkpoints(Path(output_dir)):
        problem = checkpoint_problem(folder)
        if problem is None:
            continue
        target, n = folder.with_name(INCOMPLETE_PREFIX + folder.name), 1
        while target.exists():
            n += 1
            target = folder.with_name(f"{INCOMPLETE_PREFIX}{folder.name}-{n}")
        folder.rename(target)
        moved.append(target)
        logger.warning(f"{folder} is incomplete ({problem}): a run was stopped while saving it. Moved to {target}.")
    return moved


def resolve_checkpoint(training_args: CharGPTTrainingArguments) -> str | None:
    """The checkpoint to resume from, after checking that the run may write into output_dir.

    `--resume_from_checkpoint latest` takes the newest complete `checkpoint-*` in output_dir (incomplete ones are
    renamed `incomplete-checkpoint-*` and reported) or starts fresh when there is none; a path resumes from it, if
    complete. A fresh run is refused where output_dir holds checkpoints, a finished model or files that are not a
    CharGPT run's, unless `--overwrite_output_dir` (earlier checkpoints and TensorBoard logs are then deleted; other
    files are kept). Folders left by a final save that was killed are cleaned first. The main process acts on the
    directory before the others look at it."""
    out = Path(training_args.output_dir)
    main = training_args.process_index == 0
    wanted = training_args.resume_from_checkpoint
    with training_args.main_process_first(local=False, desc="checking output_dir"):
        if main:
            clean_interrupted_saves(out)
        if wanted in _NO_RESUME:
            checkpoint = None
        elif wanted in _RESUME_LATEST:
            if main:
                set_aside_incomplete_checkpoints(out)
            checkpoint = latest_complete_checkpoint(out)
            if checkpoint is None:
                logger.warning(f"--resume_from_checkpoint {wanted}: no complete checkpoint in {out}; starting afresh.")
            else:
                logger.info(f"Resuming from {checkpoint}.")
        else:
            checkpoint = _checked_path(wanted)
        inside = checkpoint is not None and Path(checkpoint).resolve().parent == out.resolve()
        check_output_dir(out, training_args.overwrite_output_dir, resuming_here=inside)
        if checkpoint is None and training_args.overwrite_output_dir and main:
            _delete_earlier_run_state(out)
    return checkpoint


def _checked_path(wanted: str) -> str:
    if not Path(wanted).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {wanted}: no such checkpoint directory.")
    problem = checkpoint_problem(wanted)
    if problem is not None:
        latest = latest_complete_checkpoint(Path(wanted).parent)
        hint = f"resume from {latest}" if latest else "start afresh"
        raise ValueError(f"--resume_from_checkpoint {wanted}: incomplete checkpoint ({problem}); {hint} instead.")
    return wanted


def _delete_earlier_run_state(out: Path) -> None:
    """--overwrite_output_dir on a fresh start: the earlier run's checkpoints and TensorBoard logs go now."""
    if not out.is_dir():
        return
    old = [p for p in out.iterdir() if p.is_dir() and (p.name == RUN_LOGS or _CHECKPOINT.match(p.name))]
    old += [p for p in out.glob(f"{INCOMPLETE_PREFIX}{PREFIX_CHECKPOINT_DIR}-*") if p.is_dir()]
    for folder in old:
        shutil.rmtree(folder, ignore_errors=True)
    if old:
        logger.warning(
            f"--overwrite_output_dir: deleted the earlier run's {', '.join(sorted(p.name for p in old))} in {out}."
        )


__all__ = [
    "checkpoint_problem",
    "latest_complete_checkpoint",
    "set_aside_incomplete_checkpoints",
    "resolve_checkpoint",
]
