"""The decoding contract with transformers: these tests fail the day generate() hands the cache to forward() under a
name, or reads it back from a field, that CharGPT does not follow (as transformers 5.24 did with `cache`).

Cached generation against a hand-written argmax loop, static caches and left padding are checked for every preset,
option and form in test_model_matrix.py; this file holds the contract's names, warnings and errors."""

import logging
import warnings

import pytest
import torch
from transformers import DynamicCache, pipeline

from chargpt.modeling_chargpt import CACHE_NAME

from .chargpt_tester import CharGPTTester


@pytest.fixture
def tester():
    return CharGPTTester()


GREEDY = dict(do_sample=False, max_new_tokens=15, min_new_tokens=15, eos_token_id=None, pad_token_id=0)


def test_forward_returns_the_cache_under_the_name_generate_reads(tester):
    model = tester.lm()
    ids = tester.batch(("今天天气",))["input_ids"]
    out = model(input_ids=ids, use_cache=True)
    assert isinstance(out[CACHE_NAME], DynamicCache)
    assert out[CACHE_NAME].get_seq_length() == ids.shape[1]
    base_out = model.transformer(input_ids=ids, use_cache=True)
    assert base_out[CACHE_NAME].get_seq_length() == ids.shape[1]


@pytest.mark.parametrize("name", ["cache", "past_key_values"])
def test_forward_takes_the_cache_under_either_name(tester, name):
    model = tester.lm()
    ids = tester.batch(("今天天气很好",))["input_ids"]
    full = model(input_ids=ids, use_cache=False).logits
    first = model(input_ids=ids[:, :4], use_cache=True)
    step = model(input_ids=ids[:, 4:5], use_cache=True, **{name: first[CACHE_NAME]})
    torch.testing.assert_close(step.logits[:, -1], full[:, 4], atol=1e-5, rtol=1e-5)
    assert step[CACHE_NAME].get_seq_length() == 5


def test_both_cache_names_at_once_are_refused(tester):
    model = tester.lm()
    ids = tester.batch(("今天",))["input_ids"]
    with pytest.raises(ValueError, match="not both"):
        model(input_ids=ids, cache=DynamicCache(config=model.config), past_key_values=DynamicCache(config=model.config))


def test_generation_prints_no_deprecation_warning(tester, caplog):
    model = tester.lm()
    batch = tester.batch(("你好", "今天天气很好"), padding_side="left")
    with warnings.catch_warnings(record=True) as caught, caplog.at_level(logging.WARNING):
        warnings.simplefilter("always")
        model.generate(**batch, **GREEDY)
        model(**batch, use_cache=True)
    messages = [str(w.message) for w in caught] + [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "deprecat" in m.lower()], messages


def test_batched_text_generation_pipeline_equals_one_by_one(tester):
    model = tester.model(seed=6, initializer_range=0.3)
    tester.tokenizer.padding_side = "left"
    generator = pipeline("text-generation", model=model, tokenizer=tester.tokenizer)
    prompts = ["你好", "今天天气很好，我们", "我喜欢看"]
    kwargs = dict(do_sample=False, max_new_tokens=10, min_new_tokens=10, eos_token_id=None, return_full_text=False)
    batched = generator(prompts, batch_size=2, **kwargs)
    single = [generator(p, **kwargs) for p in prompts]
    assert [b[0]["generated_text"] for b in batched] == [s[0]["generated_text"] for s in single]


def test_generation_past_the_context_raises_the_clear_error(tester):
    model = tester.lm()
    batch = tester.batch(("今天天气很好",))
    n_prompt = batch["input_ids"].shape[1]
    fits = model.config.n_positions - n_prompt + 1  # the last new token is never fed back through the model
    out = model.generate(**batch, do_sample=False, max_new_tokens=fits, min_new_tokens=fits, eos_token_id=None)
    assert out.shape[1] == model.config.n_positions + 1
    too_many = fits + 1
    with pytest.raises(ValueError, match="n_positions"):
        model.generate(**batch, do_sample=False, max_new_tokens=too_many, min_new_tokens=too_many, eos_token_id=None)


# ---------------------------------------------------------------- attention implementations


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_eager_and_sdpa_logits_match(tester, padding_side):
    batch = tester.batch(("你好", "今天天气很好，我们"), padding_side=padding_side)
    sdpa = tester.model(seed=7, initializer_range=0.3)
    eager = tester.model(seed=7, initializer_range=0.3)
    eager.set_attn_implementation("eager")
    assert eager.config._attn_implementation == "eager"
    assert sdpa.config._attn_implementation == "sdpa"
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(eager(**batch).logits[real], sdpa(**batch).logits[real], atol=1e-5, rtol=1e-5)


def test_eager_never_calls_sdpa_and_generates_the_same_tokens(tester, monkeypatch):
    batch = tester.batch(("你好", "今天天气很好，我们"), padding_side="left")
    sdpa_model = tester.model(seed=8, initializer_range=0.3)
    expected = sdpa_model.generate(**batch, **GREEDY)
    eager_model = tester.model(seed=8, initializer_range=0.3)
    eager_model.set_attn_implementation("eager")

    def refuse(*args, **kwargs):
        raise AssertionError("scaled_dot_product_attention was called under attn_implementation='eager'")

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", refuse)
    assert torch.equal(eager_model.generate(**batch, **GREEDY), expected)
    with pytest.raises(AssertionError, match="was called"):
        sdpa_model(**batch)  # the patch is live: the sdpa model does reach it


def test_attn_implementation_is_honoured_at_load_time(tester, tmp_path):
    from chargpt import CharGPTForCausalLM

    tester.lm().save_pretrained(tmp_path)
    model = CharGPTForCausalLM.from_pretrained(tmp_path, attn_implementation="eager")
    assert model.config._attn_implementation == "eager"
    assert all(block.attn.config._attn_implementation == "eager" for block in model.transformer.h)
