"""LoRA through peft in both training pipelines: adapters saved hub-style, loaded by AutoPeftModel classes, merged into
a plain CharGPT directory that gives the same outputs; clear errors for the combinations that cannot work."""

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTTokenizer
from chargpt.data import CleaningConfig
from chargpt.training import (
    ClassifierModelArguments,
    ClassifierTrainingArguments,
    DialogueDataArguments,
    LabelledDataArguments,
    LMModelArguments,
    LMTrainingArguments,
    LoraArguments,
    train_causal_lm,
    train_classifier,
)

from ._helpers_training import write_labelled_csv, write_pairs


peft = pytest.importorskip("peft", reason="LoRA tests need peft (pip install 'chargpt[lora]'; in the dev extra)")

QUICK = dict(
    use_cpu=True,
    report_to="none",
    max_steps=3,
    learning_rate=5e-2,
    eval_strategy="no",
    save_strategy="no",
    load_best_model_at_end=False,
    per_device_train_batch_size=8,
)


@pytest.fixture(scope="module")
def base_lm(tmp_path_factory):
    """A tiny CharGPT causal LM directory whose tokenizer covers the dialogue and review corpora."""
    root = tmp_path_factory.mktemp("lora")
    pairs = write_pairs(root / "pairs.txt", n=40)
    reviews = write_labelled_csv(root / "reviews.csv", n=32)
    texts = pairs.read_text(encoding="utf-8").splitlines() + reviews.read_text(encoding="utf-8").splitlines()
    tokenizer = CharGPTTokenizer.from_texts(texts, model_max_length=64)
    torch.manual_seed(0)
    config = CharGPTConfig(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2)
    model_dir = root / "base"
    CharGPTForCausalLM(config).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    return root, model_dir, pairs, reviews


def test_lora_causal_lm_saves_an_adapter_that_autopeft_loads_and_merges_to_the_same_model(base_lm):
    root, model_dir, pairs, _ = base_lm
    out = root / "lm_lora"
    train_causal_lm(
        LMModelArguments(tokenizer_name_or_path=str(model_dir), model_name_or_path=str(model_dir)),
        DialogueDataArguments(train_files=[str(pairs)], validation_split_size=0, test_split_size=0),
        CleaningConfig(),
        LMTrainingArguments(output_dir=str(out), **QUICK),
        lora_args=LoraArguments(lora_r=4, lora_merge=True),
    )
    adapter = json.loads((out / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and set(adapter["target_modules"]) == {"c_attn", "c_proj", "c_fc"}
    assert (out / "adapter_model.safetensors").is_file()
    assert not (out / "model.safetensors").exists()  # only the adapter, not a second copy of the model

    ids = torch.tensor([[3, 5, 6, 7, 8]])
    adapted = peft.AutoPeftModelForCausalLM.from_pretrained(str(out)).eval()
    merged = AutoModelForCausalLM.from_pretrained(out / "merged").eval()
    base = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    assert type(merged).__name__ == "CharGPTForCausalLM"
    assert not list(out.glob(".merged.tmp-*"))  # the merged folder was staged beside and renamed into place
    with torch.no_grad():
        adapted_logits, merged_logits = adapted(input_ids=ids).logits, merged(input_ids=ids).logits
        base_logits = base(input_ids=ids).logits
    torch.testing.assert_close(merged_logits, adapted_logits, atol=1e-4, rtol=1e-4)
    assert (merged_logits - base_logits).abs().max() > 1e-3  # the adapter learned something


def test_lora_classifier_trains_adapters_and_head_and_merges(base_lm):
    root, model_dir, _, reviews = base_lm
    out = root / "cls_lora"
    train_classifier(
        ClassifierModelArguments(model_name_or_path=str(model_dir)),
        LabelledDataArguments(train_files=[str(reviews)], validation_split_size=0, test_split_size=0),
        CleaningConfig(),
        ClassifierTrainingArguments(output_dir=str(out), **QUICK),
        lora_args=LoraArguments(lora_r=2, lora_merge=True),
    )
    summary = json.loads((out / "data_summary.json").read_text())
    assert 0 < summary["parameters"]["trainable"] < summary["parameters"]["total"] / 4
    ids = torch.tensor([[3, 5, 6, 7, 8]])
    adapted = peft.AutoPeftModelForSequenceClassification.from_pretrained(str(out)).eval()
    merged = AutoModelForSequenceClassification.from_pretrained(out / "merged").eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(input_ids=ids).logits, adapted(input_ids=ids).logits, atol=1e-4, rtol=1e-4)


def test_lora_needs_an_existing_model(base_lm):
    root, model_dir, pairs, _ = base_lm
    with pytest.raises(ValueError, match="--model_name_or_path"):
        train_causal_lm(
            LMModelArguments(tokenizer_name_or_path=str(model_dir)),
            DialogueDataArguments(train_files=[str(pairs)]),
            CleaningConfig(),
            LMTrainingArguments(output_dir=str(root / "x"), **QUICK),
            lora_args=LoraArguments(lora_r=4),
        )


def test_lora_and_freezing_together_are_refused(base_lm):
    root, model_dir, _, reviews = base_lm
    with pytest.raises(ValueError, match="Use one of them"):
        train_classifier(
            ClassifierModelArguments(model_name_or_path=str(model_dir), freeze="last-1"),
            LabelledDataArguments(train_files=[str(reviews)]),
            CleaningConfig(),
            ClassifierTrainingArguments(output_dir=str(root / "y"), **QUICK),
            lora_args=LoraArguments(lora_r=4),
        )


@pytest.mark.parametrize("kwargs, message", [({"lora_r": -1}, "lora_r"), ({"lora_merge": True}, "--lora_r")])
def test_lora_arguments_are_checked(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LoraArguments(**kwargs)
