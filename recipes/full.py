"""The full recipe on the shared Chinese data (`train_scripts/run_recipe.py`): the fixed evaluation splits, one
vocabulary, a chat model on every dialogue corpus, its sampling defaults chosen on validation posts, a sentiment
classifier fine-tuned from it on the hotel reviews and eight online-shopping categories, both measured on the
held-out tests (with the TF-IDF floor fit on the classifier's own training files) and published as hub-style
directories with model cards. Every step trains only on training parts; validation parts choose checkpoints and
sampling settings; the test parts are read once, by the evaluation at the end.
"""

import filecmp
import json
import os
import platform
import shutil
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import transformers

from chargpt.configuration_chargpt import CLASSIFIER_POOLINGS
from chargpt.data import CleaningConfig
from chargpt.evaluation import write_split_files
from chargpt.evaluation.generation_search import (
    DEFAULT_GRID,
    posts_and_replies,
    save_sampling_settings,
    search_generation_config,
)
from chargpt.files import write_json_atomic
from chargpt.loading import load_model_and_tokenizer
from chargpt.training.arguments import (
    ClassifierModelArguments,
    ClassifierTrainingArguments,
    DialogueDataArguments,
    LabelledDataArguments,
    LMModelArguments,
    LMTrainingArguments,
    VocabArguments,
)
from chargpt.training.models import build_causal_lm_config, special_token_ids
from chargpt.training.pipelines import train_causal_lm, train_classifier
from chargpt.training.vocabulary import build_vocabulary

from .dialogue_splits import LCCC_BASE_FILES, lccc_base_splits
from .heldout import EvaluationArguments, evaluate_model
from .peers import PEER_OPTIMIZER, PEERS, TUNED_LEARNING_RATES, check_peer, peer_causal_lm
from .sentiment_splits import (
    CHNSENTICORP_FILE,
    DEFAULT_HOLDOUT_CATEGORY,
    ONLINE_SHOPPING_FILE,
    chnsenticorp_splits,
    cross_domain_splits,
    holdout_file_stem,
)


# The dialogue corpora of the shared data (../shared/data) besides LCCC-base, whose training part comes from the split.
DIALOGUE_FILES = [
    "lccc/lccc_toy_train_pairs.txt",
    "lccc/lccc_toy_train_dialogs.json",
    "kdconv/kdconv_film_dev.json",
    "kdconv/kdconv_film_test.json",
    "kdconv/kdconv_music_dev.json",
    "kdconv/kdconv_music_test.json",
    "kdconv/kdconv_travel_dev.json",
    "kdconv/kdconv_travel_test.json",
    "cped/cped_dialogues.json",
]

# The arguments that shape the splits, the vocabulary, the chat model or its sampling settings: a run reusing another
# run's chat model (--chat_from) must have the same.
CHAT_SETTINGS = (
    "scale",
    "bf16",
    "seed",
    "holdout_category",
    "chat_epochs",
    "chat_context",
    "n_embd",
    "n_layer",
    "n_head",
    "chat_dropout",
    "chat_batch_size",
    "generation_posts",
    "inference_batch_size",
    "max_train_samples",
    "max_eval_samples",
    "peer",
)

# The report so far, rewritten after each step and removed once recipe_report.json is written.
PROGRESS_FILE = "recipe_progress.json"

# The settings `--scale` chooses where no flag gives them. "cpu" is the recipe as measured on two CPU cores (None:
# train_lm.py's model size); "gpu" is sized for about ten minutes on one large GPU (the arithmetic, for the first
# GPU run to correct: docs/training.md, "The GPU scale").
SCALES = {
    "cpu": {
        "n_embd": None,
        "n_layer": None,
        "n_head": None,
        "chat_dropout": None,
        "chat_batch_size": 16,
        "chat_epochs": 1.0,
        "review_lm_epochs": 1.0,
        "classifier_epochs": 1.0,
        "classifier_batch_size": 32,
        "inference_batch_size": 32,
        "bf16": False,
    },
    "gpu": {
        "n_embd": 512,
        "n_layer": 8,
        "n_head": 8,
        # Chosen on validation on the first GPU (docs/training.md, "The GPU scale"): without dropout the modern preset
        # overfits 8 epochs of 1.8 million chat tokens (best validation loss 4.056 at epoch 2.4, then up to 5.34);
        # 0.1 gives 3.993 and 0.2 4.000.
        "chat_dropout": 0.1,
        "chat_batch_size": 64,
        "chat_epochs": 8.0,
        "review_lm_epochs": 4.0,
        "classifier_epochs": 3.0,
        "classifier_batch_size": 128,
        "inference_batch_size": 128,
        "bf16": True,
    },
}


def _scaled(name: str, help: str):
    """A field whose default comes from --scale: None until `RecipeArguments.__post_init__` fills it in, so that a
    value given explicitly, even one equal to a scale's, is never replaced."""
    values = {scale: "train_lm.py's" if s[name] is None else s[name] for scale, s in SCALES.items()}
    choices = "; ".join(f"--scale {scale}: {value}" for scale, value in values.items())
    return field(default=None, metadata={"help": f"{help} Default: the scale's ({choices})."})


@dataclass
class RecipeArguments:
    """The full recipe on the shared data: chat model and sentiment classifier, evaluated and published.

    `scale` fills in the fields marked as the scale's that were not given (`SCALES`); a field given explicitly, on
    the command line, in a JSON file or in Python, keeps its value."""

    output_dir: str = field(default="chargpt-recipe", metadata={"help": "Where every split, model and report goes."})
    data_dir: str = field(default="../shared/data", metadata={"help": "Folder of the shared data (see its README)."})
    scale: str = field(
        default="cpu",
        metadata={
            "help": "The defaults of model size, batches, epochs and precision: 'cpu', the recipe as measured on two "
            "CPU cores; 'gpu', a larger model in bf16 with larger batches and more epochs, sized for about ten "
            "minutes on one large GPU (it needs CUDA, or --use_cpu for a CPU smoke run). Flags given explicitly win.",
            "choices": tuple(SCALES),
        },
    )
    use_cpu: bool = field(
        default=False,
        metadata={
            "help": "Train and evaluate on the CPU even where CUDA is present. With --scale gpu this is the CPU smoke "
            "run of the GPU settings, in fp32 unless --bf16 true is given (add --max_train_samples and "
            "--max_eval_samples to keep it short)."
        },
    )
    bf16: bool | None = field(
        default=None,
        metadata={
            "help": "Train in bf16 mixed precision (--bf16 true|false). Default: the scale's (--scale cpu: false; "
            "--scale gpu: true, except with --use_cpu)."
        },
    )
    seed: int = field(default=42, metadata={"help": "Seed of the splits, initialisation and sampling."})
    holdout_category: str = field(
        default=DEFAULT_HOLDOUT_CATEGORY,
        metadata={
            "help": "Online-shopping category kept out of all training (the cross-domain test), or several, "
            "comma-separated (e.g. phones,milk,water_heaters), pooled into one test and also scored one by one."
        },
    )
    chat_epochs: float | None = _scaled("chat_epochs", "Epochs over the dialogue corpora.")
    chat_context: int = field(default=256, metadata={"help": "Context length of the model (tokens)."})
    n_embd: int | None = _scaled("n_embd", "Hidden size (train_lm.py's: 256).")
    n_layer: int | None = _scaled("n_layer", "Decoder blocks (train_lm.py's: 6).")
    n_head: int | None = _scaled("n_head", "Attention heads (train_lm.py's: 8).")
    chat_dropout: float | None = _scaled(
        "chat_dropout",
        "Residual and embedding dropout of the chat model, kept by the models fine-tuned from it (the modern "
        "preset's: 0).",
    )
    chat_batch_size: int | None = _scaled("chat_batch_size", "Packed blocks of chat_context tokens a step.")
    generation_posts: int = field(
        default=500,
        metadata={
            "help": "Validation posts each sampling setting answers (0: keep the defaults); as many as the held-out "
            "test has, since Distinct-n falls as replies are added."
        },
    )
    review_lm_epochs: float | None = _scaled(
        "review_lm_epochs",
        "Epochs of language modelling on the training reviews' texts before the classifier (0: none).",
    )
    extra_labelled: bool = field(
        default=True,
        metadata={"help": "Train the classifier on the online-shopping reviews too (all but the held-out category)."},
    )
    classifier_epochs: float | None = _scaled("classifier_epochs", "Epochs over the labelled reviews.")
    classifier_batch_size: int | None = _scaled("classifier_batch_size", "Reviews a classifier training step.")
    inference_batch_size: int | None = _scaled(
        "inference_batch_size", "Posts, dialogues or reviews a forward pass in the sampling search and the evaluation."
    )
    classifier_learning_rate: float = field(default=5e-4, metadata={"help": "Peak learning rate of the classifier."})
    classifier_max_length: int = field(default=256, metadata={"help": "Reviews are cut to this many characters."})
    classifier_pooling: str = field(
        default="mean",
        metadata={
            "help": "What the classifier reads: 'mean' (of all characters' states) or 'last'.",
            "choices": CLASSIFIER_POOLINGS,
        },
    )
    classifier_aux_lm_weight: float = field(
        default=0.0,
        metadata={"help": "train_classifier.py's --aux_lm_weight: an auxiliary next-character loss (0: off)."},
    )
    classifier_layer_lr_decay: float = field(
        default=1.0,
        metadata={"help": "train_classifier.py's --layer_lr_decay: discriminative learning rates (1: off)."},
    )
    classifier_gradual_unfreezing: float = field(
        default=0.0, metadata={"help": "train_classifier.py's --gradual_unfreezing (0: off)."}
    )
    classifier_ema_decay: float = field(
        default=0.0, metadata={"help": "train_classifier.py's --ema_decay: weight averaging (0: off)."}
    )
    max_train_samples: int | None = field(
        default=None, metadata={"help": "Use at most this many training dialogues and reviews (quick runs)."}
    )
    max_eval_samples: int | None = field(
        default=None,
        metadata={
            "help": "Use at most this many validation and test dialogues, posts and reviews, in training and in the "
            "held-out evaluation (smoke runs: the figures are then not comparable); a capped labelled split keeps "
            "the first rows of each class in turn."
        },
    )
    publish: bool = field(
        default=True,
        metadata={"help": "Write hub-style directories with model cards (CharGPT's models only; not with --peer)."},
    )
    chat_from: str | None = field(
        default=None,
        metadata={
            "help": "The --output_dir of a finished run whose vocabulary, chat model and sampling settings this run "
            "reuses instead of training its own (an arm that differs only in its review steps, e.g. --extra_labelled "
            "false, then shares the chat model it is compared with). The settings that shape the chat model "
            "(CHAT_SETTINGS) and the split files must be that run's."
        },
    )
    peer: str | None = field(
        default=None,
        metadata={
            "help": "Run the same recipe with transformers' own GPT-2 or Llama in place of CharGPT (gpt2|llama): "
            "the same size, tokenizer, data, epochs and batches, AdamW at the peer's tuned learning rate "
            "(recipes/peers.py), its own ...ForSequenceClassification (its last-token pooling; "
            "--classifier_pooling is CharGPT's); no publishing.",
            "choices": PEERS,
        },
    )

    def __post_init__(self):
        if self.scale not in SCALES:
            raise ValueError(f"--scale must be one of {tuple(SCALES)}, got {self.scale!r}.")
        if self.bf16 is None:
            # The GPU scale's CPU smoke run trains in fp32: bf16 on a CPU without bf16 matrix instructions is many
            # times slower than fp32 (docs/distributed.md).
            self.bf16 = SCALES[self.scale]["bf16"] and not self.use_cpu
        for name, value in SCALES[self.scale].items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.classifier_pooling not in CLASSIFIER_POOLINGS:
            raise ValueError(
                f"--classifier_pooling must be one of {CLASSIFIER_POOLINGS}, got {self.classifier_pooling!r}."
            )
        check_peer(self.peer)
        for name in ("chat_epochs", "classifier_epochs"):
            if getattr(self, name) <= 0:
                raise ValueError(f"--{name} must be above 0, got {getattr(self, name)}.")


@contextmanager
def _step(out: Path, report: dict, name: str):
    """Time one step into report["timings_seconds"], then write the report so far to OUTPUT_DIR/PROGRESS_FILE (and
    say so on stdout): a run stopped part way keeps each finished step's results and wall time."""
    start = time.perf_counter()
    yield
    seconds = round(time.perf_counter() - start, 1)
    report["timings_seconds"][name] = seconds
    write_json_atomic(out / PROGRESS_FILE, _jsonable(report))
    print(f"[recipe] {name} done in {seconds:.0f} s", flush=True)


def _environment(args: RecipeArguments) -> dict:
    """Where the run ran: the versions and the device, so that figures from several machines stay apart."""
    device = inference_device(args)
    return {
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "device": torch.cuda.get_device_name(0) if device == "cuda" else platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
    }


def _jsonable(report: dict) -> dict:
    return json.loads(json.dumps(report, default=str))


def check_device(args: RecipeArguments) -> None:
    """Refuse a GPU-scale run that would not get the GPU it is sized for: no CUDA device (unless --use_cpu asks for
    the CPU smoke run), or bf16 on a GPU without it."""
    if args.scale != "gpu" or args.use_cpu:
        return
    if not torch.cuda.is_available():
        raise ValueError(
            "--scale gpu is sized for one CUDA GPU (a larger model in bf16, more epochs) and PyTorch sees no CUDA "
            "device here; on a CPU it would run for many hours. Run it where torch.cuda.is_available() is True, use "
            "--scale cpu for the CPU recipe, or add --use_cpu for a CPU smoke run of the GPU settings (fp32; with "
            "--max_train_samples and --max_eval_samples to keep it short)."
        )
    if args.bf16 and not torch.cuda.is_bf16_supported():
        raise ValueError(
            "--scale gpu trains in bf16, which this GPU does not support (bf16 needs Ampere or newer); add "
            "--bf16 false to train in fp32."
        )


def inference_device(args: RecipeArguments) -> str:
    """Where the sampling search and the evaluation run: the GPU at the GPU scale (the CPU scale keeps the CPU)."""
    return "cuda" if args.scale == "gpu" and not args.use_cpu else "cpu"


def _common_training(args: RecipeArguments) -> dict:
    return dict(
        seed=args.seed,
        overwrite_output_dir=True,
        use_cpu=args.use_cpu or not torch.cuda.is_available(),
        bf16=args.bf16,
        report_to="none",
        disable_tqdm=True,
        save_total_limit=1,
    )


def write_splits(args: RecipeArguments, directory: Path) -> dict:
    """The fixed evaluation splits as files (as make_eval_splits.py writes them); returns their paths by name."""
    data = Path(args.data_dir)
    missing = [
        p
        for p in [CHNSENTICORP_FILE, ONLINE_SHOPPING_FILE, *LCCC_BASE_FILES, *DIALOGUE_FILES]
        if not (data / p).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"The recipe needs the shared data; missing under {data}: {', '.join(missing)}. Pass --data_dir."
        )
    splits, info = chnsenticorp_splits(data / CHNSENTICORP_FILE, args.seed)
    write_split_files(splits, directory, "chnsenticorp", info)
    splits, info = cross_domain_splits(data / ONLINE_SHOPPING_FILE, args.holdout_category, args.seed)
    shop = holdout_file_stem(info["holdout_categories"])
    write_split_files(splits, directory, shop, info)
    splits, info = lccc_base_splits([data / f for f in LCCC_BASE_FILES], args.seed)
    write_split_files(splits, directory, "lccc_base", info)
    return split_paths(directory, shop)


def split_paths(directory: Path, shop: str) -> dict:
    """The paths of the split files in `directory` by corpus and split; `shop` names the online-shopping files."""
    return {
        "hotel": {s: directory / f"chnsenticorp_{s}.csv" for s in ("train", "validation", "test")},
        "shop": {s: directory / f"{shop}_{s}.csv" for s in ("train", "validation", "test")},
        "dialogue": {s: directory / f"lccc_base_{s}.jsonl" for s in ("train", "validation", "test")},
    }


def written_split_paths(directory: Path) -> dict:
    """`split_paths` of the splits a run already wrote into `directory` (its online-shopping files found by name)."""
    shops = sorted(directory.glob("online_shopping_holdout_*_train.csv"))
    if len(shops) != 1:
        raise FileNotFoundError(
            f"{directory} should hold one online_shopping_holdout_<category>_train.csv (found {len(shops)}); give "
            f"the splits folder of a run_recipe.py run."
        )
    return split_paths(directory, shops[0].name.removesuffix("_train.csv"))


def chat_files(args: RecipeArguments, files: dict) -> list[str]:
    """The chat model's training corpora: the shared dialogue files and LCCC-base's training part."""
    return [str(Path(args.data_dir) / f) for f in DIALOGUE_FILES] + [str(files["dialogue"]["train"])]


def _recorded_setting(recorded: dict, name: str):
    """A chat setting as a finished run recorded it; one its report lacks (the flag came later) was the default."""
    if name in recorded:
        return recorded[name]
    scale = SCALES.get(recorded.get("scale", "cpu"), {})
    return scale[name] if name in scale else RecipeArguments.__dataclass_fields__[name].default


def check_chat_from(args: RecipeArguments, out: Path) -> dict | None:
    """--chat_from's run, checked before anything is written: finished, not this run, made with this run's
    CHAT_SETTINGS. Returns its report (None without --chat_from)."""
    if not args.chat_from:
        return None
    source = Path(args.chat_from)
    path = source / "recipe_report.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"--chat_from {source}: no recipe_report.json there; give the --output_dir of a finished run_recipe.py run."
        )
    if source.resolve() == out.resolve():
        raise ValueError(f"--chat_from {source} is this run's own --output_dir; give another finished run's.")
    report = json.loads(path.read_text(encoding="utf-8"))
    recorded = report.get("arguments", {})
    differing = [
        f"--{name} {getattr(args, name)!r} (that run: {_recorded_setting(recorded, name)!r})"
        for name in CHAT_SETTINGS
        if _recorded_setting(recorded, name) != getattr(args, name)
    ]
    if differing:
        raise ValueError(
            f"--chat_from {source}: its chat model was made with other settings: {'; '.join(differing)}. Give that "
            f"run's values, or drop --chat_from to train a chat model with these."
        )
    return report


def reuse_chat_model(args: RecipeArguments, out: Path, files: dict) -> None:
    """--chat_from: copy the run's vocabulary and chat model (with its chosen sampling settings, without its
    checkpoints) into `out`, once this run's split files (`files`) are found to be that run's, byte for byte."""
    source = Path(args.chat_from)
    theirs = written_split_paths(source / "splits")
    changed = [
        f"{corpus}/{part}"
        for corpus, parts in files.items()
        for part, path in parts.items()
        if not filecmp.cmp(path, theirs[corpus][part], shallow=False)
    ]
    if changed:
        raise ValueError(
            f"--chat_from {source}: the split files differ from that run's ({', '.join(changed)}): the data under "
            f"--data_dir is not the data its chat model was trained and chosen on. Give the same --data_dir."
        )
    for name in ("tokenizer", "chat"):
        shutil.rmtree(out / name, ignore_errors=True)  # nothing of an earlier run in this folder stays beside them
    shutil.copytree(source / "tokenizer", out / "tokenizer")
    shutil.copytree(source / "chat", out / "chat", ignore=shutil.ignore_patterns("checkpoint-*"))


def review_files(args: RecipeArguments, files: dict) -> list[str]:
    """The classifier's training files: the hotel reviews' training part, and the other shopping categories'."""
    return [str(files["hotel"]["train"])] + ([str(files["shop"]["train"])] if args.extra_labelled else [])


def chat_arguments(args: RecipeArguments, out: Path, files: dict) -> tuple:
    """The chat model's model, data and training arguments: the modern preset with Muon (train_lm.py's defaults) on
    every dialogue corpus, packed into full blocks; LCCC-base's validation part picks the best checkpoint."""
    model_args = LMModelArguments(
        tokenizer_name_or_path=str(out / "tokenizer"),
        n_positions=args.chat_context,
        n_embd=args.n_embd,
        n_layer=args.n_layer,
        n_head=args.n_head,
        dropout=args.chat_dropout,
    )
    data_args = DialogueDataArguments(
        train_files=chat_files(args, files),
        validation_files=[str(files["dialogue"]["validation"])],
        test_files=[str(files["dialogue"]["test"])],
        packing=True,
        block_size=args.chat_context,
        max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples,
    )
    return model_args, data_args, chat_training_arguments(args, out)


def train_chat_model(args: RecipeArguments, out: Path, files: dict, cleaning: CleaningConfig) -> dict:
    """The chat model (`chat_arguments`); with --peer, transformers' GPT-2 or Llama of the size CharGPT would have."""
    model_args, data_args, training_args = chat_arguments(args, out, files)
    return train_causal_lm(model_args, data_args, cleaning, training_args, new_model=peer_builder(args, model_args))


def peer_builder(args: RecipeArguments, model_args: LMModelArguments):
    """None for CharGPT; for --peer, the function that builds the peer from the tokenizer, at the size (hidden,
    layers, heads, context) of the CharGPT these arguments would build."""
    if args.peer is None:
        return None

    def build(tokenizer):
        config = build_causal_lm_config(model_args, tokenizer)
        size = {k: getattr(config, k) for k in ("n_embd", "n_layer", "n_head", "n_positions")}
        return peer_causal_lm(args.peer, len(tokenizer), size, **special_token_ids(tokenizer))

    return build


def _optimizer(args: RecipeArguments) -> dict:
    """The language models' optimizer: train_lm.py's defaults for CharGPT, AdamW at its tuned rate for a peer."""
    return {} if args.peer is None else {"optim": PEER_OPTIMIZER, "learning_rate": TUNED_LEARNING_RATES[args.peer]}


def chat_training_arguments(args: RecipeArguments, out: Path) -> LMTrainingArguments:
    """The chat model's Trainer settings: train_lm.py's defaults (Muon + AdamW at 2e-3, warmup-stable-decay),
    evaluated ten times, the best validation loss kept."""
    return LMTrainingArguments(
        output_dir=str(out / "chat"),
        num_train_epochs=args.chat_epochs,
        per_device_train_batch_size=args.chat_batch_size,
        eval_strategy="steps",
        eval_steps=0.1,
        save_strategy="best",
        load_best_model_at_end=True,
        **_optimizer(args),
        **_common_training(args),
    )


def sampling_search_arguments(args: RecipeArguments) -> dict:
    """What the sampling search is given: the validation posts each setting answers, the posts a generate() call
    answers, and the device."""
    return {"n_posts": args.generation_posts, "batch_size": args.inference_batch_size, "device": inference_device(args)}


def tune_sampling(args: RecipeArguments, model_dir: Path, files: dict, cleaning: CleaningConfig) -> dict:
    """Sampling defaults chosen on validation posts (chargpt.evaluation.generation_search), saved in the model's
    generation_config.json; the search's table goes to generation_search.json beside it."""
    from chargpt.data import load_dialogues

    search = sampling_search_arguments(args)
    model, tokenizer = load_model_and_tokenizer(model_dir, task="causal-lm", device=search["device"])
    dialogues, _ = load_dialogues([str(files["dialogue"]["validation"])], cleaning=cleaning)
    posts, references = posts_and_replies(dialogues["turns"], search["n_posts"])
    result = search_generation_config(
        model, tokenizer, posts, references, DEFAULT_GRID, batch_size=search["batch_size"], seed=args.seed
    )
    write_json_atomic(model_dir / "generation_search.json", result)
    save_sampling_settings(model, model_dir, result["chosen"])
    return {k: v for k, v in result.items() if k != "candidates"}


def review_lm_arguments(args: RecipeArguments, out: Path, files: dict) -> tuple:
    """The review language model's model, data and training arguments: the chat model continued on the training
    reviews' texts, 2% of them held out to pick the best epoch."""
    model_args = LMModelArguments(tokenizer_name_or_path=str(out / "tokenizer"), model_name_or_path=str(out / "chat"))
    data_args = DialogueDataArguments(
        train_files=[],
        text_files=review_files(args, files),
        validation_files=[],
        validation_split_size=0.02,
        test_split_size=0,
        packing=True,
        block_size=args.chat_context,
        max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples,
    )
    training_args = LMTrainingArguments(
        output_dir=str(out / "review-lm"),
        num_train_epochs=args.review_lm_epochs,
        per_device_train_batch_size=args.chat_batch_size,
        eval_strategy="epoch",
        save_strategy="best",
        load_best_model_at_end=True,
        **_optimizer(args),
        **_common_training(args),
    )
    return model_args, data_args, training_args


def train_review_lm(args: RecipeArguments, out: Path, files: dict, cleaning: CleaningConfig) -> dict:
    """Domain-adaptive pretraining: the chat model continued as a language model on the training reviews' texts."""
    model_args, data_args, training_args = review_lm_arguments(args, out, files)
    return train_causal_lm(model_args, data_args, cleaning, training_args)


def classifier_arguments(args: RecipeArguments, out: Path, body: Path, files: dict) -> tuple:
    """The classifier's model, data and training arguments: fine-tuned in full from `body` on the training reviews;
    the balanced hotel validation split picks the best checkpoint (evaluated five times an epoch)."""
    pooling = None if args.peer else args.classifier_pooling  # a peer pools as its own class does
    model_args = ClassifierModelArguments(model_name_or_path=str(body), freeze="none", pooling=pooling)
    data_args = LabelledDataArguments(
        train_files=review_files(args, files),
        validation_files=[str(files["hotel"]["validation"])],
        test_files=[],
        test_split_size=0,
        class_names=["negative", "positive"],
        max_length=args.classifier_max_length,
        max_train_samples=args.max_train_samples,
        max_eval_samples=args.max_eval_samples,
    )
    training_args = ClassifierTrainingArguments(
        output_dir=str(out / "sentiment"),
        num_train_epochs=args.classifier_epochs,
        learning_rate=args.classifier_learning_rate,
        per_device_train_batch_size=args.classifier_batch_size,
        eval_strategy="steps",
        eval_steps=min(1.0, 0.2 / args.classifier_epochs),
        save_strategy="best",
        load_best_model_at_end=True,
        train_sampling_strategy="group_by_length",
        aux_lm_weight=args.classifier_aux_lm_weight,
        layer_lr_decay=args.classifier_layer_lr_decay,
        gradual_unfreezing=args.classifier_gradual_unfreezing,
        ema_decay=args.classifier_ema_decay,
        **_common_training(args),
    )
    return model_args, data_args, training_args


def train_sentiment_classifier(
    args: RecipeArguments, out: Path, body: Path, files: dict, cleaning: CleaningConfig
) -> dict:
    """The classifier (`classifier_arguments`)."""
    model_args, data_args, training_args = classifier_arguments(args, out, body, files)
    return train_classifier(model_args, data_args, cleaning, training_args)


def evaluation_arguments(
    args: RecipeArguments, model_dir: Path, tfidf_train_files: list[str] | None = None
) -> EvaluationArguments:
    """run_evaluation.py's arguments for one model directory (the TF-IDF floor fit on `tfidf_train_files` if given)."""
    return EvaluationArguments(
        model_name_or_path=str(model_dir),
        data_dir=args.data_dir,
        holdout_category=args.holdout_category,
        seed=args.seed,
        tfidf_baseline=tfidf_train_files is not None,
        tfidf_train_files=list(tfidf_train_files or []),
        batch_size=args.inference_batch_size,
        max_eval_samples=args.max_eval_samples,
        device=inference_device(args),
    )


def evaluate(args: RecipeArguments, model_dir: Path, tfidf_train_files: list[str] | None = None) -> dict:
    """run_evaluation.py's held-out report, written into the model directory."""
    report = evaluate_model(evaluation_arguments(args, model_dir, tfidf_train_files))
    write_json_atomic(model_dir / "heldout_evaluation.json", report)
    return report


def publish_models(args: RecipeArguments, out: Path, vocab_size: int) -> dict:
    """Hub-style directories with model cards (three ten-turn sample chats for the chat model, the held-out figures
    for both)."""
    from chargpt.publish import PublishArguments, publish

    corpora = "LCCC (toy sample and LCCC-base training part), KdConv and CPED conversations"
    reviews = "ChnSentiCorp hotel reviews" + (" and eight online-shopping categories" if args.extra_labelled else "")
    models = {
        # LCCC is MIT-licensed, KdConv and CPED Apache-2.0; the review corpora are for research use.
        "chat": (f"Trained on {corpora} (training parts); a {vocab_size}-character vocabulary.", "apache-2.0"),
        "sentiment": (
            f"Fine-tuned from the chat model on {reviews} (training parts; the corpora are for research use).",
            "other",
        ),
    }
    published = {}
    for name, (data, licence) in models.items():
        target = out / "published" / f"chargpt-recipe-{name}"
        publish(
            str(out / name),
            PublishArguments(
                output_dir=str(target),
                model_name=f"chargpt-recipe-{name}",
                training_data=data,
                overwrite=True,
                description=f"The {name} model of CharGPT's full recipe (train_scripts/run_recipe.py).",
                license=licence,
                tags=["chargpt-recipe"],
                seed=args.seed,
            ),
        )
        published[name] = str(target)
    return published


def headline_figures(chat_report: dict, sentiment_report: dict) -> dict:
    """The headline figures of the held-out reports, each followed by its 95% interval (`<name>_ci95`) where the
    report has one; the model's accuracy minus the floor's comes with the paired interval."""
    figures = {}

    def put(name: str, scores: dict, key: str) -> None:
        figures[name] = scores[key]
        if f"{key}_ci95" in scores:
            figures[f"{name}_ci95"] = scores[f"{key}_ci95"]

    for task in ("sentiment", "cross_domain"):
        if task in sentiment_report:
            put(f"{task}_accuracy", sentiment_report[task]["model"], "accuracy")
            if "tfidf_logreg" in sentiment_report[task]:
                put(f"{task}_tfidf_accuracy", sentiment_report[task]["tfidf_logreg"], "accuracy")
            if "model_minus_tfidf_logreg" in sentiment_report[task]:
                put(f"{task}_accuracy_minus_tfidf", sentiment_report[task]["model_minus_tfidf_logreg"], "accuracy")
    if "perplexity" in chat_report:
        put("chat_heldout_perplexity", chat_report["perplexity"]["model"], "perplexity")
    if "replies" in chat_report:
        for key in ("distinct_1", "distinct_2", "repetition_share"):
            put(key, chat_report["replies"]["model"], key)
    return figures


def run_recipe(args: RecipeArguments) -> dict:
    """Every step in order; returns (and writes to OUTPUT_DIR/recipe_report.json) the timings, the figures and
    the reports."""
    check_device(args)
    out = Path(args.output_dir)
    if out.exists() and not out.is_dir():
        raise NotADirectoryError(f"--output_dir {out} is a file; give a directory.")
    source = check_chat_from(args, out)
    start = time.perf_counter()
    report = {
        "arguments": asdict(args),
        "model": args.peer or "chargpt",
        "environment": _environment(args),
        "timings_seconds": {},
    }
    cleaning = CleaningConfig()
    with _step(out, report, "splits"):
        files = write_splits(args, out / "splits")
    if args.chat_from:
        with _step(out, report, "chat_reused"):
            reuse_chat_model(args, out, files)
        reused = ("vocab_size", "chat_training", "sampling_search")
        report.update({k: source[k] for k in reused if k in source})
        steps = ("vocabulary", "chat_model", "sampling_search")
        report["chat_from"] = {
            "directory": str(args.chat_from),
            "timings_seconds": {k: v for k, v in source["timings_seconds"].items() if k in steps},
        }
    else:
        with _step(out, report, "vocabulary"):
            _, vocab = build_vocabulary(
                VocabArguments(
                    output_dir=str(out / "tokenizer"),
                    dialogue_files=chat_files(args, files),
                    labelled_files=review_files(args, files),
                    min_frequency=2,
                    overwrite_output_dir=True,
                ),
                cleaning,
            )
        report["vocab_size"] = vocab["vocab_size"]
        with _step(out, report, "chat_model"):
            report["chat_training"] = train_chat_model(args, out, files, cleaning)
        if args.generation_posts:
            with _step(out, report, "sampling_search"):
                report["sampling_search"] = tune_sampling(args, out / "chat", files, cleaning)
    body = out / "chat"
    if args.review_lm_epochs > 0:
        with _step(out, report, "review_lm"):
            report["review_lm_training"] = train_review_lm(args, out, files, CleaningConfig(min_turns=1))
        body = out / "review-lm"
    with _step(out, report, "classifier"):
        report["classifier_training"] = train_sentiment_classifier(args, out, body, files, CleaningConfig(min_turns=1))
    with _step(out, report, "evaluation"):
        chat_report = evaluate(args, out / "chat")
        sentiment_report = evaluate(args, out / "sentiment", tfidf_train_files=review_files(args, files))
        report["figures"] = headline_figures(chat_report, sentiment_report)
        report["intervals"] = sentiment_report.get("intervals", chat_report.get("intervals"))
        report["evaluation"] = {"chat": chat_report, "sentiment": sentiment_report}
    if args.publish and args.peer is None:
        with _step(out, report, "publish"):
            report["published"] = publish_models(args, out, report["vocab_size"])
    report["timings_seconds"]["total"] = round(time.perf_counter() - start, 1)
    report["directories"] = {
        "splits": str(out / "splits"),
        "tokenizer": str(out / "tokenizer"),
        "chat": str(out / "chat"),
        "sentiment": str(out / "sentiment"),
    }
    write_json_atomic(out / "recipe_report.json", _jsonable(report))
    (out / PROGRESS_FILE).unlink(missing_ok=True)
    return report


__all__ = [
    "CHAT_SETTINGS",
    "DIALOGUE_FILES",
    "SCALES",
    "RecipeArguments",
    "chat_arguments",
    "chat_files",
    "chat_training_arguments",
    "check_chat_from",
    "check_device",
    "classifier_arguments",
    "evaluation_arguments",
    "headline_figures",
    "inference_device",
    "review_files",
    "review_lm_arguments",
    "reuse_chat_model",
    "run_recipe",
    "sampling_search_arguments",
    "split_paths",
    "train_sentiment_classifier",
    "written_split_paths",
]
