"""Native transformers checkpoints of CharGPT models: `modern` models become Qwen3, `course` models GPT-2, weight for
weight, so that transformers (without remote code), `transformers serve`, vLLM, SGLang and llama.cpp's tools load
them as the architectures they already know.

What each target can express is data (`Target.requires`), and so is where every tensor goes (`Target.tensors`): a
CharGPT option outside a target's design is refused by name, never approximated."""

import json
import os
import re
from dataclasses import dataclass, field

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    GenerationConfig,
    GPT2Config,
    PreTrainedTokenizerFast,
    Qwen3Config,
)

from ..configuration_chargpt import CharGPTConfig
from ..files import atomic_output_dir, write_json_atomic
from ..tokenization_chargpt_fast import build_backend
from .checks import CHECK_TOLERANCE, ExportCheckError, model_task, probe_inputs, relative_difference, task_output


NATIVE_INFO_FILE = "chargpt_export.json"
# Texts whose ids the export's tokenizer must reproduce: scripts, digits, spaces and newlines, characters outside
# any small vocabulary, compatibility forms that NFKC folds, invisible format characters CharGPT strips, emoji.
TOKENIZER_PROBE = (
    "今天天气很好，我们去公园散步吧。",
    "Hello world, 123 测试 test.\n第二行\t制表",
    "ＡＢＣ１２３　全角，半角",
    "零宽\u200b空格\ufeff和控制\x07字符",
    "表情😀与罕见字𠀀",
    "",
)


class UnsupportedOptionError(ValueError):
    """The model uses an option that the target format cannot express."""


@dataclass(frozen=True)
class Target:
    """A transformers architecture that a family of CharGPT models is, weight for weight.

    `requires`: the CharGPT config values the target's design has (field -> allowed values).
    `tensors`: (CharGPT name, native names, how): `{i}` stands for the layer index; `how` is `copy`, `transpose`
    (GPT-2 stores its projections as Conv1D, in by out) or `split` (a fused matrix cut into equal parts along its
    output rows, in the order given)."""

    name: str
    model_type: str
    classes: dict
    requires: dict
    tensors: tuple
    engines: tuple = field(default=())


QWEN3 = Target(
    name="qwen3",
    model_type="qwen3",
    classes={"causal-lm": "Qwen3ForCausalLM", "sequence-classification": "Qwen3ForSequenceClassification"},
    requires={
        "position_embedding_type": ("rope",),
        "normalization": ("rmsnorm",),
        "activation_function": ("silu",),
        "gated_mlp": (True,),
        "qk_norm": (True,),
        "bias": (False,),
    },
    tensors=(
        ("transformer.wte.weight", ("model.embed_tokens.weight",), "copy"),
        ("transformer.h.{i}.ln_1.weight", ("model.layers.{i}.input_layernorm.weight",), "copy"),
        (
            "transformer.h.{i}.attn.c_attn.weight",
            (
                "model.layers.{i}.self_attn.q_proj.weight",
                "model.layers.{i}.self_attn.k_proj.weight",
                "model.layers.{i}.self_attn.v_proj.weight",
            ),
            "split",
        ),
        ("transformer.h.{i}.attn.q_norm.weight", ("model.layers.{i}.self_attn.q_norm.weight",), "copy"),
        ("transformer.h.{i}.attn.k_norm.weight", ("model.layers.{i}.self_attn.k_norm.weight",), "copy"),
        ("transformer.h.{i}.attn.c_proj.weight", ("model.layers.{i}.self_attn.o_proj.weight",), "copy"),
        ("transformer.h.{i}.ln_2.weight", ("model.layers.{i}.post_attention_layernorm.weight",), "copy"),
        (
            "transformer.h.{i}.mlp.c_fc.weight",
            ("model.layers.{i}.mlp.gate_proj.weight", "model.layers.{i}.mlp.up_proj.weight"),
            "split",
        ),
        ("transformer.h.{i}.mlp.c_proj.weight", ("model.layers.{i}.mlp.down_proj.weight",), "copy"),
        ("transformer.ln_f.weight", ("model.norm.weight",), "copy"),
        ("lm_head.weight", ("lm_head.weight",), "copy"),
        ("score.weight", ("score.weight",), "copy"),
    ),
    engines=("transformers", "transformers serve", "vLLM", "SGLang"),
)

GPT2 = Target(
    name="gpt2",
    model_type="gpt2",
    classes={"causal-lm": "GPT2LMHeadModel", "sequence-classification": "GPT2ForSequenceClassification"},
    requires={
        "position_embedding_type": ("learned",),
        "normalization": ("layernorm",),
        "activation_function": ("gelu", "gelu_new"),
        "gated_mlp": (False,),
        "qk_norm": (False,),
        "bias": (True,),
    },
    tensors=(
        ("transformer.wte.weight", ("transformer.wte.weight",), "copy"),
        ("transformer.wpe.weight", ("transformer.wpe.weight",), "copy"),
        *(
            (f"transformer.h.{{i}}.{norm}.{p}", (f"transformer.h.{{i}}.{norm}.{p}",), "copy")
            for norm in ("ln_1", "ln_2")
            for p in ("weight", "bias")
        ),
        *(
            (f"transformer.h.{{i}}.{proj}.weight", (f"transformer.h.{{i}}.{proj}.weight",), "transpose")
            for proj in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
        ),
        *(
            (f"transformer.h.{{i}}.{proj}.bias", (f"transformer.h.{{i}}.{proj}.bias",), "copy")
            for proj in ("attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj")
        ),
        ("transformer.ln_f.weight", ("transformer.ln_f.weight",), "copy"),
        ("transformer.ln_f.bias", ("transformer.ln_f.bias",), "copy"),
        ("lm_head.weight", ("lm_head.weight",), "copy"),
        ("score.weight", ("score.weight",), "copy"),
    ),
    engines=("transformers", "transformers serve", "vLLM", "SGLang"),
)

TARGETS = {"qwen3": QWEN3, "gpt2": GPT2}
# Which target a model goes to is decided by how it encodes positions; every other option is then checked.
TARGET_BY_POSITIONS = {"rope": QWEN3, "learned": GPT2}


def choose_target(config: CharGPTConfig, task: str) -> Target:
    """The native architecture `config` is, or UnsupportedOptionError naming the first option that has none."""
    target = TARGET_BY_POSITIONS[config.position_embedding_type]
    for option, allowed in target.requires.items():
        value = getattr(config, option)
        if value not in allowed:
            want = " or ".join(repr(a) for a in allowed)
            raise UnsupportedOptionError(
                f"{option}={value!r} has no native equivalent: a model with position_embedding_type="
                f"{config.position_embedding_type!r} exports as {target.classes[task]}, which needs {option}={want}. "
                f"Keep this model in CharGPT's own format (remote code) or its int8 export."
            )
    if task == "sequence-classification":
        if config.classifier_pooling != "last":
            raise UnsupportedOptionError(
                f"classifier_pooling={config.classifier_pooling!r} has no native equivalent: "
                f"{target.classes[task]} classifies by the last non-padding token. Keep this classifier in "
                f"CharGPT's own format (remote code) or its int8 export, or fine-tune with --pooling last."
            )
        if config.pad_token_id is None:
            raise UnsupportedOptionError(
                f"{target.classes[task]} finds each sequence's last token through pad_token_id, and this model has "
                f"none; set config.pad_token_id to the tokenizer's padding id."
            )
    return target


def _native_config(config: CharGPTConfig, target: Target, task: str):
    """The target's config for `config`: sizes, norms' epsilon, token ids, labels. Dropout carries over for
    further training."""
    common = dict(
        vocab_size=config.vocab_size,
        tie_word_embeddings=config.tie_word_embeddings,
        pad_token_id=config.pad_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=config.eos_token_id,
        initializer_range=config.initializer_range,
        architectures=[target.classes[task]],
    )
    if task == "sequence-classification":
        common.update(id2label=config.id2label, label2id=config.label2id, problem_type=config.problem_type)
    if target is QWEN3:
        return Qwen3Config(
            hidden_size=config.n_embd,
            intermediate_size=config.n_inner,
            num_hidden_layers=config.n_layer,
            num_attention_heads=config.n_head,
            num_key_value_heads=config.n_head,  # CharGPT has one key/value head per query head
            head_dim=config.n_embd // config.n_head,
            hidden_act=config.activation_function,
            max_position_embeddings=config.n_positions,
            rms_norm_eps=config.layer_norm_epsilon,  # CharGPT's 1e-5, not Qwen3's default 1e-6
            rope_parameters={"rope_type": "default", "rope_theta": float(config.rope_theta)},
            attention_bias=False,
            attention_dropout=config.attn_pdrop,
            use_sliding_window=False,
            **common,
        )
    return GPT2Config(
        n_positions=config.n_positions,
        n_embd=config.n_embd,
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_inner=config.n_inner,
        activation_function=config.activation_function,
        resid_pdrop=config.resid_pdrop,
        embd_pdrop=config.embd_pdrop,
        attn_pdrop=config.attn_pdrop,
        layer_norm_epsilon=config.layer_norm_epsilon,
        scale_attn_weights=True,
        **common,
    )


def _pattern(template: str) -> re.Pattern:
    return re.compile(re.escape(template).replace(re.escape("{i}"), r"(?P<i>\d+)") + "$")


def native_state_dict(model, target: Target) -> dict[str, torch.Tensor]:
    """The model's tensors under the target's names and layouts. A tensor the table does not place is an error:
    nothing of the model may be left behind."""
    patterns = [(_pattern(source), targets, how) for source, targets, how in target.tensors]
    tied = model_task(model) == "causal-lm" and model.config.tie_word_embeddings
    out = {}
    for name, tensor in model.state_dict().items():
        if tied and name == "lm_head.weight":
            continue  # the embedding table, stored once
        for pattern, targets, how in patterns:
            match = pattern.match(name)
            if match is None:
                continue
            names = [t.format(**match.groupdict()) for t in targets]
            tensor = tensor.detach().to("cpu", torch.float32)
            if how == "transpose":
                parts = [tensor.t()]
            elif how == "split":
                parts = tensor.chunk(len(names), dim=0)
            else:
                parts = [tensor]
            out.update({n: p.contiguous().clone() for n, p in zip(names, parts)})
            break
        else:
            raise UnsupportedOptionError(
                f"The tensor {name} has no place in {target.name}'s checkpoint; this model carries a part the native "
                f"format does not have."
            )
    return out


def native_model(model):
    """The native transformers model (`Qwen3ForCausalLM`, `GPT2ForSequenceClassification`, ...) equal to `model`, a
    CharGPT causal LM or classifier, with its generation defaults. Raises UnsupportedOptionError for an option the
    target cannot express."""
    import transformers

    task = model_task(model)
    target = choose_target(model.config, task)
    config = _native_config(model.config, target, task)
    native = getattr(transformers, target.classes[task])(config)
    missing, unexpected = native.load_state_dict(native_state_dict(model, target), strict=False)
    missing = [m for m in missing if not (config.tie_word_embeddings and m == "lm_head.weight")]
    if missing or unexpected:
        raise RuntimeError(f"{target.name} checkpoint mismatch: missing {missing}, unexpected {unexpected}.")
    if config.tie_word_embeddings and task == "causal-lm":
        native.tie_weights()
    if task == "causal-lm":
        native.generation_config = GenerationConfig.from_dict(model.generation_config.to_dict())
    return native.eval()


def native_tokenizer(tokenizer) -> PreTrainedTokenizerFast:
    """transformers' generic fast tokenizer over the CharGPT tokenizer's own pipeline (the same `tokenizer.json`:
    normalizer, one token per character, `<bos>` in front of every text, decoding), with its special tokens and chat
    template, which writes `<bos>` itself. Takes either CharGPT tokenizer (the pipeline is rebuilt from the vocabulary
    and the normalisation settings, as CharGPTTokenizerFast builds it)."""
    backend = build_backend(
        dict(tokenizer.vocab),
        tokenizer.normalization,
        tokenizer.strip_control_chars,
        str(tokenizer.unk_token),
        str(tokenizer.bos_token),
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token=str(tokenizer.pad_token),
        unk_token=str(tokenizer.unk_token),
        sep_token=str(tokenizer.sep_token),
        bos_token=str(tokenizer.bos_token),
        eos_token=str(tokenizer.eos_token),
        model_max_length=tokenizer.model_max_length,
        chat_template=tokenizer.chat_template,
        clean_up_tokenization_spaces=False,
        padding_side=tokenizer.padding_side,
    )


def write_native(model, tokenizer, target: Target, task: str, directory: str):
    """The native model, its tokenizer and (causal LM) generation defaults as save_pretrained writes them, with
    `rope_theta` also at the top level of config.json, where some engines read it."""
    native_model(model).save_pretrained(directory)
    native_tokenizer(tokenizer).save_pretrained(directory)
    if target is QWEN3:
        _update_json(os.path.join(directory, "config.json"), rope_theta=float(model.config.rope_theta))
    # The generic class under the name every transformers release and engine knows (5.x calls it TokenizersBackend
    # and reads this name as that class), and how a reply is read from the generated tokens: what follows the
    # prompt's last end-of-turn, up to the next end of turn or of text. Without it `transformers serve` parses a
    # Qwen3 checkpoint's replies with Qwen's own <|im_start|> / <think> format and returns the prompt with the reply.
    sep, eos = str(tokenizer.sep_token), str(tokenizer.eos_token)
    response_template = {
        "defaults": {"role": "assistant"},
        "start_anchor": sep,
        "fields": {
            "content": {
                "close_pattern": f"{re.escape(sep)}|{re.escape(eos)}",
                "content": "text",
                "content_args": {"strip": False},
            }
        },
    }
    _update_json(
        os.path.join(directory, "tokenizer_config.json"),
        tokenizer_class="PreTrainedTokenizerFast",
        response_template=response_template,
    )


def _update_json(path: str, **fields):
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    write_json_atomic(path, {**data, **fields})


@torch.no_grad()
def check_native(model, tokenizer, directory: str, task: str, n_new: int = 16) -> dict:
    """Load `directory` as transformers does without remote code and compare it with the CharGPT model: the task's
    own output on the probe batch (`checks.task_output`), greedy tokens, and the tokenizer's ids and chat template on
    TOKENIZER_PROBE. Raises ExportCheckError on any difference."""
    auto = AutoModelForCausalLM if task == "causal-lm" else AutoModelForSequenceClassification
    loaded = auto.from_pretrained(directory, trust_remote_code=False).eval()
    loaded_tokenizer = AutoTokenizer.from_pretrained(directory, trust_remote_code=False)
    ids, mask = probe_inputs(model.config)
    relative = relative_difference(task_output(loaded, ids, mask, task), task_output(model, ids, mask, task))
    result = {
        "class": type(loaded).__name__,
        "relative_difference": float(f"{relative:.4g}"),
        "tolerance": CHECK_TOLERANCE["float32"],
    }
    problems = []
    if not relative <= result["tolerance"]:
        problems.append(f"its logits differ from CharGPT's by {relative:.3g} of their RMS")
    if task == "causal-lm":
        n_new = min(n_new, model.config.n_positions - 8)
        settings = dict(
            do_sample=False,
            max_new_tokens=n_new,
            min_new_tokens=n_new,
            eos_token_id=None,
            pad_token_id=model.config.pad_token_id,
            attention_mask=torch.ones(1, 8, dtype=torch.long),
        )
        same = torch.equal(model.generate(ids[:1, :8], **settings), loaded.generate(ids[:1, :8], **settings))
        result["greedy_tokens_equal"] = same
        if not same:
            problems.append("its greedy continuation differs")
    texts = [tokenizer.normalize(t) if hasattr(tokenizer, "normalize") else t for t in TOKENIZER_PROBE]
    chat = [
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "你好！"},
        {"role": "user", "content": "天气"},
    ]
    same_ids = all(
        tokenizer(t)["input_ids"] == loaded_tokenizer(t)["input_ids"] for t in TOKENIZER_PROBE + tuple(texts)
    )
    same_chat = tokenizer.apply_chat_template(
        chat, add_generation_prompt=True, tokenize=True, return_dict=False
    ) == loaded_tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True, return_dict=False)
    result["tokenizer_ids_equal"], result["chat_template_ids_equal"] = same_ids, same_chat
    if not (same_ids and same_chat):
        problems.append(
            "its tokenizer gives other ids"
            + ("" if same_ids else " for plain text")
            + ("" if same_chat else " for the chat template")
        )
    if problems:
        raise ExportCheckError(
            f"The {type(loaded).__name__} export does not reproduce the model: {'; '.join(problems)}. Nothing was "
            f"written. This is a bug in chargpt's native export; please report it with the model's config.json."
        )
    return result


def export_native(model, tokenizer, output_dir, source: str | None = None, overwrite: bool = False) -> dict:
    """Write `model` (a CharGPT causal LM or classifier) as a native transformers checkpoint with its tokenizer to
    `output_dir`, atomically, after `check_native` has loaded it back and found it equal; the folder holds no Python
    file. Returns (and writes to chargpt_export.json) what was written and the checks. Raises
    UnsupportedOptionError for an option the target cannot express and ExportCheckError for a failed check; either
    way nothing is written."""
    task = model_task(model)
    target = choose_target(model.config, task)
    model = model.to(device="cpu", dtype=torch.float32).eval()
    with atomic_output_dir(output_dir, overwrite=overwrite, source=source) as staging:
        write_native(model, tokenizer, target, task, staging)
        checks = check_native(model, tokenizer, staging, task)
        info = {
            "format": "transformers",
            "target": target.name,
            "class": target.classes[task],
            "task": task,
            "source": str(source) if source else None,
            "engines": list(target.engines),
            "checks": checks,
        }
        write_json_atomic(os.path.join(staging, NATIVE_INFO_FILE), info)
    return info


__all__ = [
    "NATIVE_INFO_FILE",
    "check_native",
    "write_native",
    "export_native",
    "Target",
    "TARGETS",
    "QWEN3",
    "GPT2",
    "UnsupportedOptionError",
    "choose_target",
    "native_model",
    "native_state_dict",
    "native_tokenizer",
]
