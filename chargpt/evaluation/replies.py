"""Reply metrics of a chat model, on characters (each Chinese character is a word here): Distinct-n, the share of
replies stuck in a loop, and the summary of a set of replies that evaluation reports, with bootstrap intervals over
the replies if asked."""

from collections import Counter

import numpy as np

from .intervals import Statistic, mean_statistic, with_intervals


def ngrams(text: str, n: int) -> list[str]:
    """The character n-grams of `text`, overlapping, in order."""
    return [text[i : i + n] for i in range(len(text) - n + 1)]


def distinct_n(replies: list[str], n: int) -> float:
    """Corpus-level Distinct-n (Li et al. 2016, as CDial-GPT reports it): distinct character n-grams over all
    replies divided by the total number of character n-grams. 0.0 when there are no n-grams at all."""
    grams = [g for reply in replies for g in ngrams(reply, n)]
    return len(set(grams)) / len(grams) if grams else 0.0


def repeats_ngram(text: str, min_count: int = 3, ns=(2, 3, 4)) -> bool:
    """Whether some character n-gram (n in `ns`) occurs `min_count` or more times in `text` (overlapping
    occurrences counted), the signature of degenerate looping output such as 好的好的好的. Single characters do
    not count: 哈哈哈 is laughter, not a loop."""
    return any(count >= min_count for n in ns for count in Counter(ngrams(text, n)).values())


def repetition_share(replies: list[str], min_count: int = 3, ns=(2, 3, 4)) -> float:
    """The share of `replies` for which `repeats_ngram` holds."""
    if not replies:
        raise ValueError("repetition_share needs at least one reply.")
    return sum(repeats_ngram(r, min_count, ns) for r in replies) / len(replies)


def leave_one_out_distinct(replies: list[str], n: int) -> np.ndarray:
    """`distinct_n` of the replies without each one in turn: `out[i]` is Distinct-n of all replies but the i-th."""
    counts = [Counter(ngrams(reply, n)) for reply in replies]
    corpus = Counter()
    for count in counts:
        corpus.update(count)
    distinct, total = len(corpus), corpus.total()
    out = np.zeros(len(replies))
    for i, count in enumerate(counts):
        only_here = sum(1 for gram, k in count.items() if corpus[gram] == k)  # n-grams no other reply has
        rest = total - count.total()
        out[i] = (distinct - only_here) / rest if rest else 0.0
    return out


def distinct_statistic(replies: list[str], n: int) -> Statistic:
    """Distinct-n for the bootstrap (see `chargpt.evaluation.intervals`), through its jackknife linearization.

    Distinct-n is not a mean over replies: recomputed on a resample drawn with replacement, it counts a reply drawn
    twice as a repeat of itself, which pulls every resample far below the figure, so that the percentile interval
    misses the figure it belongs to. Each reply gets instead its jackknife pseudo-value n D - (n - 1) D_i (D: Distinct-n
    of all n replies, D_i: without reply i), and a resample's figure is D plus the mean of its drawn pseudo-values
    minus their overall mean: D itself on the test, and the jackknife's estimate of Distinct-n's sampling spread
    across resamples. A share of n-grams, it is kept in [0, 1]: near those ends the linearization alone can step past
    them (a few replies with no repeated n-gram gave an interval up to 1.0004)."""
    figure = distinct_n(replies, n)
    pseudo = len(replies) * figure - (len(replies) - 1) * leave_one_out_distinct(replies, n)
    deviations = pseudo - pseudo.mean()
    return lambda indices: np.clip(figure + deviations[indices].mean(axis=1), 0.0, 1.0)


def reply_metrics(replies: list[str], intervals: bool = False) -> dict:
    """Distinct-1/2, the repetitive share, the mean length in characters and the share of empty replies; with
    `intervals`, each of these followed by its 95% bootstrap interval over the replies (`<name>_ci95`)."""
    if not replies:
        raise ValueError("reply_metrics needs at least one reply.")
    repetitive = [repeats_ngram(r) for r in replies]
    lengths, empty = [len(r) for r in replies], [not r for r in replies]
    metrics = {
        "distinct_1": distinct_n(replies, 1),
        "distinct_2": distinct_n(replies, 2),
        "repetition_share": sum(repetitive) / len(replies),  # = repetition_share(replies)
        "mean_length": sum(lengths) / len(replies),
        "empty_share": sum(empty) / len(replies),
        "n": len(replies),
    }
    if not intervals:
        return metrics
    statistics = {
        "distinct_1": distinct_statistic(replies, 1),
        "distinct_2": distinct_statistic(replies, 2),
        "repetition_share": mean_statistic(repetitive),
        "mean_length": mean_statistic(lengths),
        "empty_share": mean_statistic(empty),
    }
    return with_intervals(metrics, statistics, len(replies))


__all__ = [
    "ngrams",
    "distinct_n",
    "repeats_ngram",
    "repetition_share",
    "leave_one_out_distinct",
    "distinct_statistic",
    "reply_metrics",
]
