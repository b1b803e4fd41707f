"""A run's output directory: which files CharGPT's runs write there (everything else is the user's and is never
deleted), the check that refuses a directory a new run would spoil, and the final save that makes the finished
directory appear in one step.

The final directory is written whole into a staging folder beside output_dir (`.NAME.final-tmp-TOKEN`, same parent,
so renames stay on one filesystem); the run's checkpoints, TensorBoard logs, log file and the user's files are
hard-linked into it (copied where links are impossible) while our own files of an earlier run are left out; then
staging and output_dir are exchanged (one `renameat2` on Linux, else two renames through `.NAME.final-old-TOKEN`) and
the old tree is deleted. A process stopped at any point leaves either the old or the new directory, plus a folder that
the next run's `clean_interrupted_saves` removes (or, between the two renames, puts in place)."""

import glob
import os
import re
import shutil
from fnmatch import fnmatch
from pathlib import Path

from transformers.utils import logging as hf_logging

from ..files import exchange_paths, process_running


logger = hf_logging.get_logger(__name__)

# A finished model: config and weights, full or LoRA adapter.
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "model.safetensors.index.json",
    "model-*-of-*.safetensors",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "pytorch_model-*-of-*.bin",
    "adapter_config.json",
    "adapter_model.safetensors",
    "adapter_model.bin",
)
TOKENIZER_FILES = (
    "vocab.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.json",
)
# The rest of a final directory (model code, results, state, plots) and the merged LoRA model folder.
RUN_FILES = (
    "generation_config.json",
    "training_args.bin",
    "configuration_chargpt.py",
    "modeling_chargpt.py",
    "tokenization_chargpt*.py",
    "train_results.json",
    "eval_results.json",
    "test_results.json",
    "all_results.json",
    "trainer_state.json",
    "data_summary.json",
    "sample_replies.json",
    "loss.png",
    "metrics.png",
    "merged",
)
VOCAB_FILES = (*TOKENIZER_FILES, "tokenization_chargpt*.py", "vocab_summary.json")
RUN_LOGS = "runs"  # TensorBoard's default logging_dir under output_dir
# What a run logs (transformers', datasets' and chargpt's logging, Trainer's log dicts), appended to by every run
# into the directory; `environment.logs_to_run_folder` writes it.
RUN_LOG = "run.log"
_STAGING, _BACKUP = "final-tmp", "final-old"
# Temporary files and folders of ours: `.NAME.XXX.tmp` (atomic JSON writes), `.loss.PID.tmp.png`, a staging folder
# inside output_dir, and `.tmp-final` (an earlier version's staging folder).
_TEMPORARY = re.compile(rf"^\..+\.tmp(\.png)?$|^\.tmp-final$|^\.{_STAGING}-\d+$")


def _matches(name: str, patterns) -> bool:
    return any(fnmatch(name, pattern) for pattern in patterns)


def _is_temporary(name: str) -> bool:
    return _TEMPORARY.match(name) is not None


def _is_peft_card(path: Path) -> bool:
    """peft writes a README.md model card beside a LoRA adapter; a user's README.md is theirs."""
    try:
        return path.is_file() and "library_name: peft" in path.read_text(encoding="utf-8", errors="replace")[:2000]
    except OSError:
        return False


def is_earlier_final_file(path: Path) -> bool:
    """A file (or `merged/`) of a finished run's final directory: the next final save of this directory drops it."""
    name = path.name
    return (
        _matches(name, MODEL_FILES + TOKENIZER_FILES + RUN_FILES)
        or _is_temporary(name)
        or (name == "README.md" and _is_peft_card(path))
    )


def is_earlier_vocabulary_file(path: Path) -> bool:
    """A file `build_vocab` writes: the next vocabulary written to the directory replaces it."""
    return _matches(path.name, VOCAB_FILES) or _is_temporary(path.name)


def _is_run_state(path: Path) -> bool:
    """Checkpoints (complete or set aside), TensorBoard logs and the run's log file: carried into the final directory
    (hard-linked, so a log still open keeps writing into the file the final directory holds)."""
    name = path.name
    if path.is_file():
        return name == RUN_LOG
    return path.is_dir() and (name == RUN_LOGS or name.startswith(("checkpoint-", "incomplete-checkpoint-")))


def inventory(directory) -> dict[str, list[str]]:
    """The names in `directory`, by kind: `checkpoints` (`checkpoint-STEP/`), `model` (a finished model's config and
    weights), `ours` (other files and folders CharGPT runs write, set-aside incomplete checkpoints among them) and
    `other` (everything else: the user's)."""
    found = {"checkpoints": [], "model": [], "ours": [], "other": []}
    for path in sorted(Path(directory).iterdir()):
        if path.is_dir() and re.fullmatch(r"checkpoint-\d+", path.name):
            kind = "checkpoints"
        elif _matches(path.name, MODEL_FILES):
            kind = "model"
        elif _is_run_state(path) or is_earlier_final_file(path):
            kind = "ours"
        else:
            kind = "other"
        found[kind].append(path.name + ("/" if path.is_dir() else ""))
    return found


def _names(names: list[str], at_most: int = 5) -> str:
    more = f" and {len(names) - at_most} more" if len(names) > at_most else ""
    return ", ".join(names[:at_most]) + more


def check_output_dir(output_dir, overwrite: bool, resuming_here: bool = False) -> None:
    """Refuse (ValueError, naming what is there and the ways out) an output_dir holding checkpoints, a finished model
    or files that are not a CharGPT run's, unless `overwrite` or the run resumes from one of its checkpoints."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--output_dir {out} is a file; give a directory (new, or written by a run).")
    if overwrite or resuming_here or not out.is_dir():
        return
    found = inventory(out)
    held = [
        f"{label} ({_names(found[kind])})"
        for kind, label in (
            ("checkpoints", "checkpoints"),
            ("model", "a finished model"),
            ("other", "files that are not a CharGPT run's"),
        )
        if found[kind]
    ]
    if not held:
        return
    resume = (
        ", or --resume_from_checkpoint latest to continue the run in its checkpoints" if found["checkpoints"] else ""
    )
    raise ValueError(
        f"{out} already holds {'; '.join(held)}. A new run there would replace or mix with them. Pass another "
        f"--output_dir, or --overwrite_output_dir (a new run: earlier checkpoints and logs are deleted at its start, "
        f"the model and results replaced at its end, other files kept){resume}."
    )


# ----------------------------------------------------------------------------------------------------------------------
# The final save: stage beside, carry over what stays, exchange


def _swappable(out: Path) -> bool:
    """Staging beside `out` needs a writable parent on the same filesystem (not so for a mount point)."""
    parent = out.parent
    return os.access(parent, os.W_OK) and not (out.exists() and os.path.ismount(out))


def staging_directory(output_dir, token) -> Path:
    """Where the final directory of `output_dir` is written before it is put in place: `.NAME.final-tmp-TOKEN` beside
    it, or `.final-tmp-TOKEN` inside it where the parent is not usable (then the files are moved one by one)."""
    out = Path(output_dir).resolve()
    if _swappable(out):
        return out.parent / f".{out.name}.{_STAGING}-{token}"
    return out / f".{_STAGING}-{token}"


def _link_or_copy(src, dst) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _link_tree(src: Path, dst: Path) -> None:
    """Hard-link `src` (file or folder tree) to `dst`; folders keep their mtime, which checkpoint rotation sorts by."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(src, dst)


def _free_name(folder: Path, name: str) -> Path:
    target, n = folder / name, 1
    while target.exists() or target.is_symlink():
        n += 1
        target = folder / f"{name}-{n}"
    return target


def _carry_over(out: Path, staging: Path, drop) -> None:
    """Link into `staging` everything in `out` except what `drop` says the new directory replaces. A user's file
    with a name the new directory uses is kept as `NAME.previous`."""
    for item in sorted(out.iterdir()):
        if item == staging or drop(item):
            continue
        target = staging / item.name
        if target.exists() or target.is_symlink():
            target = _free_name(staging, item.name + ".previous")
            logger.warning(f"{item} has the name of a file the run writes; it is kept as {target.name}.")
        _link_tree(item, target)


def install_final_directory(staging, output_dir, drop=is_earlier_final_file) -> None:
    """Put the complete directory `staging` (from `staging_directory`) in place of `output_dir`, keeping from the old
    one everything `drop` does not reject (checkpoints, logs, the user's files). Main process only."""
    staging, out = Path(staging), Path(output_dir).resolve()
    if staging.parent == out:
        _install_in_place(staging, out, drop)
        return
    if not out.exists():
        os.rename(staging, out)
        return
    _carry_over(out, staging, drop)
    shutil.copymode(out, staging)
    if exchange_paths(staging, out):
        shutil.rmtree(staging)  # now the old tree
        return
    backup = out.parent / f".{out.name}.{_BACKUP}-{staging.name.rpartition('-')[2]}"
    os.rename(out, backup)
    os.rename(staging, out)
    shutil.rmtree(backup)


def _install_in_place(staging: Path, out: Path, drop) -> None:
    """Fallback without a usable parent folder: move the new files in one by one (not atomic, logged)."""
    logger.warning(
        f"Cannot stage beside {out} (parent not writable, or a mount point): its files are replaced one by one."
    )
    new = {p.name for p in staging.iterdir()}
    for item in list(out.iterdir()):
        if item == staging:
            continue
        if drop(item):
            shutil.rmtree(item) if item.is_dir() and not item.is_symlink() else item.unlink()
        elif item.name in new:
            target = _free_name(out, item.name + ".previous")
            os.replace(item, target)
            logger.warning(f"{item} has the name of a file the run writes; it is kept as {target.name}.")
    for item in staging.iterdir():
        os.replace(item, out / item.name)
    staging.rmdir()


def _running(token: str) -> bool:
    """Whether the process that named a staging folder (its id) still runs: then it is not a leftover."""
    return token.isdigit() and int(token) != os.getpid() and process_running(int(token))


def clean_interrupted_saves(output_dir) -> None:
    """Finish or remove what a final save stopped half-way left around `output_dir` (warning for each): a staging
    folder is deleted (output_dir was not touched), unless output_dir is missing because the process stopped between
    the two renames; then the staging folder, which is complete, takes its place; a backup folder is deleted. Folders
    of a process that still runs are only reported."""
    out = Path(output_dir).resolve()
    if not out.parent.is_dir():
        return
    stem = glob.escape(f".{out.name}.")
    for staging in sorted(out.parent.glob(f"{stem}{_STAGING}-*")):
        token = staging.name.rpartition("-")[2]
        backup = out.parent / f".{out.name}.{_BACKUP}-{token}"
        if _running(token):
            logger.warning(f"{staging} belongs to process {token}, which still runs; is it writing {out} too?")
        elif backup.exists() and not out.exists():
            os.rename(staging, out)
            logger.warning(f"Finished the final save into {out} that a stopped run had left half-way.")
        else:
            shutil.rmtree(staging)
            logger.warning(f"Removed {staging}, left by a final save that was stopped ({out} was not changed by it).")
    for backup in sorted(out.parent.glob(f"{stem}{_BACKUP}-*")):
        if _running(backup.name.rpartition("-")[2]):
            continue
        if out.exists():
            shutil.rmtree(backup)
            logger.warning(f"Removed {backup}, the earlier contents of {out} left by a stopped final save.")
        else:
            os.rename(backup, out)
            logger.warning(f"Restored {out} from {backup}, left by a stopped final save.")
    for leftover in [out / ".tmp-final", *out.glob(f".{_STAGING}-*")] if out.is_dir() else []:
        if leftover.is_dir() and not _running(leftover.name.rpartition("-")[2]):
            shutil.rmtree(leftover)
            logger.warning(f"Removed {leftover}, left by a final save that was stopped.")


__all__ = [
    "RUN_LOG",
    "MODEL_FILES",
    "TOKENIZER_FILES",
    "RUN_FILES",
    "inventory",
    "check_output_dir",
    "is_earlier_final_file",
    "is_earlier_vocabulary_file",
    "staging_directory",
    "install_final_directory",
    "clean_interrupted_saves",
]
