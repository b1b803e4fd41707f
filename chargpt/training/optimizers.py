"""Muon for the hidden weight matrices with AdamW for everything else, as one optimizer the Trainer can hold
(`MuonWithAdamW`, chosen with `--optim muon`), and the split of a model's parameters between the two.

Muon (momentum, then the update matrix orthogonalised by Newton-Schulz iterations) only makes sense for the 2-D
weights inside the blocks; embeddings, the LM and classification heads, norms and biases keep AdamW. With
`adjust_lr_fn="match_rms_adamw"` the Muon update is rescaled to the RMS an AdamW update has, so one learning rate
and one schedule serve both (the Moonlight recipe); the scheduler sees the param groups of both optimizers. The
Trainer that builds it is `chargpt.training.trainer.CharGPTTrainer`.
"""

import torch
from torch import nn
from transformers.training_args import OptimizerNames


# The `--optim` value that selects `MuonWithAdamW`; every other value is one of Trainer's own optimizers.
MUON = "muon"
OPTIMIZERS = (MUON, *(name.value for name in OptimizerNames))


def hidden_matrices(model) -> set[int]:
    """ids of the weights of the model's Linear layers other than its heads (the LM head, a classifier's `score` or
    `classifier`) and LoRA's low-rank factors: the matrices Muon is for. Embedding tables are `nn.Embedding`, so
    they are not among them."""
    heads = {
        id(m)
        for m in (model.get_output_embeddings(), getattr(model, "score", None), getattr(model, "classifier", None))
        if m is not None
    }
    return {
        id(m.weight)
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and id(m) not in heads and "lora_" not in name
    }


def split_parameters(model, decay_names: set[str]) -> dict[str, list]:
    """Trainable parameters by optimizer and weight decay: `muon` (the hidden matrices, see `hidden_matrices`),
    `adamw_decay` (other weights Trainer would decay, e.g. embeddings and heads) and `adamw_no_decay` (norms,
    biases)."""
    groups = {"muon": [], "adamw_decay": [], "adamw_no_decay": []}
    hidden = hidden_matrices(model)
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if id(param) in hidden:
            groups["muon"].append(param)
        elif name in decay_names:
            groups["adamw_decay"].append(param)
        else:
            groups["adamw_no_decay"].append(param)
    return groups


class MuonWithAdamW(torch.optim.Optimizer):
    """`torch.optim.Muon` and `torch.optim.AdamW` stepped together. `param_groups` is the list of both optimizers'
    groups (the same dicts), so learning-rate schedulers, Trainer's logging and accelerate's gradient scaler act on
    both; `state_dict` holds both states."""

    def __init__(
        self,
        groups: dict[str, list],
        lr: float,
        weight_decay: float,
        betas=(0.9, 0.95),
        eps=1e-8,
        momentum: float = 0.95,
        ns_steps: int = 5,
    ):
        if not groups["muon"]:
            raise ValueError(
                "Muon found no trainable 2-D weight inside the decoder blocks (all frozen?); train with an AdamW "
                "instead, e.g. --optim adamw_torch_fused."
            )
        if not hasattr(torch.optim, "Muon"):
            raise ValueError(
                f"--optim muon needs torch.optim.Muon (torch >= 2.9); torch {torch.__version__} is installed. "
                f"Upgrade torch, or train with an AdamW, e.g. --optim adamw_torch_fused."
            )
        params = [p for group in groups.values() for p in group]
        super().__init__(params, {"lr": lr})
        self.muon = torch.optim.Muon(
            groups["muon"],
            lr=lr,
            weight_decay=weight_decay,
            momentum=momentum,
            nesterov=True,
            ns_steps=ns_steps,
            adjust_lr_fn="match_rms_adamw",
        )
        adamw_groups = [
            {"params": groups["adamw_decay"], "weight_decay": weight_decay},
            {"params": groups["adamw_no_decay"], "weight_decay": 0.0},
        ]
        adamw_groups = [g for g in adamw_groups if g["params"]]
        # torch refuses an optimizer without parameters: a model whose every trainable weight is a hidden matrix has
        # none for AdamW
        self.adamw = torch.optim.AdamW(adamw_groups, lr=lr, betas=betas, eps=eps) if adamw_groups else None
        self.param_groups = self.muon.param_groups + self._adamw_groups()

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        self.muon.step()
        if self.adamw is not None:
            self.adamw.step()
        return loss

    def _adamw_groups(self) -> list:
        return self.adamw.param_groups if self.adamw is not None else []

    def zero_grad(self, set_to_none: bool = True):
        self.muon.zero_grad(set_to_none=set_to_none)
        if self.adamw is not None:
            self.adamw.zero_grad(set_to_none=set_to_none)

    def state_dict(self):
        return {"muon": self.muon.state_dict(), "adamw": self.adamw.state_dict() if self.adamw is not None else None}

    def load_state_dict(self, state_dict):
        if set(state_dict) != {"muon", "adamw"}:
            raise ValueError(
                "This optimizer state is not a Muon+AdamW state (keys "
                f"{sorted(state_dict)}); resume with the optimizer the checkpoint was trained with (--optim)."
            )
        self.muon.load_state_dict(state_dict["muon"])
        if self.adamw is not None:
            self.adamw.load_state_dict(state_dict["adamw"])
        self.param_groups = self.muon.param_groups + self._adamw_groups()


__all__ = ["MUON", "OPTIMIZERS", "MuonWithAdamW", "hidden_matrices", "split_parameters"]
