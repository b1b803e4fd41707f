"""Auto classes, hub-style directories, trust_remote_code loading without the package, and pipelines."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    pipeline,
)

from chargpt import CharGPTConfig, CharGPTForCausalLM, CharGPTModel, CharGPTTokenizer, CharGPTTokenizerFast

from .chargpt_tester import CharGPTTester


CODE_FILES = {
    "configuration_chargpt.py",
    "modeling_chargpt.py",
    "tokenization_chargpt.py",
    "tokenization_chargpt_fast.py",
}


@pytest.fixture
def saved(tmp_path):
    """A hub-style directory written by the package's save path (model + fast tokenizer save_pretrained, as the
    training pipelines do)."""
    tester = CharGPTTester()
    model = tester.lm(seed=11)
    model.save_pretrained(tmp_path)
    fast = CharGPTTokenizerFast(vocab=tester.tokenizer.vocab, model_max_length=tester.config.n_positions)
    fast.save_pretrained(tmp_path)
    return tmp_path, model, tester


def test_saved_directory_is_hub_style_with_auto_map_for_every_auto_class(saved):
    path, _, _ = saved
    files = set(os.listdir(path))
    assert {"config.json", "model.safetensors", "generation_config.json", "vocab.json", "tokenizer.json"} <= files
    assert "tokenizer_config.json" in files
    assert CODE_FILES <= files
    assert not any(name.endswith(".bin") for name in files)
    auto_map = json.loads((path / "config.json").read_text())["auto_map"]
    assert auto_map == {
        "AutoConfig": "configuration_chargpt.CharGPTConfig",
        "AutoModel": "modeling_chargpt.CharGPTModel",
        "AutoModelForCausalLM": "modeling_chargpt.CharGPTForCausalLM",
        "AutoModelForSequenceClassification": "modeling_chargpt.CharGPTForSequenceClassification",
    }
    tok_config = json.loads((path / "tokenizer_config.json").read_text())
    assert tok_config["auto_map"]["AutoTokenizer"] == [
        "tokenization_chargpt.CharGPTTokenizer",
        "tokenization_chargpt_fast.CharGPTTokenizerFast",
    ]
    gen = json.loads((path / "generation_config.json").read_text())
    assert gen["do_sample"] is True and sorted(gen["eos_token_id"]) == [2, 4]


def test_modeling_module_imports_only_the_configuration_module():
    import chargpt.modeling_chargpt as modeling

    source = open(modeling.__file__, encoding="utf-8").read()
    local_imports = [line for line in source.splitlines() if line.startswith("from .")]
    assert len(local_imports) == 1 and local_imports[0].startswith("from .configuration_chargpt import "), local_imports


def test_fast_tokenizer_module_imports_only_the_slow_tokenizer_module():
    import chargpt.tokenization_chargpt as slow
    import chargpt.tokenization_chargpt_fast as fast

    for module, allowed in ((fast, ["from .tokenization_chargpt import ("]), (slow, [])):
        source = open(module.__file__, encoding="utf-8").read()
        assert [line for line in source.splitlines() if line.startswith("from .")] == allowed


def test_auto_classes_load_a_saved_directory_after_importing_chargpt(saved):
    path, model, tester = saved
    assert isinstance(AutoConfig.from_pretrained(path), CharGPTConfig)
    assert isinstance(AutoTokenizer.from_pretrained(path), CharGPTTokenizerFast)
    assert isinstance(CharGPTTokenizer.from_pretrained(path), CharGPTTokenizer)
    assert isinstance(AutoModel.from_pretrained(path), CharGPTModel)
    lm = AutoModelForCausalLM.from_pretrained(path)
    assert isinstance(lm, CharGPTForCausalLM)
    clf = AutoModelForSequenceClassification.from_pretrained(path, num_labels=3)
    assert clf.score.out_features == 3
    batch = tester.batch()
    torch.testing.assert_close(lm(**batch).logits, model(**batch).logits, atol=1e-5, rtol=1e-5)


REMOTE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["chargpt"] = None  # the package must not be importable: everything comes from the directory
    import json, torch
    from transformers import (AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification,
                              AutoTokenizer, pipeline)
    path = sys.argv[1]
    kw = dict(trust_remote_code=True)
    config = AutoConfig.from_pretrained(path, **kw)
    tok = AutoTokenizer.from_pretrained(path, **kw)
    slow = tok.slow_tokenizer_class.from_pretrained(path, **kw)  # the slow class, from the directory's code too
    lm = AutoModelForCausalLM.from_pretrained(path, **kw).eval()
    base = AutoModel.from_pretrained(path, **kw)
    clf = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2, **kw)
    ids = tok(["今天天气"], return_tensors="pt")
    out = lm.generate(**ids, do_sample=False, max_new_tokens=6, eos_token_id=None)
    gen = pipeline("text-generation", model=path, **kw)("今天", max_new_tokens=4, do_sample=False)
    feats = pipeline("feature-extraction", model=path, **kw)("你好")
    cls = pipeline("text-classification", model=path, **kw)("你好")
    print(json.dumps({
        "modules": [type(o).__module__ for o in (config, tok, slow, lm, base, clf)],
        "classes": [type(o).__name__ for o in (config, tok, slow, lm, base, clf)],
        "ids": [t("Hello 今天\u200b", return_offsets_mapping=False)["input_ids"] for t in (tok, slow)],
        "offsets": tok("今天", return_offsets_mapping=True)["offset_mapping"],
        "generated": out[0].tolist(),
        "tied": lm.lm_head.weight.data_ptr() == lm.transformer.wte.weight.data_ptr(),
        "pipeline_text": gen[0]["generated_text"],
        "feature_shape": [len(feats[0]), len(feats[0][0])],
        "label": cls[0]["label"],
    }))
    """
)


@pytest.mark.slow
def test_directory_loads_with_trust_remote_code_in_a_fresh_process_without_chargpt(saved, tmp_path_factory):
    path, model, tester = saved
    script = tmp_path_factory.mktemp("remote") / "load.py"
    script.write_text(REMOTE_SCRIPT, encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(tmp_path_factory.mktemp("modules"))}
    result = subprocess.run(
        [sys.executable, str(script), str(path)], capture_output=True, text=True, env=env, timeout=300, cwd="/"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert all(m.startswith("transformers_modules.") for m in report["modules"]), report["modules"]
    assert report["classes"] == [
        "CharGPTConfig",
        "CharGPTTokenizerFast",
        "CharGPTTokenizer",
        "CharGPTForCausalLM",
        "CharGPTModel",
        "CharGPTForSequenceClassification",
    ]
    assert report["ids"] == [tester.tokenizer("Hello 今天\u200b")["input_ids"]] * 2
    assert report["offsets"] == [[0, 0], [0, 1], [1, 2]]
    prompt = tester.tokenizer(["今天天气"], return_tensors="pt")
    expected = model.generate(**prompt, do_sample=False, max_new_tokens=6, eos_token_id=None)
    assert report["generated"] == expected[0].tolist()
    assert report["tied"] is True
    assert report["pipeline_text"].startswith("今天") and len(report["pipeline_text"]) > 2
    assert report["feature_shape"][1] == tester.config.n_embd
    assert report["label"] in ("LABEL_0", "LABEL_1")


def test_pipelines_work_on_a_saved_directory(saved):
    path, _, tester = saved
    generated = pipeline("text-generation", model=str(path))("今天", max_new_tokens=5, do_sample=False)
    assert generated[0]["generated_text"].startswith("今天")
    features = pipeline("feature-extraction", model=str(path))("你好")
    assert len(features[0]) == 3 and len(features[0][0]) == tester.config.n_embd  # <bos> + 2 characters
    classified = pipeline("text-classification", model=str(path))(["你好", "今天天气很好"])
    assert [r["label"] for r in classified] and all(0.0 <= r["score"] <= 1.0 for r in classified)


def test_chat_pipeline_formats_messages_with_the_chat_template(saved):
    path, model, tester = saved
    chat = pipeline("text-generation", model=str(path))
    messages = [{"role": "user", "content": "你好"}]
    out = chat(messages, max_new_tokens=4, do_sample=False)
    reply = out[0]["generated_text"][-1]
    assert reply["role"] == "assistant" and isinstance(reply["content"], str)
