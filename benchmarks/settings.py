"""The benchmark's settings: one dataclass, parsed by HfArgumentParser in run.py (a JSON file works too).

Defaults are the full run (the issue's model and workloads, sized to finish in under an hour on two CPU cores);
`--quick` replaces the workload sizes by `QUICK` below (minutes), never the model's dimensions.
"""

from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from recipes.peers import TUNED_LEARNING_RATES


REPO_ROOT = Path(__file__).resolve().parents[1]
SECTIONS = ("speed", "memory", "quality", "data", "time_to_quality", "recipe", "recipe_peers", "recipe_levers")


def _csv_ints(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise ValueError(f"Expected comma-separated integers, got {text!r}.") from err


@dataclass
class BenchmarkArguments:
    # What to run and where results go
    quick: bool = field(default=False, metadata={"help": "Small workloads (a few minutes) instead of the full run."})
    only: str = field(
        default="speed,memory,quality,data,time_to_quality,recipe",
        metadata={
            "help": "Comma-separated sections to run: speed, memory, quality, data, time_to_quality, recipe, and, not "
            "in the default run, recipe_peers (it reads finished recipe runs, --recipe_peer_dirs) and recipe_levers "
            "(it retrains a finished recipe run's classifier, --recipe_dir). Results of the others already in the "
            "results file are kept."
        },
    )
    name: str | None = field(
        default=None,
        metadata={
            "help": "Results name: benchmarks/results/<name>.json (default 'full', or "
            "'quick' with --quick). The full run also writes REPORT.md."
        },
    )
    results_dir: str = field(
        default=str(REPO_ROOT / "benchmarks" / "results"),
        metadata={"help": "Folder for <name>.json and the Markdown report."},
    )
    data_dir: str = field(
        default=str(REPO_ROOT.parent / "shared" / "data"),
        metadata={"help": "The shared data folder (lccc/, kdconv/, chnsenticorp/)."},
    )
    work_dir: str | None = field(default=None, metadata={"help": "Scratch folder for exports (default: a temp dir)."})
    threads: int = field(default=2, metadata={"help": "torch.set_num_threads for every measurement."})
    seed: int = field(default=1234, metadata={"help": "Seed of every split, initialisation and batch order."})
    # The model both contenders share (the dimensions)
    n_embd: int = field(default=256, metadata={"help": "Hidden size."})
    n_layer: int = field(default=6, metadata={"help": "Decoder blocks."})
    n_head: int = field(default=8, metadata={"help": "Attention heads."})
    n_inner: int = field(default=1024, metadata={"help": "Feed-forward width."})
    n_positions: int = field(default=512, metadata={"help": "Context length."})
    dropout: float = field(
        default=0.1,
        metadata={
            "help": "Residual and embedding dropout of both models and GPT-2's "
            "attention dropout (0.1: both libraries' defaults)."
        },
    )
    chargpt_attn_pdrop: float | None = field(
        default=None, metadata={"help": "CharGPT's attention dropout; default: CharGPTConfig's own (0.0)."}
    )
    speed_vocab_size: int = field(
        default=6000, metadata={"help": "Vocabulary of the random-weight models in the speed/memory runs."}
    )
    # Speed
    train_shapes: str = field(default="32x64,16x256", metadata={"help": "Training batch x length shapes."})
    train_precisions: str = field(default="fp32,bf16", metadata={"help": "fp32 and/or bf16 (autocast)."})
    train_compile: str = field(default="eager,compile", metadata={"help": "eager and/or compile (torch.compile)."})
    train_repetitions: int = field(default=5, metadata={"help": "Timed rounds per training config (fp32)."})
    train_steps_per_rep: int = field(default=2, metadata={"help": "Optimiser steps per timed round (fp32)."})
    bf16_repetitions: int = field(default=2, metadata={"help": "Timed rounds per bf16 config (bf16 can be slow)."})
    bf16_steps_per_rep: int = field(default=1, metadata={"help": "Steps per timed bf16 round."})
    bf16_policy: str = field(
        default="auto",
        metadata={
            "help": "auto: where the measured bf16 matmul peak is under a "
            "quarter of fp32's (no native bf16), time bf16 at the "
            "first training shape only; all: every shape."
        },
    )
    generation_batches: str = field(default="1,8", metadata={"help": "Generation batch sizes."})
    generation_new_tokens: int = field(default=128, metadata={"help": "New tokens per generation call."})
    generation_repetitions: int = field(default=5, metadata={"help": "Timed rounds per generation config."})
    generation_static_compiled: bool = field(
        default=True,
        metadata={"help": "At batch 1 also time CharGPT's generate() with a static KV cache and a compiled forward."},
    )
    matched_dropout_probe: bool = field(
        default=True,
        metadata={
            "help": "Also time CharGPT with GPT-2's attention "
            "dropout (fp32 eager, last training shape): "
            "a like-for-like check of the implementations."
        },
    )
    profile: bool = field(
        default=True,
        metadata={"help": "Record torch.profiler top ops for a train and a generation step of both models."},
    )
    # Quality: causal LM pretraining (both models, same budget)
    lm_steps: int = field(default=450, metadata={"help": "Pretraining steps for each model."})
    lm_batch_size: int = field(default=16, metadata={"help": "Pretraining batch size (blocks)."})
    lm_block_len: int = field(default=128, metadata={"help": "Pretraining block length (tokens)."})
    lm_lr: float = field(
        default=1e-3, metadata={"help": "Peak learning rate (warm-up over 5 percent of the steps, cosine to a tenth)."}
    )
    lm_precision: str = field(
        default="fp32",
        metadata={
            "help": "fp32 or bf16 autocast for pretraining and "
            "fine-tuning (bf16 only pays where the CPU has "
            "bf16 matrix instructions)."
        },
    )
    n_valid_pairs: int = field(default=500, metadata={"help": "LCCC pairs held out for perplexity."})
    n_valid_dialogs: int = field(default=50, metadata={"help": "LCCC multi-turn dialogues held out for perplexity."})
    n_test_posts: int = field(default=500, metadata={"help": "LCCC posts held out for reply sampling."})
    reply_max_new_tokens: int = field(default=40, metadata={"help": "Longest sampled reply."})
    # Quality: sentiment fine-tuning
    cls_max_len: int = field(default=160, metadata={"help": "Classifier input length in characters (with specials)."})
    cls_epochs: int = field(default=2, metadata={"help": "Fine-tuning epochs (all freezing modes)."})
    cls_batch_size: int = field(default=32, metadata={"help": "Fine-tuning batch size."})
    cls_lr_none: float = field(
        default=6e-4,
        metadata={
            "help": "Peak LR when nothing is frozen (chosen on 400 reviews "
            "held out of the TRAINING split, never the test set: "
            "86.3 percent after one epoch against 82.0 at 2e-4)."
        },
    )
    cls_lr_last2: float = field(
        default=6e-4,
        metadata={
            "help": "Peak LR when all but the last two blocks are frozen (set like none's; not tuned separately)."
        },
    )
    cls_lr_all: float = field(default=3e-3, metadata={"help": "Peak LR when only the head trains."})
    cls_max_train: int | None = field(default=None, metadata={"help": "Cap on balanced training reviews."})
    peer_freezing: str = field(default="none,all,last-2", metadata={"help": "Freezing modes also run for GPT-2."})
    # Data path: throughput, streaming, shards
    data_max_dialogues: int | None = field(
        default=None, metadata={"help": "Cap on the shared dialogues timed (default: all of them)."}
    )
    data_repetitions: int = field(default=3, metadata={"help": "Timed rounds per data-path contender."})
    data_block_len: int = field(default=256, metadata={"help": "Packed block length of the data path."})
    data_stream_gb: float = field(
        default=2.0,
        metadata={
            "help": "Size of the streamed corpus in GB (the shared "
            "corpora repeated; written to --work_dir, deleted "
            "after)."
        },
    )
    data_stream_steps: int = field(default=40, metadata={"help": "Optimisation steps of the streamed training run."})
    data_batch_size: int = field(default=16, metadata={"help": "Blocks a step in the streamed training run."})
    data_read_seconds: float = field(
        default=60.0, metadata={"help": "How long the data path alone reads the streamed corpus."}
    )
    # Time to quality (benchmarks/time_to_quality.py); the learning rates were chosen on the validation split
    ttq_contenders: str = field(
        default="gpt2,llama,chargpt-course,chargpt-modern",
        metadata={"help": "Models trained for the same wall time, in this order."},
    )
    ttq_budget_s: float = field(default=300.0, metadata={"help": "Training wall time of each contender (seconds)."})
    ttq_batch_size: int = field(default=16, metadata={"help": "Blocks a step."})
    ttq_block_len: int = field(default=128, metadata={"help": "Tokens a block (and the models' context)."})
    ttq_validation_share: float = field(default=0.02, metadata={"help": "Dialogues held out for validation."})
    ttq_valid_blocks: int = field(default=64, metadata={"help": "Validation blocks evaluated at each point."})
    ttq_evaluations: int = field(default=15, metadata={"help": "Evaluations along each run."})
    ttq_warmup_share: float = field(default=0.05, metadata={"help": "Warm-up share of the steps."})
    ttq_decay_share: float = field(default=0.2, metadata={"help": "Final decay share of the steps (WSD)."})
    ttq_weight_decay: float = field(
        default=0.01, metadata={"help": "Weight decay of every contender (train_lm.py's default)."}
    )
    # Peak learning rates, each the best of {5e-4, 1e-3, 2e-3, 4e-3, ...} for its model on the validation split in
    # 120-s runs (benchmarks/NOTES.md)
    ttq_lr_gpt2: float = field(
        default=TUNED_LEARNING_RATES["gpt2"], metadata={"help": "Peak learning rate of GPT-2 (AdamW)."}
    )
    ttq_lr_llama: float = field(
        default=TUNED_LEARNING_RATES["llama"], metadata={"help": "Peak learning rate of Llama (AdamW)."}
    )
    ttq_lr_course: float = field(
        default=5e-4, metadata={"help": "Peak learning rate of CharGPT's course preset (AdamW)."}
    )
    ttq_lr_modern: float = field(
        default=2e-3, metadata={"help": "Peak learning rate of CharGPT's modern preset (train_lm.py's default)."}
    )
    ttq_modern_optimizer: str = field(default="muon", metadata={"help": "Optimizer of the modern preset."})
    ttq_muon_ns_steps: int = field(
        default=5, metadata={"help": "Newton-Schulz iterations of Muon (train_lm.py's default)."}
    )

    # The recipe on the held-out splits (benchmarks/recipe.py)
    recipe_dir: str | None = field(
        default=None,
        metadata={
            "help": "An existing run_recipe.py output: the recipe section measures it (default: run the recipe in "
            "--work_dir); recipe_levers retrains its classifier (required there)."
        },
    )
    # The classifier's fine-tuning levers on a finished recipe run's validation splits (benchmarks/recipe_levers.py)
    levers: str = field(
        default="aux_lm,ulmfit,ema",
        metadata={
            "help": "Comma-separated levers of benchmarks/recipe_levers.py's LEVERS that --only recipe_levers "
            "tries, one classifier run each, on the run given by --recipe_dir; a+b switches several on together "
            "(aux_lm+ema). A lever already trained there with the same settings is scored, not retrained."
        },
    )
    # The recipe against the same recipe with GPT-2 and Llama (benchmarks/recipe_peers.py)
    recipe_peer_dirs: list[str] = field(
        default_factory=list,
        metadata={
            "help": "NAME=DIR items, one a recipe run: the --output_dir of run_recipe.py [--peer gpt2|llama] "
            "(e.g. chargpt=runs/recipe gpt2=runs/recipe-gpt2 llama=runs/recipe-llama)."
        },
    )

    def __post_init__(self):
        unknown = set(self.sections()) - set(SECTIONS)
        if unknown:
            raise ValueError(f"--only takes a comma-separated subset of {SECTIONS}, got {sorted(unknown)}.")
        if self.bf16_policy not in ("auto", "all"):
            raise ValueError(f"--bf16_policy must be auto or all, got {self.bf16_policy!r}.")
        if self.lm_precision not in ("fp32", "bf16"):
            raise ValueError(f"--lm_precision must be fp32 or bf16, got {self.lm_precision!r}.")
        for shape in self.shapes():
            if shape[1] > self.n_positions:
                raise ValueError(f"Training length {shape[1]} exceeds n_positions={self.n_positions}.")

    def sections(self) -> list[str]:
        return [s.strip() for s in self.only.split(",") if s.strip()]

    def shapes(self) -> list[tuple[int, int]]:
        try:
            return [tuple(int(v) for v in s.lower().split("x")) for s in self.train_shapes.split(",") if s.strip()]
        except ValueError as err:
            raise ValueError(f"--train_shapes takes BATCHxLENGTH items, got {self.train_shapes!r}.") from err

    def generation_batch_sizes(self) -> list[int]:
        return _csv_ints(self.generation_batches)

    def results_name(self) -> str:
        return self.name or ("quick" if self.quick else "full")


# Quick mode: the same model, much smaller workloads. Applied only to fields the user left at their defaults.
QUICK = {
    "train_shapes": "32x64,16x256",
    "train_compile": "eager",
    "generation_static_compiled": False,
    "train_repetitions": 3,
    "train_steps_per_rep": 1,
    "bf16_repetitions": 1,
    "generation_repetitions": 3,
    "lm_steps": 120,
    "n_valid_pairs": 100,
    "n_valid_dialogs": 10,
    "n_test_posts": 100,
    "cls_max_len": 96,
    "cls_epochs": 1,
    "cls_max_train": 600,
    "peer_freezing": "none",
    "data_max_dialogues": 8000,
    "data_stream_gb": 0.2,
    "data_stream_steps": 10,
    "data_read_seconds": 15.0,
    "ttq_budget_s": 20.0,
    "ttq_evaluations": 4,
}


def apply_quick(args: BenchmarkArguments, explicit: set[str] = frozenset()) -> BenchmarkArguments:
    """With --quick, replace the workload sizes by QUICK's, except those named in `explicit` (set on the command
    line) or changed from their defaults (e.g. in a JSON settings file)."""
    if not args.quick:
        return args
    defaults = {f.name: f.default for f in fields(BenchmarkArguments)}
    changes = {k: v for k, v in QUICK.items() if k not in explicit and getattr(args, k) == defaults[k]}
    return replace(args, **changes)


def explicit_fields(argv: list[str]) -> set[str]:
    """Field names given as --name or --name=value on a command line."""
    return {token[2:].split("=", 1)[0] for token in argv if token.startswith("--")}
