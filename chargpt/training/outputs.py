"""What a finished run leaves behind: loss and metric plots (also drawn by `chargpt publish` for a folder without
them) and the final hub-style directory with results and state files."""

import math
import os
from pathlib import Path

from transformers import Trainer
from transformers.utils import logging as hf_logging

from ..files import atomic_path, write_json_atomic
from .run_directory import install_final_directory, staging_directory


logger = hf_logging.get_logger(__name__)


def save_training_plots(log_history: list[dict], output_dir) -> list[Path]:
    """Write `loss.png` (training and evaluation loss against steps) and, when there are evaluation metrics,
    `metrics.png` (one panel per metric). Needs matplotlib (`pip install 'chargpt[plots]'`); without it, logs why
    and writes nothing. Returns the files written."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning(
            "matplotlib is not installed, so no loss/metric plots were written: pip install 'chargpt[plots]'."
        )
        return []
    series = _plot_series(log_history)
    losses = {k: v for k, v in series.items() if k in ("loss", "eval_loss")}
    metrics = {k: v for k, v in series.items() if k not in losses}
    written = []
    for name, panels in (("loss", {"loss": losses}), ("metrics", {k: {k: v} for k, v in metrics.items()})):
        if not any(panels.values()):
            continue
        fig = _figure(plt, panels)
        path = Path(output_dir) / f"{name}.png"
        with atomic_path(path, suffix=".tmp.png") as tmp:  # savefig picks the format from the extension
            fig.savefig(tmp, dpi=110)
        plt.close(fig)
        written.append(path)
    return written


def _plot_series(log_history: list[dict]) -> dict[str, list[tuple]]:
    """The (step, value) points of the training loss and of each evaluation metric, timings left out."""
    timing = ("_runtime", "_samples_per_second", "_steps_per_second", "_epoch")
    series = {}
    for entry in log_history:
        for key, value in entry.items():
            wanted = key == "loss" or (key.startswith("eval_") and not key.endswith(timing))
            if wanted and "step" in entry and isinstance(value, (int, float)) and math.isfinite(value):
                series.setdefault(key, []).append((entry["step"], value))
    return series


def _figure(plt, panels: dict[str, dict[str, list[tuple]]]):
    """One panel per title of `panels`, one line per series in it."""
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (title, lines) in zip(axes[0], panels.items()):
        for key, points in lines.items():
            steps, values = zip(*points)
            ax.plot(
                steps,
                values,
                marker="o" if len(points) < 30 else None,
                label={"loss": "train", "eval_loss": "validation"}.get(key, key),
            )
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    return fig


def _final_token(trainer: Trainer) -> int:
    """The main process's id, the same in every process: it names the staging folder that all of them save into."""
    token = [os.getpid()]
    if trainer.accelerator.num_processes > 1:
        from accelerate.utils import broadcast_object_list

        broadcast_object_list(token)
    return token[0]


def save_final_directory(trainer: Trainer, output_dir, results: dict[str, dict], extra_json: dict[str, dict]) -> None:
    """The final hub-style directory, put in place in one step (see `run_directory`): model, code, config,
    generation config and tokenizer (via `save_model`), `SPLIT_results.json`, `all_results.json`,
    `trainer_state.json`, the `extra_json` files and the plots, beside this run's checkpoints and TensorBoard logs and
    the user's files; our files of an earlier run are not kept. Every process must call it; only the main one writes,
    and all return once the directory is in place."""
    staging = staging_directory(output_dir, _final_token(trainer))
    if trainer.is_world_process_zero():
        staging.parent.mkdir(parents=True, exist_ok=True)
    trainer.save_model(str(staging))  # collective under FSDP/DeepSpeed; writes on the main process only
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        combined = {}
        for split, metrics in results.items():
            write_json_atomic(staging / f"{split}_results.json", metrics)
            combined.update(metrics)
        write_json_atomic(staging / "all_results.json", combined)
        trainer.state.save_to_json(str(staging / "trainer_state.json"))
        for name, data in extra_json.items():
            write_json_atomic(staging / name, data)
        save_training_plots(trainer.state.log_history, staging)
        install_final_directory(staging, output_dir)
        logger.info(f"Final model and results in {output_dir}")
    trainer.accelerator.wait_for_everyone()


__all__ = [
    "save_training_plots",
    "save_final_directory",
]
