"""The full recipe (recipes/full.py, train_scripts/run_recipe.py) end to end on a miniature copy of the shared
data folder, with a tiny model: what it writes, that no held-out row reaches training, the chosen sampling settings,
the published cards; and benchmarks/recipe.py's GPT-2 baseline on the recipe's output."""

import csv
import json
import math
import shutil
from pathlib import Path

import datasets
import pytest
import torch
import yaml

from chargpt.evaluation.generation_search import DEFAULT_GRID, grid_settings
from chargpt.loading import load_model_and_tokenizer
from recipes.dialogue_splits import LCCC_BASE_FILES
from recipes.full import DIALOGUE_FILES, RecipeArguments, run_recipe
from recipes.sentiment_splits import CHNSENTICORP_FILE, ONLINE_SHOPPING_FILE

from ._helpers_training import PHRASES, load_script
from .test_evaluation import write_dialogues, write_reviews


SHOP_CATEGORIES = ["书籍", "水果", "衣服", "平板"]  # 书籍 (books) is the recipe's default held-out category
KDCONV_TOPICS = {"film": "电影", "music": "音乐", "travel": "旅行"}
N_BOOK_REVIEWS = 150
N_LCCC_BASE = 2600  # 500 posts + 1000 test + 1000 validation dialogues are held out; about 100 train
# A tiny model and workload: the recipe runs in seconds on one core.
TINY_RECIPE_FLAGS = [
    "--n_embd",
    "32",
    "--n_layer",
    "1",
    "--n_head",
    "2",
    "--chat_context",
    "64",
    "--chat_epochs",
    "1",
    "--classifier_epochs",
    "1",
    "--classifier_max_length",
    "64",
    "--max_train_samples",
    "200",
    "--generation_posts",
    "4",
]
STEPS = ["splits", "vocabulary", "chat_model", "sampling_search", "review_lm", "classifier", "evaluation", "publish"]


def _spaced(text: str) -> str:
    """LCCC's spacing of every character."""
    return " ".join(text)


def write_shop_reviews(path: Path, per_category: int = 750) -> Path:
    """The online-shopping CSV (`cat,label,review`): `per_category` reviews of each non-book category, alternating
    labels, then N_BOOK_REVIEWS book reviews; no text is one of write_reviews' (the hotel file's)."""
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["cat", "label", "review"])
        for category in SHOP_CATEGORIES[1:]:
            for i in range(per_category):
                writer.writerow([category, i % 2, f"{category}{'质量不错推荐' if i % 2 else '质量很差退货'}{i}"])
        for i in range(N_BOOK_REVIEWS):
            writer.writerow(["书籍", i % 2, f"这本书{'写得精彩' if i % 2 else '内容空洞'}{i}"])
    return path


def write_shared_data(root: Path) -> Path:
    """Every file the recipe reads, at its place under --data_dir and in its corpus's format."""
    for folder in ("chnsenticorp", "online_shopping", "lccc_base", "lccc", "kdconv", "cped"):
        (root / folder).mkdir(parents=True)
    write_reviews(root / CHNSENTICORP_FILE, 520, 530)  # 250 + 250 of each class held out for test and validation
    write_shop_reviews(root / ONLINE_SHOPPING_FILE)  # 2,250 other-category reviews: 2,000 validation, 250 train
    valid_part, test_part = (root / f for f in LCCC_BASE_FILES)
    write_dialogues(valid_part, N_LCCC_BASE, shared_first_turns=20)  # 20 posts answered twice, as on Weibo
    test_part.write_text(
        json.dumps([[_spaced(f"另一个帖子{i}"), _spaced(f"另一个回复{i}")] for i in range(40)], ensure_ascii=False),
        encoding="utf-8",
    )
    n = len(PHRASES)
    (root / "lccc" / "lccc_toy_train_pairs.txt").write_text(
        "".join(f"{_spaced(PHRASES[i % n] + str(i))}\t{_spaced(PHRASES[(i + 1) % n])}\n" for i in range(60)),
        encoding="utf-8",
    )
    toy = {
        "train": [
            [_spaced(PHRASES[i % n]), _spaced(f"{PHRASES[(i + 3) % n]}{i}"), _spaced(PHRASES[(i + 5) % n])]
            for i in range(30)
        ]
    }
    (root / "lccc" / "lccc_toy_train_dialogs.json").write_text(json.dumps(toy, ensure_ascii=False), encoding="utf-8")
    for topic, name in KDCONV_TOPICS.items():
        for part in ("dev", "test"):
            dialogues = [
                {
                    "messages": [
                        {"message": f"你看过这部{name}吗{part}{i}"},
                        {"message": f"{PHRASES[i % n]}{i}", "attrs": [{"attrname": "名字"}]},
                    ],
                    "name": f"{name}{i}",
                }
                for i in range(10)
            ]
            (root / "kdconv" / f"kdconv_{topic}_{part}.json").write_text(
                json.dumps(dialogues, ensure_ascii=False), encoding="utf-8"
            )
    cped = [
        {
            "id": f"{i:02d}_000",
            "turns": [
                {"speaker": "甲", "text": f"{PHRASES[i % n]} {i}", "sentiment": "neutral"},
                {"speaker": "乙", "text": PHRASES[(i + 2) % n], "sentiment": "positive"},
            ],
        }
        for i in range(20)
    ]
    (root / "cped" / "cped_dialogues.json").write_text(json.dumps(cped, ensure_ascii=False), encoding="utf-8")
    return root


def read_csv_rows(path) -> list[dict]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """One run of train_scripts/run_recipe.py (publish on) on the miniature data; the datasets cache in tmp."""
    pytest.importorskip("sklearn", reason="the recipe fits the TF-IDF floor (scikit-learn, the `dev` extra)")
    root = tmp_path_factory.mktemp("recipe")
    data, out = write_shared_data(root / "data"), root / "out"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(root / "datasets_cache"))
        report = load_script("run_recipe.py").main(
            ["--output_dir", str(out), "--data_dir", str(data), *TINY_RECIPE_FLAGS, "--publish", "true"]
        )
        yield {"report": report, "out": out, "data": data}


# ----------------------------------------------------------------------------------------------------------------------
# Arguments and missing data (fast)


def test_recipe_arguments_refuse_unknown_pooling_and_zero_epochs():
    with pytest.raises(ValueError, match=r"--classifier_pooling must be one of \('last', 'mean'\)"):
        RecipeArguments(classifier_pooling="max")
    with pytest.raises(ValueError, match="--chat_epochs must be above 0"):
        RecipeArguments(chat_epochs=0)
    with pytest.raises(ValueError, match="--classifier_epochs must be above 0"):
        RecipeArguments(classifier_epochs=-1)


def test_run_recipe_has_help_naming_the_data_and_model_flags(capsys):
    with pytest.raises(SystemExit) as exit_info:
        load_script("run_recipe.py").main(["--help"])
    out = capsys.readouterr().out
    assert exit_info.value.code == 0
    assert all(flag in out for flag in ("--data_dir", "--holdout_category", "--n_embd", "--generation_posts"))


def test_missing_data_files_are_named_with_data_dir_before_anything_is_written(tmp_path):
    data = write_shared_data(tmp_path / "data")
    (data / "cped" / "cped_dialogues.json").unlink()
    (data / LCCC_BASE_FILES[1]).unlink()
    out = tmp_path / "out"
    with pytest.raises(FileNotFoundError) as error:
        run_recipe(RecipeArguments(output_dir=str(out), data_dir=str(data), publish=False))
    message = str(error.value)
    assert f"missing under {data}: {LCCC_BASE_FILES[1]}, cped/cped_dialogues.json." in message
    assert "--data_dir" in message and "kdconv" not in message  # only the missing files are named
    assert not out.exists()  # no split, vocabulary or model was started


def test_output_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "out").write_text("not a folder", encoding="utf-8")
    with pytest.raises(NotADirectoryError, match="is a file; give a directory"):
        run_recipe(RecipeArguments(output_dir=str(tmp_path / "out"), data_dir=str(tmp_path)))


# ----------------------------------------------------------------------------------------------------------------------
# One run of the recipe


@pytest.mark.slow
def test_recipe_report_holds_every_steps_time_and_figures_in_their_ranges(recipe):
    report, out = recipe["report"], recipe["out"]
    written = json.loads((out / "recipe_report.json").read_text(encoding="utf-8"))
    assert written == json.loads(json.dumps(report, default=str))
    timings = written["timings_seconds"]
    assert list(timings) == STEPS + ["total"] and all(t >= 0 for t in timings.values())
    assert timings["total"] >= max(timings[s] for s in STEPS)
    assert written["arguments"]["n_embd"] == 32 and written["arguments"]["publish"] is True
    figures = written["figures"]
    for name in (
        "sentiment_accuracy",
        "sentiment_tfidf_accuracy",
        "cross_domain_accuracy",
        "cross_domain_tfidf_accuracy",
        "distinct_1",
        "distinct_2",
        "repetition_share",
    ):
        assert 0 <= figures[name] <= 1, name
    ppl = figures["chat_heldout_perplexity"]
    assert math.isfinite(ppl) and 1 < ppl < 2 * written["vocab_size"]
    # The figures are the held-out reports' own numbers, which are also written beside each model.
    sentiment = json.loads((out / "sentiment" / "heldout_evaluation.json").read_text(encoding="utf-8"))
    chat = json.loads((out / "chat" / "heldout_evaluation.json").read_text(encoding="utf-8"))
    assert figures["sentiment_accuracy"] == sentiment["sentiment"]["model"]["accuracy"]
    assert figures["cross_domain_tfidf_accuracy"] == sentiment["cross_domain"]["tfidf_logreg"]["accuracy"]
    assert figures["distinct_2"] == chat["replies"]["model"]["distinct_2"]
    assert sentiment["sentiment"]["model"]["n"] == 500  # the whole balanced test: 250 + 250
    # Row by row too, for paired comparisons between runs on the same test rows.
    rows = sentiment["sentiment"]["predictions"]
    assert len(rows["labels"]) == len(rows["model"]) == 500 and len(rows["rows_sha256"]) == 64
    right = sum(p == y for p, y in zip(rows["model"], rows["labels"]))
    assert right / 500 == pytest.approx(figures["sentiment_accuracy"])
    # Each figure carries its 95% interval from the same reports; the paired difference from the floor too.
    assert figures["distinct_2_ci95"] == chat["replies"]["model"]["distinct_2_ci95"]
    for name in [name for name in figures if not name.endswith("_ci95")]:
        low, high = figures[f"{name}_ci95"]
        assert low <= figures[name] <= high, name
    difference = figures["sentiment_accuracy"] - figures["sentiment_tfidf_accuracy"]
    assert figures["sentiment_accuracy_minus_tfidf"] == pytest.approx(difference)
    assert written["intervals"]["resamples"] == 1000 and written["intervals"]["method"] == "percentile bootstrap"
    assert sentiment["cross_domain"]["model"]["n"] == N_BOOK_REVIEWS  # every book review, nothing else
    assert chat["replies"]["model"]["n"] == 500 and chat["perplexity"]["model"]["dialogues"] >= 1000
    model, _ = load_model_and_tokenizer(out / "chat", task="causal-lm")
    assert (model.config.n_embd, model.config.n_layer, model.config.n_head, model.config.n_positions) == (32, 1, 2, 64)


@pytest.mark.slow
def test_chat_from_reuses_the_chat_model_and_trains_only_the_review_steps(recipe, tmp_path):
    source, out = recipe["out"], tmp_path / "hotel-only"
    (out / "chat" / "checkpoint-9").mkdir(parents=True)  # an earlier run's leftovers in the same folder
    flags = ["--data_dir", str(recipe["data"]), *TINY_RECIPE_FLAGS, "--publish", "false"]
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "datasets_cache"))
        report = load_script("run_recipe.py").main(
            # The miniature's 50 hotel training reviews are too few for the review LM's 2% validation part.
            ["--output_dir", str(out), *flags, "--extra_labelled", "false", "--review_lm_epochs", "0"]
            + ["--chat_from", str(source)]
        )
    steps = ["splits", "chat_reused", "classifier", "evaluation", "total"]
    assert list(report["timings_seconds"]) == steps
    # The first run's vocabulary and chosen chat model, byte for byte, without its checkpoints.
    for name in ("tokenizer/vocab.json", "chat/model.safetensors", "chat/generation_config.json"):
        assert (out / name).read_bytes() == (source / name).read_bytes(), name
    assert not list((out / "chat").glob("checkpoint-*")) and list((source / "chat").glob("checkpoint-*"))
    original = recipe["report"]
    assert report["chat_from"]["directory"] == str(source)
    assert list(report["chat_from"]["timings_seconds"]) == ["vocabulary", "chat_model", "sampling_search"]
    for key in ("vocab_size", "chat_training", "sampling_search"):
        assert json.dumps(report[key], default=str) == json.dumps(original[key], default=str), key
    for name in ("chat_heldout_perplexity", "distinct_2", "repetition_share"):
        assert report["figures"][name] == pytest.approx(original["figures"][name]), name
    # The classifier reads the hotel reviews alone, and so does the floor it is compared with.
    hotel = [str(out / "splits" / "chnsenticorp_train.csv")]
    summary = json.loads((out / "sentiment" / "data_summary.json").read_text(encoding="utf-8"))
    assert summary["train"]["sources"] == hotel
    assert report["evaluation"]["sentiment"]["sentiment"]["tfidf_logreg"]["train_files"] == hotel


@pytest.mark.slow
def test_chat_from_refuses_a_run_with_other_chat_settings_or_data(recipe, tmp_path):
    source = recipe["out"]
    flags = ["--data_dir", str(recipe["data"]), *TINY_RECIPE_FLAGS, "--chat_from", str(source)]
    run = load_script("run_recipe.py").main
    with pytest.raises(ValueError, match=r"other settings: --seed 7 \(that run: 42\); --n_layer 2 \(that run: 1\)"):
        run(["--output_dir", str(tmp_path / "a"), *flags, "--seed", "7", "--n_layer", "2"])
    assert not (tmp_path / "a").exists()  # refused before anything is written
    with pytest.raises(FileNotFoundError, match="no recipe_report.json there"):
        run(["--output_dir", str(tmp_path / "b"), *flags[:-1], str(tmp_path)])
    with pytest.raises(ValueError, match="this run's own --output_dir"):
        run(["--output_dir", str(source), *flags])
    # Other data under --data_dir: one hotel review changed.
    data = tmp_path / "data"
    shutil.copytree(recipe["data"], data)
    hotel = data / CHNSENTICORP_FILE
    hotel.write_text(hotel.read_text(encoding="utf-8").replace("太差了失望7\n", "太差了失望七\n"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"split files differ from that run's \(hotel/"):
        run(["--output_dir", str(tmp_path / "c"), *flags[:1], str(data), *flags[2:]])


@pytest.mark.slow
def test_recipe_writes_every_split_file_with_the_fixed_sizes(recipe):
    splits = recipe["out"] / "splits"
    shop = "online_shopping_holdout_books"
    expected = [f"{name}_{part}.csv" for name in ("chnsenticorp", shop) for part in ("train", "validation", "test")]
    expected += [f"lccc_base_{part}.jsonl" for part in ("train", "validation", "test", "posts")]
    expected += ["chnsenticorp_splits.json", f"{shop}_splits.json", "lccc_base_splits.json"]
    assert sorted(p.name for p in splits.iterdir()) == sorted(expected)
    assert len(read_csv_rows(splits / "chnsenticorp_test.csv")) == 500
    assert len(read_csv_rows(splits / "chnsenticorp_validation.csv")) == 500
    assert len(read_csv_rows(splits / "chnsenticorp_train.csv")) == 1050 - 1000
    assert len(read_csv_rows(splits / f"{shop}_validation.csv")) == 2000
    assert {row["group"] for row in read_csv_rows(splits / f"{shop}_test.csv")} == {"书籍"}
    assert len((splits / "lccc_base_posts.jsonl").read_text(encoding="utf-8").splitlines()) == 500
    info = json.loads((splits / f"{shop}_splits.json").read_text(encoding="utf-8"))
    assert info["holdout_category"] == "书籍" and info["seed"] == 42


@pytest.mark.slow
def test_classifier_trains_only_on_training_parts_and_never_on_the_held_out_category(recipe):
    splits, out = recipe["out"] / "splits", recipe["out"]
    train_files = [str(splits / "chnsenticorp_train.csv"), str(splits / "online_shopping_holdout_books_train.csv")]
    summary = json.loads((out / "sentiment" / "data_summary.json").read_text(encoding="utf-8"))
    assert summary["train"]["sources"] == train_files
    assert summary["validation"]["sources"] == [str(splits / "chnsenticorp_validation.csv")]
    shop_train = read_csv_rows(train_files[1])
    assert shop_train and "书籍" not in {row["group"] for row in shop_train}
    train_texts = {row["text"] for path in train_files for row in read_csv_rows(path)}
    book_texts = {
        row[2] for row in csv.reader((recipe["data"] / ONLINE_SHOPPING_FILE).open(encoding="utf-8")) if row[0] == "书籍"
    }
    assert len(book_texts) == N_BOOK_REVIEWS and not train_texts & book_texts
    for test in ("chnsenticorp_test.csv", "online_shopping_holdout_books_test.csv"):
        assert not train_texts & {row["text"] for row in read_csv_rows(splits / test)}, test
    # The TF-IDF floor learnt from the same files, and the evaluation found none of its test rows in them.
    sentiment = recipe["report"]["evaluation"]["sentiment"]
    for task in ("sentiment", "cross_domain"):
        assert sentiment[task]["test_rows_in_tfidf_train_files"] == 0
        assert sentiment[task]["tfidf_logreg"]["train_files"] == train_files


@pytest.mark.slow
def test_chat_model_reads_every_dialogue_corpus_and_only_lccc_bases_training_part(recipe):
    splits, data = recipe["out"] / "splits", recipe["data"]
    summary = json.loads((recipe["out"] / "chat" / "data_summary.json").read_text(encoding="utf-8"))
    train = summary["train"]
    assert train["sources"] == [str(data / f) for f in DIALOGUE_FILES] + [str(splits / "lccc_base_train.jsonl")]
    kept = {
        Path(source).relative_to(data).as_posix(): counts["kept"]
        for source, counts in train["by_source"].items()
        if source.startswith(str(data))
    }
    assert kept == {
        "lccc/lccc_toy_train_pairs.txt": 60,
        "lccc/lccc_toy_train_dialogs.json": 30,
        **{f"kdconv/kdconv_{t}_{p}.json": 10 for t in KDCONV_TOPICS for p in ("dev", "test")},
        "cped/cped_dialogues.json": 20,
    }  # every format parsed, every dialogue kept
    assert summary["validation"]["sources"] == [str(splits / "lccc_base_validation.jsonl")]
    assert summary["test"]["sources"] == [str(splits / "lccc_base_test.jsonl")]

    def first_turns(name):
        lines = (splits / f"lccc_base_{name}.jsonl").read_text(encoding="utf-8").splitlines()
        return {json.loads(line)[0] for line in lines}

    posts = {json.loads(line)["post"] for line in (splits / "lccc_base_posts.jsonl").read_text().splitlines()}
    train_firsts = first_turns("train")
    assert train_firsts and not train_firsts & (posts | first_turns("test") | first_turns("validation"))


@pytest.mark.slow
def test_chosen_sampling_settings_are_saved_in_the_chat_models_generation_config(recipe):
    out, chosen = recipe["out"], recipe["report"]["sampling_search"]["chosen"]
    search = json.loads((out / "chat" / "generation_search.json").read_text(encoding="utf-8"))
    assert search["chosen"] == chosen and search["posts"] == 4 and search["seed"] == 42
    assert [c["settings"] for c in search["candidates"]] == grid_settings(DEFAULT_GRID)
    assert "candidates" not in recipe["report"]["sampling_search"]  # the table stays beside the model
    saved = json.loads((out / "chat" / "generation_config.json").read_text(encoding="utf-8"))
    assert saved["do_sample"] is True and saved["top_k"] == 0
    assert {key: saved.get(key) for key in chosen} == chosen
    model, _ = load_model_and_tokenizer(out / "chat", task="causal-lm")
    assert all(getattr(model.generation_config, key) == value for key, value in chosen.items())
    # The held-out replies were sampled with those settings.
    used = recipe["report"]["evaluation"]["chat"]["replies"]["generation_config"]
    assert {key: used.get(key) for key in chosen} == chosen


@pytest.mark.slow
def test_published_cards_hold_the_held_out_figures_and_three_sample_conversations(recipe):
    published = recipe["report"]["published"]
    out = recipe["out"] / "published"
    assert published == {"chat": str(out / "chargpt-recipe-chat"), "sentiment": str(out / "chargpt-recipe-sentiment")}
    chat_card = (out / "chargpt-recipe-chat" / "README.md").read_text(encoding="utf-8")
    assert "| LCCC-base held-out dialogues | perplexity |" in chat_card
    assert "| replies to 500 held-out posts | repetition_share |" in chat_card
    assert "| replies to 500 held-out posts | the human replies to the same posts | distinct_2 |" in chat_card
    assert all(f"### Conversation {k} (" in chat_card for k in (1, 2, 3)) and "### Conversation 4" not in chat_card
    sentiment_card = (out / "chargpt-recipe-sentiment" / "README.md").read_text(encoding="utf-8")
    floor = "TF-IDF character 1-3-grams + logistic regression, same training files"
    assert f"| ChnSentiCorp balanced held-out test | {floor} | accuracy |" in sentiment_card
    # Baselines are in their own table, never in the model-index, whose results are read as the model's.
    for card in (chat_card, sentiment_card):
        index = yaml.safe_load(card.split("---")[1])["model-index"][0]["results"]
        assert all("human" not in str(r) and "tfidf" not in str(r).lower() for r in index)
    assert "| cross-domain test (held-out category 书籍) | accuracy |" in sentiment_card
    assert "Conversation 1" not in sentiment_card


# ----------------------------------------------------------------------------------------------------------------------
# benchmarks/recipe.py on the recipe's output


@pytest.mark.slow
def test_gpt2_baseline_trains_for_the_chat_models_time_and_is_measured_alike(recipe, tmp_path):
    from types import SimpleNamespace

    from benchmarks.recipe import train_gpt2_baseline

    out = recipe["out"]
    report = json.loads((out / "recipe_report.json").read_text(encoding="utf-8"))
    args = SimpleNamespace(data_dir=str(recipe["data"]), seed=1234, ttq_lr_gpt2=2e-3, quick=True)
    gpt2 = train_gpt2_baseline(out, report, args, str(tmp_path / "work"))
    assert gpt2["steps"] >= 10 and gpt2["learning_rate"] == 2e-3 and gpt2["seconds_per_step"] > 0
    assert gpt2["steps"] == max(10, int(report["chat_training"]["train"]["train_runtime"] / gpt2["seconds_per_step"]))
    assert gpt2["train_seconds"] > 0 and gpt2["parameters"] > 0
    assert math.isfinite(gpt2["perplexity"]) and gpt2["perplexity"] > 1
    replies = gpt2["replies"]
    assert replies["n"] == 500 and all(0 <= replies[k] <= 1 for k in ("distinct_1", "distinct_2", "repetition_share"))
    assert gpt2["perplexity_ci95"][0] < gpt2["perplexity"] < gpt2["perplexity_ci95"][1]  # measured as the recipe is
    assert replies["distinct_2_ci95"][0] <= replies["distinct_2"] <= replies["distinct_2_ci95"][1]
    posts = [json.loads(line)["post"] for line in (out / "splits" / "lccc_base_posts.jsonl").read_text().splitlines()]
    assert [s["post"] for s in gpt2["samples"]] == posts[:5]  # the recipe's held-out posts


@pytest.mark.slow
def test_benchmark_section_measures_the_recipe_beside_gpt2_and_renders_it(recipe, tmp_path):
    from benchmarks import report as benchmark_report
    from benchmarks.recipe import run_recipe_section
    from benchmarks.settings import BenchmarkArguments

    args = BenchmarkArguments(
        only="recipe", recipe_dir=str(recipe["out"]), data_dir=str(recipe["data"]), ttq_lr_gpt2=2e-3
    )
    saved = []
    result = run_recipe_section(args, str(tmp_path / "work"), save=lambda partial: saved.append(dict(partial)))
    assert len(saved) == 1 and "gpt2" not in saved[0]  # the recipe's figures are saved before GPT-2 trains
    assert result["figures"] == recipe["report"]["figures"] and result["recipe_dir"] == str(recipe["out"])
    chat, gpt2 = result["chat"], result["gpt2"]
    assert chat["train_seconds"] == recipe["report"]["chat_training"]["train"]["train_runtime"]
    assert result["perplexity_ratio_vs_gpt2"] == pytest.approx(chat["perplexity"] / gpt2["perplexity"])
    text = benchmark_report.render({"recipe": json.loads(json.dumps(result))})
    assert "## 9. The recipe on the held-out splits" in text
    assert f"GPT-2, same data and training time (AdamW 0.002, {gpt2['steps']} steps)" in text
    low, high = gpt2["perplexity_ci95"]
    assert f" | {gpt2['perplexity']:.2f} [{low:.2f}, {high:.2f}] | " in text
    assert "Brackets: 95% percentile bootstrap" in text
    names = [t["name"] for t in benchmark_report.targets({"recipe": result})]
    assert "recipe: held-out perplexity, chat model / GPT-2 (same training time)" in names


def test_benchmark_section_refuses_a_recipe_dir_without_a_report(tmp_path):
    from benchmarks.recipe import run_recipe_section
    from benchmarks.settings import BenchmarkArguments

    with pytest.raises(FileNotFoundError, match="has no recipe_report.json; run run_recipe.py first"):
        run_recipe_section(BenchmarkArguments(only="recipe", recipe_dir=str(tmp_path)), str(tmp_path))


# ----------------------------------------------------------------------------------------------------------------------
# benchmarks/recipe_levers.py on the recipe's output


@pytest.mark.slow
def test_levers_section_retrains_the_classifier_per_lever_and_compares_it_on_validation(recipe):
    from benchmarks import report as benchmark_report
    from benchmarks.recipe_levers import LEVERS, run_recipe_levers_section
    from benchmarks.settings import BenchmarkArguments

    args = BenchmarkArguments(only="recipe_levers", recipe_dir=str(recipe["out"]), levers="ema,ulmfit")
    saved = []
    result = run_recipe_levers_section(args, "", save=lambda partial: saved.append(json.dumps(partial)))
    assert len(saved) == 3 and list(result["levers"]) == ["ema", "ulmfit"]
    out = recipe["out"]
    for name, lever in result["levers"].items():
        trained = torch.load(out / "levers" / name / "sentiment" / "training_args.bin", weights_only=False)
        assert lever["settings"] == LEVERS[name]
        for key, value in LEVERS[name].items():
            assert getattr(trained, key.removeprefix("classifier_")) == pytest.approx(value)  # the lever, switched on
        assert trained.learning_rate == recipe["report"]["arguments"]["classifier_learning_rate"]
        for split in ("hotel", "shop"):
            scores, baseline = lever["scores"][split], result["baseline"]["scores"][split]
            assert scores["n"] == baseline["n"] > 0
            paired = scores["minus_baseline"]
            assert paired["accuracy"] == pytest.approx(scores["accuracy"] - baseline["accuracy"])
            assert paired["accuracy_ci95"][0] <= paired["accuracy"] <= paired["accuracy_ci95"][1]
        lows = [lever["scores"][s]["minus_baseline"]["accuracy_ci95"][0] for s in ("hotel", "shop")]
        assert lever["kept"] == (min(lows) > 0)
    text = benchmark_report.render({"recipe_levers": json.loads(json.dumps(result))})
    assert "## 11. Fine-tuning levers, on validation" in text
    assert "| ulmfit | layer_lr_decay 0.385, gradual_unfreezing 0.5 |" in text
    # Asked again, a lever trained with the same settings is scored, not retrained; a+b trains both together.
    weights = out / "levers" / "ema" / "sentiment" / "model.safetensors"
    written = weights.stat().st_mtime_ns
    args = BenchmarkArguments(only="recipe_levers", recipe_dir=str(recipe["out"]), levers="ema,ema+ulmfit")
    again = run_recipe_levers_section(args, "")
    assert weights.stat().st_mtime_ns == written and again["levers"]["ema"]["reused"]
    assert again["levers"]["ema"]["scores"] == result["levers"]["ema"]["scores"]
    assert again["levers"]["ema"]["train_seconds"] == result["levers"]["ema"]["train_seconds"]
    both = again["levers"]["ema+ulmfit"]
    assert both["settings"] == {**LEVERS["ema"], **LEVERS["ulmfit"]} and "reused" not in both
    trained = torch.load(out / "levers" / "ema+ulmfit" / "sentiment" / "training_args.bin", weights_only=False)
    assert (trained.ema_decay, trained.gradual_unfreezing) == (LEVERS["ema"]["classifier_ema_decay"], 0.5)


def test_levers_section_needs_a_finished_run_and_known_levers(tmp_path):
    from benchmarks.recipe_levers import run_recipe_levers_section
    from benchmarks.settings import BenchmarkArguments

    with pytest.raises(ValueError, match="give --recipe_dir"):
        run_recipe_levers_section(BenchmarkArguments(only="recipe_levers"), "")
    for levers in ("x", "ema+x", "ema+ema"):
        with pytest.raises(ValueError, match=r"comma-separated subset of \['aux_lm', 'ulmfit', 'ema'\], each alone"):
            args = BenchmarkArguments(only="recipe_levers", recipe_dir=str(tmp_path), levers=levers)
            run_recipe_levers_section(args, "")
    with pytest.raises(FileNotFoundError, match="no recipe_report.json there"):
        run_recipe_levers_section(BenchmarkArguments(only="recipe_levers", recipe_dir=str(tmp_path)), "")
