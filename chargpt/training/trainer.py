"""CharGPT's Trainers: `CharGPTTrainer` (transformers' Trainer that also builds Muon + AdamW for `--optim muon`, sizes
the decay of the warmup-stable-decay schedule and applies the classifier's fine-tuning levers of `levers.py`) and
`CausalLMTrainer` (plus perplexity beside every causal-LM evaluation loss)."""

import math

import torch
from transformers import Trainer, TrainingArguments
from transformers.training_args import OptimizerNames
from transformers.utils import logging

from .levers import auxiliary_lm_loss, gate_schedules, layer_depths, unfreeze_steps
from .optimizers import MUON, MuonWithAdamW, split_parameters


logger = logging.get_logger(__name__)


class TrainingDiverged(ValueError):
    """A weight became NaN or infinite during training (a ValueError: the fix is a setting, such as the learning
    rate or the precision, and the scripts print it as one line)."""


class CharGPTTrainer(Trainer):
    """transformers' Trainer with two hooks: `create_optimizer` builds `MuonWithAdamW` when `args.optim == "muon"`
    (Trainer's own optimizer for its own `--optim` names), and `create_scheduler` turns `args.decay_fraction` into the
    `num_decay_steps` of the warmup-stable-decay schedule, whose length is only known once the run's step count is.
    Both run inside Trainer, so checkpoints hold the optimizer state and resuming continues exactly."""

    def create_optimizer(self, model=None):
        opt_model = model if model is not None else self.model
        if self.optimizer is None and getattr(self.args, "per_layer_rates", False):
            return self._create_layered_optimizer(opt_model)
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

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Trainer's log, then, at each training log (every `logging_steps`), a check that every weight is finite:
        a diverged run stops there with `TrainingDiverged` instead of training and evaluating NaN weights to the end
        (Trainer's default `logging_nan_inf_filter` hides NaN losses from the log). fp16's loss scaler skips the
        steps whose gradients overflow, so a weight is never NaN from that; sharded models (FSDP, DeepSpeed) are not
        checked, since each process holds only part of them."""
        super().log(logs, start_time)
        if "loss" in logs and self.model is not None and not (self.is_fsdp_enabled or self.is_deepspeed_enabled):
            self._check_finite_weights()

    def _check_finite_weights(self) -> None:
        named = [(n, p) for n, p in self.model.named_parameters() if p.is_floating_point()]
        if not named or torch.stack([torch.isfinite(p).all() for _, p in named]).all():  # one device sync
            return
        name = next(n for n, p in named if not torch.isfinite(p).all())
        raise TrainingDiverged(
            f"Training diverged by step {self.state.global_step}: weight {name} holds NaN or infinite values, so "
            f"every later step and checkpoint would be too. Lower --learning_rate, or train in fp32 (without --bf16 "
            f"or --fp16); checkpoints saved before this step are in {self.args.output_dir}."
        )

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        kwargs = dict(self.args.lr_scheduler_kwargs or {})
        if self.args.lr_scheduler_type == "warmup_stable_decay" and "num_decay_steps" not in kwargs:
            kwargs["num_decay_steps"] = max(1, round(self.args.decay_fraction * num_training_steps))
            self.args.lr_scheduler_kwargs = kwargs
        built = self.lr_scheduler is None
        scheduler = super().create_scheduler(num_training_steps, optimizer)
        fraction = getattr(self.args, "gradual_unfreezing", 0.0)
        if built and fraction > 0:
            groups = scheduler.optimizer.param_groups
            starts = unfreeze_steps(max(g["depth"] for g in groups), fraction, num_training_steps)
            gate_schedules(scheduler, [starts[g["depth"]] for g in groups])
        return scheduler

    # ------------------------------------------------------------------------------------------------------------------
    # The classifier's levers (levers.py); the fields are ClassifierTrainingArguments', absent from a causal LM's.

    def _create_layered_optimizer(self, model):
        """Trainer's optimizer (`--optim`) with two groups (decayed, not decayed) per depth from the output
        (`levers.layer_depths`), each at the learning rate times `layer_lr_decay ** depth` and carrying its depth
        for `create_scheduler`'s gates."""
        optimizer_cls, kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
        if "params" in kwargs or "model" in kwargs:
            raise ValueError(
                f"--optim {self.args.optim} builds its own parameter groups, so --layer_lr_decay and "
                f"--gradual_unfreezing cannot give each layer its own; use --optim adamw_torch."
            )
        lr = kwargs.pop("lr", self.args.learning_rate)
        decay = set(self.get_decay_parameter_names(model))
        depths = layer_depths(model)
        groups = {}
        for name, param in model.named_parameters():
            if name in depths:
                key = (depths[name], name in decay)
                groups.setdefault(key, []).append(param)
        self.optimizer = optimizer_cls(
            [
                {
                    "params": params,
                    "weight_decay": self.args.weight_decay if decayed else 0.0,
                    "lr": lr * self.args.layer_lr_decay**depth,
                    "depth": depth,
                }
                for (depth, decayed), params in sorted(groups.items())
            ],
            lr=lr,
            **kwargs,
        )
        logger.info(
            f"{len(groups)} optimizer groups over {max(depths.values()) + 1} depths; learning rate x "
            f"{self.args.layer_lr_decay} a depth down from the head."
        )
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Trainer's loss, plus `aux_lm_weight` times the next-character loss of the batch's texts while training
        (`levers.auxiliary_lm_loss`); evaluation reports the task's loss alone."""
        weight = getattr(self.args, "aux_lm_weight", 0.0)
        if not (weight and model.training):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = super().compute_loss(model, {**inputs, "output_hidden_states": True}, True, num_items_in_batch)
        lm_loss = auxiliary_lm_loss(
            outputs.hidden_states[-1],  # the final norm's output: transformers ties the last entry to it
            inputs["input_ids"],
            inputs.get("attention_mask"),
            self.model.get_input_embeddings().weight,
        )
        loss = loss + weight * lm_loss
        return (loss, outputs) if return_outputs else loss


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
    "TrainingDiverged",
]
