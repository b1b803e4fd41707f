"""Training on a streamed corpus (`--streaming`): the checks a streamed run needs before it starts, and the Trainer
that feeds each process the shard `split_dataset_by_node` gave it."""

from accelerate.data_loader import prepare_data_loader
from torch.utils.data import DataLoader
from transformers import TrainingArguments

from .trainer import CausalLMTrainer


def check_streaming_arguments(training_args: TrainingArguments) -> None:
    """A stream has no length and, repeated until --max_steps, no epochs: say how to fix a run that needs either."""
    if training_args.max_steps is None or training_args.max_steps <= 0:
        raise ValueError(
            "--streaming reads the corpus as a stream of unknown length, so the run needs --max_steps (the number of "
            "optimisation steps to train for) instead of --num_train_epochs."
        )
    for name in ("eval_strategy", "save_strategy"):
        if str(getattr(training_args, name)).split(".")[-1].lower() == "epoch":
            flag = name.split("_")[0]
            raise ValueError(
                f"With --streaming an epoch never ends (the stream repeats until --max_steps), so --{name} epoch "
                f"would never {flag}: use --{name} steps --{flag}_steps N (or no)."
            )


class StreamingCausalLMTrainer(CausalLMTrainer):
    """`CausalLMTrainer` for a training stream that is already this process's shard.

    accelerate would shard an `IterableDataset` once more (keeping every world_size-th batch of it, or sending the
    main process's batches to all), so the training dataloader is prepared for this process alone: device placement,
    and resumption by skipping batches, as usual.
    """

    def get_train_dataloader(self) -> DataLoader:
        workers = self.args.dataloader_num_workers
        dataloader = DataLoader(
            self.train_dataset,
            batch_size=self._train_batch_size,
            collate_fn=self.data_collator,
            num_workers=workers,
            pin_memory=self.args.dataloader_pin_memory,
            persistent_workers=self.args.dataloader_persistent_workers if workers else False,
            prefetch_factor=self.args.dataloader_prefetch_factor if workers else None,
        )
        return prepare_data_loader(
            dataloader,
            self.accelerator.device,
            num_processes=1,
            process_index=0,
            put_on_device=True,
            dispatch_batches=False,
        )


__all__ = ["check_streaming_arguments", "StreamingCausalLMTrainer"]
