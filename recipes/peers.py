"""The recipe's peers: transformers' own GPT-2 and Llama, sized like the CharGPT they stand beside, trained by the
same recipe with CharGPT's tokenizer, data and Trainer (`run_recipe.py --peer gpt2|llama`), each with AdamW at the
peak learning rate the time-to-quality benchmark found best for it. The same configs are that benchmark's
contenders (`benchmarks/time_to_quality.py`), so the two comparisons train the same models.
"""

from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM, PreTrainedModel

from chargpt.modeling_chargpt import default_generation_config


PEERS = ("gpt2", "llama")

# Peak learning rates (AdamW), each the best of those tried (5e-4 to 8e-3) for its model on the validation split of
# the time-to-quality benchmark's 120-s runs (benchmarks/NOTES.md); benchmarks/settings.py takes its defaults from
# here. CharGPT trains at train_lm.py's defaults (Muon with AdamW at 2e-3, the best of 1e-3 to 4e-3 in that search).
TUNED_LEARNING_RATES = {"gpt2": 1e-3, "llama": 2e-3}
PEER_OPTIMIZER = "adamw_torch"


def check_peer(name: str | None) -> None:
    if name is not None and name not in PEERS:
        raise ValueError(f"--peer must be one of {PEERS} (or left out for CharGPT), got {name!r}.")


def peer_config(
    name: str,
    vocab_size: int,
    n_embd: int,
    n_layer: int,
    n_head: int,
    n_positions: int,
    pad_token_id: int = 0,
    sep_token_id: int = 2,
    bos_token_id: int = 3,
    eos_token_id: int = 4,
):
    """The config of a peer of the given size: GPT-2 at its own defaults (dropout 0.1 everywhere, a 4x feed-forward
    with tanh-GELU), or Llama at its defaults with a SwiGLU width of 8/3 x hidden rounded up to a multiple of 32 (as
    CharGPT's gated MLP) and a tied head like CharGPT's and GPT-2's (Llama's default unties it). Both record CharGPT's
    special ids, the end of turn `sep_token_id` too, which their generation config stops at as CharGPT's does."""
    check_peer(name)
    ids = dict(
        pad_token_id=pad_token_id, sep_token_id=sep_token_id, bos_token_id=bos_token_id, eos_token_id=eos_token_id
    )
    if name == "gpt2":
        return GPT2Config(
            vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head, **ids
        )
    return LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=n_embd,
        num_hidden_layers=n_layer,
        num_attention_heads=n_head,
        num_key_value_heads=n_head,
        intermediate_size=-(-8 * n_embd // 96) * 32,
        tie_word_embeddings=True,
        max_position_embeddings=n_positions,
        **ids,
    )


def peer_causal_lm(name: str, vocab_size: int, size: dict, **ids) -> PreTrainedModel:
    """A fresh GPT-2 or Llama causal LM of `size` (n_embd, n_layer, n_head, n_positions) over `vocab_size` tokens,
    with the special ids given (pad, sep, bos, eos) and CharGPT's generation defaults (a reply stops at the end of
    its turn; the same sampling settings), so that its replies are sampled exactly as CharGPT's are."""
    config = peer_config(name, vocab_size=vocab_size, **size, **ids)
    model = (GPT2LMHeadModel if name == "gpt2" else LlamaForCausalLM)(config)
    model.generation_config = default_generation_config(config)
    return model


__all__ = [
    "PEERS",
    "PEER_OPTIMIZER",
    "TUNED_LEARNING_RATES",
    "check_peer",
    "peer_causal_lm",
    "peer_config",
]
