"""The recipe's peers (`run_recipe.py --peer gpt2|llama`, recipes/peers.py): transformers' GPT-2 and Llama sized like
the CharGPT they replace, trained by the same pipelines with CharGPT's tokenizer (a fresh model through
`train_causal_lm(new_model=...)`, continued and fine-tuned through the Auto classes), sampled with CharGPT's generation
defaults, loaded by `load_model_and_tokenizer`; the recipe hands them AdamW at their tuned rate and their own pooling,
and refuses CharGPT-only options for them. Tiny models, a few steps each."""

import json

import pytest
import torch
from transformers import GPT2ForSequenceClassification, GPT2LMHeadModel, LlamaForCausalLM

from chargpt import CharGPTTokenizerFast
from chargpt.data import CleaningConfig
from chargpt.loading import load_model_and_tokenizer
from chargpt.tasks import sample_replies
from chargpt.training import (
    ClassifierModelArguments,
    ClassifierTrainingArguments,
    DialogueDataArguments,
    LabelledDataArguments,
    LMModelArguments,
    LMTrainingArguments,
    train_causal_lm,
    train_classifier,
)
from chargpt.training.models import special_token_ids
from recipes.full import (
    PROGRESS_FILE,
    RecipeArguments,
    _step,
    chat_arguments,
    chat_training_arguments,
    classifier_arguments,
    peer_builder,
    review_lm_arguments,
)
from recipes.peers import PEER_OPTIMIZER, PEERS, TUNED_LEARNING_RATES, peer_causal_lm, peer_config

from ._helpers_training import tiny_tokenizer, write_labelled_csv, write_pairs


QUICK = dict(
    use_cpu=True,
    report_to="none",
    max_steps=3,
    eval_strategy="no",
    save_strategy="no",
    load_best_model_at_end=False,
    per_device_train_batch_size=8,
)
SIZE = dict(n_embd=32, n_layer=2, n_head=2, n_positions=64)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("peers")
    pairs = write_pairs(root / "pairs.txt", n=40)
    reviews = write_labelled_csv(root / "reviews.csv", n=32)
    texts = pairs.read_text(encoding="utf-8").splitlines() + reviews.read_text(encoding="utf-8").splitlines()
    return root, tiny_tokenizer(root / "tokenizer", texts), pairs, reviews


# ----------------------------------------------------------------------------------------------------------------------
# The models


@pytest.mark.parametrize("name", PEERS)
def test_a_peer_has_the_size_ids_and_tied_head_asked_for_and_stops_a_reply_where_chargpt_does(corpora, name):
    _, tokenizer_dir, _, _ = corpora
    tokenizer = CharGPTTokenizerFast.from_pretrained(tokenizer_dir)
    model = peer_causal_lm(name, len(tokenizer), SIZE, **special_token_ids(tokenizer))
    assert isinstance(model, GPT2LMHeadModel if name == "gpt2" else LlamaForCausalLM)
    config = model.config
    assert config.vocab_size == len(tokenizer) and config.num_hidden_layers == 2 and config.hidden_size == 32
    assert (config.pad_token_id, config.sep_token_id) == (tokenizer.pad_token_id, tokenizer.sep_token_id)
    assert model.get_output_embeddings().weight is model.get_input_embeddings().weight  # tied, as CharGPT's
    # CharGPT's generation defaults: a reply ends at the end of its turn (<sep>) or of the dialogue (<eos>).
    assert model.generation_config.eos_token_id == [tokenizer.sep_token_id, tokenizer.eos_token_id]
    assert (model.generation_config.temperature, model.generation_config.min_new_tokens) == (0.7, 1)


def test_llama_peer_feed_forward_is_chargpts_gated_width():
    # 8/3 x hidden rounded up to a multiple of 32: 512 -> 1376 (CharGPT's modern preset at the GPU scale).
    assert peer_config("llama", 100, 512, 1, 8, 256).intermediate_size == 1376
    assert peer_config("gpt2", 100, 512, 1, 8, 256).n_inner is None  # GPT-2's own 4 x hidden


def test_an_unknown_peer_is_refused_with_the_choices():
    with pytest.raises(ValueError, match=r"--peer must be one of \('gpt2', 'llama'\).*'bert'"):
        RecipeArguments(peer="bert")
    with pytest.raises(ValueError, match="--peer must be one of"):
        peer_config("bert", 100, 32, 2, 2, 64)


# ----------------------------------------------------------------------------------------------------------------------
# The pipelines with a peer


def test_the_pipelines_train_continue_and_fine_tune_a_peer_that_then_loads_and_chats(corpora):
    root, tokenizer_dir, pairs, reviews = corpora
    data = DialogueDataArguments(train_files=[str(pairs)], validation_split_size=0, test_split_size=0)
    build = lambda tok: peer_causal_lm("gpt2", len(tok), SIZE, **special_token_ids(tok))  # noqa: E731
    train_causal_lm(
        LMModelArguments(tokenizer_name_or_path=str(tokenizer_dir)),
        data,
        CleaningConfig(),
        LMTrainingArguments(output_dir=str(root / "chat"), optim=PEER_OPTIMIZER, **QUICK),
        new_model=build,
    )
    # Continued as itself (the Auto classes), as the recipe's review language model is.
    train_causal_lm(
        LMModelArguments(tokenizer_name_or_path=str(root / "chat"), model_name_or_path=str(root / "chat")),
        data,
        CleaningConfig(),
        LMTrainingArguments(output_dir=str(root / "review-lm"), optim=PEER_OPTIMIZER, **QUICK),
    )
    model, tokenizer = load_model_and_tokenizer(root / "review-lm", task="causal-lm")
    assert isinstance(model, GPT2LMHeadModel)
    assert json.loads((root / "review-lm" / "config.json").read_text())["architectures"] == ["GPT2LMHeadModel"]
    (reply,) = sample_replies(model, tokenizer, ["你好"], max_new_tokens=8)
    assert isinstance(reply, str)
    # Fine-tuned through its own GPT2ForSequenceClassification (its last-token pooling).
    train_classifier(
        ClassifierModelArguments(model_name_or_path=str(root / "review-lm")),
        LabelledDataArguments(train_files=[str(reviews)], validation_split_size=0, test_split_size=0),
        CleaningConfig(min_turns=1),
        ClassifierTrainingArguments(output_dir=str(root / "sentiment"), **QUICK),
    )
    classifier, _ = load_model_and_tokenizer(root / "sentiment", task="sequence-classification")
    assert isinstance(classifier, GPT2ForSequenceClassification)
    with torch.no_grad():
        logits = classifier(**tokenizer(["很好,很喜欢"], return_tensors="pt")).logits
    assert logits.shape == (1, 2) and torch.isfinite(logits).all()


@pytest.mark.parametrize("flag, value", [("pooling", "mean"), ("dropout", 0.0)])
def test_chargpt_only_classifier_options_are_refused_for_a_peer_naming_the_flag(corpora, flag, value):
    root, tokenizer_dir, _, reviews = corpora
    tokenizer = CharGPTTokenizerFast.from_pretrained(tokenizer_dir)
    body = root / f"llama-body-{flag}"
    peer_causal_lm("llama", len(tokenizer), SIZE, **special_token_ids(tokenizer)).save_pretrained(body)
    tokenizer.save_pretrained(body)
    with pytest.raises(ValueError, match=f"--{flag} are CharGPT's settings.*holds a llama model.*Drop --{flag}"):
        train_classifier(
            ClassifierModelArguments(model_name_or_path=str(body), **{flag: value}),
            LabelledDataArguments(train_files=[str(reviews)], validation_split_size=0, test_split_size=0),
            CleaningConfig(min_turns=1),
            ClassifierTrainingArguments(output_dir=str(root / f"refused-{flag}"), **QUICK),
        )
    assert not (root / f"refused-{flag}").exists()


def test_new_model_and_model_name_or_path_together_are_refused(corpora):
    root, tokenizer_dir, pairs, _ = corpora
    with pytest.raises(ValueError, match="give one of them"):
        train_causal_lm(
            LMModelArguments(tokenizer_name_or_path=str(tokenizer_dir), model_name_or_path=str(tokenizer_dir)),
            DialogueDataArguments(train_files=[str(pairs)]),
            CleaningConfig(),
            LMTrainingArguments(output_dir=str(root / "refused"), **QUICK),
            new_model=lambda tok: None,
        )


# ----------------------------------------------------------------------------------------------------------------------
# What the recipe hands a peer


def _split_files(out):
    return {
        key: {s: out / "splits" / f"{key}_{s}.csv" for s in ("train", "validation", "test")}
        for key in ("hotel", "shop", "dialogue")
    }


@pytest.mark.parametrize("name", PEERS)
def test_the_recipe_gives_a_peer_adamw_at_its_tuned_rate_its_own_pooling_and_chargpts_size(tmp_path, corpora, name):
    out, files = tmp_path / "out", _split_files(tmp_path / "out")
    chargpt, peer = RecipeArguments(output_dir=str(out)), RecipeArguments(output_dir=str(out), peer=name)
    for builder in (chat_arguments, review_lm_arguments):
        *_, ours = builder(chargpt, out, files)
        *_, theirs = builder(peer, out, files)
        assert (ours.optim, ours.learning_rate) == ("muon", 2e-3)
        assert (theirs.optim, theirs.learning_rate) == (PEER_OPTIMIZER, TUNED_LEARNING_RATES[name])
        # Everything else is the same recipe.
        differing = {k for k, v in ours.to_dict().items() if theirs.to_dict()[k] != v}
        assert differing <= {"optim", "learning_rate"}
    assert classifier_arguments(chargpt, out, out / "review-lm", files)[0].pooling == "mean"
    assert classifier_arguments(peer, out, out / "review-lm", files)[0].pooling is None
    assert chat_training_arguments(peer, out).num_train_epochs == chat_training_arguments(chargpt, out).num_train_epochs
    # The peer is built at the size CharGPT's arguments describe (train_lm.py's 256 hidden, 6 layers, 8 heads here).
    model_args = chat_arguments(peer, out, files)[0]
    tokenizer = CharGPTTokenizerFast.from_pretrained(corpora[1])
    model = peer_builder(peer, model_args)(tokenizer)
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.num_attention_heads) == (256, 6, 8)
    assert peer_builder(chargpt, model_args) is None


def test_each_finished_step_rewrites_the_progress_file_with_its_wall_time(tmp_path, capsys):
    report = {"model": "gpt2", "timings_seconds": {}}
    with _step(tmp_path, report, "splits"):
        report["vocab_size"] = 7
    saved = json.loads((tmp_path / PROGRESS_FILE).read_text())
    assert saved["vocab_size"] == 7 and set(saved["timings_seconds"]) == {"splits"}
    with pytest.raises(RuntimeError), _step(tmp_path, report, "chat_model"):
        raise RuntimeError("stopped part way")
    # A step that did not finish leaves the report of the finished ones.
    assert set(json.loads((tmp_path / PROGRESS_FILE).read_text())["timings_seconds"]) == {"splits"}
    assert "[recipe] splits done in" in capsys.readouterr().out


# ----------------------------------------------------------------------------------------------------------------------
# The benchmark section that tabulates the arms


def _write_arm(
    directory,
    finished: bool,
    accuracy: float | None,
    perplexity: float,
    holdout: str | None = None,
    chat_from: str | None = None,
    floor_accuracy: float = 0.84,
):
    directory.mkdir(parents=True)
    chat = {"perplexity": {"model": {"perplexity": perplexity, "perplexity_ci95": [perplexity - 1, perplexity + 1]}}}
    (directory / "chat").mkdir()
    (directory / "chat" / "heldout_evaluation.json").write_text(json.dumps(chat))
    if accuracy is not None:
        floor = {"accuracy": floor_accuracy, "accuracy_ci95": [floor_accuracy - 0.03, floor_accuracy + 0.03]}
        model = {"accuracy": accuracy, "accuracy_ci95": [accuracy - 0.03, accuracy + 0.03]}
        sentiment = {"sentiment": {"model": model}}
        sentiment["sentiment"]["tfidf_logreg"] = floor
        if holdout:  # a pooled cross-domain test, scored category by category
            phones, milk = {"accuracy": 0.8, "accuracy_ci95": [0.78, 0.82], "n": 2323}, {"accuracy": 0.9, "n": 2033}
            sentiment["cross_domain"] = {"model": model, "by_category": {"手机": phones, "蒙牛": milk}}
        (directory / "sentiment").mkdir()
        (directory / "sentiment" / "heldout_evaluation.json").write_text(json.dumps(sentiment))
    report = {
        "arguments": {
            "scale": "gpu",
            "peer": None if directory.name.startswith("chargpt") else directory.name,
            **({"holdout_category": holdout} if holdout else {}),
            **({"extra_labelled": False} if chat_from else {}),
        },
        "model": directory.name,
        "timings_seconds": {"splits": 20.0, "chat_model": 100.0},
        **({"chat_from": {"directory": chat_from, "timings_seconds": {"chat_model": 600.0}}} if chat_from else {}),
        "chat_training": {"eval": {"eval_loss": 4.0}},
        "classifier_training": {"eval": {"eval_macro_f1": 0.9}},
    }
    (directory / ("recipe_report.json" if finished else PROGRESS_FILE)).write_text(json.dumps(report))


def test_the_peers_section_tabulates_finished_and_stopped_runs_from_their_files(tmp_path):
    from benchmarks.recipe_peers import run_recipe_peers_section
    from benchmarks.report import _recipe_peers_md
    from benchmarks.settings import BenchmarkArguments

    _write_arm(tmp_path / "chargpt", finished=True, accuracy=0.85, perplexity=63.9)
    _write_arm(tmp_path / "llama", finished=False, accuracy=None, perplexity=62.7)
    _write_arm(tmp_path / "chargpt-pooled", finished=True, accuracy=0.86, perplexity=64.0, holdout="手机,蒙牛")
    reused = str(tmp_path / "chargpt")
    _write_arm(tmp_path / "chargpt-hotel", True, accuracy=0.88, perplexity=63.9, chat_from=reused, floor_accuracy=0.87)
    names = ("chargpt", "llama", "chargpt-pooled", "chargpt-hotel")
    args = BenchmarkArguments(recipe_peer_dirs=[f"{name}={tmp_path / name}" for name in names])
    section = run_recipe_peers_section(args, str(tmp_path))
    chargpt, llama, pooled, hotel = section["arms"]
    assert chargpt["extra_labelled"] and not hotel["extra_labelled"] and hotel["chat_from"]["directory"] == reused
    assert pooled["by_category"]["phones"]["n"] == 2323 and chargpt["by_category"] is None
    assert chargpt["finished"] and not llama["finished"]
    assert chargpt["figures"]["sentiment_accuracy"] == 0.85 and "sentiment_accuracy" not in llama["figures"]
    assert llama["figures"]["chat_heldout_perplexity"] == 62.7  # from the held-out report the run left
    lines = "\n".join(_recipe_peers_md(section))
    assert "`--scale gpu`:" in lines
    mixed = "hotel + other categories"
    assert f"| chargpt | {mixed} | books | 0.8500 [0.8200, 0.8800] | n/a | 63.90 [62.90, 64.90] |" in lines
    assert f"| llama (stopped after chat_model) | {mixed} | books | n/a | n/a | 62.70 [61.70, 63.70] |" in lines
    assert f"| chargpt-pooled | {mixed} | 手机, 蒙牛 | 0.8600 [0.8300, 0.8900] | 0.8600 [0.8300, 0.8900] |" in lines
    assert "cross-domain accuracy by category: phones 0.8000 [0.7800, 0.8200] (n=2323), milk 0.9000 (n=2033)" in lines
    assert "| chargpt-hotel | hotel only | books | 0.8800 [0.8500, 0.9100] |" in lines
    assert "| 0.900 | 2.0 + reused chat |" in lines  # its own steps' minutes; the reused ones are named below
    assert f"reused from `{reused}` (`--chat_from`; their steps took 10.0 min there)" in lines
    # One floor for each set of training and held-out reviews, refit on the same files as the arms beside it.
    floor = "| TF-IDF + LR floor (same training files) |"
    assert f"{floor} {mixed} | books | 0.8400 [0.8100, 0.8700] |" in lines
    assert f"{floor} {mixed} | 手机, 蒙牛 | 0.8400 [0.8100, 0.8700] |" in lines
    assert f"{floor} hotel only | books | 0.8700 [0.8400, 0.9000] |" in lines
    assert lines.count(floor) == 3


def _add_predictions(directory, task: str, labels: list[int], predictions: list[int], digest: str = "rows-a"):
    path = directory / "sentiment" / "heldout_evaluation.json"
    report = json.loads(path.read_text())
    report.setdefault(task, {"model": {"accuracy": 0.5}})["predictions"] = {
        "rows_sha256": digest,
        "labels": labels,
        "model": predictions,
    }
    path.write_text(json.dumps(report))


def test_each_peer_is_compared_with_chargpt_paired_over_the_same_test_reviews(tmp_path):
    from benchmarks.recipe_peers import run_recipe_peers_section
    from benchmarks.report import _recipe_peers_md
    from benchmarks.settings import BenchmarkArguments
    from chargpt.evaluation.classification import classification_difference

    labels = [0, 1] * 50
    ours = labels[:90] + [1 - y for y in labels[90:]]  # 90% right
    theirs = labels[:80] + [1 - y for y in labels[80:]]  # 80% right, wrong wherever CharGPT is
    for name in ("chargpt", "gpt2", "llama", "chargpt-pooled"):
        holdout = "手机,蒙牛" if name == "chargpt-pooled" else None
        _write_arm(tmp_path / name, finished=True, accuracy=0.85, perplexity=60.0, holdout=holdout)
        _add_predictions(tmp_path / name, "sentiment", labels, theirs if name != "chargpt" else ours)
    _add_predictions(tmp_path / "chargpt", "cross_domain", labels, ours)
    _add_predictions(tmp_path / "gpt2", "cross_domain", labels, theirs, digest="rows-b")  # another test: not paired
    names = ("chargpt", "gpt2", "llama", "chargpt-pooled")
    args = BenchmarkArguments(recipe_peer_dirs=[f"{name}={tmp_path / name}" for name in names])
    chargpt, gpt2, llama, pooled = run_recipe_peers_section(args, "")["arms"]
    assert "chargpt_minus_this" not in chargpt and "chargpt_minus_this" not in pooled
    paired = gpt2["chargpt_minus_this"]
    assert paired["against"] == "chargpt" and set(paired) == {"against", "sentiment"}
    assert paired["sentiment"] == classification_difference(labels, ours, theirs)
    assert paired["sentiment"]["accuracy"] == pytest.approx(0.10)
    low, high = paired["sentiment"]["accuracy_ci95"]
    assert 0 < low < 0.10 < high  # CharGPT right on ten reviews GPT-2 gets wrong and never the other way
    assert llama["chargpt_minus_this"]["sentiment"]["accuracy"] == pytest.approx(0.10)
    lines = "\n".join(_recipe_peers_md({"arms": [chargpt, gpt2, llama, pooled]}))
    row = f"| chargpt minus gpt2 | hotel + other categories | +10.0 [{100 * low:+.1f}, {100 * high:+.1f}] | n/a |"
    assert row in lines


@pytest.mark.parametrize("item, message", [("chargpt", "NAME=DIR"), ("gpt2=/nonexistent", "no recipe_report.json")])
def test_the_peers_section_names_a_bad_directory_argument(item, message):
    from benchmarks.recipe_peers import run_recipe_peers_section
    from benchmarks.settings import BenchmarkArguments

    with pytest.raises((ValueError, FileNotFoundError), match=message):
        run_recipe_peers_section(BenchmarkArguments(recipe_peer_dirs=[item]), "")
