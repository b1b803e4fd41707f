#!/usr/bin/env python
"""Fine-tune a CharGPT sequence classifier from a causal-LM checkpoint on labelled texts.

    python train_scripts/train_classifier.py --model_name_or_path runs/chat \
        --train_files ../shared/data/chnsenticorp/ChnSentiCorp_htl_train.csv --class_names negative positive \
        --freeze last-2 --output_dir runs/sentiment

Characters of the corpus missing from the vocabulary are added and the embeddings resized; `--freeze` picks what
trains (none, all = the head only, last-N); `--aux_lm_weight`, `--layer_lr_decay`, `--gradual_unfreezing` and
`--ema_decay` switch on the fine-tuning levers of docs/training.md (all off by default); accuracy and macro
precision/recall/F1 come from `chargpt.evaluation.classification_metrics`, the same code that scores models after
training. Checkpoints, resuming, best-model selection and the final hub-style directory work as in train_lm.py. All
flags: `--help`; a JSON file with the same keys can replace the flags.
"""

from chargpt.data import CleaningConfig
from chargpt.training import (
    ClassifierModelArguments,
    ClassifierTrainingArguments,
    LabelledDataArguments,
    LoraArguments,
    parse_arguments,
    prepare_cpu_distributed_env,
    run_script,
    setup_logging,
    train_classifier,
)


def main(argv: list[str] | None = None) -> dict:
    prepare_cpu_distributed_env()  # before TrainingArguments pick the device
    model_args, data_args, cleaning, training_args, lora_args = parse_arguments(
        (ClassifierModelArguments, LabelledDataArguments, CleaningConfig, ClassifierTrainingArguments, LoraArguments),
        argv,
    )
    setup_logging(training_args)
    results = train_classifier(model_args, data_args, cleaning, training_args, lora_args=lora_args)
    if training_args.process_index == 0:
        for split in ("eval", "test"):
            if split in results:
                m = results[split]
                scores = ", ".join(
                    f"{name.replace('_', ' ')} {m[f'{split}_{name}']:.4f}"
                    for name in ("accuracy", "macro_precision", "macro_recall", "macro_f1")
                )
                print(f"{split}: {scores}")
        print(f"Model directory: {training_args.output_dir}")
    return results


if __name__ == "__main__":
    run_script(main)
