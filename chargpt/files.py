"""Writing files and folders so that nothing is ever half-written: a file through a temporary sibling and a rename,
a whole output folder staged beside its destination and renamed into place, and the clean-up of what killed runs
left. Every module that writes results uses these; nothing here imports the rest of chargpt."""

import contextlib
import ctypes
import glob
import json
import logging
import os
import shutil
import tempfile


logger = logging.getLogger(__name__)


def write_json_atomic(path, data, indent: int = 2) -> None:
    """`data` as UTF-8 JSON (non-ASCII kept readable), written atomically with `atomic_write_text`."""
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=indent) + "\n")


@contextlib.contextmanager
def atomic_path(path, suffix: str = ".tmp"):
    """Yield a temporary path beside `path` (`.NAME.RANDOM` + `suffix`; give the extension, e.g. ".tmp.png", to a
    writer that goes by it); on success it is renamed onto `path`, on failure or interruption removed. A crash never
    leaves half a file under `path`."""
    path = os.path.abspath(str(path))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=suffix, dir=os.path.dirname(path))
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def atomic_write_text(path, text: str):
    """Write a text file atomically (`atomic_path`)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def process_running(pid: int) -> bool:
    """Whether process `pid` still runs (a live process of another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def exchange_paths(a, b) -> bool:
    """Swap two paths in one step (Linux `renameat2(RENAME_EXCHANGE)`), so a reader of either sees the old or the new
    tree, never neither; False where the system cannot (the caller then renames twice)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(str(a)), at_fdcwd, os.fsencode(str(b)), rename_exchange) == 0


def clean_stale_staging(output_dir) -> list[str]:
    """Remove the staging folders (`.NAME.tmp-PID-*`, and their `.old` backups) that an interrupted or killed earlier
    publish/export of `output_dir` left beside it, when the process that made them is gone; a leftover without a
    process id (older chargpt) is reported, not removed. Returns what it removed."""
    output_dir = os.path.abspath(str(output_dir))
    parent, name = os.path.dirname(output_dir), os.path.basename(output_dir)
    removed = []
    for leftover in sorted(glob.glob(os.path.join(glob.escape(parent), f".{glob.escape(name)}.tmp-*"))):
        pid = os.path.basename(leftover)[len(name) + 6 :].split("-")[0]
        if not pid.isdigit():
            logger.warning(
                "%s looks like a staging folder left by an interrupted run; remove it if no chargpt "
                "command is writing %s.",
                leftover,
                output_dir,
            )
        elif not process_running(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)
            removed.append(leftover)
            logger.warning("Removed %s, left by an interrupted earlier run (process %s).", leftover, pid)
    return removed


def _check_replaceable(output_dir: str, source, overwrite: bool) -> None:
    """Refuse destinations whose replacement would lose something: the source model itself or anything holding it,
    a non-empty directory without `overwrite`, or (even with it) a directory that is not a flat folder of files as
    publish and export write them."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise ValueError(f"{output_dir} exists and is not a directory.")
    if source is not None:
        source = os.path.realpath(str(source))
        real_out = os.path.realpath(output_dir)
        if real_out == source or source.startswith(real_out + os.sep):
            raise ValueError(
                f"output_dir {output_dir} is the model directory {source} or contains it; replacing it would delete "
                f"the model. Choose an output_dir outside the model directory."
            )
    if not os.path.isdir(output_dir) or not os.listdir(output_dir):
        return
    if not overwrite:
        raise ValueError(f"{output_dir} already exists and is not empty; pass --overwrite to replace it.")
    foreign = [
        n
        for n in os.listdir(output_dir)
        if os.path.islink(os.path.join(output_dir, n)) or not os.path.isfile(os.path.join(output_dir, n))
    ]
    if foreign:
        raise ValueError(
            f"--overwrite replaces {output_dir} as a whole, but it holds folders or links "
            f"({', '.join(sorted(foreign)[:5])}), so it is not an earlier publish or export output. Choose a new "
            f"output_dir, or move them first."
        )


@contextlib.contextmanager
def atomic_output_dir(output_dir, overwrite: bool = False, source=None):
    """Yield a temporary directory beside `output_dir`; on success it replaces `output_dir` (which must be absent or
    empty unless `overwrite`, and must not be or contain `source`), on failure or interruption it is removed.
    Readers never see a half-written directory; leftovers of killed earlier runs are cleaned first."""
    output_dir = os.path.abspath(str(output_dir))
    _check_replaceable(output_dir, source, overwrite)
    parent = os.path.dirname(output_dir)
    os.makedirs(parent, exist_ok=True)
    clean_stale_staging(output_dir)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(output_dir)}.tmp-{os.getpid()}-", dir=parent)
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        if os.path.isdir(output_dir) and exchange_paths(staging, output_dir):
            shutil.rmtree(staging, ignore_errors=True)  # now the old directory
        elif os.path.isdir(output_dir):
            backup = staging + ".old"
            os.rename(output_dir, backup)
            os.rename(staging, output_dir)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            os.rename(staging, output_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


__all__ = [
    "atomic_path",
    "atomic_write_text",
    "write_json_atomic",
    "atomic_output_dir",
    "clean_stale_staging",
    "exchange_paths",
    "process_running",
]
