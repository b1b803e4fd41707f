#!/usr/bin/env python
"""Train a CharGPT causal language model (a chat model) on dialogue corpora with transformers' Trainer.

    python train_scripts/train_lm.py --tokenizer_name_or_path runs/tokenizer \
        --train_files ../shared/data/lccc/lccc_toy_train_pairs.txt --output_dir runs/chat

    accelerate launch --config_file train_scripts/accelerate_configs/cpu_2proc.yaml train_scripts/train_lm.py ...

Domain-adaptive pretraining continues a model on text documents (reviews as plain text, one `<bos>text<eos>`
document each), alone or mixed with dialogues, before `train_classifier.py` fine-tunes it:

    python train_scripts/train_lm.py --model_name_or_path runs/chat --tokenizer_name_or_path runs/chat \
        --text_files runs/splits/chnsenticorp_train.csv --output_dir runs/chat-reviews

Dialogues go through the tokenizer's chat template (the format used at inference); validation loss and perplexity
are computed every epoch; checkpoints are safetensors (`--save_total_limit`, `--resume_from_checkpoint latest`); the
output directory ends as a hub-style model directory with `eval_results.json`, `test_results.json` and loss plots.
All flags: `--help`. A JSON file with the same keys can replace the flags.
"""

from chargpt.data import CleaningConfig
from chargpt.training import (
    DialogueDataArguments,
    LMModelArguments,
    LMTrainingArguments,
    LoraArguments,
    parse_arguments,
    prepare_cpu_distributed_env,
    run_script,
    setup_logging,
    train_causal_lm,
)


def main(argv: list[str] | None = None) -> dict:
    prepare_cpu_distributed_env()  # before TrainingArguments pick the device
    model_args, data_args, cleaning, training_args, lora_args = parse_arguments(
        (LMModelArguments, DialogueDataArguments, CleaningConfig, LMTrainingArguments, LoraArguments),
        argv,
    )
    setup_logging(training_args)
    results = train_causal_lm(model_args, data_args, cleaning, training_args, lora_args=lora_args)
    if training_args.process_index == 0:
        for split in ("eval", "test"):
            if split in results:
                m = results[split]
                print(f"{split}: loss {m[f'{split}_loss']:.4f}, perplexity {m[f'{split}_perplexity']:.2f}")
        for sample in results.get("samples", {}).get("replies", []):
            print(f"  {sample['prompt']} -> {sample['reply']}")
        print(f"Model directory: {training_args.output_dir}")
    return results


if __name__ == "__main__":
    run_script(main)
