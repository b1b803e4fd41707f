"""How the training scripts end: `run_script(main)` turns a user's mistake into one line on stderr and exit status 2
(the status argparse uses for bad flags), Ctrl-C into status 130, and leaves the traceback to real bugs. Under a
distributed launcher it also shuts the process group down before the interpreter exits."""

import re
import sys


# Errors that mean "the input is wrong": a bad value or combination of flags, a missing file, a folder where a file
# belongs or the other way round. Their messages name the file or flag and the fix.
USER_ERRORS = (ValueError, FileNotFoundError, IsADirectoryError, NotADirectoryError)


def run_script(main, argv: list[str] | None = None) -> None:
    """Call `main(argv)`; exit 2 with `error: MESSAGE` (one line) on a user error, 130 on Ctrl-C."""
    try:
        main(argv)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        sys.exit(130)
    except USER_ERRORS as error:
        message = re.sub(r"\s*\n\s*", " ", str(error)).strip() or type(error).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    finally:
        _destroy_process_group()


def _destroy_process_group() -> None:
    """Destroy the process group the Trainer set up (accelerate launch, torchrun), if any. Left to the interpreter's
    exit, gloo's worker threads can be torn down in the wrong order and abort a process whose work is done
    ("terminate called without an active exception", exit -6), which the launcher reports as a failed run."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


__all__ = [
    "USER_ERRORS",
    "run_script",
]
