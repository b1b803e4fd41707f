"""chargpt.evaluation.intervals and the metrics' bootstrap statistics: determinism, the width of a percentile interval
against the normal approximation, paired differences, and each statistic against its metric recomputed by hand."""

import json
import math
import random

import numpy as np
import pytest
import torch
from datasets import Dataset

from benchmarks import report
from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTTokenizer
from chargpt.data import encode_texts, render_chats
from chargpt.evaluation import (
    accuracy_statistic,
    bootstrap_interval,
    bootstrap_settings,
    classification_difference,
    classification_scores,
    corpus_perplexity,
    dialogue_losses,
    distinct_n,
    distinct_statistic,
    macro_f1,
    macro_f1_statistic,
    mean_statistic,
    paired_difference_interval,
    percentile_interval,
    perplexity_statistic,
    reply_metrics,
    resample_indices,
)
from chargpt.evaluation.intervals import RESAMPLES, point_estimate
from chargpt.evaluation.replies import leave_one_out_distinct
from recipes.dialogue_splits import LCCC_BASE_FILES, lccc_base_splits


def correct_vector(n: int, share: float) -> np.ndarray:
    """`n` rows of which round(share * n) are right (1), spread over the vector."""
    rows = np.zeros(n)
    rows[np.random.default_rng(1).permutation(n)[: round(share * n)]] = 1
    return rows


def classifier_outputs(n: int, share: float, seed: int) -> tuple[list[int], list[int]]:
    """Balanced 0/1 labels and predictions right on `share` of the rows."""
    labels = [i % 2 for i in range(n)]
    right = np.random.default_rng(seed).permutation(correct_vector(n, share))
    return labels, [label if ok else 1 - label for label, ok in zip(labels, right)]


CHARACTERS = "的一是不了人我在有他这中大来上个到说们为子和你地出道也时年得就那要下以生会自着去过家学对可里后小么心多天"


def zipf_replies(n: int, seed: int) -> list[str]:
    """Reply-like strings: 0-20 characters drawn with Zipf-like frequencies, a few of them loops."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) for rank in range(len(CHARACTERS))]
    replies = []
    for i in range(n):
        reply = "".join(rng.choices(CHARACTERS, weights, k=rng.randint(0, 20)))
        replies.append(reply[:2] * 4 if i % 25 == 0 else reply)
    return replies


# ----------------------------------------------------------------------------------------------------------------------
# The bootstrap


def test_bootstrap_is_deterministic_for_a_seed_and_draws_other_indices_for_another():
    statistic = mean_statistic(correct_vector(200, 0.8))
    assert bootstrap_interval(statistic, 200) == bootstrap_interval(statistic, 200)
    assert np.array_equal(resample_indices(200, seed=3), resample_indices(200, seed=3))
    assert not np.array_equal(resample_indices(200, seed=3), resample_indices(200, seed=4))
    assert resample_indices(200).shape == (RESAMPLES, 200)
    assert bootstrap_settings() == {"method": "percentile bootstrap", "confidence": 0.95, "resamples": 1000, "seed": 0}


def test_percentile_interval_takes_the_two_tails_and_refuses_nonsense():
    assert percentile_interval(np.arange(1001), 0.9) == pytest.approx([50.0, 950.0])
    with pytest.raises(ValueError, match="between 0 and 1"):
        percentile_interval([1.0, 2.0], 95)
    with pytest.raises(ValueError, match="n >= 1"):
        resample_indices(0)


@pytest.mark.parametrize("share", [0.5, 0.8, 0.97])
def test_an_accuracy_interval_contains_its_point_estimate(share):
    labels, predictions = classifier_outputs(500, share, seed=2)
    scores = classification_scores(labels, predictions, intervals=True)
    for name in ("accuracy", "macro_f1"):
        low, high = scores[f"{name}_ci95"]
        assert low < scores[name] < high, name


def test_the_interval_narrows_as_the_test_grows():
    widths = {}
    for n in (100, 10_000):
        low, high = bootstrap_interval(mean_statistic(correct_vector(n, 0.8)), n)
        widths[n] = high - low
    # The standard error falls as 1 / sqrt(n): 100 times the rows, a tenth of the width.
    assert widths[10_000] == pytest.approx(widths[100] / 10, rel=0.2)


def test_a_500_row_accuracy_near_086_is_known_to_about_three_points_as_the_normal_approximation_says():
    labels, predictions = classifier_outputs(500, 0.86, seed=5)
    scores = classification_scores(labels, predictions, intervals=True)
    assert scores["accuracy"] == 0.86
    half_width = 1.96 * math.sqrt(0.86 * 0.14 / 500)  # 0.0304
    low, high = scores["accuracy_ci95"]
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.1)
    assert (low + high) / 2 == pytest.approx(0.86, abs=0.004)


def test_scores_with_intervals_keep_the_figures_and_store_each_interval_beside_its_figure():
    labels, predictions = classifier_outputs(300, 0.7, seed=3)
    plain = classification_scores(labels, predictions)
    scores = classification_scores(labels, predictions, intervals=True)
    assert list(scores) == ["accuracy", "accuracy_ci95", "macro_f1", "macro_f1_ci95", "n"]
    assert {k: v for k, v in scores.items() if not k.endswith("_ci95")} == plain
    assert json.loads(json.dumps(scores)) == scores  # plain floats in lists: JSON as it is


# ----------------------------------------------------------------------------------------------------------------------
# Paired differences


def test_the_paired_difference_excludes_zero_for_a_clearly_better_system_where_the_two_intervals_overlap():
    labels = [i % 2 for i in range(500)]
    right = correct_vector(500, 0.88)
    worse = right.copy()
    worse[np.flatnonzero(right)[:15]] = 0  # the same errors and 15 more: 0.85
    better = [y if ok else 1 - y for y, ok in zip(labels, right)]
    weaker = [y if ok else 1 - y for y, ok in zip(labels, worse)]
    a = classification_scores(labels, better, intervals=True)["accuracy_ci95"]
    b = classification_scores(labels, weaker, intervals=True)["accuracy_ci95"]
    assert a[0] < b[1]  # the separate intervals overlap ...
    difference = classification_difference(labels, better, weaker)
    assert difference["accuracy"] == pytest.approx(0.03)
    assert 0 < difference["accuracy_ci95"][0] < 0.03 < difference["accuracy_ci95"][1]  # ... the paired one excludes 0
    assert difference["macro_f1_ci95"][0] > 0 and difference["n"] == 500


def test_the_paired_difference_includes_zero_for_identical_and_for_equally_good_systems():
    labels, predictions = classifier_outputs(500, 0.86, seed=7)
    same = classification_difference(labels, predictions, predictions)
    assert same["accuracy"] == 0 and same["accuracy_ci95"] == [0.0, 0.0]
    _, other = classifier_outputs(500, 0.86, seed=8)  # as accurate, wrong on other rows
    difference = classification_difference(labels, predictions, other)
    low, high = difference["accuracy_ci95"]
    assert difference["accuracy"] == 0 and low < -0.02 and high > 0.02


def test_the_paired_interval_resamples_both_systems_with_the_same_rows():
    labels, a = classifier_outputs(200, 0.8, seed=1)
    _, b = classifier_outputs(200, 0.8, seed=2)
    indices = resample_indices(200)
    by_hand = accuracy_statistic(labels, a)(indices) - accuracy_statistic(labels, b)(indices)
    paired = paired_difference_interval(accuracy_statistic(labels, a), accuracy_statistic(labels, b), 200)
    assert paired == percentile_interval(by_hand)


# ----------------------------------------------------------------------------------------------------------------------
# Each statistic against its metric


def test_macro_f1_on_a_resample_is_macro_f1_of_the_resampled_rows():
    labels, predictions = [0, 0, 1, 1, 2, 2, 2], [0, 1, 1, 1, 2, 0, 2]  # three classes: some resamples lack one
    statistic = macro_f1_statistic(labels, predictions)
    indices = resample_indices(len(labels), resamples=50, seed=11)
    for row, value in zip(indices, statistic(indices)):
        expected = macro_f1([labels[i] for i in row], [predictions[i] for i in row])
        assert value == pytest.approx(expected, abs=1e-12)
    assert point_estimate(statistic, len(labels)) == pytest.approx(macro_f1(labels, predictions), abs=1e-12)


def test_distinct_n_leave_one_out_values_are_distinct_n_of_the_other_replies():
    replies = ["好的好的", "好吗", "", "你好", "a", "好的"]
    for n in (1, 2):
        expected = [distinct_n(replies[:i] + replies[i + 1 :], n) for i in range(len(replies))]
        assert leave_one_out_distinct(replies, n).tolist() == pytest.approx(expected, abs=1e-12)
    assert leave_one_out_distinct(["ab", ""], 2).tolist() == [0.0, 1.0]  # no n-gram left: 0, as distinct_n says


def test_distinct_n_recomputed_on_resamples_falls_below_its_figure_so_it_is_resampled_linearized():
    # A reply drawn twice repeats itself: recomputed on resamples, Distinct-2 of replies that share few bigrams sits
    # below the figure in nearly every resample, and a percentile interval of those values would miss the figure.
    replies = zipf_replies(300, seed=1)
    figure = distinct_n(replies, 2)
    indices = resample_indices(300, resamples=100)
    recomputed = [distinct_n([replies[i] for i in row], 2) for row in indices]
    assert max(recomputed) < figure
    statistic = distinct_statistic(replies, 2)
    low, high = percentile_interval(statistic(resample_indices(300)))
    assert low < figure < high
    assert point_estimate(statistic, 300) == pytest.approx(figure, abs=1e-12)


def test_distinct_n_interval_stays_within_zero_and_one_near_the_ends():
    # Forty short replies, all their bigrams distinct but one reply's: Distinct-2 just under 1, where the jackknife
    # linearization alone gave resamples (and an interval) above 1.
    replies = [f"{chr(0x4E00 + 2 * i)}{chr(0x4E01 + 2 * i)}" for i in range(39)] + [chr(0x4E00) + chr(0x4E01)]
    figure = distinct_n(replies, 2)
    values = distinct_statistic(replies, 2)(resample_indices(len(replies)))
    assert 0.97 < figure < 1.0 and values.max() <= 1.0 and values.min() >= 0.0
    low, high = percentile_interval(values)
    assert low <= figure <= high <= 1.0


def test_distinct_n_intervals_are_as_wide_as_the_spread_between_independent_sets_of_real_replies(shared_data):
    # 40 disjoint sets of 500 LCCC-base replies (the first reply of training dialogues): the standard deviation of
    # Distinct-n between the sets against the bootstrap's, averaged over the sets. Recomputing Distinct-2 on
    # resamples instead would come out about twice as wide as well as off-centre.
    splits, _ = lccc_base_splits([shared_data / name for name in LCCC_BASE_FILES])
    pool = [turns[1] for turns in splits["train"]["turns"] if len(turns) > 1]
    order = np.random.default_rng(0).permutation(len(pool))[: 40 * 500]
    sets = [[pool[i] for i in order[k * 500 : (k + 1) * 500]] for k in range(40)]
    indices = resample_indices(500)
    for n in (1, 2):
        spread = np.std([distinct_n(replies, n) for replies in sets])
        bootstrap = np.mean([distinct_statistic(replies, n)(indices).std() for replies in sets])
        assert bootstrap == pytest.approx(spread, rel=0.3), n


def test_reply_metrics_with_intervals_keep_the_figures_and_bracket_them():
    replies = zipf_replies(500, seed=3)
    plain = reply_metrics(replies)
    metrics = reply_metrics(replies, intervals=True)
    assert {k: v for k, v in metrics.items() if not k.endswith("_ci95")} == plain
    assert 0.04 <= plain["repetition_share"] < 0.2 and plain["empty_share"] > 0 and plain["n"] == 500  # not degenerate
    for name in ("distinct_1", "distinct_2", "repetition_share", "mean_length", "empty_share"):
        low, high = metrics[f"{name}_ci95"]
        assert low < plain[name] < high, name


# ----------------------------------------------------------------------------------------------------------------------
# Perplexity


@pytest.fixture(scope="module")
def tiny_lm():
    """An untrained tiny CharGPT (hidden 32, 2 layers) and 9 dialogues of different lengths."""
    dialogues = [["你好", "你好呀" * (1 + i % 4)] + (["今天天气很好"] if i % 3 == 0 else []) for i in range(9)]
    tokenizer = CharGPTTokenizer.from_texts([turn for turns in dialogues for turn in turns], model_max_length=64)
    torch.manual_seed(0)
    config = CharGPTConfig(vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=2)
    return CharGPTForCausalLM(config).eval(), tokenizer, Dataset.from_dict({"turns": dialogues})


def test_perplexity_is_unchanged_and_each_dialogues_loss_is_kept(tiny_lm):
    model, tokenizer, dialogues = tiny_lm
    # By hand: one dialogue at a time, no padding, the model's own mean loss times the tokens it predicts.
    losses, tokens = [], []
    for ids in encode_texts(tokenizer, render_chats(tokenizer, dialogues["turns"])):
        ids = torch.tensor([ids])
        with torch.no_grad():
            losses.append(model(input_ids=ids, labels=ids).loss.double().item() * (ids.shape[1] - 1))
        tokens.append(ids.shape[1] - 1)
    scored = dialogue_losses(model, tokenizer, dialogues, batch_size=4)  # padded batches, sorted by length
    assert scored["tokens"].tolist() == tokens  # in the dataset's order
    assert scored["losses"].tolist() == pytest.approx(losses, rel=1e-5)
    scores = corpus_perplexity(model, tokenizer, dialogues, batch_size=4, intervals=True)
    assert scores["perplexity"] == pytest.approx(math.exp(sum(losses) / sum(tokens)), rel=1e-6)
    assert scores["tokens"] == sum(tokens) and scores["dialogues"] == 9
    assert scores["loss_ci95"][0] < scores["loss"] < scores["loss_ci95"][1]
    assert scores["perplexity_ci95"] == pytest.approx([math.exp(bound) for bound in scores["loss_ci95"]], rel=1e-9)
    plain = corpus_perplexity(model, tokenizer, dialogues, batch_size=4)
    assert {k: v for k, v in scores.items() if not k.endswith("_ci95")} == plain


def test_perplexity_on_a_resample_pools_the_tokens_of_the_drawn_dialogues():
    losses, tokens = np.array([10.0, 3.0, 7.5]), np.array([5, 1, 3])
    row = np.array([[2, 2, 0]])
    assert perplexity_statistic(losses, tokens)(row)[0] == pytest.approx(math.exp((7.5 + 7.5 + 10) / (3 + 3 + 5)))


# ----------------------------------------------------------------------------------------------------------------------
# Where the intervals are shown: the benchmark report's section 9


def _recipe_results(with_intervals: bool) -> dict:
    """A benchmark `recipe` section as benchmarks.recipe.run_recipe_section returns it, from held-out figures."""
    labels, model, floor = [0, 1] * 250, [0, 1] * 215 + [1, 0] * 35, [0, 1] * 211 + [1, 0] * 39
    replies, human = zipf_replies(500, seed=4), zipf_replies(500, seed=5)
    sentiment = {
        "model": classification_scores(labels, model, intervals=with_intervals),
        "tfidf_logreg": classification_scores(labels, floor, intervals=with_intervals),
    }
    if with_intervals:
        sentiment["model_minus_tfidf_logreg"] = classification_difference(labels, model, floor)
    chat = {
        "train_seconds": 100.0,
        "perplexity": 45.0,
        "replies": reply_metrics(replies, intervals=with_intervals),
        "references": reply_metrics(human, intervals=with_intervals),
        "samples": [],
    }
    results = {
        "recipe_dir": "runs/recipe",
        "arguments": {
            "chat_epochs": 1,
            "classifier_epochs": 1,
            "extra_labelled": True,
            "holdout_category": "books",
            "seed": 42,
        },
        "timings_seconds": {"chat_model": 100.0, "total": 120.0},
        "figures": {"sentiment_accuracy": 0.86},
        "sentiment": {"sentiment": sentiment},
        "chat": chat,
    }
    if with_intervals:
        chat["perplexity_ci95"] = [43.1, 47.0]
        results["intervals"] = bootstrap_settings()
    return results


def test_the_benchmark_report_shows_intervals_where_the_results_have_them():
    results = _recipe_results(with_intervals=True)
    text = report.render({"recipe": results})
    model = results["sentiment"]["sentiment"]["model"]
    difference = results["sentiment"]["sentiment"]["model_minus_tfidf_logreg"]
    low, high = model["accuracy_ci95"]
    assert f"| ChnSentiCorp balanced test (250 + 250) | 0.8600 [{low:.4f}, {high:.4f}] | " in text
    assert "| CharGPT - floor (paired) | rows |" in text
    assert f" | {difference['accuracy']:.4f} [{difference['accuracy_ci95'][0]:.4f}, " in text
    low, high = results["chat"]["replies"]["distinct_2_ci95"]
    assert " | 45.00 [43.10, 47.00] | " in text and f"[{low:.3f}, {high:.3f}]" in text
    assert "Brackets: 95% percentile bootstrap intervals (1000 resamples, seed 0)" in text
    old = report.render({"recipe": _recipe_results(with_intervals=False)})
    assert "[" not in old.split("## 9.")[1].split("Sample replies")[0] and "Brackets" not in old
    assert "| ChnSentiCorp balanced test (250 + 250) | 0.8600 | 0.8600 | 0.8440 | 500 |" in old
