"""The models the pipelines train: a new causal LM built from the model arguments (or one continued from a
directory), and `apply_freezing`, which chooses what trains in a classifier."""

import re

from transformers.utils import logging as hf_logging

from ..configuration_chargpt import CharGPTConfig
from ..modeling_chargpt import CharGPTForCausalLM
from .arguments import FREEZE_HELP, LMModelArguments


logger = hf_logging.get_logger(__name__)


def _new_causal_lm(model_args: LMModelArguments, tokenizer) -> CharGPTForCausalLM:
    if model_args.model_name_or_path:
        model = CharGPTForCausalLM.from_pretrained(model_args.model_name_or_path)
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        return model
    config = CharGPTConfig(
        vocab_size=len(tokenizer),
        n_positions=model_args.n_positions,
        n_embd=model_args.n_embd,
        n_layer=model_args.n_layer,
        n_head=model_args.n_head,
        n_inner=model_args.n_inner or 4 * model_args.n_embd,
        resid_pdrop=model_args.dropout,
        embd_pdrop=model_args.dropout,
        attn_pdrop=model_args.dropout,
        pad_token_id=tokenizer.pad_token_id,
        sep_token_id=tokenizer.sep_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return CharGPTForCausalLM(config)


def apply_freezing(model, mode: str) -> dict[str, int]:
    """Choose what trains in a CharGPT classifier: `"none"` (everything), `"all"` (only the head `score`), or
    `"last-N"` (the last N blocks, the final LayerNorm `ln_f` and the head). Call it after any
    `resize_token_embeddings` (which makes a new, trainable embedding). Returns parameter counts
    `{"trainable", "frozen", "total"}`."""
    mode = mode.strip().lower()
    base = model.base_model
    head = getattr(model, "score", None) or model.get_output_embeddings()
    match = re.fullmatch(r"last-(\d+)", mode)
    if mode not in ("none", "all") and match is None:
        raise ValueError(f"freeze must be {FREEZE_HELP}; got {mode!r}.")
    model.requires_grad_(mode == "none")
    if mode != "none":
        train = [head]
        if match is not None:
            n = int(match.group(1))
            if not 1 <= n <= len(base.h):
                raise ValueError(
                    f"freeze=last-{n}: the model has {len(base.h)} blocks; N must be in [1, {len(base.h)}]."
                )
            train += [*base.h[-n:], base.ln_f]
        for module in train:
            module.requires_grad_(True)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    logger.info(f"freeze={mode}: {trainable:,} of {total:,} parameters train.")
    return {"trainable": trainable, "frozen": total - trainable, "total": total}


__all__ = [
    "apply_freezing",
]
