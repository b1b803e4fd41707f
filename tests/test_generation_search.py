"""chargpt.evaluation.generation_search (the character F1, the posts, the grid, the choice rule, the search on a tiny
untrained model) and train_scripts/tune_generation.py, which saves the chosen settings in generation_config.json."""

import json

import datasets
import pytest

from chargpt import CharGPTForCausalLM
from chargpt.evaluation.generation_search import (
    char_f1,
    choose,
    grid_settings,
    posts_and_replies,
    search_generation_config,
)
from chargpt.loading import load_model_and_tokenizer
from chargpt.tasks import sample_replies

from ._helpers_training import load_script
from .test_evaluation import tiny_model_dir, write_dialogues


POSTS = ["你好", "今天天气很好", "我们去公园散步吧", "周末有什么安排"]
REFERENCES = ["你好呀", "是啊很好", "好的走吧", "在家看电影"]
# Two settings that differ only in the repetition penalty.
TWO_SETTINGS = {"temperature": [0.8], "top_p": [0.9], "repetition_penalty": [1.0, 1.3], "no_repeat_ngram_size": [0]}
METRIC_KEYS = {"distinct_1", "distinct_2", "repetition_share", "mean_length", "empty_share", "n", "f1", "example"}


# ----------------------------------------------------------------------------------------------------------------------
# Character F1, posts, grid, choice


def test_char_f1_matches_hand_computed_multiset_overlap():
    assert char_f1("你好", "你好") == 1.0
    assert char_f1("你好", "再见") == 0.0
    assert char_f1("", "你好") == 0.0 and char_f1("你好", "") == 0.0 and char_f1("", "") == 0.0
    # 好好的 vs 好的呀: common multiset {好, 的} = 2 (the second 好 has no partner): precision 2/3, recall 2/3
    assert char_f1("好好的", "好的呀") == pytest.approx(2 / 3)
    # 好 vs 好的呀: precision 1, recall 1/3 -> F1 = 2 * 1/3 / (4/3) = 1/2
    assert char_f1("好", "好的呀") == pytest.approx(0.5)
    assert char_f1("好的呀", "好") == pytest.approx(0.5)  # symmetric


def test_posts_and_replies_skip_one_turn_and_repeated_first_turns_and_stop_at_n_posts():
    dialogues = [
        ["只有一句"],  # one turn: skipped
        ["帖子一", "回复一", "再说一"],
        ["帖子一", "另一个回复"],  # the same post answered again: only the first dialogue counts
        ["帖子二", "回复二"],
        ["帖子三", "回复三"],
    ]
    assert posts_and_replies(dialogues, 10) == (["帖子一", "帖子二", "帖子三"], ["回复一", "回复二", "回复三"])
    assert posts_and_replies(dialogues, 2) == (["帖子一", "帖子二"], ["回复一", "回复二"])
    with pytest.raises(ValueError, match="No dialogue of two turns or more"):
        posts_and_replies([["一句"], ["又一句"]], 5)
    with pytest.raises(ValueError, match="No dialogue of two turns or more"):
        posts_and_replies([], 5)


def test_grid_settings_is_the_product_in_a_fixed_order_and_refuses_empty_values():
    grid = {"temperature": [0.7, 1.0], "top_p": [0.8, 0.95], "repetition_penalty": [1.2]}
    assert grid_settings(grid) == [
        {"temperature": 0.7, "top_p": 0.8, "repetition_penalty": 1.2},
        {"temperature": 0.7, "top_p": 0.95, "repetition_penalty": 1.2},
        {"temperature": 1.0, "top_p": 0.8, "repetition_penalty": 1.2},
        {"temperature": 1.0, "top_p": 0.95, "repetition_penalty": 1.2},
    ]
    assert len(grid_settings({"a": [1, 2, 3], "b": [4, 5], "c": [6, 7]})) == 12
    with pytest.raises(ValueError, match="at least one value for each setting"):
        grid_settings({"temperature": [0.7], "top_p": []})
    with pytest.raises(ValueError, match="at least one value for each setting"):
        grid_settings({})


def candidate(name, repetition_share, distinct_2, f1):
    return {"settings": {"name": name}, "repetition_share": repetition_share, "distinct_2": distinct_2, "f1": f1}


def test_choose_takes_the_best_f1_among_settings_meeting_both_limits():
    candidates = [
        candidate("loops", 0.20, 0.50, 0.90),  # best F1, but too repetitive
        candidate("dull", 0.00, 0.10, 0.80),  # second best F1, but Distinct-2 too low
        candidate("ok", 0.05, 0.30, 0.30),  # meets both limits exactly
        candidate("better", 0.01, 0.60, 0.40),
    ]
    assert choose(candidates, max_repetition=0.05, min_distinct_2=0.30)["settings"] == {"name": "better"}
    assert choose(candidates[:3], max_repetition=0.05, min_distinct_2=0.30)["settings"] == {"name": "ok"}


def test_choose_falls_back_to_the_fewest_repetitive_then_the_best_f1():
    candidates = [
        candidate("a", 0.30, 0.10, 0.90),
        candidate("b", 0.10, 0.10, 0.20),
        candidate("c", 0.10, 0.10, 0.40),  # ties b on repetition, higher F1
        candidate("d", 0.20, 0.90, 0.95),
    ]
    assert choose(candidates, max_repetition=0.05, min_distinct_2=0.30)["settings"] == {"name": "c"}
    with pytest.raises(ValueError, match="No candidate"):
        choose([], 0.05, 0.3)


# ----------------------------------------------------------------------------------------------------------------------
# The search on a tiny untrained model


@pytest.fixture
def tiny_lm(tmp_path):
    return tiny_model_dir(tmp_path / "lm", CharGPTForCausalLM, POSTS + REFERENCES)


def test_search_scores_one_candidate_per_setting_and_chooses_one_of_them(tiny_lm):
    model, tokenizer = tiny_lm
    result = search_generation_config(model, tokenizer, POSTS, REFERENCES, TWO_SETTINGS, seed=3, max_new_tokens=4)
    candidates = result["candidates"]
    assert [c["settings"] for c in candidates] == grid_settings(TWO_SETTINGS)
    assert all(METRIC_KEYS <= set(c) and c["n"] == len(POSTS) and 0 <= c["f1"] <= 1 for c in candidates)
    assert result["chosen"] in [c["settings"] for c in candidates] and result["posts"] == 4 and result["seed"] == 3
    chosen = next(c for c in candidates if c["settings"] == result["chosen"])
    assert result["chosen_metrics"] == {k: v for k, v in chosen.items() if k != "settings"}
    assert result["chosen"] == choose(candidates, 0.05, 0.30)["settings"]
    assert result["met_limits"] == (chosen["repetition_share"] <= 0.05 and chosen["distinct_2"] >= 0.30)
    # Each setting's replies are sample_replies' with that setting and the search's seed, scored against the references.
    first = candidates[0]["settings"]
    replies = sample_replies(model, tokenizer, POSTS, 32, 3, do_sample=True, top_k=0, max_new_tokens=4, **first)
    assert candidates[0]["example"] == replies[0] and all(len(r) <= 4 for r in replies)
    assert candidates[0]["f1"] == pytest.approx(sum(map(char_f1, replies, REFERENCES)) / len(POSTS))


def test_search_is_deterministic_for_a_seed_and_refuses_unpaired_references(tiny_lm):
    model, tokenizer = tiny_lm
    first = search_generation_config(model, tokenizer, POSTS, REFERENCES, TWO_SETTINGS, seed=1, max_new_tokens=4)
    again = search_generation_config(model, tokenizer, POSTS, REFERENCES, TWO_SETTINGS, seed=1, max_new_tokens=4)
    assert again == first
    with pytest.raises(ValueError, match="4 posts but 3 reference replies"):
        search_generation_config(model, tokenizer, POSTS, REFERENCES[:3], TWO_SETTINGS, max_new_tokens=4)


# ----------------------------------------------------------------------------------------------------------------------
# train_scripts/tune_generation.py


TUNE_FLAGS = [
    "--temperature",
    "0.8",
    "--top_p",
    "0.85",
    "--repetition_penalty",
    "1.0",
    "1.3",
    "--no_repeat_ngram_size",
    "0",
    "--n_posts",
    "5",
    "--max_new_tokens",
    "4",
]


@pytest.fixture
def tune_setup(tmp_path, monkeypatch):
    """A tiny causal-LM directory whose generation config differs from every setting of the grid, and dialogues; the
    script reads them into the datasets cache, which is moved into tmp_path (the script has no --cache_dir)."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets_cache"))
    model, _ = tiny_model_dir(tmp_path / "lm", CharGPTForCausalLM, ["帖子回复再说0123456789"])
    model.generation_config.update(temperature=0.5, top_p=0.6, repetition_penalty=1.1, max_new_tokens=7)
    model.generation_config.save_pretrained(str(tmp_path / "lm"))
    return tmp_path / "lm", write_dialogues(tmp_path / "dialogues.json", 12, shared_first_turns=2)


def test_tune_generation_saves_the_chosen_settings_in_the_generation_config(tune_setup):
    model_dir, dialogues = tune_setup
    result = load_script("tune_generation.py").main(
        ["--model_name_or_path", str(model_dir), "--dialogue_files", str(dialogues), *TUNE_FLAGS]
    )
    report = json.loads((model_dir / "generation_search.json").read_text(encoding="utf-8"))
    assert len(report["candidates"]) == 2 and report["posts"] == 5 and report["chosen"] == result["chosen"]
    assert [c["settings"]["repetition_penalty"] for c in report["candidates"]] == [1.0, 1.3]
    chosen = report["chosen"]
    assert chosen["temperature"] == 0.8 and chosen["top_p"] == 0.85 and chosen["repetition_penalty"] in (1.0, 1.3)
    saved = json.loads((model_dir / "generation_config.json").read_text(encoding="utf-8"))
    assert saved["do_sample"] is True and saved["temperature"] == 0.8 and saved["top_p"] == 0.85
    assert saved.get("repetition_penalty", 1.0) == chosen["repetition_penalty"]  # 1.0 is the default, left out
    assert saved["max_new_tokens"] == 7  # fields the search does not set are kept
    model, _ = load_model_and_tokenizer(model_dir, task="causal-lm")
    config = model.generation_config
    assert (config.do_sample, config.temperature, config.top_p, config.top_k) == (True, 0.8, 0.85, 0)
    assert config.repetition_penalty == chosen["repetition_penalty"] and config.max_new_tokens == 7


def test_tune_generation_with_no_save_leaves_the_generation_config_untouched(tune_setup, tmp_path):
    model_dir, dialogues = tune_setup
    before = (model_dir / "generation_config.json").read_bytes()
    output = tmp_path / "reports" / "search.json"
    load_script("tune_generation.py").main(
        [
            "--model_name_or_path",
            str(model_dir),
            "--dialogue_files",
            str(dialogues),
            *TUNE_FLAGS,
            "--no_save",
            "--output_file",
            str(output),
        ]
    )
    assert (model_dir / "generation_config.json").read_bytes() == before
    assert not (model_dir / "generation_search.json").exists()
    report = json.loads(output.read_text(encoding="utf-8"))
    assert len(report["candidates"]) == 2 and report["arguments"]["save"] is False


def test_tune_generation_has_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script("tune_generation.py").main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0 and "--dialogue_files" in out and "--no_save" in out
