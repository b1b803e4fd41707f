"""GGUF files of CharGPT causal LMs, for llama.cpp and ollama: a `modern` model is llama.cpp's `qwen3` architecture
weight for weight (its rotary embedding turns channel pairs (i, i + d/2), as CharGPT's does, so no tensor is
permuted), written with the `gguf` package's GGUFWriter from the Qwen3 tensors of the native export.

The tokenizer is the crux. llama.cpp runs a vocabulary of whole Unicode characters only through its byte-level BPE
(`tokenizer.ggml.model = "gpt2"`), which spells every text in GPT-2's byte alphabet before merging. So every CharGPT
token is stored in that spelling, and the merges join each character's bytes, leading byte first, and nothing else:
a merge's left side is always an incomplete character, so no merge can cross from one character into the next,
whatever the pre-tokenizer splits (it splits between characters only). A known character becomes its one token; an
unknown one is left in pieces that are not tokens, and llama.cpp drops those (CharGPT gives `<unk>`).

transformers loads the file's weights (`from_pretrained(folder, gguf_file=name, head_dim=...)`), but not its
tokenizer: transformers builds a `tokenizers` BPE from a GGUF vocabulary, which needs every merge's result and every
single byte to be a token, and here they are not (they would be extra embedding rows). transformers users take the
tokenizer from the CharGPT folder or the native export (`--format transformers`), which give the same ids.
"""

import json
import logging
import os
import re

import numpy as np
import torch
from transformers import AutoModelForCausalLM

from ..files import atomic_path
from .checks import CHECK_TOLERANCE, ExportCheckError, model_task, probe_inputs, relative_difference, task_output
from .native import QWEN3, UnsupportedOptionError, choose_target, native_state_dict


logger = logging.getLogger(__name__)

_INSTALL_HINT = "pip install 'chargpt[gguf]' (or: pip install gguf)"

# How far each file type's next-token logits may stray from the PyTorch model's (`relative_difference`). f32 differs
# by float rounding only (`CHECK_TOLERANCE`). f16 and q8_0 round every matrix, which moves the logits of the tiny
# random test models (weights ten times a trained model's) several times more than a trained model's (figures: the
# GGUF benchmark); the bounds sit well above that and well below what a missing, misplaced or mis-shaped tensor
# does, which moves the logits by a third of their size or more.
GGUF_TOLERANCE = {"f32": CHECK_TOLERANCE["float32"], "f16": 0.02, "q8_0": 0.08}
FILE_TYPES = tuple(GGUF_TOLERANCE)

# Where each Qwen3 tensor of `native_state_dict` goes in llama.cpp's qwen3 graph, by gguf's own tensor kinds
# (`gguf.TENSOR_NAMES` spells them: blk.{bid}.attn_q, ...). `{i}` stands for the layer index.
QWEN3_TO_GGUF = {
    "model.embed_tokens.weight": "TOKEN_EMBD",
    "model.layers.{i}.input_layernorm.weight": "ATTN_NORM",
    "model.layers.{i}.self_attn.q_proj.weight": "ATTN_Q",
    "model.layers.{i}.self_attn.k_proj.weight": "ATTN_K",
    "model.layers.{i}.self_attn.v_proj.weight": "ATTN_V",
    "model.layers.{i}.self_attn.q_norm.weight": "ATTN_Q_NORM",
    "model.layers.{i}.self_attn.k_norm.weight": "ATTN_K_NORM",
    "model.layers.{i}.self_attn.o_proj.weight": "ATTN_OUT",
    "model.layers.{i}.post_attention_layernorm.weight": "FFN_NORM",
    "model.layers.{i}.mlp.gate_proj.weight": "FFN_GATE",
    "model.layers.{i}.mlp.up_proj.weight": "FFN_UP",
    "model.layers.{i}.mlp.down_proj.weight": "FFN_DOWN",
    "model.norm.weight": "OUTPUT_NORM",
    "lm_head.weight": "OUTPUT",  # only when untied: llama.cpp falls back to token_embd for the head
}
_LAYER = re.compile(r"^model\.layers\.(\d+)\.")

# llama.cpp's byte-level pre-tokenizer: a regex split, always between characters, so it cannot change which tokens
# a text becomes (merges never cross characters). `qwen2` is one every llama.cpp release since 2024 knows (no
# "unrecognized pre-tokenizer" warning) and, unlike `default`, it turns off the detokenizer's `clean_spaces`, which
# would delete the space before punctuation ("a ," -> "a,") in llama.cpp's decoded text.
PRE_TOKENIZER = "qwen2"
Q8_BLOCK = 32  # values per q8_0 block: a matrix is quantized when its rows split into whole blocks


def require_gguf():
    """The `gguf` package, or ImportError saying how to install it."""
    try:
        import gguf
    except ImportError as err:
        raise ImportError(f"The GGUF export needs the `gguf` package: {_INSTALL_HINT}.") from err
    return gguf


# ---------------------------------------------------------------------------------------------------- the vocabulary


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte alphabet, which llama.cpp's byte-level BPE spells text in: the printable Latin-1 bytes stand for
    themselves, the other 68 (controls, space, 0x7F-0xA0, 0xAD) for U+0100 onwards in byte order."""
    printable = [*range(0x21, 0x7F), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    shifted = (b for b in range(256) if b not in printable)
    return {**{b: chr(b) for b in printable}, **{b: chr(256 + n) for n, b in enumerate(shifted)}}


_BYTE_LEVEL = bytes_to_unicode()


def byte_level(text: str) -> str:
    """`text` spelled in the byte alphabet, one character per UTF-8 byte ("你" -> "ä½ł")."""
    return "".join(_BYTE_LEVEL[b] for b in text.encode("utf-8"))


def gguf_vocabulary(tokenizer, vocab_size: int) -> tuple[list[str], list[int], list[str]]:
    """(tokens, token types, merges) of llama.cpp's byte-level BPE for a CharGPT tokenizer and a model with
    `vocab_size` embedding rows. Special tokens are CONTROL, characters NORMAL; rows no token uses (an embedding grown
    past the tokenizer) get an UNUSED placeholder, so that token ids stay the embedding rows. The merges join each
    character's bytes, leading byte first ("b0 b1", then "b0b1 b2"), shortest prefixes first."""
    gguf = require_gguf()
    vocab = tokenizer.get_vocab()
    if len(vocab) > vocab_size or max(vocab.values()) >= vocab_size:
        raise ValueError(
            f"The tokenizer has {len(vocab)} tokens (largest id {max(vocab.values())}) but the model only "
            f"{vocab_size} embedding rows; export the tokenizer the model was trained with."
        )
    by_id = {i: t for t, i in vocab.items()}
    specials = set(map(str, tokenizer.all_special_tokens))
    tokens, types, merges = [], [], {}
    for i in range(vocab_size):
        token = by_id.get(i)
        if token is None:
            tokens.append(f"<chargpt_unused_{i}>")
            types.append(gguf.TokenType.UNUSED)
        elif token in specials:
            tokens.append(byte_level(token))
            types.append(gguf.TokenType.CONTROL)
        elif len(token) == 1:
            tokens.append(byte_level(token))
            types.append(gguf.TokenType.NORMAL)
            spelled = tokens[-1]
            for k in range(1, len(spelled)):
                merges.setdefault((k, spelled[:k], spelled[k]), None)
        else:
            raise ValueError(
                f"Token {i} ({token!r}) is neither a special token nor one character; the GGUF tokenizer stores "
                f"CharGPT's one-character vocabulary only."
            )
    if len(set(tokens)) != len(tokens):
        raise ValueError("Two tokens have the same text; the GGUF vocabulary maps text to one id.")
    return tokens, [int(t) for t in types], [f"{left} {right}" for _, left, right in sorted(merges)]


# ------------------------------------------------------------------------------------------------------- the tensors


def gguf_name(qwen3_name: str) -> str:
    """The GGUF name of a Qwen3 tensor ("model.layers.3.self_attn.q_proj.weight" -> "blk.3.attn_q.weight")."""
    gguf = require_gguf()
    layer = _LAYER.match(qwen3_name)
    kind = getattr(gguf.MODEL_TENSOR, QWEN3_TO_GGUF[_LAYER.sub("model.layers.{i}.", qwen3_name)])
    return gguf.TENSOR_NAMES[kind].format(bid=layer.group(1) if layer else None) + ".weight"


def tensor_type(shape: tuple, file_type: str):
    """The ggml type a tensor of this shape is stored in: norm scales (1-D) always float32; matrices in float32
    (f32), float16 (f16, as llama.cpp's own converter does), or q8_0 when their rows split into whole 32-value
    blocks and float16 otherwise (q8_0)."""
    kinds = require_gguf().GGMLQuantizationType
    if len(shape) == 1 or file_type == "f32":
        return kinds.F32
    if file_type == "q8_0" and shape[-1] % Q8_BLOCK == 0:
        return kinds.Q8_0
    return kinds.F16


def gguf_tensors(model, file_type: str):
    """(GGUF name, array as stored, ggml type) for every tensor of the model's Qwen3 form (`native_state_dict`);
    a tied LM head is not among them, so llama.cpp reads the head from token_embd."""
    gguf = require_gguf()
    for name, tensor in native_state_dict(model, QWEN3).items():
        array = tensor.numpy()
        kind = tensor_type(array.shape, file_type)
        if kind == gguf.GGMLQuantizationType.Q8_0:
            array = gguf.quants.quantize(array, kind)  # (rows, bytes): 34 bytes per 32 values
        else:
            array = array.astype(np.float16 if kind == gguf.GGMLQuantizationType.F16 else np.float32)
        yield gguf_name(name), array, kind


# ---------------------------------------------------------------------------------------------------------- the file


def _description(tokenizer, n_tokens: int) -> str:
    """What a llama.cpp user must know: the text normalisation is theirs to apply, and unknown characters vanish."""
    steps = [f"Unicode {tokenizer.normalization}"] if getattr(tokenizer, "normalization", None) else []
    if getattr(tokenizer, "strip_control_chars", False):
        steps.append(
            "removal of invisible control and format characters such as zero-width spaces and byte-order "
            "marks, newline and tab kept"
        )
    call = f"chargpt.normalize_text(text, {tokenizer.normalization!r})" if len(steps) == 2 else "chargpt.normalize_text"
    normalize = (
        f"CharGPT normalizes every text before tokenizing it ({'; '.join(steps)}); llama.cpp and ollama do "
        f"not, so normalize prompts yourself ({call}, or the CharGPT tokenizer's normalize()). "
        if steps
        else ""
    )
    return (
        f"CharGPT, a character-level GPT for Chinese, as a Qwen3 model: one token per character, {n_tokens} tokens. "
        f"{normalize}llama.cpp drops characters outside the vocabulary, where CharGPT maps each to <unk>. "
        f"Chat: <bos>turn<sep>turn<sep>...; a reply ends at <sep> (end of turn) or <eos>."
    )


def gguf_chat_template(tokenizer) -> str:
    """The tokenizer's chat template with its special tokens' text set at the top: llama.cpp and llama-cpp-python
    render a GGUF's template with `bos_token` and `eos_token` only, so CharGPT's `{{ sep_token }}` would come out
    empty."""
    names = ("bos_token", "eos_token", "sep_token", "pad_token", "unk_token")
    return (
        "".join(
            f"{{% set {name} = {json.dumps(str(getattr(tokenizer, name)), ensure_ascii=False)} %}}" for name in names
        )
        + tokenizer.chat_template
    )


def _add_tokenizer(writer, tokenizer, vocab_size: int) -> None:
    """The byte-level BPE vocabulary (`gguf_vocabulary`), the special tokens, BOS handling and the chat template."""
    tokens, types, merges = gguf_vocabulary(tokenizer, vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(PRE_TOKENIZER)
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokenizer.bos_token_id)
    writer.add_eos_token_id(tokenizer.eos_token_id)
    writer.add_eot_token_id(tokenizer.sep_token_id)  # end of a chat turn; llama.cpp stops generating there too
    writer.add_unk_token_id(tokenizer.unk_token_id)
    writer.add_pad_token_id(tokenizer.pad_token_id)
    # CharGPT puts <bos> in front of every text, and so does llama.cpp with this flag. The chat template writes
    # <bos> itself as well; llama.cpp strips a rendered prompt's leading BOS text when the vocabulary adds one, and
    # llama-cpp-python adds none to a rendered prompt, so a chat prompt starts with exactly one.
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(False)
    writer.add_chat_template(gguf_chat_template(tokenizer))


def write_gguf(model, tokenizer, path: str, file_type: str, name: str) -> None:
    """Write `model` (a CharGPT causal LM of Qwen3 shape) and its tokenizer as one GGUF file at `path`."""
    gguf = require_gguf()
    config = model.config
    head_dim = config.n_embd // config.n_head
    writer = gguf.GGUFWriter(path, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.QWEN3])
    writer.add_name(name)
    writer.add_description(_description(tokenizer, len(tokenizer.get_vocab())))
    writer.add_file_type(
        {
            "f32": gguf.LlamaFileType.ALL_F32,
            "f16": gguf.LlamaFileType.MOSTLY_F16,
            "q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
        }[file_type]
    )
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_vocab_size(config.vocab_size)
    writer.add_context_length(config.n_positions)
    writer.add_embedding_length(config.n_embd)
    writer.add_block_count(config.n_layer)
    writer.add_feed_forward_length(config.n_inner)
    writer.add_head_count(config.n_head)
    writer.add_head_count_kv(config.n_head)  # one key/value head per query head
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_rope_dimension_count(head_dim)  # every channel of a head turns
    writer.add_rope_freq_base(float(config.rope_theta))
    writer.add_layer_norm_rms_eps(config.layer_norm_epsilon)  # CharGPT's, not Qwen3's 1e-6
    _add_tokenizer(writer, tokenizer, config.vocab_size)
    for tensor_name, array, kind in gguf_tensors(model, file_type):
        writer.add_tensor(tensor_name, array, raw_dtype=kind)
    try:
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    finally:
        writer.close()


# ----------------------------------------------------------------------------------------------- checking the file


def _field(reader, key: str):
    field = reader.fields.get(key)
    return None if field is None else field.contents()


def read_back(model, tokenizer, path: str, file_type: str) -> tuple[dict, list[str]]:
    """Read the file with gguf's GGUFReader and compare what llama.cpp reads with what was meant: the sizes, every
    tensor's name, shape and type, the tokens (decoded from the byte alphabet: exactly the tokenizer's vocabulary)
    and the chat template (rendered with only bos_token and eos_token, as llama.cpp does: exactly CharGPT's
    prompt). Returns a summary and the differences found."""
    gguf = require_gguf()
    reader = gguf.GGUFReader(path)
    config = model.config
    # GGUF lists a tensor's dimensions innermost first: a (rows, columns) matrix is (columns, rows)
    expected = {
        gguf_name(name): (tuple(t.shape[::-1]), tensor_type(tuple(t.shape), file_type).name)
        for name, t in native_state_dict(model, QWEN3).items()
    }
    found = {t.name: (tuple(int(n) for n in t.shape), t.tensor_type.name) for t in reader.tensors}
    problems = []
    if found != expected:
        differing = sorted(set(found.items()) ^ set(expected.items()))[:4]
        problems.append(f"its tensors differ from the model's: {differing}")
    sizes = {
        "general.architecture": "qwen3",
        "qwen3.block_count": config.n_layer,
        "qwen3.embedding_length": config.n_embd,
        "qwen3.attention.head_count": config.n_head,
        "qwen3.attention.key_length": config.n_embd // config.n_head,
        "qwen3.vocab_size": config.vocab_size,
    }
    problems += [
        f"{key} is {_field(reader, key)!r}, not {value!r}"
        for key, value in sizes.items()
        if _field(reader, key) != value
    ]
    problems += _tokenizer_problems(reader, tokenizer)
    types = {}
    for _, kind in found.values():
        types[kind] = types.get(kind, 0) + 1
    return {"tensors": len(found), "tensor_types": types}, problems


_PROBE_CHAT = [
    {"role": "user", "content": "你好"},
    {"role": "assistant", "content": "你好！"},
    {"role": "user", "content": "天气"},
]


def _tokenizer_problems(reader, tokenizer) -> list[str]:
    """What differs between the file's tokens and chat template and the CharGPT tokenizer's."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    to_byte = {ch: b for b, ch in _BYTE_LEVEL.items()}
    unused = require_gguf().TokenType.UNUSED
    tokens = zip(_field(reader, "tokenizer.ggml.tokens"), _field(reader, "tokenizer.ggml.token_type"))
    decoded = {
        bytes(to_byte[ch] for ch in token).decode("utf-8"): i
        for i, (token, kind) in enumerate(tokens)
        if kind != unused
    }
    problems = [] if decoded == tokenizer.get_vocab() else ["its tokens do not spell the tokenizer's vocabulary"]
    template = ImmutableSandboxedEnvironment().from_string(_field(reader, "tokenizer.chat_template"))
    rendered = template.render(
        messages=_PROBE_CHAT,
        add_generation_prompt=True,
        bos_token=str(tokenizer.bos_token),
        eos_token=str(tokenizer.eos_token),
    )
    if rendered != tokenizer.apply_chat_template(_PROBE_CHAT, add_generation_prompt=True, tokenize=False):
        problems.append(f"its chat template renders {rendered!r}, not CharGPT's prompt")
    return problems


def load_gguf_in_transformers(path: str, head_dim: int | None = None):
    """The GGUF file as transformers loads it (`from_pretrained(folder, gguf_file=name)`, weights dequantized into
    Qwen3ForCausalLM). transformers' GGUF reader does not read qwen3.attention.key_length and takes Qwen3's default
    head_dim (128), so it is passed here (read from the file when not given), as every caller of a CharGPT GGUF whose
    head size is not 128 must."""
    if head_dim is None:
        head_dim = int(_field(require_gguf().GGUFReader(path), "qwen3.attention.key_length"))
    return AutoModelForCausalLM.from_pretrained(
        os.path.dirname(os.path.abspath(path)), gguf_file=os.path.basename(path), head_dim=head_dim
    ).eval()


@torch.no_grad()
def check_gguf(model, tokenizer, path: str, file_type: str, n_new: int = 16) -> dict:
    """Read the file back (`read_back`) and load it in transformers, then compare its next-token logits on the probe
    batch (`checks.task_output`) with the model's, within `GGUF_TOLERANCE[file_type]`, and (f32) its greedy tokens.
    Raises ExportCheckError on any difference."""
    result, problems = read_back(model, tokenizer, path, file_type)
    config = model.config
    loaded = load_gguf_in_transformers(path, config.n_embd // config.n_head)
    ids, mask = probe_inputs(config)
    relative = relative_difference(
        task_output(loaded, ids, mask, "causal-lm"), task_output(model, ids, mask, "causal-lm")
    )
    result.update(relative_difference=float(f"{relative:.4g}"), tolerance=GGUF_TOLERANCE[file_type])
    if not relative <= result["tolerance"]:
        problems.append(
            f"transformers' reading of it gives logits that differ from CharGPT's by {relative:.3g} of "
            f"their RMS (at most {result['tolerance']} allowed for {file_type})"
        )
    n_new = min(n_new, config.n_positions - 8)
    settings = dict(
        do_sample=False,
        max_new_tokens=n_new,
        min_new_tokens=n_new,
        eos_token_id=None,
        pad_token_id=config.pad_token_id,
        attention_mask=torch.ones(1, 8, dtype=torch.long),
    )
    result["greedy_tokens_equal"] = torch.equal(
        model.generate(ids[:1, :8], **settings), loaded.generate(ids[:1, :8], **settings)
    )
    if file_type == "f32" and not result["greedy_tokens_equal"]:
        problems.append("its greedy continuation differs")  # rounded weights may turn a near tie another way
    if problems:
        raise ExportCheckError(
            f"The GGUF export does not reproduce the model: {'; '.join(problems)}. Nothing was written. This is a bug "
            f"in chargpt's GGUF export; please report it with the model's config.json."
        )
    return result


def _refuse_unsupported(model) -> None:
    """ValueError (UnsupportedOptionError for an option) unless `model` is a causal LM of llama.cpp's qwen3 shape."""
    if model_task(model) != "causal-lm":
        raise UnsupportedOptionError(
            f"The GGUF export is for causal language models; {type(model).__name__} is a classifier. Export "
            f"classifiers with --format transformers or --format int8."
        )
    if model.config.position_embedding_type != "rope":
        raise UnsupportedOptionError(
            "The GGUF export supports rotary (modern) models; this model has learned positions (the course design). "
            "Export course models with --format transformers."
        )
    choose_target(model.config, "causal-lm")  # names the first option Qwen3 cannot express


def export_gguf(model, tokenizer, path, file_type: str = "f32", overwrite: bool = False) -> dict:
    """Write `model` (a CharGPT causal LM of the `modern` design) with its tokenizer as one GGUF file at `path`, for
    llama.cpp and ollama: architecture qwen3, `file_type` f32, f16 or q8_0. The file is written beside `path`,
    checked (`check_gguf`: read back, loaded by transformers, its logits compared with the model's) and only then
    renamed onto `path`. Returns what was written and the checks. Raises ValueError for a model the format cannot
    hold (a classifier, a course model, an option Qwen3 lacks) and ExportCheckError for a failed check; either way
    nothing is written."""
    require_gguf()
    if file_type not in FILE_TYPES:
        raise ValueError(f"file_type must be one of {', '.join(FILE_TYPES)}; got {file_type!r}.")
    _refuse_unsupported(model)
    path = os.path.abspath(str(path))
    if os.path.isdir(path):
        raise ValueError(f"{path} is a directory; the GGUF export writes one file (name it with .gguf).")
    if os.path.exists(path) and not overwrite:
        raise ValueError(f"{path} already exists; pass --overwrite to replace it.")
    model = model.to(device="cpu", dtype=torch.float32).eval()
    name = (
        os.path.basename(str(model.config.name_or_path or "").rstrip("/"))
        or os.path.splitext(os.path.basename(path))[0]
    )
    with atomic_path(path, suffix=".tmp.gguf") as staging:
        write_gguf(model, tokenizer, staging, file_type, name)
        checks = check_gguf(model, tokenizer, staging, file_type)
        size = os.path.getsize(staging)
    tokens, _, merges = gguf_vocabulary(tokenizer, model.config.vocab_size)
    float32_bytes = 4 * sum(t.numel() for t in native_state_dict(model, QWEN3).values())
    info = {
        "format": "gguf",
        "path": path,
        "architecture": "qwen3",
        "file_type": file_type,
        "name": name,
        "bytes": size,
        "float32_bytes": float32_bytes,
        "size_ratio": round(size / float32_bytes, 4),
        "tokenizer": {
            "model": "gpt2",
            "pre": PRE_TOKENIZER,
            "tokens": len(tokens),
            "merges": len(merges),
            "add_bos_token": True,
        },
        "engines": ["llama.cpp", "ollama", "transformers (gguf_file=, head_dim=)"],
        "checks": checks,
    }
    logger.info(
        "Wrote %s (%s, %.1f MB); its logits differ from the model's by %.3g of their RMS.",
        path,
        file_type,
        size / 1e6,
        checks["relative_difference"],
    )
    return info


__all__ = [
    "FILE_TYPES",
    "GGUF_TOLERANCE",
    "PRE_TOKENIZER",
    "QWEN3_TO_GGUF",
    "byte_level",
    "bytes_to_unicode",
    "check_gguf",
    "export_gguf",
    "gguf_chat_template",
    "gguf_tensors",
    "gguf_vocabulary",
    "load_gguf_in_transformers",
    "read_back",
    "write_gguf",
]
