"""PyTorch CharGPT: a pre-LayerNorm GPT decoder over characters, with causal-LM and classification heads."""

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationConfig, GenerationMixin, PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.utils import can_return_tuple, logging
from transformers.utils.output_capturing import capture_outputs

from .configuration_chargpt import CLASSIFIER_POOLINGS, CharGPTConfig


logger = logging.get_logger(__name__)

# The name transformers gives the key/value cache, both as a forward() argument and as a field of the model outputs:
# `cache` from 5.24 on, `past_key_values` before. generate() passes the cache under this name and reads it back from
# the outputs under it, so the models accept both names and return it under this one.
CACHE_NAME = "cache" if "cache" in BaseModelOutputWithPast.__dataclass_fields__ else "past_key_values"

# Every Auto class a saved CharGPT directory serves; written into config.json so that one directory loads with
# `trust_remote_code=True` as a base model, a causal LM or a classifier.
AUTO_MAP = {
    "AutoConfig": "configuration_chargpt.CharGPTConfig",
    "AutoModel": "modeling_chargpt.CharGPTModel",
    "AutoModelForCausalLM": "modeling_chargpt.CharGPTForCausalLM",
    "AutoModelForSequenceClassification": "modeling_chargpt.CharGPTForSequenceClassification",
}


def mean_pool(hidden_states, attention_mask=None):
    """Masked mean over the sequence: (B, T, C), (B, T) -> (B, C). Padding positions do not count."""
    if attention_mask is None:
        return hidden_states.mean(dim=1)
    mask = attention_mask.to(hidden_states.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def real_tokens(input_ids, attention_mask, pad_token_id, batch_size: int, length: int, device):
    """(B, T) bool mask of the real (non-padding) tokens a classifier pools over: the 2D `attention_mask` where one is
    given, else the tokens that are not `pad_token_id`, else None (every position is real)."""
    if attention_mask is not None and attention_mask.dim() == 2:
        return attention_mask[:, -length:].to(device).bool()
    if input_ids is not None and pad_token_id is not None:
        return input_ids.to(device) != pad_token_id
    if batch_size > 1 and input_ids is None:
        logger.warning_once("No attention_mask with inputs_embeds: every position counts as a real token.")
    return None


def pool_sequence(states, real, pooling: str):
    """What a classifier reads of each sequence: (B, T, ...) -> (B, ...), the state of the last real token
    (`pooling="last"`) or the mean over the real tokens (`"mean"`); `real` is (B, T) bool or None (all real). The one
    implementation of `config.classifier_pooling`: the int8 runtime applies it to per-position logits, which is the
    same thing because the head is linear (the mean, or the pick, of W h + b is W applied to the mean, or the pick)."""
    if pooling == "mean":
        return mean_pool(states, real)
    if pooling != "last":
        raise ValueError(f"classifier_pooling must be one of {CLASSIFIER_POOLINGS}, got {pooling!r}.")
    B, T = states.shape[:2]
    if real is None:
        last = torch.full((B,), T - 1, dtype=torch.long, device=states.device)
    else:
        last = (torch.arange(T, device=states.device) * real).argmax(dim=-1)  # rightmost real token
    return states[torch.arange(B, device=states.device), last]


def _merge_cache_names(cache, past_key_values):
    """The cache given under either name (`cache`, or `past_key_values` as transformers < 5.24 calls it)."""
    if cache is not None and past_key_values is not None and cache is not past_key_values:
        raise ValueError("Pass the key/value cache once, as `cache` or as `past_key_values`, not both.")
    return cache if cache is not None else past_key_values


def _cache_capacity(cache: Cache) -> int:
    """How many positions a cache's key tensors span after an update: its preallocated length for a static cache,
    -1 for one that grows with the tokens seen (DynamicCache). The method was renamed in transformers 5.24."""
    method = getattr(cache, "get_max_length", None) or cache.get_max_cache_shape
    capacity = method()
    return -1 if capacity is None else capacity


def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0, **kwargs):
    """Explicit softmax attention, the `eager` kernel. `attention_mask` is boolean (True where a key is seen) or
    additive (0 / a large negative value); None means causal from the top left for several queries, everything for
    one. Returns the output as (B, T, n_head, head_dim) and the weights (B, n_head, T, T_kv)."""
    scores = (query @ key.transpose(-2, -1)) * scaling  # (B, n_head, T, T_kv)
    if attention_mask is None and query.shape[2] > 1:
        attention_mask = torch.ones(scores.shape[-2:], dtype=torch.bool, device=query.device).tril()
    if attention_mask is not None and attention_mask.dtype == torch.bool:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    elif attention_mask is not None:
        scores = scores + attention_mask
    weights = scores.softmax(dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    return (weights @ value).transpose(1, 2).contiguous(), weights


def make_norm(config: CharGPTConfig, dim: int | None = None) -> nn.Module:
    """The normalisation `config.normalization` names, over the last `dim` (default n_embd) channels."""
    dim = config.n_embd if dim is None else dim
    if config.normalization == "rmsnorm":
        return nn.RMSNorm(dim, eps=config.layer_norm_epsilon)
    return nn.LayerNorm(dim, eps=config.layer_norm_epsilon, bias=config.bias)


def rotary_cos_sin(position_ids, head_dim: int, theta: float, dtype):
    """cos and sin of the rotary angles, each (B, 1, T, head_dim), for positions (B, T). Channel pair (i, i + d/2)
    turns by position * theta^(-2i/d). Recomputed per call (a few thousand numbers) rather than kept in a buffer,
    so nothing position-dependent is stored in, or missing from, a checkpoint."""
    exponents = torch.arange(0, head_dim, 2, device=position_ids.device, dtype=torch.float32) / head_dim
    inv_freq = theta**-exponents  # (head_dim / 2,)
    angles = position_ids[:, None, :, None].float() * inv_freq  # (B, 1, T, head_dim / 2)
    angles = torch.cat((angles, angles), dim=-1)  # (B, 1, T, head_dim)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x, cos, sin):
    """Rotate channel pairs (i, i + d/2) of x (B, n_head, T, head_dim) by the angles in cos/sin (B, 1, T, head_dim)."""
    half = x.shape[-1] // 2
    rotated = torch.cat((-x[..., half:], x[..., :half]), dim=-1)
    return x * cos + rotated * sin


class CharGPTAttention(nn.Module):
    """Multi-head causal self-attention with an optional key/value cache. The kernel is the one named by
    `config._attn_implementation` (transformers' attention interface): `sdpa` (default), `eager`,
    `flash_attention_2`, `flex_attention`, ..."""

    def __init__(self, config: CharGPTConfig, layer_idx: int):
        super().__init__()
        self.config = config
        self.layer_idx = layer_idx
        self.n_head = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.scaling = self.head_dim**-0.5
        self.is_causal = True
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # fused q, k, v
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj.is_residual_projection = True
        self.attn_pdrop = config.attn_pdrop
        self.resid_dropout = nn.Dropout(config.resid_pdrop)
        if config.qk_norm:
            self.q_norm = nn.RMSNorm(self.head_dim, eps=config.layer_norm_epsilon)
            self.k_norm = nn.RMSNorm(self.head_dim, eps=config.layer_norm_epsilon)

    def forward(
        self,
        hidden_states,
        attention_mask=None,
        cache=None,
        output_attentions=False,
        position_embeddings=None,
        **kwargs,
    ):
        B, T, C = hidden_states.shape
        # (B, T, 3C) -> 3 x (B, n_head, T, head_dim)
        qkv = self.c_attn(hidden_states).view(B, T, 3, self.n_head, self.head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        if self.config.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        if position_embeddings is not None:  # rotary: (cos, sin), each (B, 1, T, head_dim)
            q, k = apply_rotary(q, *position_embeddings), apply_rotary(k, *position_embeddings)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx)  # (B, n_head, T_kv, head_dim)
        implementation = self.config._attn_implementation or "sdpa"
        if output_attentions and implementation == "sdpa":
            implementation = "eager"  # SDPA never materialises the attention probabilities
        attention: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(implementation, eager_attention_forward)
        y, weights = attention(
            self,
            q,
            k,
            v,
            attention_mask,
            dropout=self.attn_pdrop if self.training else 0.0,
            scaling=self.scaling,
            **kwargs,
        )
        y = y.reshape(B, T, C)  # (B, T, n_head, head_dim) -> (B, T, C)
        return self.resid_dropout(self.c_proj(y)), weights


class CharGPTMLP(nn.Module):
    """Feed-forward: c_proj(act(c_fc(x))), or with `config.gated_mlp` c_proj(act(gate) * up), where c_fc computes
    gate and up side by side (one matrix multiply): (B, T, C) -> (B, T, 2 * n_inner) -> (B, T, C)."""

    def __init__(self, config: CharGPTConfig):
        super().__init__()
        self.gated = config.gated_mlp
        self.c_fc = nn.Linear(config.n_embd, (2 if self.gated else 1) * config.n_inner, bias=config.bias)
        self.act = ACT2FN[config.activation_function]
        self.c_proj = nn.Linear(config.n_inner, config.n_embd, bias=config.bias)
        self.c_proj.is_residual_projection = True
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, x):
        if self.gated:
            gate, up = self.c_fc(x).chunk(2, dim=-1)
            return self.dropout(self.c_proj(self.act(gate) * up))
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


class CharGPTBlock(GradientCheckpointingLayer):
    """Pre-norm decoder block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: CharGPTConfig, layer_idx: int):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CharGPTAttention(config, layer_idx)
        self.ln_2 = make_norm(config)
        self.mlp = CharGPTMLP(config)

    def forward(self, hidden_states, attention_mask=None, cache=None, **kwargs):
        attn_out, _ = self.attn(self.ln_1(hidden_states), attention_mask, cache, **kwargs)
        hidden_states = hidden_states + attn_out
        return hidden_states + self.mlp(self.ln_2(hidden_states))


class CharGPTPreTrainedModel(PreTrainedModel):
    config: CharGPTConfig
    config_class = CharGPTConfig
    base_model_prefix = "transformer"
    supports_gradient_checkpointing = True
    _no_split_modules = ["CharGPTBlock"]
    _skip_keys_device_placement = ["past_key_values", "cache"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_record_outputs = {"hidden_states": CharGPTBlock, "attentions": CharGPTAttention}

    @torch.no_grad()
    def _init_weights(self, module):
        """Normal(0, initializer_range) weights, zero biases, unit LayerNorms; residual projections scaled down."""
        if isinstance(module, nn.Linear) and getattr(module, "is_residual_projection", False):
            # Each block adds two branches (attention, MLP) to the residual stream, so its variance grows with depth.
            # Scaling the projections that write into the stream by 1/sqrt(2 * n_layer) keeps the activations at the
            # same scale at initialisation however deep the model is (GPT-2 paper, section 2.3).
            init.normal_(
                module.weight, mean=0.0, std=self.config.initializer_range / math.sqrt(2 * self.config.n_layer)
            )
            if module.bias is not None:
                init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    def save_pretrained(self, save_directory, *args, **kwargs):
        if getattr(type(self), "_auto_class", None) is not None:
            # transformers records only this class's Auto entry; record all of them so that the same directory
            # loads as a base model, a causal LM or a classifier with trust_remote_code=True.
            self.config.auto_map = {**AUTO_MAP, **(getattr(self.config, "auto_map", None) or {})}
        return super().save_pretrained(save_directory, *args, **kwargs)

    @torch.no_grad()
    def embed(self, input_ids, attention_mask=None, normalize=True):
        """Sentence embeddings (B, n_embd): masked mean of the last hidden states, L2-normalised by default, so
        that a dot product of two embeddings is their cosine similarity."""
        hidden = self.base_model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)[0]
        pooled = mean_pool(hidden, attention_mask)
        return F.normalize(pooled, dim=-1) if normalize else pooled


class CharGPTModel(CharGPTPreTrainedModel):
    """The bare CharGPT decoder: embeddings, `n_layer` blocks and a final LayerNorm."""

    def __init__(self, config: CharGPTConfig):
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        # learned absolute positions (GPT-2), or none: rotary embeddings are computed from the positions per call
        self.wpe = (
            nn.Embedding(config.n_positions, config.n_embd) if config.position_embedding_type == "learned" else None
        )
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList([CharGPTBlock(config, i) for i in range(config.n_layer)])
        self.ln_f = make_norm(config)
        self.gradient_checkpointing = False
        self.post_init()

    def get_input_embeddings(self):
        return self.wte

    def set_input_embeddings(self, new_embeddings):
        self.wte = new_embeddings

    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> BaseModelOutputWithPast:
        r"""
        Args:
            input_ids (`torch.LongTensor` of shape `(batch_size, sequence_length)`): token ids from
                `CharGPTTokenizer`. With a cache, only the ids not yet in it.
            attention_mask (`torch.Tensor` of shape `(batch_size, past_length + sequence_length)`, *optional*):
                1 for real tokens, 0 for padding (left or right). A 4D mask is passed to attention unchanged.
            position_ids (`torch.LongTensor`, *optional*): by default counted from the first non-padding token, so
                a left-padded prompt gets the same positions as the prompt alone.
            cache (`Cache`, *optional*): a transformers cache (e.g. `DynamicCache`, `StaticCache`) from an earlier
                call; `past_key_values` is the same argument under the name transformers used before 5.24.
            inputs_embeds (`torch.Tensor` of shape `(batch_size, sequence_length, n_embd)`, *optional*): used
                instead of `input_ids`.
            use_cache (`bool`, *optional*): return the updated cache; defaults to `config.use_cache` outside
                training.
            output_attentions / output_hidden_states (`bool`, *optional*, keyword): also return per-layer attention
                weights / hidden states. Attention weights are computed with the eager kernel for that call.

        Returns:
            [`~transformers.modeling_outputs.BaseModelOutputWithPast`], with the cache under `CACHE_NAME`.
        """
        cache = _merge_cache_names(cache, past_key_values)
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if self.gradient_checkpointing and self.training and use_cache:
            logger.warning_once("use_cache=True is incompatible with gradient checkpointing; using use_cache=False.")
            use_cache = False
        if not use_cache:
            cache = None
        elif cache is None:
            cache = DynamicCache(config=self.config)
        past_len = cache.get_seq_length() if cache is not None else 0

        if not torch.compiler.is_compiling():
            self._check_inputs(input_ids, inputs_embeds, attention_mask, past_len)
        if inputs_embeds is None:
            inputs_embeds = self.wte(input_ids)
        B, T = inputs_embeds.shape[:2]
        if position_ids is None:
            position_ids = self._position_ids(attention_mask, B, T, past_len, inputs_embeds.device)
        if self.wpe is not None:
            hidden_states, rotary = self.drop(inputs_embeds + self.wpe(position_ids)), None
        else:
            hidden_states = self.drop(inputs_embeds)
            head_dim = self.config.n_embd // self.config.n_head
            rotary = rotary_cos_sin(position_ids, head_dim, self.config.rope_theta, inputs_embeds.dtype)

        # output_attentions / output_hidden_states are collected by the capture_outputs hooks; attention weights only
        # exist on the eager path, which the attention layers take for this call when they are asked for.
        output_attentions = kwargs.pop("output_attentions", None)
        if output_attentions is None:
            output_attentions = self.config.output_attentions
        kwargs.pop("output_hidden_states", None)
        kv_len = self._key_length(cache, T, past_len)
        mask = self._mask_for_kernel(attention_mask, T, past_len, kv_len, inputs_embeds.dtype, inputs_embeds.device)
        for block in self.h:
            hidden_states = block(
                hidden_states, mask, cache, output_attentions=output_attentions, position_embeddings=rotary, **kwargs
            )
        hidden_states = self.ln_f(hidden_states)
        return BaseModelOutputWithPast(last_hidden_state=hidden_states, **{CACHE_NAME: cache})

    def _check_inputs(self, input_ids, inputs_embeds, attention_mask, past_len):
        """Turn the mistakes users make into errors that say what to change, before torch fails deep inside."""
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Pass exactly one of input_ids or inputs_embeds.")
        x = input_ids if input_ids is not None else inputs_embeds
        want = 2 if input_ids is not None else 3
        if x.dim() != want:
            name = "input_ids" if input_ids is not None else "inputs_embeds"
            raise ValueError(
                f"{name} must have {want} dimensions (batch_size, sequence_length{', n_embd' if want == 3 else ''}), "
                f"got shape {tuple(x.shape)}; for a single sequence use {name}.unsqueeze(0)."
            )
        B, T = x.shape[:2]
        if B == 0 or T == 0:
            raise ValueError(
                f"input_ids is empty (shape {tuple(x.shape)}): give at least one token per sequence, e.g. the "
                f"tokenizer's bos token for unconditional generation."
            )
        n_pos = self.config.n_positions
        if past_len + T > n_pos:
            raise ValueError(
                f"Sequence too long: {past_len + T} tokens ({past_len} cached + {T} new) but the model's context "
                f"length is n_positions={n_pos}. Truncate the input, e.g. tokenizer(text, truncation=True, "
                f"max_length={n_pos}), or keep prompt length + max_new_tokens <= {n_pos} when generating."
            )
        if input_ids is not None:
            if input_ids.is_floating_point():
                raise ValueError(f"input_ids must hold integer token ids, got dtype {input_ids.dtype}.")
            lo, hi = torch.aminmax(input_ids)
            vocab = self.wte.num_embeddings
            if lo.item() < 0 or hi.item() >= vocab:
                bad = lo.item() if lo.item() < 0 else hi.item()
                raise ValueError(
                    f"input_ids contains token id {bad}, outside the vocabulary [0, {vocab}). Encode text with the "
                    f"model's own tokenizer, or call model.resize_token_embeddings(len(tokenizer)) after adding "
                    f"tokens."
                )
        if attention_mask is not None and attention_mask.dim() == 2:
            if tuple(attention_mask.shape) != (B, past_len + T):
                raise ValueError(
                    f"attention_mask has shape {tuple(attention_mask.shape)} but must be (batch_size, past_length + "
                    f"sequence_length) = ({B}, {past_len + T}); pass the mask the tokenizer returned with the ids."
                )
        elif attention_mask is not None and attention_mask.dim() != 4:
            raise ValueError(
                f"attention_mask must be 2D (batch_size, sequence_length) or a prepared 4D mask, got shape "
                f"{tuple(attention_mask.shape)}."
            )

    @staticmethod
    def _position_ids(attention_mask, B, T, past_len, device):
        """Positions (B, T): counted from each row's first real token when a 2D mask is given, else from past_len."""
        if attention_mask is not None and attention_mask.dim() == 2:
            positions = attention_mask.long().cumsum(-1) - 1  # (B, past_len + T); left padding gets -1 -> 0
            return positions.clamp(min=0)[:, -T:]
        # past_len may be a 0-d tensor (a static cache's count on some transformers versions, or under compile)
        return (torch.arange(T, device=device) + past_len).unsqueeze(0).expand(B, T)

    @staticmethod
    def _key_length(cache, T, past_len):
        """How many keys attention will see after this call's cache update: past_len + T for a cache that holds
        exactly the tokens seen (DynamicCache), the whole preallocated buffer for a StaticCache."""
        if cache is None:
            return past_len + T
        if any(getattr(cache, "is_sliding", None) or ()):
            raise ValueError(
                f"{type(cache).__name__} has sliding-window layers; CharGPT attends to the whole context. Use "
                f"DynamicCache or StaticCache (generate(cache_implementation='static'))."
            )
        capacity = _cache_capacity(cache)
        return capacity if capacity > 0 else past_len + T

    def _mask_for_kernel(self, attention_mask, T, past_len, kv_len, dtype, device):
        """The attention mask in the form the configured kernel takes. `sdpa` and `eager`: a boolean
        (B|1, 1, T, kv_len) mask, or None where the causal flag (or nothing, for one new token) is enough. Flash
        attention: the 2D padding mask, or None (it masks causally itself). Any other kernel (e.g. `flex_attention`)
        applies no causal masking of its own and gets the full mask as additive floats."""
        if attention_mask is not None and attention_mask.dim() == 4:
            return attention_mask
        implementation = self.config._attn_implementation or "sdpa"
        if implementation.startswith("flash"):
            if attention_mask is None or bool(attention_mask.all()):
                return None
            return F.pad(attention_mask, (0, max(kv_len - attention_mask.shape[-1], 0)), value=0)
        full = implementation not in ("sdpa", "eager")
        mask = self._attention_mask(attention_mask, T, past_len, device, kv_len, always=full)
        if not full:
            return mask
        return torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, torch.finfo(dtype).min)

    @staticmethod
    def _attention_mask(attention_mask, T, past_len, device, kv_len=None, always=False):
        """Boolean mask (B|1, 1, T, kv_len) for queries at positions past_len .. past_len + T - 1 against kv_len keys
        (default past_len + T; more for a preallocated static cache, whose unused slots are masked), or None.
        Without padding, and unless `always`, no mask tensor is built where none is needed: the causal flag (no cache)
        or nothing (one new token attends to the whole cache) lets SDPA pick its fastest kernel."""
        kv_len = past_len + T if kv_len is None else kv_len
        # Under torch.compile (a static cache's decode step, where past_len is a tensor) the mask is always built:
        # testing the padding or the cache length would be a data-dependent graph break.
        compiling = torch.compiler.is_compiling()
        no_padding = attention_mask is None or (not compiling and bool(attention_mask.all()))
        known_past = isinstance(past_len, int)
        exact = known_past and isinstance(kv_len, int) and kv_len == past_len + T
        if not always and no_padding and known_past and past_len == 0 and (exact or T > 1):
            # Causal from the top left: query i sees keys 0..i, also when the buffer behind them is longer.
            return None
        if not always and no_padding and T == 1 and exact:
            return None
        # (T, kv_len): query i (at absolute position past_len + i) sees keys 0 .. past_len + i; slots after the
        # last written one (a static cache's empty buffer) are excluded by the same comparison.
        query_pos = torch.arange(T, device=device)[:, None] + past_len
        mask = (torch.arange(kv_len, device=device)[None, :] <= query_pos)[None, None]  # (1, 1, T, kv_len)
        if not no_padding:
            padding = attention_mask.bool()
            if padding.shape[-1] < kv_len:
                padding = F.pad(padding, (0, kv_len - padding.shape[-1]), value=False)
            mask = mask & padding[:, None, None, :]  # (B, 1, T, kv_len)
            # A query at a left-padding position sees no key at all and SDPA would return NaN there; let it see every
            # key instead. Its output is never used: no real token attends to a padding key.
            mask = mask | ~mask.any(dim=-1, keepdim=True)
        return mask


class CharGPTForCausalLM(CharGPTPreTrainedModel, GenerationMixin):
    """CharGPT with a language-modelling head tied to the input embedding; works with `generate()`."""

    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}

    def __init__(self, config: CharGPTConfig):
        super().__init__(config)
        self.transformer = CharGPTModel(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            # The tied head is never written to a checkpoint; naming it here tells Trainer that its absence when
            # reloading the best checkpoint is expected (it re-ties instead of warning about a missing key).
            self._keys_to_ignore_on_save = {"lm_head.weight"}
        self.post_init()
        self.generation_config = default_generation_config(config)

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, new_embeddings):
        self.lm_head = new_embeddings

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> CausalLMOutputWithPast:
        r"""
        Args:
            labels (`torch.LongTensor` of shape `(batch_size, sequence_length)`, *optional*): targets for the
                next-token loss. Shifted inside the model, so `labels=input_ids` is right; -100 is ignored.
            logits_to_keep (`int` or `torch.Tensor`, *optional*): compute logits only for the last this many
                positions (0 = all), as `generate()` does for the prompt.
            num_items_in_batch (`int`, *optional*, keyword): token count of the whole (global) batch, which
                Trainer passes so that gradient accumulation and data parallelism average over tokens exactly.

            Other arguments as in [`CharGPTModel.forward`].

        Returns:
            [`~transformers.modeling_outputs.CausalLMOutputWithPast`], with the cache under `CACHE_NAME`.
        """
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        outputs = self.transformer(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=_merge_cache_names(cache, past_key_values),
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            hidden_states = hidden_states[:, -logits_to_keep:]
        elif isinstance(logits_to_keep, torch.Tensor):
            hidden_states = hidden_states[:, logits_to_keep]
        logits = self.lm_head(hidden_states)

        loss = None
        if labels is not None:
            # loss_function shifts the labels, ignores -100, upcasts to fp32 and, given num_items_in_batch, sums and
            # divides by the global token count, which keeps DDP and gradient accumulation exact.
            loss = self.loss_function(
                logits, labels, vocab_size=self.config.vocab_size, num_items_in_batch=num_items_in_batch
            )
        return CausalLMOutputWithPast(
            loss=loss,
            logits=logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            **{CACHE_NAME: outputs[CACHE_NAME] if CACHE_NAME in outputs else None},
        )


class CharGPTForSequenceClassification(CharGPTPreTrainedModel):
    """CharGPT with a linear head on the hidden state of each sequence's last non-padding token, or on the mean over
    its non-padding tokens (`config.classifier_pooling`)."""

    # The loss is a plain mean over the batch; Trainer must not rescale it by the number of processes.
    accepts_loss_kwargs = False

    def __init__(self, config: CharGPTConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.transformer = CharGPTModel(config)
        self.score = nn.Linear(config.n_embd, config.num_labels, bias=False)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        use_cache: bool | None = None,
        past_key_values: Cache | None = None,
        **kwargs,
    ) -> SequenceClassifierOutputWithPast:
        r"""
        Args:
            labels (`torch.Tensor` of shape `(batch_size,)` or `(batch_size, num_labels)`, *optional*): class ids
                (single-label, cross-entropy), float targets (regression, MSE, when `num_labels == 1`) or multi-hot
                floats (multi-label, BCE). `config.problem_type` picks the loss; if unset it is inferred from
                `num_labels` and the labels' dtype, as in transformers.

            Other arguments as in [`CharGPTModel.forward`]. Real tokens are the positions where `attention_mask`
            is 1 (else the tokens that are not `pad_token_id`), so left and right padding both work; the pooled
            state is the last real token's (`classifier_pooling="last"`) or the mean over the real tokens
            (`"mean"`).

        Returns:
            [`~transformers.modeling_outputs.SequenceClassifierOutputWithPast`].
        """
        outputs = self.transformer(
            input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            cache=_merge_cache_names(cache, past_key_values),
            inputs_embeds=inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        pooled_logits = self.pooled_logits(outputs.last_hidden_state, input_ids, attention_mask)

        loss = None
        if labels is not None:
            loss = self._loss(pooled_logits, labels.to(pooled_logits.device))
        return SequenceClassifierOutputWithPast(
            loss=loss,
            logits=pooled_logits,
            hidden_states=outputs.hidden_states,
            attentions=outputs.attentions,
            **{CACHE_NAME: outputs[CACHE_NAME] if CACHE_NAME in outputs else None},
        )

    def pooled_logits(self, hidden_states, input_ids=None, attention_mask=None):
        """The head on the configured pooling of the last hidden states: (B, T, C) -> (B, num_labels). Real tokens
        are those of `attention_mask`, else the ones that are not `pad_token_id`."""
        B, T = hidden_states.shape[:2]
        real = real_tokens(input_ids, attention_mask, self.config.pad_token_id, B, T, hidden_states.device)
        return self.score(pool_sequence(hidden_states, real, self.config.classifier_pooling))  # (B, C) -> (B, L)

    def _loss(self, logits, labels):
        """transformers' sequence-classification loss (`self.loss_function`, which infers `config.problem_type`
        from `num_labels` and the labels' dtype), in fp32, after checks that turn wrong labels into clear errors."""
        problem_type = self.config.problem_type
        if problem_type not in (None, "regression", "single_label_classification", "multi_label_classification"):
            raise ValueError(
                f"config.problem_type must be 'regression', 'single_label_classification' or "
                f"'multi_label_classification', got {problem_type!r}."
            )
        if problem_type == "single_label_classification" and labels.is_floating_point():
            raise ValueError(
                "single_label_classification needs integer class ids as labels, got floats; pass labels as "
                "torch.long or set config.problem_type='multi_label_classification'."
            )
        multi_label = problem_type == "multi_label_classification" or (
            problem_type is None and self.num_labels > 1 and labels.dtype not in (torch.long, torch.int)
        )
        if multi_label and labels.shape != logits.shape:
            raise ValueError(
                f"multi_label_classification needs multi-hot labels of shape {tuple(logits.shape)}, got "
                f"{tuple(labels.shape)}."
            )
        if multi_label or self.num_labels == 1:
            labels = labels.float()
        if self.num_labels == 1:  # regression: (B,) or (B, 1) targets against (B, 1) predictions
            return self.loss_function(labels.view(-1, 1), logits.float().view(-1, 1), self.config)
        return self.loss_function(labels, logits.float(), self.config)


def default_generation_config(config: CharGPTConfig) -> GenerationConfig:
    """Sampling defaults for chat (temperature 0.7, top-p 0.9, as CDial-GPT's evaluation samples); a reply stops at
    `<sep>` (end of turn) or `<eos>` (end of dialogue), after at least one character (an empty reply is never what a
    chat user wants; a small model's first choice after a greeting is often the end of the turn)."""
    eos = config.eos_token_id if isinstance(config.eos_token_id, list) else [config.eos_token_id]
    stop_ids = [i for i in [config.sep_token_id, *eos] if i is not None]
    return GenerationConfig(
        do_sample=True,
        temperature=0.7,
        top_k=0,
        top_p=0.9,
        repetition_penalty=1.0,
        max_new_tokens=64,
        min_new_tokens=1,
        bos_token_id=config.bos_token_id,
        eos_token_id=stop_ids or None,
        pad_token_id=config.pad_token_id,
    )


__all__ = [
    "CharGPTPreTrainedModel",
    "CharGPTModel",
    "CharGPTForCausalLM",
    "CharGPTForSequenceClassification",
    "mean_pool",
    "pool_sequence",
    "real_tokens",
]
