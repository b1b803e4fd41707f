"""`chargpt publish`: the hub-ready directory, its model card, and loading it where chargpt cannot be imported."""

import json
import os
import subprocess
import sys

import pytest
import torch
from huggingface_hub import ModelCard

from chargpt.chat import ChatSession
from chargpt.cli import main
from chargpt.evaluation import bootstrap_settings, classification_scores
from chargpt.publish import TEMPLATE_PATH, collect_training_info, validate_card
from chargpt.tasks import sample_replies

from .chargpt_tester import CharGPTTester


def _fake_training_output(directory, task="causal-lm"):
    """What the training scripts leave beside the model: trainer_state.json, *_results.json, a curves PNG."""
    directory.mkdir(parents=True, exist_ok=True)
    history = [{"step": s, "epoch": s / 100, "loss": 5.0 - s / 100, "learning_rate": 3e-4} for s in (10, 50, 100)]
    history += [{"step": 100, "epoch": 1.0, "eval_loss": 4.25}, {"step": 100, "train_runtime": 90.0}]
    state = {"global_step": 100, "epoch": 1.0, "train_batch_size": 16, "log_history": history}
    (directory / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
    if task == "causal-lm":
        evals = {"eval_loss": 4.25, "eval_perplexity": 70.1, "eval_runtime": 1.5, "epoch": 1.0}
        tests = {"test_loss": 4.5, "test_samples_per_second": 99.0}
    else:
        evals = {"eval_loss": 0.4, "eval_accuracy": 0.875, "eval_macro_f1": 0.86}
        tests = {"test_accuracy": 0.85}
    (directory / "eval_results.json").write_text(json.dumps(evals), encoding="utf-8")
    (directory / "test_results.json").write_text(json.dumps(tests), encoding="utf-8")
    (directory / "loss.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 16)
    return directory


def _script(directory):
    """A chat script of five user turns (the fewest allowed): one short sample conversation."""
    script = directory / "script.txt"
    script.write_text("你好\n今天天气很好\n我们去公园散步吧\n最近怎么样\n早餐太差了\n", encoding="utf-8")
    return script


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("publish")
    tester = CharGPTTester(n_positions=64)
    lm_dir, cls_dir = root / "lm", root / "cls"
    tester.lm().save_pretrained(lm_dir)
    tester.tokenizer.save_pretrained(lm_dir)
    _fake_training_output(lm_dir)
    classifier = tester.classifier(
        num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1}
    )
    classifier.save_pretrained(cls_dir)
    tester.tokenizer.save_pretrained(cls_dir)
    _fake_training_output(root / "cls-training", task="sequence-classification")
    return {"root": root, "lm": lm_dir, "cls": cls_dir, "cls_training": root / "cls-training", "tester": tester}


_LOAD_WITHOUT_CHARGPT = r"""
import json, sys
sys.modules["chargpt"] = None  # `import chargpt` now fails: only the directory's own code can be used
import torch
from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification,
                          AutoTokenizer, GenerationConfig)
path = sys.argv[1]
tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=True)
lm = AutoModelForCausalLM.from_pretrained(path, trust_remote_code=True).eval()
base = AutoModel.from_pretrained(path, trust_remote_code=True).eval()
config = AutoConfig.from_pretrained(path, trust_remote_code=True)
ids = torch.tensor([[3, 10, 11, 12]])
with torch.no_grad():
    logits = lm(ids).logits[0, -1].tolist()
prompt = tokenizer.apply_chat_template([{"role": "user", "content": "你好"}], add_generation_prompt=True,
                                       tokenize=False)
print(json.dumps({"modules": [type(m).__module__ for m in (tokenizer, lm, base, config)], "logits": logits,
                  "prompt": prompt, "eos": GenerationConfig.from_pretrained(path).eos_token_id}))
"""


def test_published_chat_model_loads_without_chargpt_and_its_card_has_hub_metadata(saved, capsys):
    out = saved["root"] / "published-lm"
    rc = main(
        [
            "publish",
            str(saved["lm"]),
            str(out),
            "--datasets",
            "thu-coai/lccc",
            "--tags",
            "chat",
            "--repo_id",
            "someone/chargpt-chat",
            "--verify_load",
            "false",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    files = set(os.listdir(out))
    assert {
        "README.md",
        "config.json",
        "model.safetensors",
        "generation_config.json",
        "configuration_chargpt.py",
        "modeling_chargpt.py",
        "tokenization_chargpt.py",
        "tokenizer_config.json",
        "vocab.json",
        "chat_template.jinja",
        "loss.png",
    } <= files
    auto_map = json.loads((out / "config.json").read_text(encoding="utf-8"))["auto_map"]
    assert set(auto_map) == {"AutoConfig", "AutoModel", "AutoModelForCausalLM", "AutoModelForSequenceClassification"}

    proc = subprocess.run(
        [sys.executable, "-c", _LOAD_WITHOUT_CHARGPT, str(out)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=out,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    loaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert all(m.startswith("transformers_modules") for m in loaded["modules"]), loaded["modules"]
    with torch.no_grad():
        expected = saved["tester"].lm()(torch.tensor([[3, 10, 11, 12]])).logits[0, -1]
    assert torch.allclose(torch.tensor(loaded["logits"]), expected, atol=1e-5)
    assert loaded["prompt"] == "<bos>你好<sep>" and loaded["eos"] == [2, 4]

    card = ModelCard.load(out / "README.md")
    data = card.data.to_dict()
    assert {"language", "license", "library_name", "pipeline_tag", "tags", "datasets", "metrics", "model-index"} <= set(
        data
    )
    assert (data["language"], data["license"], data["library_name"], data["pipeline_tag"]) == (
        "zh",
        "apache-2.0",
        "transformers",
        "text-generation",
    )
    assert data["datasets"] == ["thu-coai/lccc"] and {"chargpt", "chat"} <= set(data["tags"])
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results == {
        ("validation", "loss"): 4.25,
        ("validation", "perplexity"): 70.1,
        ("test", "loss"): 4.5,
        ("test", "perplexity"): pytest.approx(90.0171, abs=1e-3),
    }  # exp(4.5), derived
    text = card.text
    assert "| Parameters | " in text and "| Context length (characters) | 64 |" in text
    assert 'from_pretrained("someone/chargpt-chat", trust_remote_code=True)' in text and "![loss.png](loss.png)" in text
    conversations = text.split("## Sample conversations")[1].split("## Limitations")[0].split("### Conversation ")[1:]
    assert len(conversations) == 3
    for conversation in conversations:
        lines = conversation.splitlines()
        assert sum(line.startswith(("User: ", "Bot: ")) for line in lines) >= 10


def test_published_classifier_is_verified_in_a_fresh_python_and_tagged_for_classification(saved, capsys):
    out = saved["root"] / "published-cls"
    rc = main(
        [
            "publish",
            str(saved["cls"]),
            str(out),
            "--training_dir",
            str(saved["cls_training"]),
            "--datasets",
            "seamew/ChnSentiCorp",
            "--license",
            "mit",
        ]
    )
    assert rc == 0, capsys.readouterr().err
    assert "generation_config.json" not in os.listdir(out)
    card = ModelCard.load(out / "README.md")
    assert (card.data.pipeline_tag, card.data.license) == ("text-classification", "mit")
    assert {(r.dataset_split, r.metric_type) for r in card.data.eval_results} == {
        ("validation", "loss"),
        ("validation", "accuracy"),
        ("validation", "macro_f1"),
        ("test", "accuracy"),
    }
    assert "## Sample conversations" not in card.text and "| Labels | 0: negative, 1: positive |" in card.text


def test_publish_format_transformers_writes_a_native_folder_whose_card_names_its_engines(saved, capsys):
    out = saved["root"] / "published-native"
    rc = main(["publish", str(saved["lm"]), str(out), "--format", "transformers", "--repo_id", "someone/chat"])
    assert rc == 0, capsys.readouterr().err
    files = set(os.listdir(out))
    assert {"README.md", "config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= files
    assert not [f for f in files if f.endswith(".py")]
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["architectures"] == ["GPT2LMHeadModel"]
    text = ModelCard.load(out / "README.md").text
    assert 'from_pretrained("someone/chat")' in text and "trust_remote_code=True)" not in text
    assert "`GPT2LMHeadModel`" in text and "transformers serve" in text and "vLLM" in text

    mean = saved["root"] / "mean-cls"
    saved["tester"].classifier(num_labels=2, classifier_pooling="mean").save_pretrained(mean)
    saved["tester"].tokenizer.save_pretrained(mean)
    assert main(["publish", str(mean), str(saved["root"] / "published-mean"), "--format", "transformers"]) == 1
    assert "classifier_pooling='mean' has no native equivalent" in capsys.readouterr().err
    assert not os.path.exists(saved["root"] / "published-mean")


def test_publish_uses_given_chat_scripts_and_refuses_short_ones(saved, tmp_path, capsys):
    out = tmp_path / "published"
    assert (
        main(
            ["publish", str(saved["lm"]), str(out), "--chat_scripts", str(_script(tmp_path)), "--verify_load", "false"]
        )
        == 0
    )
    text = (out / "README.md").read_text(encoding="utf-8")
    assert "### Conversation 1 (10 turns)" in text and "### Conversation 2" not in text
    assert "User: 我们去公园散步吧" in text
    short = tmp_path / "short.txt"
    short.write_text("你好\n再见\n", encoding="utf-8")
    assert main(["publish", str(saved["lm"]), str(tmp_path / "other"), "--chat_scripts", str(short)]) == 1
    assert "at least 5" in capsys.readouterr().err and not (tmp_path / "other").exists()


def test_publish_draws_the_training_curves_from_the_log_as_training_does(saved, tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the curves are drawn with matplotlib (pip install 'chargpt[plots]')")
    model_dir = tmp_path / "lm"
    saved["tester"].lm().save_pretrained(model_dir)
    saved["tester"].tokenizer.save_pretrained(model_dir)
    (_fake_training_output(model_dir) / "loss.png").unlink()  # no curves to copy: drawn from trainer_state.json
    out = tmp_path / "published"
    assert (
        main(["publish", str(model_dir), str(out), "--verify_load", "false", "--chat_scripts", str(_script(tmp_path))])
        == 0
    ), capsys.readouterr().err
    drawn = (out / "loss.png").read_bytes()
    assert drawn[:8] == b"\x89PNG\r\n\x1a\n" and len(drawn) > 1000  # a real image, not a stand-in
    assert "![loss.png](loss.png)" in (out / "README.md").read_text(encoding="utf-8")


def test_the_cards_chat_replies_are_the_one_samplers_replies(saved):
    # The card's conversations come from the chat session, which samples through chargpt.tasks.sample_replies: its
    # (greedy) reply to a first message is the sampler's reply to that post, alone or in a left-padded batch.
    model, tokenizer = saved["tester"].lm(), saved["tester"].tokenizer
    settings = {"do_sample": False, "max_new_tokens": 8}
    session = ChatSession(model, tokenizer, settings)
    chat_reply = session.respond(session.prepare("你好")).text.strip()
    alone = sample_replies(model, tokenizer, ["你好"], **settings)
    batched = sample_replies(model, tokenizer, ["今天天气很好，我们去公园散步吧", "你好"], batch_size=2, **settings)
    assert chat_reply and chat_reply == alone[0] == batched[1]


def test_publish_refuses_to_overwrite_unless_asked_and_leaves_no_partial_directory(saved, tmp_path, capsys):
    out = tmp_path / "published"
    out.mkdir()
    (out / "keep.txt").write_text("x", encoding="utf-8")
    assert main(["publish", str(saved["cls"]), str(out), "--verify_load", "false"]) == 1
    assert "--overwrite" in capsys.readouterr().err and os.listdir(out) == ["keep.txt"]
    assert main(["publish", str(saved["cls"]), str(out), "--verify_load", "false", "--license", "not-a-licence"]) == 1
    assert "not a Hub licence id" in capsys.readouterr().err
    assert main(["publish", str(saved["cls"]), str(out), "--verify_load", "false", "--overwrite"]) == 0
    assert "keep.txt" not in os.listdir(out) and "README.md" in os.listdir(out)
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".published.tmp")]
    notes = capsys.readouterr().err
    assert "No trainer_state.json" in notes and "No --datasets given" in notes


def test_training_info_falls_back_to_the_newest_checkpoint_and_the_log(tmp_path):
    for step, loss in ((50, 3.0), (100, 2.0)):
        checkpoint = tmp_path / f"checkpoint-{step}"
        checkpoint.mkdir()
        state = {
            "global_step": step,
            "log_history": [{"step": step, "loss": loss + 0.5}, {"step": step, "eval_loss": loss}],
        }
        (checkpoint / "trainer_state.json").write_text(json.dumps(state), encoding="utf-8")
    notes = []
    info = collect_training_info(str(tmp_path), "causal-lm", notes)
    assert info["state_dir"].endswith("checkpoint-100")
    assert ("optimizer steps", 100) in info["settings"] and ("final training loss", 2.5) in info["settings"]
    rows = {(split, metric): value for split, metric, value, _ in info["eval_rows"]}
    assert rows == {("validation", "loss"): 2.0, ("validation", "perplexity"): pytest.approx(7.3891, abs=1e-4)}
    assert notes == []


def test_card_validation_names_missing_metadata(tmp_path):
    card = tmp_path / "README.md"
    metadata = "language: zh\nlibrary_name: transformers\npipeline_tag: text-generation\ntags:\n- x\n"
    card.write_text(f"---\n{metadata}---\n# m\n", encoding="utf-8")
    with pytest.raises(ValueError, match="'license' is missing"):
        validate_card(str(card), "causal-lm", 0)
    with pytest.raises(ValueError, match="pipeline_tag"):
        validate_card(str(card), "sequence-classification", 0)


def test_the_card_template_ships_inside_the_package():
    # pyproject's package-data `templates/*` installs it; model_cards/README.md points here.
    assert os.path.isfile(TEMPLATE_PATH) and os.path.dirname(TEMPLATE_PATH).endswith(
        os.path.join("chargpt", "templates")
    )
    assert "{{ card_data }}" in open(TEMPLATE_PATH, encoding="utf-8").read()


def _heldout_report(with_intervals: bool) -> dict:
    """A classifier's heldout_evaluation.json as run_evaluation.py writes it, or as it was before intervals."""
    labels, model, floor = [0, 1] * 50, [0, 1] * 43 + [1, 0] * 7, [0, 1] * 40 + [1, 0] * 10
    report = {
        "model_kind": "sequence-classification",
        "sentiment": {
            "split": {},
            "model": classification_scores(labels, model, intervals=with_intervals),
            "tfidf_logreg": classification_scores(labels, floor, intervals=with_intervals),
        },
    }
    if with_intervals:
        report["intervals"] = bootstrap_settings()
    return report


@pytest.mark.parametrize("with_intervals", [True, False])
def test_the_card_shows_each_held_out_figure_with_its_interval_and_old_reports_without(saved, tmp_path, with_intervals):
    training = _fake_training_output(tmp_path / "training", task="sequence-classification")
    report = _heldout_report(with_intervals)
    (training / "heldout_evaluation.json").write_text(json.dumps(report), encoding="utf-8")
    out = tmp_path / "published"
    args = [str(saved["cls"]), str(out), "--training_dir", str(training), "--verify_load", "false"]
    assert main(["publish", *args]) == 0
    card = ModelCard.load(out / "README.md")
    model, floor = report["sentiment"]["model"], report["sentiment"]["tfidf_logreg"]
    row = f"| ChnSentiCorp balanced held-out test | accuracy | {model['accuracy']} |"
    floor_row = f"| ChnSentiCorp balanced held-out test | {FLOOR} | accuracy | {floor['accuracy']} |"
    if with_intervals:
        low, high = (round(bound, 4) for bound in model["accuracy_ci95"])
        assert f"{row} [{low}, {high}] |" in card.text and low < model["accuracy"] < high
        low, high = (round(bound, 4) for bound in floor["accuracy_ci95"])
        assert f"{floor_row} [{low}, {high}] |" in card.text
        assert "| validation | accuracy | 0.875 |  |" in card.text  # the Trainer's figures have none
        assert "intervals are 95% percentile bootstrap intervals over the test rows" in card.text
        assert "(1000 resamples, seed 0)" in card.text
    else:
        assert f"{row}\n" in card.text and f"{floor_row}\n" in card.text
        assert "interval" not in card.text and "| validation | accuracy | 0.875 |\n" in card.text
    # The model-index holds the figures alone, as before.
    results = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert results[("ChnSentiCorp balanced held-out test", "accuracy")] == model["accuracy"] == 0.86


FLOOR = "TF-IDF character 1-3-grams + logistic regression, same training files"
