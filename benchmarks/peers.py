"""The two contenders: CharGPT and transformers' GPT-2 configured with exactly the same dimensions.

The peer is what a user would write instead of installing this package: `GPT2LMHeadModel` /
`GPT2ForSequenceClassification` with a character vocabulary and CharGPT's dimensions (hidden size, heads, layers,
feed-forward width, context, vocabulary, activation, tied embeddings, special ids), everything else at GPT-2's
defaults (dropout 0.1 on residuals, embeddings and attention probabilities), with PyTorch SDPA attention
(`attn_implementation="sdpa"`) like CharGPT. CharGPT runs at its own defaults, whose one difference in work is
`attn_pdrop=0.0` (GPT-2: 0.1); `ModelDims.chargpt_attn_pdrop` sets it to GPT-2's value for a like-for-like check.
"""

from dataclasses import dataclass

import torch
from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTForSequenceClassification
from chargpt.training import LMModelArguments, build_causal_lm_config


@dataclass
class ModelDims:
    """The architecture both models share (the issue's defaults: 256 hidden, 8 heads, 6 layers, 1024 FFN, 512 ctx)."""

    vocab_size: int
    n_positions: int = 512
    n_embd: int = 256
    n_layer: int = 6
    n_head: int = 8
    n_inner: int = 1024
    dropout: float = 0.1  # residual and embedding dropout of both; GPT-2's attention dropout
    activation_function: str = "gelu"
    chargpt_attn_pdrop: float | None = None  # None: CharGPTConfig's default
    # GPT-2's own architecture, so that the two models differ only where the course design does (the time-to-quality
    # section compares the other preset)
    preset: str = "course"


def dims_from_args(args, vocab_size: int) -> ModelDims:
    """The dimensions a BenchmarkArguments describes, with a given vocabulary."""
    return ModelDims(
        vocab_size=vocab_size,
        n_positions=args.n_positions,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
        n_inner=args.n_inner,
        dropout=args.dropout,
        chargpt_attn_pdrop=args.chargpt_attn_pdrop,
    )


def _shared_hyperparameters(dims: ModelDims) -> dict:
    """The settings both configs name alike (CharGPTConfig kept GPT-2's short names)."""
    return dict(
        vocab_size=dims.vocab_size,
        n_positions=dims.n_positions,
        n_embd=dims.n_embd,
        n_layer=dims.n_layer,
        n_head=dims.n_head,
        n_inner=dims.n_inner,
        activation_function=dims.activation_function,
        resid_pdrop=dims.dropout,
        embd_pdrop=dims.dropout,
    )


def chargpt_config(dims: ModelDims, **extra) -> CharGPTConfig:
    """CharGPT's config built the way `train_lm.py` builds it (`build_causal_lm_config`: CharGPTConfig's defaults,
    then the size flags), so the benchmark times the model users train."""
    overrides = None if dims.chargpt_attn_pdrop is None else f"attn_pdrop={dims.chargpt_attn_pdrop}"
    model_args = LMModelArguments(
        tokenizer_name_or_path="",
        preset=dims.preset,
        config_overrides=overrides,
        n_positions=dims.n_positions,
        n_embd=dims.n_embd,
        n_layer=dims.n_layer,
        n_head=dims.n_head,
        n_inner=dims.n_inner,
        dropout=dims.dropout,
    )
    fixed = dict(
        vocab_size=dims.vocab_size,
        activation_function=dims.activation_function,
        pad_token_id=0,
        sep_token_id=2,
        bos_token_id=3,
        eos_token_id=4,
    )
    return build_causal_lm_config(model_args, None, **fixed, **extra)


def gpt2_config(dims: ModelDims, **extra) -> GPT2Config:
    """GPT-2 with CharGPT's dimensions and special ids (pad 0, bos 3, eos 4), exact GELU like CharGPT's default."""
    config = GPT2Config(
        **_shared_hyperparameters(dims),
        attn_pdrop=dims.dropout,
        tie_word_embeddings=True,
        pad_token_id=0,
        bos_token_id=3,
        eos_token_id=4,
        **extra,
    )
    config._attn_implementation = "sdpa"
    return config


def build_causal_lms(
    dims: ModelDims, seed: int = 0, chargpt_overrides: dict | None = None
) -> dict[str, torch.nn.Module]:
    """{"chargpt": CharGPTForCausalLM, "gpt2": GPT2LMHeadModel}, each initialised from the same seed.
    `chargpt_overrides` changes CharGPT's config alone (the speed section's probe of a proposed default)."""
    torch.manual_seed(seed)
    ours = CharGPTForCausalLM(chargpt_config(dims, **(chargpt_overrides or {})))
    torch.manual_seed(seed)
    peer = GPT2LMHeadModel(gpt2_config(dims))
    _check_same_size(ours, peer)
    return {"chargpt": ours, "gpt2": peer}


def build_classifier(name: str, dims: ModelDims, num_labels: int = 2, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    if name == "chargpt":
        return CharGPTForSequenceClassification(chargpt_config(dims, num_labels=num_labels))
    if name == "gpt2":
        return GPT2ForSequenceClassification(gpt2_config(dims, num_labels=num_labels))
    raise ValueError(f"Unknown model name {name!r}; expected 'chargpt' or 'gpt2'.")


def classifier_from_lm(lm: torch.nn.Module, name: str, dims: ModelDims, seed: int = 0) -> torch.nn.Module:
    """A two-class classifier whose decoder starts from a pretrained causal LM's weights (the head is new)."""
    classifier = build_classifier(name, dims, seed=seed)
    missing, unexpected = classifier.transformer.load_state_dict(lm.transformer.state_dict(), strict=False)
    # GPT-2 keeps non-persistent buffers only; anything else missing would mean the two bodies differ.
    if unexpected or [k for k in missing if not k.endswith("attn.bias") and not k.endswith("masked_bias")]:
        raise RuntimeError(f"Decoder weights did not transfer: missing={missing}, unexpected={unexpected}")
    return classifier


def _check_same_size(ours: torch.nn.Module, peer: torch.nn.Module) -> None:
    """Guard the premise of every comparison: the two models hold the same number of parameters."""
    n_ours = sum(p.numel() for p in ours.parameters())
    n_peer = sum(p.numel() for p in peer.parameters())
    if n_ours != n_peer:
        raise RuntimeError(f"CharGPT has {n_ours} parameters but the GPT-2 peer {n_peer}: the configs diverged.")


def parameter_count(model: torch.nn.Module) -> int:
    """Unique parameters (a tied embedding counted once)."""
    return sum(p.numel() for p in model.parameters())
