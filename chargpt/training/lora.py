"""LoRA through `peft`: wrap a CharGPT model so that only low-rank adapters (and a classifier's head) train, and
write the merged model as a plain CharGPT directory."""

from pathlib import Path

from transformers.utils import logging as hf_logging

from ..files import atomic_output_dir
from .arguments import LoraArguments


logger = hf_logging.get_logger(__name__)


def _peft():
    try:
        import peft
    except ImportError as error:
        raise ImportError("LoRA needs the peft package: pip install 'chargpt[lora]' (or pip install peft).") from error
    return peft


def apply_lora(model, lora_args: LoraArguments, task_type: str, trainable_modules: list[str] | None = None):
    """Wrap `model` in a `peft.PeftModel` with LoRA adapters on `lora_args.lora_target_modules`. `task_type` is
    `"CAUSAL_LM"` or `"SEQ_CLS"` (peft then also trains and saves the head `score`); `trainable_modules` are further
    modules trained in full and saved with the adapter (e.g. `wte` after the vocabulary grew)."""
    peft = _peft()
    targets = lora_args.lora_target_modules
    config = peft.LoraConfig(
        task_type=task_type,
        r=lora_args.lora_r,
        lora_alpha=lora_args.lora_alpha,
        lora_dropout=lora_args.lora_dropout,
        target_modules=targets[0] if targets == ["all-linear"] else targets,
        modules_to_save=trainable_modules or None,
    )
    try:
        wrapped = peft.get_peft_model(model, config)
    except ValueError as error:
        raise ValueError(
            f"--lora_target_modules {targets}: {error}. CharGPT's Linear layers are c_attn, c_proj and c_fc."
        ) from error
    trainable, total = wrapped.get_nb_trainable_parameters()
    logger.info(f"LoRA r={lora_args.lora_r} on {targets}: {trainable:,} of {total:,} parameters train.")
    return wrapped


def save_merged(model, tokenizer, directory) -> Path:
    """Merge the LoRA adapters into the weights and save a plain CharGPT directory (code, config, safetensors,
    tokenizer) that loads without peft."""
    merged = model.merge_and_unload()
    directory = Path(directory)
    # staged beside and renamed into place, like every final folder: a reader sees the whole merged model or none
    with atomic_output_dir(directory, overwrite=True) as staging:
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
    logger.info(f"Merged LoRA model in {directory}")
    return directory


__all__ = [
    "apply_lora",
    "save_merged",
]
