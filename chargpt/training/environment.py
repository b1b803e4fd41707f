"""Run set-up shared by the scripts and pipelines: logging as transformers' examples do it, CPU processes under a
distributed launcher without a GPU, and the precision training really uses."""

import logging
import os
import sys

import torch
from transformers import TrainingArguments
from transformers.utils import logging as hf_logging


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


__all__ = [
    "setup_logging",
    "prepare_cpu_distributed_env",
    "check_precision",
]
