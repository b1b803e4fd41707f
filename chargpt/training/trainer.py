"""CharGPT's Trainers: `CharGPTTrainer` (transformers' Trainer that also builds Muon + AdamW for `--optim muon` and
sizes the decay of the warmup-stable-decay schedule) and `CausalLMTrainer` (plus perplexity beside every causal-LM
evaluation loss)."""

import math

from transformers import Trainer, TrainingArguments
from transformers.training_args import OptimizerNames
from transformers.utils import logging

from .optimizers import MUON, MuonWithAdamW, split_parameters


logger = logging.get_logger(__name__)


class CharGPTTrainer(Trainer):
    """transformers' Trainer with two hooks: `create_optimizer` builds `MuonWithAdamW` when `args.optim == "muon"`
    (Trainer's own optimizer for its own `--optim` names), and `create_scheduler` turns `args.decay_fraction` into the
    `num_decay_steps` of the warmup-stable-decay schedule, whose length is only known once the run's step count is.
    Both run inside Trainer, so checkpoints hold the optimizer state and resuming continues exactly."""

    def create_optimizer(self, model=None):
        opt_model = model if model is not None else self.model
        groups = self._muon_groups(opt_model) if self.optimizer is None else None
        if groups is None:  # Trainer's own optimizer (it also returns one already built)
            return super().create_optimizer(model) if model is not None else super().create_optimizer()
        self.optimizer = MuonWithAdamW(
            groups,
            lr=self.args.learning_rate,
            weight_decay=self.args.weight_decay,
            betas=(self.args.adam_beta1, self.args.adam_beta2),
            eps=self.args.adam_epsilon,
            momentum=self.args.muon_momentum,
            ns_steps=self.args.muon_ns_steps,
        )
        counts = {k: sum(p.numel() for p in v) for k, v in groups.items()}
        adamw = counts["adamw_decay"] + counts["adamw_no_decay"]
        logger.info(f"Muon on {counts['muon']:,} parameters, AdamW on {adamw:,}.")
        return self.optimizer

    def _muon_groups(self, model) -> dict[str, list] | None:
        """The parameter groups of Muon+AdamW, or None where Trainer's optimizer trains: another `--optim`, or no
        hidden matrix to train (then `args.optim` records the AdamW actually used, Trainer's default)."""
        if self.args.optim != MUON:
            return None
        if self.is_fsdp_enabled or self.is_deepspeed_enabled:
            raise ValueError(
                "--optim muon is not supported with FSDP or DeepSpeed (they shard the optimizer state); use one of "
                f"Trainer's optimizers there, e.g. --optim {TrainingArguments.optim}."
            )
        groups = split_parameters(model, set(self.get_decay_parameter_names(model)))
        if not groups["muon"]:
            self.args.optim = OptimizerNames(TrainingArguments.optim)
            logger.warning(
                f"--optim muon: no hidden weight matrix trains here (LoRA adapters, or a frozen body), so "
                f"{self.args.optim.value} trains every parameter."
            )
            return None
        return groups

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        kwargs = dict(self.args.lr_scheduler_kwargs or {})
        if self.args.lr_scheduler_type == "warmup_stable_decay" and "num_decay_steps" not in kwargs:
            kwargs["num_decay_steps"] = max(1, round(self.args.decay_fraction * num_training_steps))
            self.args.lr_scheduler_kwargs = kwargs
        return super().create_scheduler(num_training_steps, optimizer)


class CausalLMTrainer(CharGPTTrainer):
    """`CharGPTTrainer` that logs perplexity (exp of the mean token loss) beside every evaluation loss."""

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for prefix in ("eval", "test"):
            loss = logs.get(f"{prefix}_loss")
            if loss is not None:
                logs[f"{prefix}_perplexity"] = math.exp(loss) if loss < 700 else float("inf")
        super().log(logs, start_time)


__all__ = [
    "CharGPTTrainer",
    "CausalLMTrainer",
]
