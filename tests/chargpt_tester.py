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
