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
ACTIVATIONS = ("gelu", "gelu_new", "relu", "relu2", "silu")
# What a sequence classifier reads of each sequence (`classifier_pooling`), checked here and by the training flags.
CLASSIFIER_POOLINGS = ("last", "mean")
POSITION_EMBEDDINGS = ("learned", "rope")
NORMALIZATIONS = ("layernorm", "rmsnorm")

# Named architectures. `course` is the 2019 GPT-2 design the package grew from (the class defaults, so that every
# config.json written before the other options existed loads unchanged); `modern` is the preset chosen by the
# time-to-quality benchmark (benchmarks/NOTES.md says which options were measured and why these won). A preset sets
# only architecture fields; sizes and vocabulary come from the caller.
PRESETS = {
    "course": {
        "position_embedding_type": "learned",
        "normalization": "layernorm",
        "activation_function": "gelu",
        "gated_mlp": False,
        "qk_norm": False,
        "bias": True,
        "tie_word_embeddings": True,
        "resid_pdrop": 0.1,
        "embd_pdrop": 0.1,
        "attn_pdrop": 0.0,
    },
    "modern": {
        "position_embedding_type": "rope",
        "normalization": "rmsnorm",
        "activation_function": "silu",
        "gated_mlp": True,
        "qk_norm": True,
        "bias": False,
        "tie_word_embeddings": True,
        "resid_pdrop": 0.0,
        "embd_pdrop": 0.0,
        "attn_pdrop": 0.0,
    },
}


def default_inner_size(n_embd: int, gated: bool) -> int:
    """The feed-forward width when none is given: 4 * n_embd, or for a gated MLP (three matrices instead of two)
    8/3 * n_embd rounded up to a multiple of 32, the same parameter count."""
    if not gated:
        return 4 * n_embd
    return -(-8 * n_embd // (3 * 32)) * 32


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
            `relu2` (squared ReLU), `silu`.
        gated_mlp (`bool`, defaults to `False`): a gated feed-forward, `c_proj(act(gate) * up)` with `gate` and `up`
            from one fused `c_fc`; with `silu` this is SwiGLU. Its default width, 8/3 * n_embd rounded up to a
            multiple of 32, keeps the parameter count of the plain 4 * n_embd MLP.
        position_embedding_type (`str`, defaults to `"learned"`): `"learned"` (a trained `wpe` table, GPT-2) or
            `"rope"` (rotary embeddings applied to queries and keys; no position parameters).
        rope_theta (`float`, defaults to 10000.0): base of the rotary frequencies.
        normalization (`str`, defaults to `"layernorm"`): `"layernorm"` or `"rmsnorm"` for the block and final norms.
        qk_norm (`bool`, defaults to `False`): RMS-normalise each head's queries and keys (with a learned scale)
            before the dot product, which keeps attention logits bounded at high learning rates.
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
        Presets: `CharGPTConfig.from_preset("course" | "modern", **fields)` (see `PRESETS`).
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
    gated_mlp: bool = False
    position_embedding_type: str = "learned"
    rope_theta: float = 10000.0
    normalization: str = "layernorm"
    qk_norm: bool = False
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
            self.n_inner = default_inner_size(self.n_embd, self.gated_mlp)
        # after the parent, which also sets the fields given under transformers' standard names (hidden_size, ...)
        self._check_values()

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "CharGPTConfig":
        """A config with the architecture of preset `name` (a key of `PRESETS`); `kwargs` set sizes, vocabulary and
        any field the preset also sets."""
        if name not in PRESETS:
            raise ValueError(f"Unknown CharGPT preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **kwargs})

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
        choices = {
            "position_embedding_type": POSITION_EMBEDDINGS,
            "normalization": NORMALIZATIONS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"CharGPTConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}.")
        if self.position_embedding_type == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError(
                f"Rotary embeddings rotate pairs of channels, so the head size n_embd / n_head must be even; got "
                f"{self.n_embd} / {self.n_head} = {self.n_embd // self.n_head}."
            )
        if not self.rope_theta > 0:
            raise ValueError(f"CharGPTConfig.rope_theta must be > 0, got {self.rope_theta!r}.")
        for name in ("gated_mlp", "qk_norm", "bias", "tie_word_embeddings"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"CharGPTConfig.{name} must be true or false, got {getattr(self, name)!r}.")
        if self.classifier_pooling not in CLASSIFIER_POOLINGS:
            raise ValueError(
                f"CharGPTConfig.classifier_pooling must be one of {CLASSIFIER_POOLINGS}, got "
                f"{self.classifier_pooling!r}."
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


__all__ = ["CharGPTConfig", "CLASSIFIER_POOLINGS", "PRESETS", "default_inner_size"]
