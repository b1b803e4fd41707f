"""The two training pipelines on transformers' `Trainer`: `train_causal_lm` (a chat model on dialogues) and
`train_classifier` (a sequence classifier fine-tuned from a causal LM), with the checks they make before training
and the train-then-evaluate tail they share."""

import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from transformers import (
    AutoConfig,
    DataCollatorForLanguageModeling,
    DataCollatorWithPadding,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    TrainingArguments,
    set_seed,
)
from transformers.utils import logging as hf_logging

from ..configuration_chargpt import CharGPTConfig
from ..data import CleaningConfig, tokenize_labelled
from ..evaluation.classification import classification_metrics
from ..files import write_json_atomic
from ..tasks import context_length, sample_replies
from ..tokenization_chargpt_fast import CharGPTTokenizerFast
from .arguments import (
    ClassifierModelArguments,
    ClassifierTrainingArguments,
    DialogueDataArguments,
    LabelledDataArguments,
    LMModelArguments,
    LMTrainingArguments,
    LoraArguments,
)
from .checkpoints import resolve_checkpoint
from .environment import check_precision
from .inputs import classifier_datasets, lm_datasets, streamed_lm_datasets
from .levers import WeightAveraging, check_tied_head
from .lora import apply_lora, save_merged
from .models import apply_freezing, build_causal_lm_config, classifier_from_pretrained, new_causal_lm
from .outputs import save_final_directory
from .streaming import StreamingCausalLMTrainer, check_streaming_arguments
from .trainer import CausalLMTrainer, CharGPTTrainer
from .vocabulary import grow_vocabulary


logger = hf_logging.get_logger(__name__)


def _check_local_dir(flag: str, value: str | None) -> None:
    """A value that is a local path (not a Hub id such as `name` or `namespace/name`) must be an existing folder; say
    so plainly instead of transformers' Hub-id error."""
    if not value or os.path.isdir(value):
        return
    looks_local = value.startswith((os.sep, ".", "~")) or value.count("/") > 1 or os.path.exists(value)
    if looks_local:
        kind = "a file, not a folder" if os.path.isfile(value) else "no such folder"
        raise FileNotFoundError(
            f"{flag} {value}: {kind}. Give the folder written by build_vocab.py, train_lm.py or save_pretrained."
        )


def _check_tokenizer_cleaning(tokenizer, cleaning: CleaningConfig) -> None:
    """The tokenizer holds a vocabulary (from_pretrained on a folder without one quietly gives only the special
    tokens) and normalises as the data cleaning does."""
    if len(tokenizer.get_vocab()) <= len(tokenizer.all_special_tokens):
        raise FileNotFoundError(
            f"{tokenizer.name_or_path} holds no vocabulary (vocab.json); give a folder written by build_vocab.py or a "
            f"CharGPT model directory."
        )
    if tokenizer.normalization != cleaning.normalization:
        logger.warning(
            f"The data is cleaned with normalization={cleaning.normalization} but the tokenizer normalises with "
            f"{tokenizer.normalization}; inference text will be normalised differently from the training text. Use "
            f"--normalization {tokenizer.normalization or 'none'} (or rebuild the vocabulary)."
        )


def _check_chargpt_options(model_args: ClassifierModelArguments) -> None:
    """--pooling and --dropout set CharGPT config fields; refuse them for another architecture (a GPT-2 or Llama
    trained with a CharGPT tokenizer), where from_pretrained would store them as unused attributes."""
    config = AutoConfig.from_pretrained(model_args.model_name_or_path)
    if config.model_type == CharGPTConfig.model_type:
        return
    given = [
        flag
        for flag, value in (("--pooling", model_args.pooling), ("--dropout", model_args.dropout))
        if value is not None
    ]
    if given:
        raise ValueError(
            f"{' and '.join(given)} are CharGPT's settings, but {model_args.model_name_or_path} holds a "
            f"{config.model_type} model, which pools and drops out as its own class does. Drop {' and '.join(given)}."
        )


def _check_evaluation(training_args: TrainingArguments, has_validation: bool) -> None:
    """Say how to fix a run that asks for evaluation (or best-model selection) without validation data."""
    if not has_validation and (training_args.eval_strategy != "no" or training_args.load_best_model_at_end):
        raise ValueError(
            "There is no validation data, but evaluation is on (the default: every epoch, keeping the best "
            "checkpoint). Give --validation_files or a --validation_split_size above 0, or turn evaluation off with "
            "--eval_strategy no --load_best_model_at_end false."
        )


def _train_and_evaluate(trainer, splits, checkpoint) -> dict:
    """Train (resuming from `checkpoint` if given), then evaluate on the validation and test splits present."""
    train_result = trainer.train(resume_from_checkpoint=checkpoint)
    samples = len(splits["train"]) if hasattr(splits["train"], "__len__") else None  # None: a stream
    results = {"train": {**train_result.metrics, "train_samples": samples}}
    if "validation" in splits:
        results["eval"] = trainer.evaluate()
    if "test" in splits:
        results["test"] = trainer.evaluate(splits["test"], metric_key_prefix="test")
    return results


# ----------------------------------------------------------------------------------------------------------------------
# Causal LM


def train_causal_lm(
    model_args: LMModelArguments,
    data_args: DialogueDataArguments,
    cleaning: CleaningConfig,
    training_args: LMTrainingArguments,
    callbacks: list | None = None,
    lora_args: LoraArguments | None = None,
    new_model: Callable[[PreTrainedTokenizerBase], PreTrainedModel] | None = None,
) -> dict:
    """Train (or continue) a CharGPT causal LM on dialogues and/or text documents (`--text_files`, for domain-adaptive
    pretraining), in full or with LoRA adapters (`lora_args`); returns the final metrics (and sample replies).

    `new_model(tokenizer)`, from Python only, trains another architecture with CharGPT's tokenizer, data and Trainer
    instead of a fresh CharGPT (transformers' GPT-2 or Llama sized like it: `recipes/peers.py`); the size flags of
    `model_args` are then not used. Continuing from `model_name_or_path` loads any causal LM the Auto classes know."""
    lora_args = lora_args or LoraArguments()
    if new_model is not None and model_args.model_name_or_path:
        raise ValueError(
            "new_model builds a fresh model, model_name_or_path continues a trained one: give one of them."
        )
    if lora_args.enabled and not model_args.model_name_or_path:
        raise ValueError(
            "LoRA adapts an existing model: give --model_name_or_path (a trained CharGPT causal LM), or drop --lora_r "
            "to train a new model in full."
        )
    if data_args.streaming:
        check_streaming_arguments(training_args)
    precision = check_precision(training_args)
    checkpoint = resolve_checkpoint(training_args)
    _check_local_dir("--tokenizer_name_or_path", model_args.tokenizer_name_or_path)
    _check_local_dir("--model_name_or_path", model_args.model_name_or_path)
    tokenizer = CharGPTTokenizerFast.from_pretrained(model_args.tokenizer_name_or_path)
    _check_tokenizer_cleaning(tokenizer, cleaning)
    model = None
    if model_args.model_name_or_path:
        config = AutoConfig.from_pretrained(model_args.model_name_or_path)
    elif new_model is not None:
        set_seed(training_args.seed)  # the same initial weights in every process and every run
        model = new_model(tokenizer)
        config = model.config
    else:
        config = build_causal_lm_config(model_args, tokenizer)  # before the data: a bad config fails early
    if lora_args.enabled and len(tokenizer) > config.vocab_size:
        raise ValueError(
            "The tokenizer has characters the model has no embedding for; LoRA keeps the embeddings frozen. Use "
            "the model's own tokenizer (--tokenizer_name_or_path MODEL_DIR) or train without --lora_r."
        )
    n_positions = context_length(config)
    max_length = min(data_args.max_length or n_positions, n_positions)
    tokenizer.model_max_length = n_positions
    with training_args.main_process_first(desc="reading and tokenising the corpora"):
        if data_args.streaming:
            datasets_, summaries = streamed_lm_datasets(data_args, cleaning, tokenizer, max_length, training_args)
        else:
            datasets_, summaries = lm_datasets(data_args, cleaning, tokenizer, max_length, training_args.seed)
    _check_evaluation(training_args, "validation" in datasets_)
    if model is None:
        set_seed(training_args.seed)  # the same initial weights in every process and every run
        model = new_causal_lm(model_args, tokenizer, config)
    if lora_args.enabled:
        model = apply_lora(model, lora_args, "CAUSAL_LM")
    logger.info(f"Causal LM with {model.num_parameters():,} parameters; precision {precision}.")
    trainer = (StreamingCausalLMTrainer if data_args.streaming else CausalLMTrainer)(
        model=model,
        args=training_args,
        train_dataset=datasets_["train"],
        eval_dataset=datasets_.get("validation"),
        data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    results = _train_and_evaluate(trainer, datasets_, checkpoint)
    extra = {
        "data_summary.json": {
            **summaries,
            "cleaning": asdict(cleaning),
            "max_length": max_length,
            "max_turns": data_args.max_turns,
            "max_history_chars": data_args.max_history_chars,
            "packing": data_args.packing,
            "streaming": data_args.streaming,
        }
    }
    # The final save comes first: nothing after it (sample replies) can lose the trained model.
    save_final_directory(trainer, training_args.output_dir, results, extra)
    if lora_args.lora_merge and trainer.is_world_process_zero():
        save_merged(trainer.model, tokenizer, Path(training_args.output_dir) / "merged")
    if data_args.sample_prompts and trainer.is_world_process_zero():
        replies = sample_replies(trainer.model, tokenizer, data_args.sample_prompts, seed=training_args.seed)
        samples = [{"prompt": p, "reply": r} for p, r in zip(data_args.sample_prompts, replies)]
        write_json_atomic(Path(training_args.output_dir) / "sample_replies.json", samples)
        results["samples"] = {"replies": samples}
    return results


# ----------------------------------------------------------------------------------------------------------------------
# Classifier


def train_classifier(
    model_args: ClassifierModelArguments,
    data_args: LabelledDataArguments,
    cleaning: CleaningConfig,
    training_args: ClassifierTrainingArguments,
    callbacks: list | None = None,
    lora_args: LoraArguments | None = None,
) -> dict:
    """Fine-tune a CharGPT sequence classifier from a causal-LM directory, in full, partly frozen, or with LoRA
    adapters (`lora_args`); returns the final metrics."""
    lora_args = lora_args or LoraArguments()
    if lora_args.enabled and model_args.freeze != "none":
        raise ValueError(
            f"--freeze {model_args.freeze} and --lora_r both choose what trains: LoRA freezes the model and trains "
            f"its adapters and the head. Use one of them."
        )
    precision = check_precision(training_args)
    checkpoint = resolve_checkpoint(training_args)
    _check_local_dir("--model_name_or_path", model_args.model_name_or_path)
    _check_chargpt_options(model_args)
    tokenizer = CharGPTTokenizerFast.from_pretrained(model_args.model_name_or_path)
    _check_tokenizer_cleaning(tokenizer, cleaning)
    with training_args.main_process_first(desc="reading the corpora"):
        splits, summaries = classifier_datasets(data_args, cleaning, training_args.seed)
    _check_evaluation(training_args, "validation" in splits)
    names = splits["train"].features["label"].names
    added = (
        grow_vocabulary(tokenizer, splits["train"]["text"], model_args.min_new_char_frequency)
        if model_args.grow_vocabulary
        else []
    )
    logger.info(f"Added {len(added)} characters to the vocabulary (now {len(tokenizer)}).")
    set_seed(training_args.seed)  # the same new head in every process
    model = classifier_from_pretrained(  # says once that the head is new
        model_args.model_name_or_path,
        num_labels=len(names),
        id2label=dict(enumerate(names)),
        label2id={n: i for i, n in enumerate(names)},
        problem_type="single_label_classification",
        **({"classifier_pooling": model_args.pooling} if model_args.pooling else {}),
        **(
            {"resid_pdrop": model_args.dropout, "embd_pdrop": model_args.dropout}
            if model_args.dropout is not None
            else {}
        ),
    )
    if len(tokenizer) > model.get_input_embeddings().num_embeddings:
        model.resize_token_embeddings(len(tokenizer))  # new rows start at the mean of the old embeddings
    if lora_args.enabled:
        # the head trains in full (peft adds `score` for SEQ_CLS); so do the embeddings when characters were added
        model = apply_lora(model, lora_args, "SEQ_CLS", trainable_modules=["wte"] if added else None)
        trainable, total = model.get_nb_trainable_parameters()
        counts = {"trainable": trainable, "frozen": total - trainable, "total": total}
    else:
        counts = apply_freezing(model, model_args.freeze)
    if training_args.aux_lm_weight:
        check_tied_head(model)
    if training_args.ema_decay:
        callbacks = [*(callbacks or []), WeightAveraging(training_args.ema_decay)]
    max_length = min(data_args.max_length, context_length(model.config))
    with training_args.main_process_first(desc="tokenising"):
        features = {
            k: tokenize_labelled(v, tokenizer, max_length, data_args.preprocessing_num_workers)
            for k, v in splits.items()
        }
    logger.info(f"Classifier ({precision}): labels {names}; {counts['trainable']:,} trainable parameters.")
    trainer = CharGPTTrainer(
        model=model,
        args=training_args,
        train_dataset=features["train"],
        eval_dataset=features.get("validation"),
        data_collator=DataCollatorWithPadding(tokenizer),
        processing_class=tokenizer,
        compute_metrics=classification_metrics(len(names)),
        callbacks=callbacks,
    )
    results = _train_and_evaluate(trainer, features, checkpoint)
    extra = {
        "data_summary.json": {
            **summaries,
            "cleaning": asdict(cleaning),
            "labels": names,
            "max_length": max_length,
            "added_characters": len(added),
            "freeze": model_args.freeze,
            "lora_r": lora_args.lora_r,
            "parameters": counts,
        }
    }
    save_final_directory(trainer, training_args.output_dir, results, extra)
    if lora_args.lora_merge and trainer.is_world_process_zero():
        save_merged(trainer.model, tokenizer, Path(training_args.output_dir) / "merged")
    return results


__all__ = [
    "train_causal_lm",
    "train_classifier",
]
