"""The classifier's fine-tuning levers (chargpt/training/levers.py): the auxiliary language-modelling loss, ULMFiT's
discriminative learning rates and gradual unfreezing, and weight averaging; each is held to what it claims to do on a
tiny model, and each bad setting is refused with the flag named."""

import io

import pytest
import torch
from datasets import Dataset
from transformers import (
    GPT2Config,
    GPT2ForSequenceClassification,
    LlamaConfig,
    LlamaForSequenceClassification,
    TrainerCallback,
)

from chargpt import CharGPTForSequenceClassification
from chargpt.training import CharGPTTrainer, ClassifierTrainingArguments, WeightAveraging
from chargpt.training.levers import auxiliary_lm_loss, check_tied_head, layer_depths, unfreeze_steps

from .chargpt_tester import CharGPTTester


def _args(tmp_path, **kwargs):
    settings = dict(
        output_dir=str(tmp_path / "out"),
        use_cpu=True,
        report_to="none",
        max_steps=8,
        logging_steps=4,
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        per_device_train_batch_size=4,
        learning_rate=1e-2,
        warmup_steps=0,
        lr_scheduler_type="constant",
        disable_tqdm=True,
        metric_for_best_model="eval_loss",
    )
    return ClassifierTrainingArguments(**{**settings, **kwargs})


def _reviews(tester, n=16):
    texts = ["今天天气很好", "你好", "我喜欢看电影", "早餐太差了", "房间也很干净", "再也不会来了"]
    rows = [tester.tokenizer(texts[i % len(texts)] * (1 + i % 3)) for i in range(n)]
    length = max(len(r["input_ids"]) for r in rows)
    pad = tester.tokenizer.pad_token_id
    return Dataset.from_dict(
        {
            "input_ids": [r["input_ids"] + [pad] * (length - len(r["input_ids"])) for r in rows],
            "attention_mask": [[1] * len(r["input_ids"]) + [0] * (length - len(r["input_ids"])) for r in rows],
            "labels": [i % 2 for i in range(n)],
        }
    )


def _trainer(tmp_path, callbacks=None, **kwargs):
    tester = CharGPTTester(preset="modern")
    model = tester.classifier(num_labels=2, classifier_pooling="mean").train()
    return CharGPTTrainer(
        model=model,
        args=_args(tmp_path, **kwargs),
        train_dataset=_reviews(tester),
        eval_dataset=_reviews(tester, 4),
        callbacks=callbacks,
    )


# ------------------------------------------------------------------------------------------------ auxiliary LM loss


def test_the_auxiliary_loss_is_the_causal_lm_loss_of_the_same_weights_with_padding_ignored():
    tester = CharGPTTester(preset="modern")
    lm = tester.lm(seed=3)
    classifier = tester.classifier(seed=3)
    classifier.transformer.load_state_dict(lm.transformer.state_dict())
    batch = tester.batch(("今天天气很好，我们去公园散步吧", "你好"), padding_side="right")
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    expected = lm(**batch, labels=labels).loss
    hidden = classifier(**batch, output_hidden_states=True).hidden_states[-1]
    loss = auxiliary_lm_loss(hidden, batch["input_ids"], batch["attention_mask"], classifier.transformer.wte.weight)
    torch.testing.assert_close(loss, expected)
    # the padded positions change nothing: the short text alone gives its own loss
    short = tester.batch(("你好",))
    alone = auxiliary_lm_loss(
        classifier(**short, output_hidden_states=True).hidden_states[-1],
        short["input_ids"],
        short["attention_mask"],
        classifier.transformer.wte.weight,
    )
    torch.testing.assert_close(alone, lm(**short, labels=short["input_ids"]).loss)


def test_the_trainer_adds_the_weighted_auxiliary_loss_in_training_only(tmp_path):
    trainer = _trainer(tmp_path, aux_lm_weight=0.5)
    model = trainer.model
    batch = {k: torch.tensor(v) for k, v in _reviews(CharGPTTester())[:4].items()}
    outputs = model(**batch, output_hidden_states=True)
    lm_loss = auxiliary_lm_loss(
        outputs.hidden_states[-1], batch["input_ids"], batch["attention_mask"], model.transformer.wte.weight
    )
    torch.testing.assert_close(trainer.compute_loss(model, batch), outputs.loss + 0.5 * lm_loss)
    model.eval()
    torch.testing.assert_close(trainer.compute_loss(model, batch), model(**batch).loss)


def test_the_auxiliary_loss_is_refused_for_an_untied_model():
    model = CharGPTTester(preset="modern").classifier(tie_word_embeddings=False)
    with pytest.raises(ValueError, match="--aux_lm_weight .* tied"):
        check_tied_head(model)


# ------------------------------------------------------------------------------- discriminative rates and unfreezing


@pytest.mark.parametrize("family", ["chargpt", "gpt2", "llama"])
def test_layer_depths_run_from_the_head_down_to_the_embeddings(family):
    if family == "chargpt":
        model = CharGPTTester(n_layer=3).classifier()
    elif family == "gpt2":
        model = GPT2ForSequenceClassification(GPT2Config(n_embd=16, n_layer=3, n_head=2, vocab_size=50))
    else:
        config = LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=3, num_attention_heads=2)
        model = LlamaForSequenceClassification(config)
    depths = layer_depths(model)
    assert depths["score.weight"] == 0
    assert {d for n, d in depths.items() if ".0." in n} == {3}  # the first block, three below the head
    assert {d for n, d in depths.items() if ".2." in n} == {1}
    embeddings = [n for n in depths if "wte" in n or "embed_tokens" in n]
    assert embeddings and all(depths[n] == 4 for n in embeddings)
    final_norm = [n for n in depths if "ln_f" in n or n.startswith("model.norm")]
    assert final_norm and all(depths[n] == 0 for n in final_norm)


def test_unfreeze_steps_spread_the_depths_over_the_share_of_steps():
    assert unfreeze_steps(3, 1.0, 9) == [0, 3, 6, 9]
    assert unfreeze_steps(4, 0.5, 100) == [0, 12, 25, 38, 50]
    assert unfreeze_steps(3, 0.0, 9) == [0, 0, 0, 0]


class _Record(TrainerCallback):
    """The learning rate of each optimizer group, and the embeddings and the first block, after each step."""

    def __init__(self):
        self.rates, self.embeddings, self.first_block = [], [], []

    def on_step_end(self, args, state, control, model=None, optimizer=None, **kwargs):
        self.rates.append({g["depth"]: g["lr"] for g in optimizer.param_groups})
        self.embeddings.append(model.transformer.wte.weight.detach().clone())
        self.first_block.append(model.transformer.h[0].mlp.c_fc.weight.detach().clone())


def test_gradual_unfreezing_holds_each_depth_until_its_step_then_trains_it_at_its_rate(tmp_path):
    record = _Record()
    trainer = _trainer(tmp_path, callbacks=[record], layer_lr_decay=0.5, gradual_unfreezing=1.0)
    start_embeddings = trainer.model.transformer.wte.weight.detach().clone()
    start_block = trainer.model.transformer.h[0].mlp.c_fc.weight.detach().clone()
    trainer.train()
    # 2 blocks: depths 0 (head, ln_f), 1 (block 1), 2 (block 0), 3 (embeddings) start at steps 0, 3, 5, 8 of 8
    # (the rates below are those the scheduler set for the next step)
    assert record.rates[0] == {0: 1e-2, 1: 0.0, 2: 0.0, 3: 0.0}
    assert record.rates[4] == {0: 1e-2, 1: 5e-3, 2: 2.5e-3, 3: 0.0}
    assert trainer.lr_scheduler.lr_lambdas[0].args[1] == 0
    torch.testing.assert_close(record.first_block[4], start_block, rtol=0, atol=0)  # frozen for steps 1-5
    assert not torch.equal(record.first_block[5], start_block)  # trained at step 6
    torch.testing.assert_close(record.embeddings[-1], start_embeddings, rtol=0, atol=0)  # never reached
    buffer = io.BytesIO()
    torch.save(trainer.lr_scheduler.state_dict(), buffer)  # the gated schedule goes into checkpoints


def test_discriminative_rates_without_unfreezing_train_every_depth_from_the_first_step(tmp_path):
    record = _Record()
    trainer = _trainer(tmp_path, callbacks=[record], layer_lr_decay=0.5, max_steps=1)
    trainer.train()
    assert record.rates[0] == pytest.approx({0: 1e-2, 1: 5e-3, 2: 2.5e-3, 3: 1.25e-3})


# ---------------------------------------------------------------------------------------------------- averaging


class _Weights(TrainerCallback):
    """The head's weights at one hook: `on_step_end` placed before WeightAveraging sees each step's raw result,
    `on_step_begin` placed after it sees what the next step starts from, `on_evaluate` what an evaluation sees."""

    def __init__(self, hook):
        self.seen = []
        setattr(self, hook, self._take)

    def _take(self, args, state, control, model=None, **kwargs):
        self.seen.append(model.score.weight.detach().clone())


def test_weight_averaging_evaluates_and_keeps_the_average_while_steps_go_on_from_the_raw_weights(tmp_path):
    raw, starts, evaluated = _Weights("on_step_end"), _Weights("on_step_begin"), _Weights("on_evaluate")
    trainer = _trainer(
        tmp_path, callbacks=[raw, WeightAveraging(0.5), starts, evaluated], eval_strategy="steps", eval_steps=4
    )
    initial = trainer.model.score.weight.detach().clone()
    trainer.train()
    averages, average = [], initial
    for n, weights in enumerate(raw.seen):
        decay = min(0.5, (1 + n) / (10 + n))
        average = decay * average + (1 - decay) * weights
        averages.append(average)
    assert len(raw.seen) == 8 and len(evaluated.seen) == 2
    torch.testing.assert_close(evaluated.seen[0], averages[3])  # evaluated after step 4: the average
    torch.testing.assert_close(evaluated.seen[1], averages[7])
    torch.testing.assert_close(starts.seen[4], raw.seen[3])  # step 5 starts from step 4's raw weights
    assert not torch.allclose(averages[3], raw.seen[3])  # (which differ from the average)
    torch.testing.assert_close(trainer.model.score.weight, averages[7])  # the model ends averaged


def test_without_an_evaluation_at_the_last_step_the_model_still_ends_averaged(tmp_path):
    raw = _Weights("on_step_end")
    trainer = _trainer(tmp_path, callbacks=[raw, WeightAveraging(0.5)], max_steps=3)
    trainer.train()
    assert not torch.equal(trainer.model.score.weight, raw.seen[-1])


# -------------------------------------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"aux_lm_weight": -0.1}, "--aux_lm_weight must be at least 0"),
        ({"layer_lr_decay": 0.0}, r"--layer_lr_decay must be in \(0, 1\]"),
        ({"layer_lr_decay": 1.5}, r"--layer_lr_decay must be in \(0, 1\]"),
        ({"gradual_unfreezing": 2.0}, "--gradual_unfreezing must be a share"),
        ({"ema_decay": 1.0}, r"--ema_decay must be in \[0, 1\)"),
        ({"optim": "muon", "layer_lr_decay": 0.5}, "--optim muon"),
    ],
)
def test_bad_lever_settings_are_refused_with_the_flag_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        _args(tmp_path, **kwargs)


def test_unfreezing_needs_a_schedule_defined_step_by_step(tmp_path):
    trainer = _trainer(
        tmp_path, gradual_unfreezing=0.5, lr_scheduler_type="reduce_lr_on_plateau", eval_strategy="steps", eval_steps=4
    )
    with pytest.raises(ValueError, match="--gradual_unfreezing .* ReduceLROnPlateau"):
        trainer.train()


def test_the_averaging_decay_is_checked():
    with pytest.raises(ValueError, match=r"decay must be in \(0, 1\)"):
        WeightAveraging(1.0)


def test_a_classifier_with_no_lever_builds_trainers_own_optimizer(tmp_path):
    trainer = _trainer(tmp_path)
    trainer.create_optimizer()
    assert all("depth" not in g for g in trainer.optimizer.param_groups)
    assert isinstance(trainer.model, CharGPTForSequenceClassification)
