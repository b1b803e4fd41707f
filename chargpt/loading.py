"""Loading a CharGPT model directory for inference: hub-style (with the installed package's classes, or the
directory's own code under `trust_remote_code`) or an int8 export, checked as a whole before it answers."""

import json
import logging
import os

import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)
from transformers.utils import logging as hf_logging

from .int8 import is_int8_export, load_int8


logger = logging.getLogger(__name__)

TASKS = ("causal-lm", "sequence-classification", "base")
_AUTO_CLASSES = {
    "causal-lm": AutoModelForCausalLM,
    "sequence-classification": AutoModelForSequenceClassification,
    "base": AutoModel,
}
# The class-name endings of each task's heads (GPT-2's causal LM is GPT2LMHeadModel).
_ARCHITECTURE_SUFFIX = {
    "causal-lm": ("ForCausalLM", "LMHeadModel"),
    "sequence-classification": ("ForSequenceClassification",),
}
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def check_model_dir(path) -> str:
    """The directory as a string, or a ValueError that says what a model directory is."""
    path = str(path)
    if not os.path.isdir(path):
        raise ValueError(
            f"Model directory {path!r} does not exist. Pass a directory written by save_pretrained, the training "
            f"scripts, `chargpt publish` or `chargpt export-int8` (models cannot be downloaded here)."
        )
    if not os.path.isfile(os.path.join(path, "config.json")):
        raise ValueError(f"{path} has no config.json, so it is not a model directory.")
    return path


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' is CUDA when PyTorch sees a GPU, else CPU; asking for CUDA without one is an error, not a fallback."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"Unknown device {device!r}; use auto, cpu, cuda or cuda:N.") from err
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"--device {device}: PyTorch sees no CUDA GPU here (torch.cuda.is_available() is False); use --device cpu."
        )
    return resolved


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """'auto' is float16 on CUDA and float32 elsewhere; float16 on CPU is refused (slow and not what training used)."""
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype not in _DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; use one of auto, {', '.join(_DTYPES)}.")
    if dtype == "float16" and device.type == "cpu":
        raise ValueError("float16 is for GPUs; on CPU use float32 (default) or bfloat16.")
    return _DTYPES[dtype]


def load_config(model_dir, trust_remote_code: bool = False):

    model_dir = check_model_dir(model_dir)
    if is_int8_export(model_dir):
        from .configuration_chargpt import CharGPTConfig

        return CharGPTConfig.from_pretrained(model_dir)
    return _auto_load(AutoConfig, model_dir, "the model configuration", trust_remote_code)


def remote_class(model_dir, auto_name: str):
    """The class a directory's own code defines for `auto_name` (e.g. "AutoModelForCausalLM"), from the `auto_map` in
    its config.json (tokenizer_config.json for "AutoTokenizer"). With chargpt imported, the Auto classes prefer the
    installed package's registered classes even under trust_remote_code=True, so `--trust_remote_code` loads the
    directory's classes explicitly."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    file = "tokenizer_config.json" if auto_name == "AutoTokenizer" else "config.json"
    path = os.path.join(model_dir, file)
    auto_map = {}
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            auto_map = json.load(f).get("auto_map") or {}
    reference = auto_map.get(auto_name)
    if isinstance(reference, (list, tuple)):  # AutoTokenizer: [slow, fast]
        reference = next((r for r in reference if r), None)
    if not reference:
        raise ValueError(
            f"--trust_remote_code: {model_dir} carries no code for {auto_name} (no auto_map entry in {file}). Drop "
            f"--trust_remote_code to use the installed chargpt's classes."
        )
    return get_class_from_dynamic_module(reference, model_dir)


def _auto_load(auto_class, model_dir, what: str, trust_remote_code: bool):
    """auto_class.from_pretrained(model_dir) (the directory's own class with `trust_remote_code`), with loading
    failures turned into one error that names the directory and the likely fix."""
    try:
        if trust_remote_code:
            return remote_class(model_dir, auto_class.__name__).from_pretrained(model_dir, trust_remote_code=True)
        return auto_class.from_pretrained(model_dir, trust_remote_code=False)
    except (ValueError, OSError, KeyError) as err:
        raise ValueError(
            f"Could not load {what} in {model_dir}: {err}\nIf this directory carries its own code (an auto_map in "
            f"config.json or tokenizer_config.json), pass --trust_remote_code to run that code."
        ) from err


def detect_task(config) -> str:
    """'causal-lm' or 'sequence-classification' from config.architectures (default: causal LM)."""
    architectures = getattr(config, "architectures", None) or []
    if any(a.endswith(_ARCHITECTURE_SUFFIX["sequence-classification"]) for a in architectures):
        return "sequence-classification"
    return "causal-lm"


def _check_task(model_dir, config, task: str):
    architectures = getattr(config, "architectures", None) or []
    suffix = _ARCHITECTURE_SUFFIX.get(task)
    if suffix is None:
        return
    if not architectures:
        logger.warning("%s does not record its architecture; assuming it holds a %s model.", model_dir, task)
    elif not any(a.endswith(suffix) for a in architectures):
        needed = "a causal language model" if task == "causal-lm" else "a model fine-tuned for sequence classification"
        raise ValueError(
            f"{model_dir} holds {', '.join(architectures)}, but this command needs {needed} ("
            f"{' or '.join('*' + end for end in suffix)}). Loading it "
            f"anyway would use a randomly initialised head."
        )


_TOKENIZER_FILES = ("vocab.json", "tokenizer.json")
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def load_tokenizer(model_dir, trust_remote_code: bool = False):
    model_dir = check_model_dir(model_dir)
    if not any(os.path.isfile(os.path.join(model_dir, name)) for name in _TOKENIZER_FILES):
        raise ValueError(
            f"{model_dir} has no tokenizer vocabulary ({' or '.join(_TOKENIZER_FILES)}): without it every character "
            f"would read as <unk>. Copy the tokenizer files the model was trained with into the directory (e.g. "
            f"tokenizer.save_pretrained({model_dir!r}))."
        )
    return _auto_load(AutoTokenizer, model_dir, "the tokenizer", trust_remote_code)


def check_model_and_tokenizer(model, tokenizer, model_dir) -> None:
    """Refuse a model directory whose parts do not fit together: a tokenizer with more tokens than the model has
    embeddings, or weights holding NaN or infinite values. Both would give wrong answers without an error."""
    if hasattr(model, "get_input_embeddings"):
        rows = model.get_input_embeddings().num_embeddings
    else:  # an int8 export
        rows = model.config.vocab_size
    if len(tokenizer) > rows:
        raise ValueError(
            f"{model_dir}: the tokenizer has {len(tokenizer)} tokens but the model has embeddings for only {rows} "
            f"(config vocab_size {model.config.vocab_size}), so the tokenizer is not the one the model was trained "
            f"with. Put the model's own tokenizer files in the directory."
        )
    if isinstance(model, torch.nn.Module):
        for name, tensor in model.state_dict().items():
            if tensor.is_floating_point() and not torch.isfinite(tensor).all():
                raise ValueError(
                    f"{model_dir}: weight {name} holds NaN or infinite values, so every output would be garbage (a "
                    f"diverged or damaged checkpoint). Use an earlier checkpoint, or retrain with a lower learning "
                    f"rate."
                )


def load_model_and_tokenizer(
    model_dir,
    task: str = "causal-lm",
    device: str = "cpu",
    dtype: str = "auto",
    compile: bool = False,
    trust_remote_code: bool = False,
):
    """`load_model` and `load_tokenizer`, with the directory checked as a whole (`check_model_and_tokenizer`)."""
    tokenizer = load_tokenizer(model_dir, trust_remote_code=trust_remote_code)
    model = load_model(
        model_dir, task=task, device=device, dtype=dtype, compile=compile, trust_remote_code=trust_remote_code
    )
    check_model_and_tokenizer(model, tokenizer, model_dir)
    return model, tokenizer


def load_model(
    model_dir,
    task: str = "causal-lm",
    device: str = "cpu",
    dtype: str = "auto",
    compile: bool = False,
    trust_remote_code: bool = False,
):
    """A model ready for inference: a PyTorch CharGPT (Auto classes; `trust_remote_code` runs the directory's own
    code) or, for an int8 export, `chargpt.int8.load_int8(model_dir)`. `task` is 'causal-lm',
    'sequence-classification' or 'base' (the decoder alone, from any head's checkpoint, for embeddings).
    `device`/`dtype`/`compile` are the GPU path (e.g. cuda, float16, torch.compile); CPU float32 is the default."""

    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}.")
    config = load_config(model_dir, trust_remote_code)
    model_dir = str(model_dir)
    if is_int8_export(model_dir):
        if device not in ("auto", "cpu") or dtype not in ("auto", "float32") or compile:
            raise ValueError("An int8 export runs on CPU with ONNX Runtime: drop --device, --dtype and --compile.")
        model = load_int8(model_dir)
        if task != "base" and model.task != task:
            raise ValueError(f"{model_dir} is an int8 export of a {model.task} model; this command needs {task}.")
        return model
    _check_task(model_dir, config, task)
    if not any(os.path.isfile(os.path.join(model_dir, name)) for name in _WEIGHT_FILES):
        raise ValueError(
            f"{model_dir} has no weights ({_WEIGHT_FILES[0]}); loading it would give a randomly initialised model. "
            f"Copy the weights in, or save the model again with save_pretrained."
        )
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    verbosity = hf_logging.get_verbosity()
    if task == "base":  # the head's weights are expected to be left out; don't warn about them
        hf_logging.set_verbosity_error()
    auto_class = _AUTO_CLASSES[task]
    if trust_remote_code:
        auto_class = remote_class(model_dir, auto_class.__name__)
    try:
        model = auto_class.from_pretrained(model_dir, trust_remote_code=trust_remote_code, dtype=torch_dtype)
    except Exception as err:  # safetensors and torch raise their own types for truncated or corrupted files
        raise ValueError(
            f"Could not load the model weights in {model_dir}: {type(err).__name__}: {err}. The weight file may be "
            f"truncated or damaged: copy it again, or save the model again with save_pretrained."
        ) from err
    finally:
        hf_logging.set_verbosity(verbosity)
    model = model.to(torch_device).eval()
    if compile:
        # dynamic=True: one graph for every sequence length instead of a recompilation per prompt length.
        model.forward = torch.compile(model.forward, dynamic=True)
    return model


__all__ = [
    "TASKS",
    "check_model_dir",
    "resolve_device",
    "resolve_dtype",
    "load_config",
    "remote_class",
    "detect_task",
    "load_tokenizer",
    "load_model",
    "check_model_and_tokenizer",
    "load_model_and_tokenizer",
]
