"""Run set-up shared by the scripts and pipelines: logging as transformers' examples do it, CPU processes under a
distributed launcher without a GPU, the precision training really uses, and the checkpoint a run resumes from."""

import logging
import os
import shutil
import sys
from pathlib import Path

import torch
from transformers import TrainingArguments
from transformers.trainer_utils import get_last_checkpoint
from transformers.utils import logging as hf_logging

from .arguments import CharGPTTrainingArguments


logger = hf_logging.get_logger(__name__)


def setup_logging(training_args: TrainingArguments | None = None) -> None:
    """Logs as transformers' examples do: INFO on the main process (warnings elsewhere), to stdout."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    level = logging.INFO
    if training_args is not None and not training_args.should_log:
        level = logging.WARNING
    logging.getLogger("chargpt").setLevel(level)
    import datasets

    datasets.utils.logging.set_verbosity(logging.WARNING)
    hf_logging.set_verbosity(training_args.get_process_log_level() if training_args is not None else logging.WARNING)


def prepare_cpu_distributed_env() -> bool:
    """Under a distributed launcher (`accelerate launch --multi_gpu`, `torchrun`) on a machine without a GPU, tell
    accelerate to use CPU processes with gloo: without this `Trainer` runs each process alone on CPU. Must run before
    `TrainingArguments` are built. Returns whether it did."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not torch.cuda.is_available():
        if os.environ.get("ACCELERATE_USE_CPU", "").lower() not in ("1", "true", "yes"):
            os.environ["ACCELERATE_USE_CPU"] = "true"
            logger.info("Distributed launch without a GPU: training on CPU processes (gloo).")
        return True
    return False


def check_precision(training_args: TrainingArguments) -> str:
    """The precision training will really use, with a warning where a flag has no effect (fp16 without a GPU)."""
    # mixed_precision also reflects accelerate's config (ACCELERATE_MIXED_PRECISION), not only --fp16 / --bf16.
    precision = getattr(training_args, "mixed_precision", "no")
    if precision == "fp16" and not torch.cuda.is_available():
        logger.warning(
            "fp16 needs a CUDA GPU and there is none: accelerate ignores it on CPU, so training runs in fp32. "
            "On a CPU with bf16 support use --bf16 --use_cpu instead."
        )
        return "fp32"
    return precision if precision in ("fp16", "bf16") else "fp32"


def resolve_checkpoint(training_args: CharGPTTrainingArguments) -> str | None:
    """The checkpoint to resume from. `--resume_from_checkpoint latest` takes the newest `checkpoint-*` in
    output_dir (or starts fresh when there is none); a path resumes from it. An output_dir that already holds
    checkpoints needs one of those or `--overwrite_output_dir`, so that no run mixes into another."""
    out = Path(training_args.output_dir)
    last = get_last_checkpoint(out) if out.is_dir() else None
    wanted = training_args.resume_from_checkpoint
    if wanted in (None, "", "false", "False", "no"):
        if last is not None and not training_args.overwrite_output_dir:
            raise ValueError(
                f"{out} already holds checkpoints (latest: {last}). Pass --resume_from_checkpoint latest to continue "
                f"that run, or --overwrite_output_dir to start over (its checkpoint-* folders are then deleted)."
            )
        if last is not None and training_args.process_index == 0:
            for old in out.glob("checkpoint-*"):
                shutil.rmtree(old, ignore_errors=True)
            logger.warning(f"--overwrite_output_dir: deleted the earlier checkpoints in {out}.")
        return None
    if wanted in ("latest", "last", "auto", "true", "True"):
        if last is None:
            logger.warning(f"--resume_from_checkpoint {wanted}: no checkpoint in {out}; starting from scratch.")
        else:
            logger.info(f"Resuming from {last}.")
        return last
    if not Path(wanted).is_dir():
        raise FileNotFoundError(f"--resume_from_checkpoint {wanted}: no such checkpoint directory.")
    return wanted


__all__ = [
    "setup_logging",
    "prepare_cpu_distributed_env",
    "check_precision",
    "resolve_checkpoint",
]
