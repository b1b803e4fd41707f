"""Choosing a chat model's sampling defaults on held-out posts (`search_generation_config`).

Every combination of a small grid of sampling settings (temperature, top-p, repetition penalty, no-repeat n-gram
size) samples one reply to each validation post; each combination is scored on those replies with the reply metrics
of `replies` (Distinct-2, the share of looping replies) and with the character F1 of each reply against the human
reply to the same post (how much of the reference's wording it shares, a rough measure of answering the post rather
than saying anything). The rule (`choose`): among the settings whose replies meet both limits (repetitive share at
most `max_repetition`, Distinct-2 at least `min_distinct_2`), the one with the highest mean F1; if none meets both,
the one with the fewest repetitive replies (then the highest F1). The posts must not be the ones the model is
finally tested on: `posts_and_replies` draws them from validation dialogues. Use as many posts as the test has:
Distinct-n counts distinct n-grams over all replies, so it falls as replies are added (in the recipe's first run the
chosen setting had Distinct-2 0.357 on 300 validation posts and 0.282 on the 500 test posts).
"""

import itertools
import os
from collections import Counter

from ..files import atomic_write_text
from ..tasks import sample_replies
from .replies import reply_metrics


DEFAULT_GRID = {
    "temperature": [0.7, 0.9, 1.0],
    "top_p": [0.8, 0.95],
    "repetition_penalty": [1.0, 1.2],
    "no_repeat_ngram_size": [0, 3],
}


def char_f1(reply: str, reference: str) -> float:
    """F1 of the characters (as a multiset) of `reply` against `reference`; 0.0 if either is empty."""
    common = sum((Counter(reply) & Counter(reference)).values())
    if not common:
        return 0.0
    precision, recall = common / len(reply), common / len(reference)
    return 2 * precision * recall / (precision + recall)


def posts_and_replies(dialogues: list[list[str]], n_posts: int) -> tuple[list[str], list[str]]:
    """The first turn and the human reply (second turn) of the first `n_posts` dialogues with distinct first turns
    and at least two turns, in the order given."""
    if n_posts < 1:
        raise ValueError(f"n_posts must be at least 1, got {n_posts}.")
    posts, replies, seen = [], [], set()
    for turns in dialogues:
        if len(turns) >= 2 and turns[0] not in seen:
            seen.add(turns[0])
            posts.append(turns[0])
            replies.append(turns[1])
            if len(posts) == n_posts:
                break
    if not posts:
        raise ValueError("No dialogue of two turns or more to draw posts from.")
    return posts, replies


def grid_settings(grid: dict[str, list]) -> list[dict]:
    """Every combination of the grid's values, in a fixed order."""
    if not grid or any(not values for values in grid.values()):
        raise ValueError(f"The grid needs at least one value for each setting, got {grid}.")
    names = list(grid)
    return [dict(zip(names, values)) for values in itertools.product(*(grid[name] for name in names))]


def choose(candidates: list[dict], max_repetition: float, min_distinct_2: float) -> dict:
    """The chosen candidate (see the module's rule); each candidate has `repetition_share`, `distinct_2`, `f1`."""
    if not candidates:
        raise ValueError("No candidate settings to choose from.")
    meeting = [c for c in candidates if c["repetition_share"] <= max_repetition and c["distinct_2"] >= min_distinct_2]
    if meeting:
        return max(meeting, key=lambda c: c["f1"])
    return min(candidates, key=lambda c: (c["repetition_share"], -c["f1"]))


def search_generation_config(
    model,
    tokenizer,
    posts: list[str],
    references: list[str],
    grid: dict[str, list] | None = None,
    max_repetition: float = 0.05,
    min_distinct_2: float = 0.30,
    seed: int = 0,
    batch_size: int = 32,
    max_new_tokens: int | None = None,
) -> dict:
    """Sample replies to `posts` with each setting of `grid` (default `DEFAULT_GRID`) and choose one; returns
    `{"chosen": settings, "met_limits": bool, "candidates": [settings + metrics, ...], "rule": ..., "posts": n}`.
    Each setting samples with the same seed, so the candidates differ only by their settings."""
    if len(posts) != len(references):
        raise ValueError(f"{len(posts)} posts but {len(references)} reference replies; give one reply per post.")
    candidates = []
    for settings in grid_settings(DEFAULT_GRID if grid is None else grid):
        kwargs = {"do_sample": True, "top_k": 0, **settings}
        if max_new_tokens:
            kwargs["max_new_tokens"] = max_new_tokens
        replies = sample_replies(model, tokenizer, posts, batch_size, seed, **kwargs)
        metrics = reply_metrics(replies)
        f1 = sum(char_f1(r, ref) for r, ref in zip(replies, references)) / len(posts)
        candidates.append({"settings": settings, **metrics, "f1": f1, "example": replies[0]})
    chosen = choose(candidates, max_repetition, min_distinct_2)
    met = chosen["repetition_share"] <= max_repetition and chosen["distinct_2"] >= min_distinct_2
    return {
        "chosen": chosen["settings"],
        "chosen_metrics": {k: v for k, v in chosen.items() if k != "settings"},
        "met_limits": met,
        "rule": (
            f"highest mean character F1 against the human replies among settings with repetitive share <= "
            f"{max_repetition} and Distinct-2 >= {min_distinct_2}; if none, the fewest repetitive replies"
        ),
        "posts": len(posts),
        "seed": seed,
        "candidates": candidates,
    }


def save_sampling_settings(model, directory, settings: dict) -> None:
    """Sample with `settings` from now on: they update the model's generation config (sampling on, top-k off, as the
    search sampled) and replace DIRECTORY/generation_config.json, written atomically."""
    config = model.generation_config
    config.update(do_sample=True, top_k=0, **settings)
    config.validate()
    atomic_write_text(os.path.join(directory, "generation_config.json"), config.to_json_string(use_diff=True))


__all__ = [
    "DEFAULT_GRID",
    "save_sampling_settings",
    "char_f1",
    "posts_and_replies",
    "grid_settings",
    "choose",
    "search_generation_config",
]
