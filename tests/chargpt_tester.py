"""Tiny CharGPT models and tokenizers for the tests, in the spirit of transformers' causal_lm_tester.py."""

from functools import partial

import torch

from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTForSequenceClassification, CharGPTModel, CharGPTTokenizer


SAMPLE_TEXTS = [
    "今天天气很好，我们去公园散步吧。",
    "你好！最近怎么样？",
    "我喜欢看电影，也喜欢听音乐。",
    "Hello world, 123 测试 test.",
    "这家酒店的服务非常好，房间也很干净。",
    "早餐太差了，再也不会来了！",
]


class CharGPTTester:
    """Builds a tokenizer, a config of tiny sizes (hidden 32, 2 layers, 4 heads, ~80 tokens) and inputs. `preset`
    names an architecture of `PRESETS` (default: the config's own defaults, the course design); the sizes, dropout
    and `config_kwargs` given here override it."""

    def __init__(
        self, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=64, dropout=0.0, preset=None, **config_kwargs
    ):
        self.tokenizer = CharGPTTokenizer.from_texts(SAMPLE_TEXTS, model_max_length=n_positions)
        make_config = CharGPTConfig if preset is None else partial(CharGPTConfig.from_preset, preset)
        self.config = make_config(
            vocab_size=len(self.tokenizer),
            n_positions=n_positions,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            n_inner=n_inner,
            resid_pdrop=dropout,
            embd_pdrop=dropout,
            attn_pdrop=dropout,
            **config_kwargs,
        )

    def model(self, cls=CharGPTForCausalLM, seed=0, **config_overrides):
        torch.manual_seed(seed)
        config = self.config
        if config_overrides:
            config = CharGPTConfig(**{**self.config.to_dict(), **config_overrides})
        return cls(config).eval()

    def lm(self, seed=0):
        return self.model(CharGPTForCausalLM, seed)

    def base(self, seed=0):
        return self.model(CharGPTModel, seed)

    def classifier(self, seed=0, **overrides):
        return self.model(CharGPTForSequenceClassification, seed, **overrides)

    def batch(self, texts=("今天天气很好", "你好"), padding_side="right"):
        self.tokenizer.padding_side = padding_side
        return self.tokenizer(list(texts), padding=True, return_tensors="pt")


# ---------------------------------------------------------------------------------------------- the model matrix

# CharGPTTester arguments: both presets, and each architecture option alone on the course design.
ARCHITECTURES = {
    "course": {"preset": "course"},
    "modern": {"preset": "modern"},
    "rope": {"position_embedding_type": "rope"},
    "rmsnorm": {"normalization": "rmsnorm"},
    "gated_mlp": {"gated_mlp": True},
    "relu2": {"activation_function": "relu2"},
    "qk_norm": {"qk_norm": True},
}
# The heads a model can carry: a causal LM, or a classifier with either pooling.
HEADS = {"lm": None, "cls-last": "last", "cls-mean": "mean"}


def move_norm_weights(model, seed: int = 0):
    """Norm weights start at one (and biases at zero); move them so that a form which dropped or misplaced one (a
    block norm, ln_f, a per-head q_norm/k_norm) no longer matches PyTorch."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (torch.nn.LayerNorm, torch.nn.RMSNorm)):
                for parameter in module.parameters():
                    parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    return model


def matrix_model(architecture: str, head: str, seed: int = 1):
    """The tiny model of one matrix cell and its tester. initializer_range 0.3: attention logits large enough that a
    wrong rotary turn or a missing QK-norm shows, and next-token distributions peaked enough that greedy decoding is
    not decided by near-ties (seed 1: no cell's greedy continuation collapses to one token); norm weights moved off
    one."""
    tester = CharGPTTester(initializer_range=0.3, **ARCHITECTURES[architecture])
    if HEADS[head] is None:
        model = tester.lm(seed)
    else:
        model = tester.classifier(seed, num_labels=3, classifier_pooling=HEADS[head])
    return tester, move_norm_weights(model, seed).eval()
