"""CharGPT model configuration."""

import transformers
from packaging import version
from transformers import PreTrainedConfig
from transformers.utils import logging


logger = logging.get_logger(__name__)

# The oldest transformers whose model contract CharGPT follows (dataclass configs arrived in 5.4); CI tests this one
# and the newest. Checked here too because a saved directory's code runs with whatever transformers its user has.
MIN_TRANSFORMERS_VERSION = "5.4.0"
if version.parse(transformers.__version__) < version.parse(MIN_TRANSFORMERS_VERSION):
    raise ImportError(
        f"CharGPT needs transformers>={MIN_TRANSFORMERS_VERSION}, but transformers {transformers.__version__} is "
        f"installed. Upgrade it: pip install -U 'transformers>={MIN_TRANSFORMERS_VERSION},<6'."
    )

# The one list of activations; the model takes them from transformers' ACT2FN, the int8 graph builds each from ops.
ACTIVATIONS = ("gelu", "gelu_new", "relu", "silu")
_POOLINGS = ("last", "mean")


class CharGPTConfig(PreTrainedConfig):
    r"""
    Configuration of a CharGPT model: a GPT-style, pre-LayerNorm decoder over single Unicode characters.

    The defaults are the course design the package grew from (256 hidden, 8 heads, 6 layers, 1024 feed-forward,
    dropout 0.1, 512 positions), except that attention-probability dropout is off (see `attn_pdrop`).
    transformers' standard names (`hidden_size`, `num_attention_heads`, `num_hidden_layers`, `intermediate_size`,
    `max_position_embeddings`) read and write the short names below.

    Args:
        vocab_size (`int`, defaults to 6000): number of token ids (characters plus special tokens).
        n_positions (`int`, defaults to 512): context length, the longest sequence the model accepts.
        n_embd (`int`, defaults to 256): hidden size.
        n_layer (`int`, defaults to 6): number of decoder blocks.
        n_head (`int`, defaults to 8): attention heads; must divide `n_embd`.
        n_inner (`int`, *optional*): feed-forward width; by default 4 * n_embd (1024 at the default size).
        activation_function (`str`, defaults to `"gelu"`): one of `gelu`, `gelu_new` (tanh approximation), `relu`,
            `silu`.
        resid_pdrop / embd_pdrop (`float`, default 0.1): dropout on the residual branches and on the embeddings.
        attn_pdrop (`float`, defaults to 0.0): dropout on the attention probabilities. Off by default: with it on,
            PyTorch's fused (flash) attention cannot be used on CPU and SDPA falls back to materialising the
            (B, heads, T, T) probabilities plus a random mask, a large share of a training step at a few hundred
            tokens (figures in benchmarks/results/REPORT.md). The residual and embedding dropout above still
            regularise the model.
            Each probability must be in [0, 1).
        layer_norm_epsilon (`float`, defaults to 1e-5): LayerNorm epsilon.
        initializer_range (`float`, defaults to 0.02): standard deviation of the normal weight initialisation.
        bias (`bool`, defaults to `True`): whether Linear layers and LayerNorms carry biases.
        use_cache (`bool`, defaults to `True`): return key/value caches for fast generation.
        pad_token_id / bos_token_id / eos_token_id / sep_token_id: special token ids, matching `CharGPTTokenizer`
            (`<pad>`=0, `<unk>`=1, `<sep>`=2, `<bos>`=3, `<eos>`=4).
        tie_word_embeddings (`bool`, defaults to `True`): share the input embedding with the LM head.
        classifier_pooling (`str`, defaults to `"last"`): what `CharGPTForSequenceClassification` classifies:
            `"last"`, the hidden state of each sequence's last real token (GPT-2's choice), or `"mean"`, the mean of
            the hidden states of all its real tokens (padding excluded).

    Example:

    ```python
    >>> from chargpt import CharGPTConfig, CharGPTForCausalLM
    >>> model = CharGPTForCausalLM(CharGPTConfig(vocab_size=5000))
    ```
    """

    model_type = "chargpt"
    keys_to_ignore_at_inference = ["past_key_values", "cache"]
    attribute_map = {
        "hidden_size": "n_embd",
        "max_position_embeddings": "n_positions",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
        "intermediate_size": "n_inner",
    }

    vocab_size: int = 6000
    n_positions: int = 512
    n_embd: int = 256
    n_layer: int = 6
    n_head: int = 8
    n_inner: int | None = None
    activation_function: str = "gelu"
    resid_pdrop: float | int = 0.1
    embd_pdrop: float | int = 0.1
    attn_pdrop: float | int = 0.0
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    bias: bool = True
    use_cache: bool = True
    pad_token_id: int | None = 0
    sep_token_id: int | None = 2
    bos_token_id: int | None = 3
    eos_token_id: int | list[int] | None = 4
    tie_word_embeddings: bool = True
    classifier_pooling: str = "last"

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        if self.n_inner is None and isinstance(self.n_embd, int):
            self.n_inner = 4 * self.n_embd
        # after the parent, which also sets the fields given under transformers' standard names (hidden_size, ...)
        self._check_values()

    def _check_values(self):
        """Raise a ValueError naming the field for any value the model cannot be built with."""
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"CharGPTConfig.{name} must be a positive integer, got {value!r}.")
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"CharGPTConfig.n_head ({self.n_head}) must divide n_embd ({self.n_embd}) so that every head has "
                f"the same size; for n_embd={self.n_embd} pick one of "
                f"{[h for h in range(1, self.n_embd + 1) if self.n_embd % h == 0 and h <= 64]}."
            )
        for name in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"CharGPTConfig.{name} must be a probability in [0, 1), got {value!r}.")
        if not self.layer_norm_epsilon > 0:
            raise ValueError(f"CharGPTConfig.layer_norm_epsilon must be > 0, got {self.layer_norm_epsilon!r}.")
        if not self.initializer_range > 0:
            raise ValueError(f"CharGPTConfig.initializer_range must be > 0, got {self.initializer_range!r}.")
        if self.classifier_pooling not in _POOLINGS:
            raise ValueError(
                f"CharGPTConfig.classifier_pooling must be one of {_POOLINGS}, got {self.classifier_pooling!r}."
            )
        if self.activation_function not in ACTIVATIONS:
            raise ValueError(
                f"CharGPTConfig.activation_function must be one of {ACTIVATIONS}, got {self.activation_function!r}."
            )
        for name in ("pad_token_id", "sep_token_id", "bos_token_id"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < self.vocab_size:
                raise ValueError(
                    f"CharGPTConfig.{name} ({value}) must be None or an id in [0, vocab_size={self.vocab_size})."
                )


__all__ = ["CharGPTConfig"]
