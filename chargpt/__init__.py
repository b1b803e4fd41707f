"""CharGPT: a character-level GPT for Chinese (and any Unicode text), native to Hugging Face transformers.

Importing the package registers CharGPT with the Auto classes (AutoConfig, AutoTokenizer, AutoModel,
AutoModelForCausalLM, AutoModelForSequenceClassification) and marks its classes so that `save_pretrained` writes
hub-style directories (code files plus `auto_map`) that load with `trust_remote_code=True` without this package.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
)

from .configuration_chargpt import CharGPTConfig
from .modeling_chargpt import (
    CharGPTForCausalLM,
    CharGPTForSequenceClassification,
    CharGPTModel,
    CharGPTPreTrainedModel,
    mean_pool,
)
from .tokenization_chargpt import CharGPTTokenizer, normalize_text
from .tokenization_chargpt_fast import CharGPTTokenizerFast


__version__ = "0.1.0"

AutoConfig.register(CharGPTConfig.model_type, CharGPTConfig, exist_ok=True)
# transformers 5 always picks the fast tokenizer (AutoTokenizer ignores use_fast); the slow one is registered too so
# that a tokenizer_config.json naming it resolves to the fast class.
AutoTokenizer.register(
    CharGPTConfig, slow_tokenizer_class=CharGPTTokenizer, fast_tokenizer_class=CharGPTTokenizerFast, exist_ok=True
)
AutoModel.register(CharGPTConfig, CharGPTModel, exist_ok=True)
AutoModelForCausalLM.register(CharGPTConfig, CharGPTForCausalLM, exist_ok=True)
AutoModelForSequenceClassification.register(CharGPTConfig, CharGPTForSequenceClassification, exist_ok=True)

CharGPTConfig.register_for_auto_class()
CharGPTTokenizer.register_for_auto_class("AutoTokenizer")
CharGPTTokenizerFast.register_for_auto_class("AutoTokenizer")
CharGPTModel.register_for_auto_class("AutoModel")
CharGPTForCausalLM.register_for_auto_class("AutoModelForCausalLM")
CharGPTForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")

__all__ = [
    "CharGPTConfig",
    "CharGPTTokenizer",
    "CharGPTTokenizerFast",
    "CharGPTPreTrainedModel",
    "CharGPTModel",
    "CharGPTForCausalLM",
    "CharGPTForSequenceClassification",
    "mean_pool",
    "normalize_text",
]
