"""The published folder: CharGPT's own classes with their code (`remote-code`) or the native transformers export,
the training curves and the model card (`card`), built in a temporary sibling and checked (the Hub files are there,
the card parses back with the expected metadata, the model loads in a fresh Python that cannot import chargpt and
gives the same logits and greedy reply) before it replaces `output_dir`."""

import json
import os
import subprocess
import sys
import tempfile

import torch

from ..export.native import check_native, choose_target, write_native
from ..files import atomic_output_dir
from ..int8 import is_int8_export
from ..loading import detect_task, load_config, load_model_and_tokenizer
from .arguments import PublishArguments
from .card import (
    KNOWN_LICENSES,
    TEMPLATE_PATH,
    build_card,
    copy_curves,
    read_chat_scripts,
    sample_conversations,
    validate_card,
)
from .training_info import collect_training_info


def publish(model_dir, args: PublishArguments, trust_remote_code: bool = False) -> dict:
    """Write the hub-ready directory; returns {"files": [...], "notes": [warnings], "verify": {...}}."""
    scripts, template = _check_arguments(model_dir, args)
    task = detect_task(load_config(model_dir, trust_remote_code))
    model, tokenizer = load_model_and_tokenizer(model_dir, task=task, trust_remote_code=trust_remote_code)
    native = choose_target(model.config, task) if args.format == "transformers" else None  # refuse before writing
    notes = []
    training = collect_training_info(args.training_dir or model_dir, task, notes)
    with atomic_output_dir(args.output_dir, overwrite=args.overwrite, source=model_dir) as staging:
        if native is None:
            model.save_pretrained(staging)
            tokenizer.save_pretrained(staging)
            _check_hub_files(staging, task)
        else:
            write_native(model, tokenizer, native, task, staging)
            native_checks = check_native(model, tokenizer, staging, task)
        curves = copy_curves([args.training_dir, model_dir, training.get("state_dir")], staging, training, notes)
        conversations = sample_conversations(model, tokenizer, scripts, args.seed) if task == "causal-lm" else []
        card_path = os.path.join(staging, "README.md")
        build_card(model, tokenizer, task, args, training, curves, conversations, template, native).save(card_path)
        validate_card(card_path, task, len(training["eval_rows"]), args.validate_online)
        if native is not None:
            verify = native_checks  # loaded back by transformers' own classes and compared as it was written
        else:
            verify = verify_load(staging, task, model, tokenizer) if args.verify_load else {}
        files = sorted(os.listdir(staging))
    if not args.datasets:
        notes.append("No --datasets given: the card's metadata names no training dataset.")
    return {"files": files, "notes": notes, "verify": verify}


def _check_arguments(model_dir, args: PublishArguments) -> tuple[list[list[str]], str]:
    """Refuse what cannot be published before anything is loaded; returns the chat scripts and the card template."""
    if is_int8_export(model_dir):
        raise ValueError(f"{model_dir} is an int8 export; publish the float model it came from.")
    if os.path.realpath(args.output_dir) == os.path.realpath(model_dir):
        raise ValueError("output_dir must differ from the model directory.")
    if args.license not in KNOWN_LICENSES:
        raise ValueError(
            f"--license {args.license!r} is not a Hub licence id; use one of e.g. apache-2.0, mit, "
            f"cc-by-4.0, cc-by-nc-4.0, or 'other'."
        )
    scripts = read_chat_scripts(args.chat_scripts)
    template = args.card_template or TEMPLATE_PATH
    if not os.path.isfile(template):
        raise ValueError(f"Model card template {template!r} not found.")
    return scripts, template


def _check_hub_files(directory: str, task: str):
    """The files a Hub user needs, and an auto_map entry for every Auto class, or an error naming what is missing."""
    needed = [
        "config.json",
        "model.safetensors",
        "configuration_chargpt.py",
        "modeling_chargpt.py",
        "tokenization_chargpt.py",
        "tokenizer_config.json",
        "vocab.json",
    ]
    if task == "causal-lm":
        needed.append("generation_config.json")
    missing = [n for n in needed if not os.path.isfile(os.path.join(directory, n))]
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
        auto_map = json.load(f).get("auto_map", {})
    missing += [
        f"config.json auto_map[{c}]"
        for c in ("AutoConfig", "AutoModel", "AutoModelForCausalLM", "AutoModelForSequenceClassification")
        if c not in auto_map
    ]
    with open(os.path.join(directory, "tokenizer_config.json"), encoding="utf-8") as f:
        tokenizer_config = json.load(f)
    if "AutoTokenizer" not in tokenizer_config.get("auto_map", {}):
        missing.append("tokenizer_config.json auto_map[AutoTokenizer]")
    if not (os.path.isfile(os.path.join(directory, "chat_template.jinja")) or tokenizer_config.get("chat_template")):
        missing.append("chat template")
    if missing:
        raise ValueError(
            f"The saved directory lacks {', '.join(missing)}. Is the model a CharGPT class registered for the Auto "
            f"classes (import chargpt before loading it)?"
        )


# ----------------------------------------------------------------------------------------------------------------------
# Loading check in a Python that cannot import chargpt
# ----------------------------------------------------------------------------------------------------------------------

_VERIFY_SCRIPT = r"""
import json, sys
sys.modules["chargpt"] = None  # the directory must load with the code it carries, not an installed chargpt
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer
path, task, text = sys.argv[1], sys.argv[2], sys.argv[3]
auto = AutoModelForCausalLM if task == "causal-lm" else AutoModelForSequenceClassification
tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
model = auto.from_pretrained(path, trust_remote_code=True).eval()
out = {"model_class": type(model).__name__, "model_module": type(model).__module__,
       "tokenizer_class": type(tokenizer).__name__}
with torch.no_grad():
    out["logits"] = model(**tokenizer(text, return_tensors="pt")).logits[0, -1].tolist()
    if task == "causal-lm":  # the card's usage snippet, greedily
        messages = [{"role": "user", "content": text}]
        inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                               return_dict=True)
        reply = model.generate(**inputs, max_new_tokens=8, do_sample=False)
        out["greedy_reply_ids"] = reply[0, inputs["input_ids"].shape[1]:].tolist()
print("VERIFY " + json.dumps(out))
"""

VERIFY_TEXT = "你好，今天天气很好。"


@torch.no_grad()
def verify_load(directory: str, task: str, model, tokenizer, timeout: int = 300) -> dict:
    """Load `directory` with trust_remote_code in a fresh Python where `import chargpt` fails and check that it
    gives the same last-token logits (and, for a causal LM, the same greedy chat reply) as `model`."""
    with tempfile.TemporaryDirectory() as modules_cache:
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "HF_MODULES_CACHE": modules_cache,
            "TOKENIZERS_PARALLELISM": "false",
        }
        proc = subprocess.run(
            [sys.executable, "-c", _VERIFY_SCRIPT, directory, task, VERIFY_TEXT],
            env=env,
            cwd=modules_cache,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("VERIFY ")]
    if proc.returncode != 0 or not lines:
        raise ValueError(f"The published directory does not load without chargpt:\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1][len("VERIFY ") :])
    expected = model(**tokenizer(VERIFY_TEXT, return_tensors="pt")).logits[0, -1]
    diff = float((torch.tensor(result["logits"]) - expected.float()).abs().max())
    if diff > 1e-4:
        raise ValueError(f"The published model's logits differ from the source model's by {diff:.2e}.")
    result["max_abs_logit_diff"] = diff
    if task == "causal-lm":
        inputs = tokenizer.apply_chat_template(
            [{"role": "user", "content": VERIFY_TEXT}],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        )
        reply = model.generate(**inputs, max_new_tokens=8, do_sample=False)[0, inputs["input_ids"].shape[1] :]
        if reply.tolist() != result["greedy_reply_ids"]:
            raise ValueError("The published model's greedy reply differs from the source model's.")
    del result["logits"]
    return result


__all__ = ["publish", "verify_load", "VERIFY_TEXT"]
