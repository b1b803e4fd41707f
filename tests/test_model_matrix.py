"""One test matrix for the model, written once: {each preset and architecture option} x {causal LM, classifier with
last-token pooling, classifier with mean pooling} x {each form the model exists in: PyTorch, the int8 export, the
native transformers export, the GGUF file}. Every form is held to the PyTorch model; each contract check is written
here once.

A form is a row of FORMS: how to build it from the PyTorch model, how to load its directory, and how far its logits
may stray from PyTorch's (the export's own CHECK_TOLERANCE). The int8 export also checks its float32 graph against
PyTorch at 1e-4 on every cell as it is written (`chargpt.int8.check_export`). A form that cannot express a cell (the
native export of a mean-pooled classifier, of an option outside Qwen3's or GPT-2's design) must refuse it by name:
`test_a_form_refuses_exactly_the_cells_it_cannot_express` holds that, and the other checks run a form only on the
cells it expresses (`cells_in_forms`)."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import Callable

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, StaticCache

from chargpt.export import UnsupportedOptionError, choose_target, export_native
from chargpt.export.checks import logits_through_cache
from chargpt.modeling_chargpt import mean_pool

from .chargpt_tester import ARCHITECTURES, HEADS, SAMPLE_TEXTS, matrix_model


int8 = pytest.importorskip("chargpt.int8", reason="the int8 forms need chargpt's int8 export")
pytest.importorskip("onnxruntime", reason="the int8 forms run on onnxruntime: pip install 'chargpt[int8]'")


@dataclass(frozen=True)
class Form:
    """One form of a model. `build(model, tokenizer, directory)` returns something with the PyTorch model's calls
    (`model(input_ids, attention_mask).logits`, `generate`, `embed`); `tolerance` bounds its logits' distance from
    PyTorch's (`chargpt.int8.relative_difference`)."""

    name: str
    build: Callable
    tolerance: float
    load: Callable | None = None  # how a copy of the form's directory is loaded; None: not a directory on disk
    # Whether a token's logits are the same fed alone through the cache or within the whole sequence. Not for dynamic
    # int8, whose activation scales are taken over each call's input.
    exact_steps: bool = True


def _pytorch(model, tokenizer, directory):
    return model


def _int8_export(model, tokenizer, directory):
    int8.export_int8(model, tokenizer, directory)
    return int8.load_int8(directory)


class NativeRunnable:
    """A native transformers model (Qwen3 / GPT-2) called the way the matrix calls every form. A bare forward of
    the native classes counts positions from 0 even in padded rows, while CharGPT counts them from the attention mask;
    given a mask, this passes the position ids generate() itself passes, as docs/export.md tells users to.
    `embed` is CharGPT's definition (the masked mean of the last hidden states, L2-normalised) on the native body."""

    def __init__(self, model):
        self.model = model

    def __call__(self, input_ids, attention_mask=None, **kwargs):
        if attention_mask is not None and "position_ids" not in kwargs:
            kwargs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            return self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)

    def generate(self, *args, **kwargs):
        return self.model.generate(*args, **kwargs)

    def logits_through_cache(self, input_ids, split: int):
        return logits_through_cache(self.model, input_ids, split)

    def embed(self, input_ids, attention_mask=None):
        positions = None if attention_mask is None else (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            hidden = self.model.base_model(
                input_ids=input_ids, attention_mask=attention_mask, position_ids=positions
            ).last_hidden_state
        return F.normalize(mean_pool(hidden, attention_mask), dim=-1)


def _load_native(directory):
    with open(os.path.join(directory, "config.json"), encoding="utf-8") as f:
        causal = json.load(f)["architectures"][0].endswith(("ForCausalLM", "LMHeadModel"))
    auto = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
    return NativeRunnable(auto.from_pretrained(directory, trust_remote_code=False).eval())


def _native_export(model, tokenizer, directory):
    export_native(model, tokenizer, directory)
    return _load_native(directory)


GGUF_FILE = "model.gguf"


def _load_gguf(directory):
    from chargpt.export import load_gguf_in_transformers

    return NativeRunnable(load_gguf_in_transformers(os.path.join(directory, GGUF_FILE)))


def _gguf_export(model, tokenizer, directory):
    """The f32 GGUF file (llama.cpp's qwen3), as transformers reads it back: llama.cpp itself is checked against
    PyTorch by benchmarks/llama_cpp_check.py, which compiles it."""
    from chargpt.export import export_gguf

    os.makedirs(directory, exist_ok=True)
    try:
        export_gguf(model, tokenizer, os.path.join(directory, GGUF_FILE))
    except ValueError:
        os.rmdir(directory)
        raise
    return _load_gguf(directory)


FORMS = {
    "pytorch": Form("pytorch", _pytorch, tolerance=1e-5),
    "int8": Form("int8", _int8_export, tolerance=int8.CHECK_TOLERANCE["int8"], load=int8.load_int8, exact_steps=False),
    "native": Form("native", _native_export, tolerance=1e-5, load=_load_native),
}
try:
    import gguf  # noqa: F401

    FORMS["gguf"] = Form("gguf", _gguf_export, tolerance=1e-5, load=_load_gguf)
except ImportError:  # the GGUF form needs the `gguf` package (pip install 'chargpt[gguf]'); the others run without
    pass


def padding_sides(runnable) -> tuple:
    """The padding sides a form takes: it says so itself (an int8 causal LM sees no padding mask), else both."""
    return getattr(runnable, "padding_sides", ("left", "right"))


CELLS = [(a, h) for a in ARCHITECTURES for h in HEADS]
LM_CELLS = [(a, h) for a, h in CELLS if h == "lm"]
CLASSIFIER_CELLS = [(a, h) for a, h in CELLS if h != "lm"]


def _ids(cells):
    return [f"{a}-{h}" for a, h in cells]


class Zoo:
    """Each cell's PyTorch model and each of its forms, built once per test module."""

    def __init__(self, root):
        self.root, self._models, self._forms = root, {}, {}

    def model(self, architecture, head):
        if (architecture, head) not in self._models:
            self._models[architecture, head] = matrix_model(architecture, head)
        return self._models[architecture, head]

    def form(self, architecture, head, form):
        key = (architecture, head, form)
        if key not in self._forms:
            tester, model = self.model(architecture, head)
            self._forms[key] = FORMS[form].build(model, tester.tokenizer, str(self.root / "-".join(key)))
        return self._forms[key]


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    return Zoo(tmp_path_factory.mktemp("matrix"))


def assert_close_to_pytorch(got, expected, form: Form, what: str):
    """`got` within the form's tolerance of PyTorch's `expected`, measured as the export's own check measures it."""
    assert got.shape == expected.shape, f"{what}: shape {tuple(got.shape)} != {tuple(expected.shape)}"
    relative = int8.relative_difference(got, expected)
    assert relative <= form.tolerance, (
        f"{form.name} {what} differs from PyTorch by {relative:.3g} (RMS ratio; tolerance {form.tolerance})"
    )


def argmax_loop(model, input_ids, new_tokens):
    """Greedy continuation that recomputes the whole forward without any cache at every step, so the reference does
    not depend on generate()."""
    ids = input_ids
    for _ in range(new_tokens):
        logits = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits[:, -1]
        ids = torch.cat([ids, logits.argmax(dim=-1, keepdim=True)], dim=1)
    return ids[:, input_ids.shape[1] :]


GREEDY = dict(do_sample=False, max_new_tokens=12, min_new_tokens=12, eos_token_id=None, pad_token_id=0)
PROMPTS = ["你好", "今天天气很好，我们", "我喜欢看"]
# The cells the native export writes (GPT-2 for course, Qwen3 for modern, each as a causal LM or a last-token
# classifier), and for every other cell the option its refusal must name.
NATIVE_CELLS = {("course", "lm"), ("course", "cls-last"), ("modern", "lm"), ("modern", "cls-last")}
NATIVE_REFUSAL = {
    "rope": "normalization",
    "rmsnorm": "normalization",
    "gated_mlp": "gated_mlp",
    "relu2": "activation_function",
    "qk_norm": "qk_norm",
}


# The forms that express only some cells: the GGUF export holds rotary causal LMs (llama.cpp's qwen3).
FORM_CELLS = {"native": NATIVE_CELLS, "gguf": {("modern", "lm")}}


def expresses(form: str, architecture: str, head: str) -> bool:
    return form not in FORM_CELLS or (architecture, head) in FORM_CELLS[form]


def cells_in_forms(cells, forms):
    """Parametrize (architecture, head, form) over the cells each form expresses."""
    params = [pytest.param(a, h, f, id=f"{a}-{h}-{f}") for a, h in cells for f in forms if expresses(f, a, h)]
    return pytest.mark.parametrize("architecture, head, form", params)


ALL_FORMS = list(FORMS)
EXPORTED_FORMS = [f for f in FORMS if f != "pytorch"]
DIRECTORY_FORMS = [f for f in FORMS if f == "pytorch" or FORMS[f].load]
lm_cells = pytest.mark.parametrize("architecture, head", LM_CELLS, ids=_ids(LM_CELLS))
classifier_cells = pytest.mark.parametrize("architecture, head", CLASSIFIER_CELLS, ids=_ids(CLASSIFIER_CELLS))
all_cells = pytest.mark.parametrize("architecture, head", CELLS, ids=_ids(CELLS))


# ------------------------------------------------------------------------------------ what each form can express


@all_cells
def test_a_form_refuses_exactly_the_cells_it_cannot_express(zoo, architecture, head):
    """int8 expresses every cell; the native export the presets' causal LMs and last-token classifiers, the GGUF
    export the modern causal LM; each refuses the rest with one line (the native export's names the option) before
    writing anything."""
    tester, model = zoo.model(architecture, head)
    task = "causal-lm" if head == "lm" else "sequence-classification"
    if (architecture, head) in NATIVE_CELLS:
        assert choose_target(model.config, task).name == {"course": "gpt2", "modern": "qwen3"}[architecture]
    for form, cells in FORM_CELLS.items():
        if form not in FORMS or (architecture, head) in cells:
            continue
        directory = zoo.root / f"refused-{architecture}-{head}-{form}"
        option = NATIVE_REFUSAL.get(architecture, "classifier_pooling") if form == "native" else ""
        with pytest.raises(UnsupportedOptionError, match=rf"^{option}") as err:
            FORMS[form].build(model, tester.tokenizer, str(directory))
        assert "\n" not in str(err.value)
        assert not directory.exists()


# ------------------------------------------------------------------------------------ forward, loss, task output


@all_cells
def test_forward_shapes_scalar_loss_and_backward_reach_every_parameter(zoo, architecture, head):
    tester, model = matrix_model(architecture, head)  # a fresh copy: training mode and gradients stay here
    batch = tester.batch()
    if head == "lm":
        labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
        shape = (*batch["input_ids"].shape, tester.config.vocab_size)
    else:
        labels, shape = torch.tensor([0, 2]), (2, 3)
    out = model.train()(**batch, labels=labels)
    assert out.logits.shape == shape and out.loss.dim() == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


@cells_in_forms(CELLS, EXPORTED_FORMS)
def test_task_output_matches_pytorch_on_a_right_padded_batch(zoo, architecture, head, form):
    """A classifier's pooled logits (and its predictions), a causal LM's logits at every real position."""
    tester, model = zoo.model(architecture, head)
    batch = tester.batch(SAMPLE_TEXTS, padding_side="right")
    with torch.no_grad():
        expected = model(**batch).logits
    got = zoo.form(architecture, head, form)(**batch).logits
    if head == "lm":
        real = batch["attention_mask"].bool()
        expected, got = expected[real], got[real]
    else:  # the same predictions, except where PyTorch's top two are closer than the form's rounding can move them
        top2 = expected.topk(2, dim=-1).values
        clear = (top2[:, 0] - top2[:, 1]) > FORMS[form].tolerance * expected.pow(2).mean().sqrt()
        assert clear.any() and torch.equal(got.argmax(-1)[clear], expected.argmax(-1)[clear]), "predictions differ"
    assert_close_to_pytorch(got, expected, FORMS[form], "logits")


@cells_in_forms(CLASSIFIER_CELLS, ALL_FORMS)
def test_classifier_pools_as_configured_whatever_the_padding_side(zoo, architecture, head, form):
    tester, model = zoo.model(architecture, head)
    runnable = zoo.form(architecture, head, form)
    alone = runnable(**tester.batch(("你好",))).logits
    for side in ("left", "right"):
        batch = tester.batch(("你好", "今天天气很好"), padding_side=side)
        if side not in padding_sides(runnable):
            with pytest.raises(ValueError, match="right padding"):
                runnable(**batch)
            continue
        padded = runnable(**batch).logits
        assert_close_to_pytorch(padded[0], alone[0], FORMS[form], f"{side}-padded row")
    # The PyTorch head reads exactly the configured pooling of the body's last hidden states.
    batch = tester.batch(("你好", "今天天气很好"))
    with torch.no_grad():
        hidden = model.transformer(**batch).last_hidden_state
    last = batch["attention_mask"].sum(dim=1) - 1
    pooled = {"cls-mean": mean_pool(hidden, batch["attention_mask"]), "cls-last": hidden[torch.arange(2), last]}[head]
    with torch.no_grad():
        expected = model.score(pooled)
    assert_close_to_pytorch(runnable(**batch).logits, expected, FORMS[form], "pooled logits")


@pytest.mark.parametrize("padding_side", ["left", "right"])
def test_classifier_loss_is_cross_entropy_of_the_pooled_logits(zoo, padding_side):
    tester, model = zoo.model("course", "cls-last")
    batch, labels = tester.batch(("你好", "今天天气很好"), padding_side=padding_side), torch.tensor([0, 2])
    out = model(**batch, labels=labels)
    torch.testing.assert_close(out.loss, torch.nn.functional.cross_entropy(out.logits, labels), atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------------- cache and generation


@cells_in_forms(LM_CELLS, ALL_FORMS)
def test_logits_through_the_cache_equal_the_full_forward(zoo, architecture, head, form):
    tester, model = zoo.model(architecture, head)
    ids = tester.batch(("今天天气很好，我们去公园",))["input_ids"]
    with torch.no_grad():
        full = model(input_ids=ids, use_cache=False).logits
    runnable = zoo.form(architecture, head, form)
    cached = logits_through_cache(model, ids, 5) if form == "pytorch" else runnable.logits_through_cache(ids, 5)
    assert_close_to_pytorch(cached, full, FORMS[form], "cached logits")


@lm_cells
def test_static_cache_steps_and_generation_equal_the_dynamic_cache(zoo, architecture, head):
    # A StaticCache hands attention its whole preallocated buffer; the empty slots must be masked out.
    tester, model = zoo.model(architecture, head)
    ids = tester.batch(("今天天气很好，我们去公园",))["input_ids"]
    with torch.no_grad():
        full = model(input_ids=ids, use_cache=False).logits
        cache = StaticCache(config=model.config, max_cache_len=ids.shape[1] + 9)
        steps = [model(input_ids=ids[:, :5], cache=cache, use_cache=True).logits]
        for t in range(5, ids.shape[1]):
            steps.append(model(input_ids=ids[:, t : t + 1], cache=cache, use_cache=True).logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    batch = tester.batch(PROMPTS, padding_side="left")
    dynamic = model.generate(**batch, **GREEDY)
    assert torch.equal(model.generate(**batch, cache_implementation="static", **GREEDY), dynamic)


@cells_in_forms(LM_CELLS, ALL_FORMS)
def test_greedy_generate_equals_an_argmax_loop_outside_generate(zoo, architecture, head, form):
    """generate() against a hand-written argmax loop over the form's own full forward at every step (no cache); for a
    form whose cached steps differ from its full forward (dynamic int8), over its own cached logits. int8 rounding may
    reorder near-ties, so int8 is held to PyTorch by its logits (the other checks) rather than by its tokens."""
    tester, model = zoo.model(architecture, head)
    runnable = zoo.form(architecture, head, form)
    ids = tester.batch(("今天天气很好",))["input_ids"]
    n_prompt, n_new = ids.shape[1], GREEDY["max_new_tokens"]
    output = runnable.generate(ids, attention_mask=torch.ones_like(ids), **GREEDY)
    generated = output[:, n_prompt:]
    if FORMS[form].exact_steps:
        reference = argmax_loop(runnable, ids, n_new)
    else:  # each new token is the argmax of the logits the cache gave for the position before it
        reference = runnable.logits_through_cache(output[:, :-1], n_prompt)[:, n_prompt - 1 :].argmax(dim=-1)
    assert torch.equal(generated, reference)
    assert len(set(reference[0].tolist())) > 1  # a model that forgot its context would repeat one token
    if form == "pytorch":
        assert torch.equal(model.generate(ids, attention_mask=torch.ones_like(ids), use_cache=False, **GREEDY), output)


@cells_in_forms(LM_CELLS, ALL_FORMS)
def test_left_padded_batch_generates_what_each_prompt_generates_alone(zoo, architecture, head, form):
    tester, model = zoo.model(architecture, head)
    runnable = zoo.form(architecture, head, form)
    batch = tester.batch(PROMPTS, padding_side="left")
    if "left" not in padding_sides(runnable):  # unpadded prompts only: it must say so, not mis-generate
        with pytest.raises(ValueError, match="unpadded|right padding"):
            runnable.generate(**batch, **GREEDY)
        return
    batched = runnable.generate(**batch, **GREEDY)[:, batch["input_ids"].shape[1] :]
    for i, prompt in enumerate(PROMPTS):
        alone = tester.batch((prompt,))
        single = runnable.generate(**alone, **GREEDY)[0, alone["input_ids"].shape[1] :]
        assert torch.equal(batched[i], single), f"prompt {prompt!r} differs when batched"


@cells_in_forms(LM_CELLS, ALL_FORMS)
def test_sampling_is_seeded_and_top_k_1_is_greedy(zoo, architecture, head, form):
    tester, _ = zoo.model(architecture, head)
    runnable = zoo.form(architecture, head, form)
    ids = tester.batch(("你好",))["input_ids"]
    common = dict(
        attention_mask=torch.ones_like(ids), max_new_tokens=10, min_new_tokens=10, eos_token_id=None, pad_token_id=0
    )
    greedy = runnable.generate(ids, do_sample=False, **common)
    assert torch.equal(runnable.generate(ids, do_sample=True, top_k=1, temperature=1.3, **common), greedy)
    samples = []
    for _ in range(2):
        torch.manual_seed(0)
        samples.append(
            runnable.generate(
                ids, do_sample=True, temperature=1.5, top_p=0.95, top_k=0, num_return_sequences=3, **common
            )
        )
    assert torch.equal(samples[0], samples[1]) and samples[0].shape == (3, ids.shape[1] + 10)


# ------------------------------------------------------------------------------------------------- embeddings


@cells_in_forms(CELLS, ALL_FORMS)
def test_embed_gives_unit_vectors_that_do_not_depend_on_padding(zoo, architecture, head, form):
    tester, model = zoo.model(architecture, head)
    runnable = zoo.form(architecture, head, form)
    alone = runnable.embed(**tester.batch(("你好",)))
    for side in padding_sides(runnable):
        padded = runnable.embed(**tester.batch(("你好", "今天天气很好"), padding_side=side))
        assert_close_to_pytorch(padded[0], alone[0], FORMS[form], f"{side}-padded embedding")
        torch.testing.assert_close(padded.norm(dim=-1), torch.ones(2))
    batch = tester.batch(("你好", "今天天气很好"))
    assert_close_to_pytorch(runnable.embed(**batch), model.embed(**batch), FORMS[form], "embeddings")


# ------------------------------------------------------------------------------------------- save, load, train


@cells_in_forms(CELLS, DIRECTORY_FORMS)
def test_save_load_round_trip_gives_the_same_outputs(zoo, architecture, head, form, tmp_path):
    """PyTorch: save_pretrained and the Auto class; a directory form: copied elsewhere and loaded from there."""
    tester, model = zoo.model(architecture, head)
    batch = tester.batch(padding_side="right")
    if form == "pytorch":
        model.save_pretrained(tmp_path)
        auto = AutoModelForCausalLM if head == "lm" else AutoModelForSequenceClassification
        loaded = auto.from_pretrained(tmp_path).eval()
        fields = set(model.config.to_dict()) - {"_name_or_path", "transformers_version", "dtype"}  # set on saving
        assert type(loaded) is type(model)
        assert {k: getattr(loaded.config, k) for k in fields} == {k: getattr(model.config, k) for k in fields}
        if head == "lm":
            assert loaded.lm_head.weight.data_ptr() == loaded.transformer.wte.weight.data_ptr()
    else:
        zoo.form(architecture, head, form)  # written once by the zoo
        shutil.copytree(zoo.root / f"{architecture}-{head}-{form}", tmp_path / "copy")
        loaded = FORMS[form].load(str(tmp_path / "copy"))
    with torch.no_grad():
        expected = zoo.form(architecture, head, form)(**batch).logits
    torch.testing.assert_close(loaded(**batch).logits, expected, atol=1e-5, rtol=1e-5)


@all_cells
def test_gradient_checkpointing_gives_the_same_gradients(zoo, architecture, head):
    grads = []
    for checkpointing in (False, True):
        tester, model = matrix_model(architecture, head)
        batch = tester.batch()
        labels = batch["input_ids"] if head == "lm" else torch.tensor([0, 2])
        if checkpointing:
            # renamed from gradient_checkpointing_enable in recent transformers; both exist across our range
            enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
            enable()
            assert model.transformer.gradient_checkpointing
        model.train()(**batch, labels=labels).loss.backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5, msg=name)


# --------------------------------------------------------------------------------- remote code, in a fresh process

REMOTE_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["chargpt"] = None  # only each directory's own code (or transformers' own classes) can be used
    import json, torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification
    ids = torch.tensor([[3, 10, 11, 12]])
    report = {}
    for entry in json.loads(sys.argv[1]):
        directory, lm, remote = entry["directory"], entry["lm"], entry["remote"]
        auto = AutoModelForCausalLM if lm else AutoModelForSequenceClassification
        model = auto.from_pretrained(directory, trust_remote_code=remote).eval()
        result = {"module": type(model).__module__, "logits": model(ids).logits[0, -1].tolist() if lm else
                  model(ids).logits[0].tolist()}
        if lm:
            out = model.generate(ids, attention_mask=torch.ones_like(ids), **json.loads(%r))
            result["generated"] = out[0].tolist()
        report[directory] = result
    print(json.dumps(report))
    """
) % json.dumps({k: v for k, v in GREEDY.items()})


@pytest.fixture(scope="module")
def remote_report(zoo, tmp_path_factory):
    """Every cell saved as a hub-style directory and loaded with trust_remote_code, and every native export loaded
    without it, in ONE fresh process in which chargpt cannot be imported."""
    root = tmp_path_factory.mktemp("remote")
    entries = []
    for architecture, head in CELLS:
        tester, model = zoo.model(architecture, head)
        directory = root / f"{architecture}-{head}"
        model.save_pretrained(directory)
        entries.append({"directory": str(directory), "lm": head == "lm", "remote": True})
        if (architecture, head) in NATIVE_CELLS:
            directory = root / f"{architecture}-{head}-native"
            export_native(model, tester.tokenizer, directory)
            entries.append({"directory": str(directory), "lm": head == "lm", "remote": False})
    script = root / "load.py"
    script.write_text(REMOTE_SCRIPT, encoding="utf-8")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_MODULES_CACHE": str(root / "modules")}
    result = subprocess.run(
        [sys.executable, str(script), json.dumps(entries)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return root, json.loads(result.stdout.strip().splitlines()[-1])


def _check_fresh_process_entry(zoo, entry, architecture, head):
    _, model = zoo.model(architecture, head)
    ids = torch.tensor([[3, 10, 11, 12]])
    with torch.no_grad():
        expected = model(ids).logits[0, -1] if head == "lm" else model(ids).logits[0]
    torch.testing.assert_close(torch.tensor(entry["logits"]), expected, atol=1e-5, rtol=1e-5)
    if head == "lm":
        assert entry["generated"] == model.generate(ids, attention_mask=torch.ones_like(ids), **GREEDY)[0].tolist()


@pytest.mark.slow
@all_cells
def test_directory_runs_with_trust_remote_code_in_a_fresh_process_without_chargpt(
    zoo, remote_report, architecture, head
):
    root, report = remote_report
    entry = report[str(root / f"{architecture}-{head}")]
    assert entry["module"].startswith("transformers_modules.")
    _check_fresh_process_entry(zoo, entry, architecture, head)


@pytest.mark.slow
@pytest.mark.parametrize("architecture, head", sorted(NATIVE_CELLS), ids=_ids(sorted(NATIVE_CELLS)))
def test_native_export_runs_without_remote_code_in_a_fresh_process_without_chargpt(
    zoo, remote_report, architecture, head
):
    root, report = remote_report
    entry = report[str(root / f"{architecture}-{head}-native")]
    assert entry["module"].startswith("transformers.models.")  # transformers' own class, no code from the folder
    assert not list((root / f"{architecture}-{head}-native").glob("*.py"))
    _check_fresh_process_entry(zoo, entry, architecture, head)
