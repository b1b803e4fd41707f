"""`chargpt publish`: turn a trained CharGPT directory into one a user can upload to the Hugging Face Hub as it is.

The published directory holds the modeling/configuration/tokenizer code with an `auto_map` for every Auto class (so
it loads with `trust_remote_code=True` where chargpt is not installed), or with `--format transformers` a native
checkpoint without code; config.json, model.safetensors, the tokenizer files with the chat template,
generation_config.json (causal LMs) and a model card README.md rendered from chargpt/templates/modelcard_template.md:
Hub metadata (language, license, library_name, pipeline_tag, tags, datasets, metrics, model-index with the measured
results), architecture table, training data and settings, evaluation results and curves from the training output,
usage, limitations and, for chat models, three sample conversations of at least ten turns produced by the chat
session. The directory is built in a temporary sibling and checked (the card parses back with the expected metadata;
the model loads in a fresh Python that cannot import chargpt and gives the same logits) before it replaces
`output_dir`.

The modules: `arguments` (`PublishArguments`), `training_info` (what the card says about training, mined from the
Trainer's output), `card` (sample conversations, curves, rendering and validating the card) and `folder` (the
export, its checks, `verify_load` and `publish`, which puts it all together).
"""

from .arguments import PublishArguments
from .card import TEMPLATE_PATH, architecture_summary, build_card, validate_card
from .folder import publish, verify_load
from .training_info import collect_training_info


__all__ = [
    "PublishArguments",
    "publish",
    "verify_load",
    "collect_training_info",
    "build_card",
    "validate_card",
    "architecture_summary",
    "TEMPLATE_PATH",
]
