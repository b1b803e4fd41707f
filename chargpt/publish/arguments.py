"""The arguments of `chargpt publish` (the model directory is the first positional argument, read by the CLI)."""

from dataclasses import dataclass, field
from typing import Literal


MIN_SCRIPT_TURNS = 5  # user turns per sample conversation: with the replies, at least ten turns


@dataclass
class PublishArguments:
    output_dir: str = field(metadata={"help": "Directory to write (second positional argument)."})
    training_dir: str | None = field(
        default=None,
        metadata={
            "help": "Training output with trainer_state.json, eval_results.json/test_results.json, training_args.json "
            "and *.png curves (default: the model directory; its newest checkpoint-* as a fallback)."
        },
    )
    model_name: str | None = field(default=None, metadata={"help": "Name in the card (default: output_dir's name)."})
    repo_id: str | None = field(default=None, metadata={"help": "Hub id used in the card's code (user/name)."})
    description: str | None = field(default=None, metadata={"help": "A paragraph introducing the model."})
    license: str = field(default="apache-2.0", metadata={"help": "Hub licence id of the weights."})
    language: str = field(default="zh", metadata={"help": "Language code for the card metadata."})
    datasets: list[str] = field(
        default_factory=list,
        metadata={"help": "Hub ids of the training datasets (e.g. thu-coai/lccc), for the card metadata."},
    )
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Readable name of the evaluation data in model-index (default: the first --datasets, or 'custom')."
        },
    )
    training_data: str | None = field(default=None, metadata={"help": "A sentence or two describing the data."})
    tags: list[str] = field(default_factory=list, metadata={"help": "Extra tags for the card."})
    chat_scripts: list[str] = field(
        default_factory=list,
        metadata={
            "help": f"Files of user turns (one per line, >= {MIN_SCRIPT_TURNS}) for the sample conversations; default: "
            f"three built-in scripts of six turns."
        },
    )
    seed: int = field(default=0, metadata={"help": "Sampling seed of the sample conversations."})
    card_template: str | None = field(default=None, metadata={"help": "A Jinja model-card template of your own."})
    format: Literal["remote-code", "transformers"] = field(
        default="remote-code",
        metadata={
            "help": "remote-code (default): CharGPT's own classes, with their code, for every option (mean pooling, "
            "embeddings); loads with trust_remote_code=True. transformers: the native export (Qwen3 or GPT-2), no "
            "code, for transformers without remote code, transformers serve, vLLM and SGLang; refuses options "
            "those classes cannot express."
        },
    )
    overwrite: bool = field(default=False, metadata={"help": "Replace output_dir if it exists."})
    verify_load: bool = field(
        default=True,
        metadata={
            "help": "Load the result in a fresh Python without chargpt (trust_remote_code) and compare its logits."
        },
    )
    validate_online: bool = field(
        default=False,
        metadata={"help": "Also validate the card with the Hub's API (needs network); the offline checks always run."},
    )


__all__ = ["PublishArguments", "MIN_SCRIPT_TURNS"]
