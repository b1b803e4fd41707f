#!/usr/bin/env python
"""Choose a chat model's sampling defaults on validation posts and save them in its generation_config.json.

    python train_scripts/tune_generation.py --model_name_or_path runs/chat \\
        --dialogue_files runs/splits/lccc_base_validation.jsonl

Each combination of the grid (temperature, top-p, repetition penalty, no-repeat n-gram size; override any with its
flag) samples a reply to each of `--n_posts` posts (first turns of the dialogue files, which must not be the test
posts), and the setting with the best character F1 against the human replies among those whose replies loop at
most `--max_repetition` of the time with Distinct-2 at least `--min_distinct_2` wins (see
chargpt.evaluation.generation_search). The table of every setting goes to MODEL_DIR/generation_search.json; the
winner replaces the sampling fields of MODEL_DIR/generation_config.json (written atomically; `--no_save` only
reports). All flags: `--help`.
"""

import os
from dataclasses import asdict, dataclass, field

from chargpt.data import CleaningConfig, load_dialogues
from chargpt.evaluation.generation_search import (
    DEFAULT_GRID,
    posts_and_replies,
    save_sampling_settings,
    search_generation_config,
)
from chargpt.files import write_json_atomic
from chargpt.loading import load_model_and_tokenizer
from chargpt.training import parse_arguments, run_script


@dataclass
class TuneArguments:
    model_name_or_path: str = field(
        metadata={"help": "A CharGPT causal-LM directory (its generation config is updated)."}
    )
    dialogue_files: list[str] = field(
        metadata={"help": "Validation dialogues whose first turns are the posts (not the posts you test on)."}
    )
    n_posts: int = field(
        default=500,
        metadata={
            "help": "Posts (distinct first turns) each setting answers: as many as the replies you will measure "
            "(Distinct-n falls as replies are added, so limits met on fewer posts may be missed on more)."
        },
    )
    temperature: list[float] = field(
        default_factory=lambda: list(DEFAULT_GRID["temperature"]), metadata={"help": "Temperatures tried (> 0)."}
    )
    top_p: list[float] = field(
        default_factory=lambda: list(DEFAULT_GRID["top_p"]), metadata={"help": "Nucleus (top-p) values tried."}
    )
    repetition_penalty: list[float] = field(
        default_factory=lambda: list(DEFAULT_GRID["repetition_penalty"]),
        metadata={"help": "Repetition penalties tried (1.0: none; > 1 discourages repeating a character)."},
    )
    no_repeat_ngram_size: list[int] = field(
        default_factory=lambda: list(DEFAULT_GRID["no_repeat_ngram_size"]),
        metadata={"help": "No-repeat n-gram sizes tried (0: off; 3: no character 3-gram twice in the text)."},
    )
    max_repetition: float = field(default=0.05, metadata={"help": "Most repetitive replies a setting may give."})
    min_distinct_2: float = field(default=0.30, metadata={"help": "Least Distinct-2 a setting's replies must reach."})
    max_new_tokens: int | None = field(default=None, metadata={"help": "Reply length cap (default: the model's)."})
    seed: int = field(default=0, metadata={"help": "Seed of the sampled replies (the same for every setting)."})
    cache_dir: str | None = field(
        default=None, metadata={"help": "Where the read dialogues are cached (default: the datasets cache)."}
    )
    batch_size: int = field(default=32, metadata={"help": "Posts answered together."})
    output_file: str | None = field(
        default=None, metadata={"help": "The search's report (default: MODEL_DIR/generation_search.json)."}
    )
    save: bool = field(default=True, metadata={"help": "Write the winner into MODEL_DIR/generation_config.json."})

    def __post_init__(self):
        if self.n_posts < 1:
            raise ValueError(f"--n_posts must be at least 1, got {self.n_posts}.")
        if any(not 0 < p <= 1 for p in self.top_p) or any(t <= 0 for t in self.temperature):
            raise ValueError("--top_p values must lie in (0, 1] and --temperature values be > 0.")
        if any(p <= 0 for p in self.repetition_penalty) or any(n < 0 for n in self.no_repeat_ngram_size):
            raise ValueError("--repetition_penalty values must be > 0 and --no_repeat_ngram_size values >= 0.")


def main(argv: list[str] | None = None) -> dict:
    (args,) = parse_arguments((TuneArguments,), argv)
    model, tokenizer = load_model_and_tokenizer(args.model_name_or_path, task="causal-lm")
    dialogues, _ = load_dialogues(args.dialogue_files, cleaning=CleaningConfig(), cache_dir=args.cache_dir)
    posts, references = posts_and_replies(dialogues["turns"], args.n_posts)
    grid = {name: getattr(args, name) for name in DEFAULT_GRID}
    result = search_generation_config(
        model,
        tokenizer,
        posts,
        references,
        grid,
        args.max_repetition,
        args.min_distinct_2,
        args.seed,
        args.batch_size,
        args.max_new_tokens,
    )
    result["arguments"] = asdict(args)
    directory = args.model_name_or_path.rstrip("/")
    write_json_atomic(args.output_file or os.path.join(directory, "generation_search.json"), result)
    for c in result["candidates"]:
        print(
            f"{c['settings']}: repetitive {c['repetition_share']:.1%}, distinct-2 {c['distinct_2']:.3f}, "
            f"F1 {c['f1']:.4f}, length {c['mean_length']:.1f}"
        )
    print(f"chosen ({'meets' if result['met_limits'] else 'MISSES'} the limits): {result['chosen']}")
    if args.save:
        save_sampling_settings(model, directory, result["chosen"])
        print(f"saved in {directory}/generation_config.json")
    return result


if __name__ == "__main__":
    run_script(main)
