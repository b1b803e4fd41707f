"""Training pipelines for CharGPT on transformers' `Trainer`: vocabulary, causal LM (chat), classifier.

The scripts in `train_scripts/` parse the argument dataclasses (module `arguments`) with `HfArgumentParser` and call
`build_vocabulary`, `train_causal_lm` or `train_classifier` (the repository's `recipes/` chains them into the demo and
the full recipe). Every pipeline runs the same under `python` and `accelerate launch` (CPU processes, GPUs, machines).

What a finished run leaves in `output_dir` (a hub-style directory, loadable with `from_pretrained`, also with
`trust_remote_code=True` without chargpt installed): the model's code, `config.json`, `model.safetensors`,
`generation_config.json` (causal LM), the tokenizer files; `train_results.json`, `eval_results.json`,
`test_results.json`, `all_results.json`, `trainer_state.json` (with the whole log history), `data_summary.json`
(rows read, kept and dropped per split), `loss.png` / `metrics.png`; and the last `save_total_limit` checkpoints
(`checkpoint-STEP/`, safetensors) that `--resume_from_checkpoint` continues from.

The modules: `arguments` (the dataclasses and `parse_arguments`), `environment` (logging, a run's log file,
distributed CPU runs, precision), `checkpoints` (which checkpoint a run resumes from), `run_directory` (what
output_dir may hold; the final save in one step), `script_runner` (how the scripts exit on a user's error), `models`
(a new causal LM, a classifier from one, freezing), `lora`, `optimizers` (Muon + AdamW), `trainer` (CharGPT's
Trainers: Muon, the schedule's decay, perplexity), `inputs` (corpora to training datasets, in memory or streamed),
`streaming` (the checks and Trainer of `--streaming`), `vocabulary`, `pipelines` (`train_causal_lm`,
`train_classifier`), `outputs` (plots, the final directory, sample replies). Everything public is importable from
`chargpt.training` itself.
"""

from .arguments import (
    DEFAULT_PRESET,
    CharGPTTrainingArguments,
    ClassifierModelArguments,
    ClassifierTrainingArguments,
    DataArguments,
    DialogueDataArguments,
    LabelledDataArguments,
    LMModelArguments,
    LMTrainingArguments,
    LoraArguments,
    VocabArguments,
    parse_arguments,
)
from .checkpoints import checkpoint_problem, latest_complete_checkpoint, resolve_checkpoint
from .environment import check_precision, logs_to_run_folder, prepare_cpu_distributed_env, setup_logging
from .levers import WeightAveraging
from .lora import apply_lora, save_merged
from .models import apply_freezing, build_causal_lm_config, classifier_from_pretrained, new_causal_lm
from .optimizers import MuonWithAdamW
from .outputs import save_final_directory, save_training_plots
from .pipelines import train_causal_lm, train_classifier
from .run_directory import check_output_dir, clean_interrupted_saves
from .script_runner import run_script
from .trainer import CausalLMTrainer, CharGPTTrainer, TrainingDiverged
from .vocabulary import build_vocabulary, grow_vocabulary


__all__ = [
    "DEFAULT_PRESET",
    "CharGPTTrainer",
    "MuonWithAdamW",
    "VocabArguments",
    "LMModelArguments",
    "DataArguments",
    "DialogueDataArguments",
    "ClassifierModelArguments",
    "LabelledDataArguments",
    "CharGPTTrainingArguments",
    "LMTrainingArguments",
    "ClassifierTrainingArguments",
    "parse_arguments",
    "setup_logging",
    "logs_to_run_folder",
    "prepare_cpu_distributed_env",
    "check_precision",
    "resolve_checkpoint",
    "checkpoint_problem",
    "latest_complete_checkpoint",
    "check_output_dir",
    "clean_interrupted_saves",
    "run_script",
    "LoraArguments",
    "apply_lora",
    "save_merged",
    "apply_freezing",
    "build_causal_lm_config",
    "new_causal_lm",
    "classifier_from_pretrained",
    "CausalLMTrainer",
    "TrainingDiverged",
    "WeightAveraging",
    "save_training_plots",
    "save_final_directory",
    "build_vocabulary",
    "grow_vocabulary",
    "train_causal_lm",
    "train_classifier",
]
