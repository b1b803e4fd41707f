"""The Trainer of the causal-LM pipeline: CharGPT's Trainer (optimizer hooks) plus perplexity beside every evaluation
loss."""

import math

from .optimizers import CharGPTTrainer


class CausalLMTrainer(CharGPTTrainer):
    """Trainer (with CharGPT's optimizer hooks) that logs perplexity (exp of the mean token loss) beside every
    evaluation loss."""

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        for prefix in ("eval", "test"):
            loss = logs.get(f"{prefix}_loss")
            if loss is not None:
                logs[f"{prefix}_perplexity"] = math.exp(loss) if loss < 700 else float("inf")
        super().log(logs, start_time)


__all__ = [
    "CausalLMTrainer",
]
