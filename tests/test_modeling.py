"""Model behaviour of the course design beyond the contract checks of test_model_matrix.py (which every preset,
option and form runs): configuration, losses, padding, generation settings, tying, resizing, input errors."""

import pytest
import torch

from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTForSequenceClassification, CharGPTModel, mean_pool

from .chargpt_tester import CharGPTTester


@pytest.fixture
def tester():
    return CharGPTTester()


# ---------------------------------------------------------------- configuration


def test_config_defaults_are_the_course_design_and_standard_names_alias_them():
    config = CharGPTConfig()
    assert (config.n_embd, config.n_head, config.n_layer, config.n_inner) == (256, 8, 6, 1024)
    assert (config.resid_pdrop, config.embd_pdrop, config.attn_pdrop) == (0.1, 0.1, 0.0)
    assert (config.n_positions, config.tie_word_embeddings) == (512, True)
    assert config.hidden_size == 256 and config.num_attention_heads == 8 and config.num_hidden_layers == 6
    assert config.intermediate_size == 1024 and config.max_position_embeddings == 512
    aliased = CharGPTConfig(hidden_size=64, num_attention_heads=4, num_hidden_layers=3)
    assert (aliased.n_embd, aliased.n_head, aliased.n_layer) == (64, 4, 3)


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"n_head": 7}, "n_head"),
        ({"n_embd": 0}, "n_embd"),
        ({"n_layer": -1}, "n_layer"),
        ({"n_inner": 0}, "n_inner"),
        ({"n_positions": 0}, "n_positions"),
        ({"vocab_size": 0}, "vocab_size"),
        ({"n_head": 0}, "n_head"),
        ({"resid_pdrop": 1.0}, "resid_pdrop"),
        ({"embd_pdrop": -0.1}, "embd_pdrop"),
        ({"attn_pdrop": 1.5}, "attn_pdrop"),
        ({"layer_norm_epsilon": 0.0}, "layer_norm_epsilon"),
        ({"initializer_range": -1.0}, "initializer_range"),
        ({"activation_function": "swish2"}, "activation_function"),
        ({"classifier_pooling": "max"}, "classifier_pooling"),
        ({"vocab_size": 10, "pad_token_id": 10}, "pad_token_id"),
    ],
)
def test_config_rejects_invalid_value_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        CharGPTConfig(**kwargs)


def test_config_save_load_round_trip(tmp_path):
    config = CharGPTConfig(vocab_size=123, n_embd=64, n_head=4)
    config.save_pretrained(tmp_path)
    loaded = CharGPTConfig.from_pretrained(tmp_path)
    assert loaded.to_dict() == config.to_dict()


# ---------------------------------------------------------------- forward and losses


def test_causal_lm_loss_ignores_minus_100_and_matches_manual_shifted_cross_entropy(tester):
    model = tester.lm()
    batch = tester.batch(("今天天气很好",))
    ids = batch["input_ids"]
    labels = ids.clone()
    labels[:, :3] = -100
    out = model(input_ids=ids, labels=labels)
    logits = out.logits[:, :-1].reshape(-1, out.logits.shape[-1])
    manual = torch.nn.functional.cross_entropy(logits, labels[:, 1:].reshape(-1), ignore_index=-100)
    torch.testing.assert_close(out.loss, manual)


def test_num_items_in_batch_turns_the_loss_into_a_sum_over_the_global_token_count(tester):
    model = tester.lm()
    ids = tester.batch(("今天天气很好",))["input_ids"]
    mean_loss = model(input_ids=ids, labels=ids).loss
    n_tokens = ids.shape[1] - 1
    summed = model(input_ids=ids, labels=ids, num_items_in_batch=torch.tensor(2 * n_tokens)).loss
    torch.testing.assert_close(summed, mean_loss / 2)


def test_base_model_returns_hidden_states_and_attentions_when_asked(tester):
    model = tester.base()
    batch = tester.batch()
    out = model(**batch, output_hidden_states=True, output_attentions=True)
    B, T = batch["input_ids"].shape
    assert out.last_hidden_state.shape == (B, T, tester.config.n_embd)
    assert len(out.hidden_states) == tester.config.n_layer + 1
    assert len(out.attentions) == tester.config.n_layer
    assert out.attentions[0].shape == (B, tester.config.n_head, T, T)
    # the explicit attention path and SDPA agree
    plain = model(**batch).last_hidden_state
    torch.testing.assert_close(out.last_hidden_state, plain, atol=1e-5, rtol=1e-5)


def test_return_dict_false_gives_a_tuple(tester):
    out = tester.lm()(**tester.batch(), return_dict=False)
    assert isinstance(out, tuple) and out[0].dim() == 3


def test_padding_does_not_change_the_outputs_of_real_tokens(tester):
    model = tester.base()
    alone = tester.batch(("你好",))
    right = tester.batch(("你好", "今天天气很好"), padding_side="right")
    left = tester.batch(("你好", "今天天气很好"), padding_side="left")
    h_alone = model(**alone).last_hidden_state[0]
    n = h_alone.shape[0]
    torch.testing.assert_close(model(**right).last_hidden_state[0, :n], h_alone, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(model(**left).last_hidden_state[0, -n:], h_alone, atol=1e-5, rtol=1e-5)


def test_classifier_without_attention_mask_pools_by_pad_token_id(tester):
    model = tester.classifier()
    batch = tester.batch(("你好", "今天天气很好"))
    with_mask = model(**batch).logits
    without = model(input_ids=batch["input_ids"]).logits
    # The second row has no padding: same pooled token. The first differs only through attention to padding keys.
    torch.testing.assert_close(without[1], with_mask[1], atol=1e-5, rtol=1e-5)


def test_classifier_single_label_loss_is_cross_entropy_and_infers_problem_type(tester):
    model = tester.classifier(num_labels=3)
    labels = torch.tensor([0, 2])
    out = model(**tester.batch(), labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels))
    assert model.config.problem_type == "single_label_classification"
    out.loss.backward()


def test_classifier_regression_loss_is_mse(tester):
    model = tester.classifier(num_labels=1)
    labels = torch.tensor([0.5, -1.0])
    out = model(**tester.batch(), labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.mse_loss(out.logits.squeeze(-1), labels))
    assert model.config.problem_type == "regression"


def test_classifier_multi_label_loss_is_bce_and_checks_label_shape(tester):
    model = tester.classifier(num_labels=3, problem_type="multi_label_classification")
    labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    out = model(**tester.batch(), labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, labels))
    with pytest.raises(ValueError, match="multi-hot"):
        model(**tester.batch(), labels=torch.tensor([1.0, 0.0]))


def test_classifier_keeps_label_names(tester, tmp_path):
    model = tester.classifier(id2label={0: "负面", 1: "正面"}, label2id={"负面": 0, "正面": 1})
    model.save_pretrained(tmp_path)
    loaded = CharGPTForSequenceClassification.from_pretrained(tmp_path)
    assert loaded.config.id2label == {0: "负面", 1: "正面"} and loaded.num_labels == 2


def test_mean_pool_ignores_padding():
    hidden = torch.tensor([[[1.0, 1.0], [3.0, 3.0], [100.0, 100.0]]])
    mask = torch.tensor([[1, 1, 0]])
    torch.testing.assert_close(mean_pool(hidden, mask), torch.tensor([[2.0, 2.0]]))


# ---------------------------------------------------------------- cache and generation


def test_generation_stops_at_any_of_several_stop_ids(tester):
    model = tester.lm(seed=1)
    prompt = tester.batch(("今天",))
    common = dict(do_sample=False, max_new_tokens=15, min_new_tokens=0)  # a stop id may end the reply at once here
    free = model.generate(**prompt, eos_token_id=None, **common)
    new = free[0, prompt["input_ids"].shape[1] :].tolist()
    stop_a, stop_b = new[3], new[6]
    stopped = model.generate(**prompt, eos_token_id=[stop_b, stop_a], **common)
    generated = stopped[0, prompt["input_ids"].shape[1] :].tolist()
    assert generated[-1] in (stop_a, stop_b)
    assert generated == new[: new.index(stop_a) + 1] or generated == new[: new.index(stop_b) + 1]
    assert len(generated) <= 4


def test_tiny_top_p_keeps_only_the_most_likely_token(tester):
    model = tester.lm(seed=4)
    prompt = tester.batch(("你好",))
    greedy = model.generate(**prompt, do_sample=False, max_new_tokens=8, eos_token_id=None)
    nucleus = model.generate(**prompt, do_sample=True, top_p=1e-6, top_k=0, max_new_tokens=8, eos_token_id=None)
    assert torch.equal(greedy, nucleus)


def test_no_repeat_ngram_size_and_repetition_penalty_take_effect(tester):
    model = tester.lm(seed=3)
    prompt = tester.batch(("今天",))
    kwargs = dict(do_sample=False, max_new_tokens=30, eos_token_id=None)
    out = model.generate(**prompt, no_repeat_ngram_size=2, **kwargs)[0].tolist()
    bigrams = list(zip(out, out[1:]))
    assert len(bigrams) == len(set(bigrams))
    plain = model.generate(**prompt, **kwargs)[0, 2:].tolist()
    penalised = model.generate(**prompt, repetition_penalty=5.0, **kwargs)[0, 2:].tolist()
    assert len(set(penalised)) >= len(set(plain))
    assert penalised != plain


def test_default_generation_config_samples_and_stops_at_sep_and_eos(tester):
    gen = tester.lm().generation_config
    assert gen.do_sample and gen.temperature == 0.7 and gen.top_p == 0.9
    assert gen.min_new_tokens == 1  # no empty replies
    assert set(gen.eos_token_id) == {tester.tokenizer.sep_token_id, tester.tokenizer.eos_token_id}
    assert gen.pad_token_id == tester.tokenizer.pad_token_id


# ---------------------------------------------------------------- weights: tying, save/load, resize, checkpointing


def test_input_and_output_embeddings_are_tied(tester):
    model = tester.lm()
    assert model.lm_head.weight is model.transformer.wte.weight


def test_save_load_round_trip_gives_equal_outputs_and_keeps_embeddings_tied(tester, tmp_path):
    model = tester.lm(seed=7)
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = CharGPTForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.lm_head.weight.data_ptr() == loaded.transformer.wte.weight.data_ptr()
    batch = tester.batch()
    torch.testing.assert_close(loaded(**batch).logits, model(**batch).logits, atol=1e-5, rtol=1e-5)
    # tied after training too: a step on the loaded model moves both views together
    loaded.train()
    loaded(**batch, labels=batch["input_ids"]).loss.backward()
    with torch.no_grad():
        loaded.transformer.wte.weight.add_(0.1)
    assert torch.equal(loaded.lm_head.weight, loaded.transformer.wte.weight)


def test_tied_head_is_left_out_of_checkpoints_and_untied_head_is_kept(tester, tmp_path):
    from safetensors.torch import load_file

    tied = tester.lm()
    tied.save_pretrained(tmp_path / "tied")
    saved = load_file(tmp_path / "tied" / "model.safetensors")
    assert "lm_head.weight" not in saved
    # What Trainer checks when it reloads the best checkpoint: the missing keys are exactly the ignored ones.
    missing = tied.load_state_dict(saved, strict=False).missing_keys
    assert set(missing) == set(tied._keys_to_ignore_on_save) == {"lm_head.weight"}
    untied = tester.model(tie_word_embeddings=False)
    untied.save_pretrained(tmp_path / "untied")
    assert "lm_head.weight" in load_file(tmp_path / "untied" / "model.safetensors")
    assert not untied._keys_to_ignore_on_save


def test_causal_lm_checkpoint_loads_into_classifier_with_a_new_head(tester, tmp_path):
    lm = tester.lm(seed=8)
    lm.save_pretrained(tmp_path)
    clf = CharGPTForSequenceClassification.from_pretrained(tmp_path, num_labels=2)
    torch.testing.assert_close(clf.transformer.wte.weight, lm.transformer.wte.weight)
    torch.testing.assert_close(clf.transformer.h[1].mlp.c_fc.weight, lm.transformer.h[1].mlp.c_fc.weight)


def test_resize_token_embeddings_grows_both_tied_matrices(tester):
    model = tester.lm()
    old = model.config.vocab_size
    model.resize_token_embeddings(old + 7)
    assert model.config.vocab_size == old + 7
    assert model.transformer.wte.weight.shape[0] == old + 7
    assert model.lm_head.weight is model.transformer.wte.weight
    ids = torch.tensor([[3, old + 6]])
    assert model(input_ids=ids).logits.shape == (1, 2, old + 7)


def test_residual_projections_are_initialised_with_depth_scaled_std():
    config = CharGPTConfig(vocab_size=500, n_embd=128, n_head=4, n_layer=8, n_inner=512)
    torch.manual_seed(0)
    model = CharGPTModel(config)
    scaled = config.initializer_range / (2 * config.n_layer) ** 0.5
    assert model.h[0].attn.c_proj.weight.std().item() == pytest.approx(scaled, rel=0.1)
    assert model.h[0].mlp.c_fc.weight.std().item() == pytest.approx(config.initializer_range, rel=0.1)
    assert model.h[0].ln_1.weight.eq(1).all()


def test_bf16_autocast_forward_backward_is_finite(tester):
    model = tester.lm().train()
    batch = tester.batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(**batch, labels=batch["input_ids"])
    assert out.loss.dtype == torch.float32 and torch.isfinite(out.loss)
    out.loss.backward()


# ---------------------------------------------------------------- clear errors for bad input


def test_empty_input_ids_raise_a_clear_error(tester):
    with pytest.raises(ValueError, match="empty"):
        tester.lm()(input_ids=torch.zeros(1, 0, dtype=torch.long))


def test_sequence_longer_than_context_says_how_to_truncate(tester):
    too_long = torch.full((1, tester.config.n_positions + 1), 5)
    with pytest.raises(ValueError, match="truncation=True"):
        tester.lm()(input_ids=too_long)


def test_generation_past_the_context_length_raises_a_clear_error(tester):
    prompt = torch.full((1, tester.config.n_positions - 2), 5)
    with pytest.raises(ValueError, match="context length"):
        tester.lm().generate(input_ids=prompt, max_new_tokens=10, do_sample=False, eos_token_id=None)


@pytest.mark.parametrize("bad_id", [-1, 10_000])
def test_token_ids_outside_the_vocabulary_raise_a_clear_error(tester, bad_id):
    ids = torch.tensor([[3, 5, bad_id]])
    with pytest.raises(ValueError, match="outside the vocabulary"):
        tester.lm()(input_ids=ids)


def test_mismatched_attention_mask_shape_raises_a_clear_error(tester):
    batch = tester.batch()
    with pytest.raises(ValueError, match="attention_mask has shape"):
        tester.lm()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"][:, :-1])


def test_one_dimensional_input_ids_are_rejected_with_a_hint(tester):
    with pytest.raises(ValueError, match="unsqueeze"):
        tester.lm()(input_ids=torch.tensor([3, 5, 6]))


def test_float_input_ids_are_rejected(tester):
    with pytest.raises(ValueError, match="integer"):
        tester.lm()(input_ids=torch.tensor([[3.0, 5.0]]))
