"""The models the pipelines train: a new causal LM built from the model arguments (or one continued from a
directory), a classifier loaded from a causal LM's directory (its new head said once, in our words), and
`apply_freezing`, which chooses what trains in a classifier."""

import logging
import re

from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, PreTrainedModel
from transformers.utils import logging as hf_logging

from ..configuration_chargpt import CharGPTConfig
from ..modeling_chargpt import CharGPTForCausalLM
from .arguments import DEFAULT_PRESET, FREEZE_HELP, LMModelArguments


logger = hf_logging.get_logger(__name__)

# transformers logs its loading report (`log_state_dict_report`) through this logger, as one warning whose message
# holds "<Class> LOAD REPORT".
_LOAD_REPORT_LOGGER, _LOAD_REPORT = "transformers.modeling_utils", "LOAD REPORT"


def special_token_ids(tokenizer) -> dict:
    """The special ids a CharGPT config records, read from its tokenizer."""
    return {
        "pad_token_id": tokenizer.pad_token_id,
        "sep_token_id": tokenizer.sep_token_id,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
    }


def build_causal_lm_config(model_args: LMModelArguments, tokenizer, **fixed) -> CharGPTConfig:
    """The config of a fresh causal LM: the preset's (`--preset`, default `DEFAULT_PRESET`; or `--config_name`), then
    `--config_overrides`, then the size flags that were given, then the tokenizer's vocabulary size and special ids
    (or `fixed` values, for callers without a tokenizer, such as the benchmark). Validated as a whole, so a bad
    combination is a ValueError naming the field."""
    if model_args.config_name:
        config = CharGPTConfig.from_pretrained(model_args.config_name)
    else:
        config = CharGPTConfig.from_preset(model_args.preset or DEFAULT_PRESET)
    if model_args.config_overrides:
        try:
            config.update_from_string(model_args.config_overrides)
        except ValueError as error:
            raise ValueError(
                f"--config_overrides {model_args.config_overrides!r}: {error}. Give comma-separated key=value pairs "
                f"of CharGPTConfig fields, e.g. 'n_embd=128,n_layer=4'."
            ) from error
    flags = {name: getattr(model_args, name) for name in ("n_positions", "n_embd", "n_layer", "n_head", "n_inner")}
    if model_args.dropout is not None:
        flags.update(resid_pdrop=model_args.dropout, embd_pdrop=model_args.dropout)
    values = {
        **config.to_dict(),
        **{k: v for k, v in flags.items() if v is not None},
        **({"vocab_size": len(tokenizer), **special_token_ids(tokenizer)} if tokenizer is not None else {}),
        **fixed,
    }
    for key in ("architectures", "transformers_version", "model_type", "auto_map"):
        values.pop(key, None)
    overridden = {pair.split("=")[0].strip() for pair in (model_args.config_overrides or "").split(",")}
    if not (model_args.config_name or model_args.n_inner or {"n_inner", "intermediate_size"} & overridden):
        values.pop("n_inner")  # nobody chose it: 4 * n_embd of the final size, not of the default size
    return CharGPTConfig(**values)


def new_causal_lm(model_args: LMModelArguments, tokenizer, config: CharGPTConfig | None = None) -> PreTrainedModel:
    """The model `train_lm.py` trains: continued from `model_name_or_path` (embeddings grown to the tokenizer; any
    causal LM the Auto classes know, so a GPT-2 or Llama trained with a CharGPT tokenizer continues as itself), or a
    fresh CharGPT from `config` (default: `build_causal_lm_config`)."""
    if model_args.model_name_or_path:
        model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path)
        if model.get_input_embeddings().num_embeddings < len(tokenizer):
            model.resize_token_embeddings(len(tokenizer))
        return model
    return CharGPTForCausalLM(config or build_causal_lm_config(model_args, tokenizer))


class _HeldRecords(logging.Filter):
    """Holds back every record of a logger while a model loads: it is dropped or passed on once the keys are known."""

    def __init__(self):
        super().__init__()
        self.records = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.records.append(record)
        return False


def classifier_from_pretrained(model_name_or_path, **kwargs) -> PreTrainedModel:
    """`AutoModelForSequenceClassification.from_pretrained(model_name_or_path, **kwargs)` (CharGPT's classifier for a
    CharGPT directory; transformers' own for a GPT-2 or Llama one), saying the expected once in CharGPT's words:
    loaded from a causal LM's directory, the classifier's head `score` is new (and the LM head, where the checkpoint
    holds an untied one, unused), which transformers reports as a table of MISSING (and UNEXPECTED) keys that reads
    like an error. One INFO line says it instead (on the main process, after `setup_logging`). Any
    other missing, unexpected or mismatched weight keeps transformers' whole report (and its error, for a size
    mismatch). From a classifier's directory nothing is new and nothing is said."""
    source = logging.getLogger(_LOAD_REPORT_LOGGER)
    held, expected = _HeldRecords(), False
    source.addFilter(held)
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            model_name_or_path, output_loading_info=True, **kwargs
        )
        head = {f"score.{name}" for name, _ in model.score.named_parameters()}
        lm_head = {key for key in info["unexpected_keys"] if key.startswith("lm_head.")}
        expected = (
            set(info["missing_keys"]) == head
            and set(info["unexpected_keys"]) == lm_head
            and not info["mismatched_keys"]
            and not info["error_msgs"]
        )
    finally:
        source.removeFilter(held)
        for record in held.records:
            if not (expected and _LOAD_REPORT in record.getMessage()):
                source.handle(record)
    if expected:
        unused = "; its language-model head is not used" if lm_head else ""
        logger.info(f"classifier head: new, initialised randomly; the body comes from {model_name_or_path}{unused}.")
    return model


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
    "build_causal_lm_config",
    "classifier_from_pretrained",
    "new_causal_lm",
]
