"""Run set-up shared by the scripts and pipelines: logging as transformers' examples do it, a run's logs sent to its
folder's log file instead of the terminal, CPU processes under a distributed launcher without a GPU, and the
precision training really uses."""

import io
import logging
import os
import shlex
import sys
import time
from contextlib import ExitStack, contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import TrainingArguments
from transformers.utils import logging as hf_logging

from .run_directory import RUN_LOG


logger = hf_logging.get_logger(__name__)

LOG_FORMAT, LOG_DATE_FORMAT = "%(asctime)s - %(levelname)s - %(name)s - %(message)s", "%m/%d/%Y %H:%M:%S"
# The loggers whose handlers print: the root logger (chargpt, accelerate and every library that propagates) and the
# two libraries that hold handlers of their own.
_LOGGERS = (None, "transformers", "datasets")


def setup_logging(training_args: TrainingArguments | None = None) -> None:
    """Logs as transformers' examples do: INFO on the main process (warnings elsewhere), to stdout."""
    logging.basicConfig(format=LOG_FORMAT, datefmt=LOG_DATE_FORMAT, handlers=[logging.StreamHandler(sys.stdout)])
    level = logging.INFO
    if training_args is not None and not training_args.should_log:
        level = logging.WARNING
    logging.getLogger("chargpt").setLevel(level)
    import datasets

    datasets.utils.logging.set_verbosity(logging.WARNING)
    hf_logging.set_verbosity(training_args.get_process_log_level() if training_args is not None else logging.WARNING)


@contextmanager
def logs_to_run_folder(output_dir, verbose: bool = False, main_process: bool | None = None):
    """While a run works, append what it logs to `OUTPUT_DIR/run.log` (`run_directory.RUN_LOG`, which the output-dir
    checks know as the run's own and the final save keeps): the records of chargpt, transformers, datasets and every
    logger that reaches the root logger, at the levels they have (`setup_logging`), and what Trainer prints (its log
    dicts: loss, learning rate, epoch, evaluation metrics). Each run starts with a `==== TIME COMMAND` line.

    Quiet (the default) the terminal gets none of it, so that the caller can print one line for the stage: the
    console handlers of those loggers step aside, the progress bars of transformers and datasets are off, stdout and
    stderr (Python warnings among them) go to the file. Give the Trainer `disable_tqdm=True` then (its own bars would
    land in the file). `verbose` leaves the terminal as it was and copies stdout into the file too.

    Only the main process writes the file (`main_process`; default: whether `RANK`, which torchrun and accelerate
    set, is 0); the other processes keep their terminal, which `setup_logging` limits to warnings. Yields a `RunLog`
    (the file's path, and how many warnings were logged into it, for the caller's line). Everything is restored on
    exit."""
    run_log = RunLog(Path(output_dir) / RUN_LOG)
    if main_process is None:
        main_process = int(os.environ.get("RANK", "0")) == 0
    with ExitStack() as stack:
        if not verbose:
            stack.enter_context(_progress_bars_off())
        if main_process:
            stream = stack.enter_context(_open_run_log(run_log.path))
            stack.enter_context(_logging_into(_RunLogHandler(stream, run_log), quiet=not verbose))
            if verbose:
                stack.enter_context(redirect_stdout(_Tee(sys.stdout, stream)))
            else:
                stack.enter_context(redirect_stdout(stream))
                stack.enter_context(redirect_stderr(stream))
        yield run_log


@dataclass
class RunLog:
    """What `logs_to_run_folder` writes: the file, and the warnings (and errors) logged into it so far."""

    path: Path
    warnings: int = 0


class _RunLogHandler(logging.StreamHandler):
    def __init__(self, stream, run_log: RunLog):
        super().__init__(stream)
        self.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATE_FORMAT))
        self.run_log = run_log

    def emit(self, record: logging.LogRecord) -> None:
        super().emit(record)
        if record.levelno >= logging.WARNING:
            self.run_log.warnings += 1


@contextmanager
def _open_run_log(path: Path):
    if path.parent.exists() and not path.parent.is_dir():
        raise NotADirectoryError(f"--output_dir {path.parent} is a file; give a directory (new, or written by a run).")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8", buffering=1) as stream:  # line-buffered: a stopped run loses no line
        stream.write(f"==== {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(sys.argv)}\n")
        yield stream


def _is_console(handler: logging.Handler) -> bool:
    return isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler)


@contextmanager
def _logging_into(handler: logging.Handler, quiet: bool):
    """Records of `_LOGGERS` also to `handler` (once each: a library logger that propagates reaches it through the
    root); `quiet`: their console handlers step aside (a user's file handlers stay)."""
    import datasets

    hf_logging.get_verbosity()  # both libraries add their console handler on first use: before we look
    datasets.utils.logging.get_verbosity()
    saved = {}
    for name in _LOGGERS:
        target = logging.getLogger(name)
        saved[target] = target.handlers[:]
        kept = [h for h in target.handlers if not (quiet and _is_console(h))]
        target.handlers = kept + ([handler] if name is None or not target.propagate else [])
    try:
        yield
    finally:
        for target, handlers in saved.items():
            target.handlers = handlers


@contextmanager
def _progress_bars_off():
    """transformers' (weights loading, saving) and datasets' (map, filter) progress bars off, then as they were."""
    import datasets

    on = hf_logging.is_progress_bar_enabled(), datasets.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if on[0]:
            hf_logging.enable_progress_bar()
        if on[1]:
            datasets.enable_progress_bars()


class _Tee(io.TextIOBase):
    """stdout for `--verbose`: the terminal, and a copy in the run log."""

    def __init__(self, terminal, log):
        self.terminal, self.log = terminal, log

    def write(self, text: str) -> int:
        self.terminal.write(text)
        self.log.write(text)
        return len(text)

    def flush(self) -> None:
        self.terminal.flush()
        self.log.flush()

    def isatty(self) -> bool:
        return self.terminal.isatty()

    def fileno(self) -> int:
        return self.terminal.fileno()


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
    "logs_to_run_folder",
    "RunLog",
    "prepare_cpu_distributed_env",
    "check_precision",
]
