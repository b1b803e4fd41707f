"""Running an int8 export: `load_int8(directory)` returns an `Int8CharGPT` with the calls the rest of the package
makes on a PyTorch model (`model(input_ids, attention_mask).logits`, `generate(...)`, `embed(...)`)."""

import copy
import json
import logging
import os
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn.functional as F
from transformers import GenerationConfig
from transformers.generation.logits_process import (
    LogitsProcessorList,
    MinNewTokensLengthLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from ..configuration_chargpt import CharGPTConfig
from ..modeling_chargpt import default_generation_config, mean_pool, pool_sequence, real_tokens
from .format import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, EXPORT_INFO_FILE, is_int8_export, require


logger = logging.getLogger(__name__)


# transformers' own values for generation settings a GenerationConfig leaves unset (None).
_GENERATION_DEFAULTS = {"do_sample": False, "temperature": 1.0, "top_k": 50, "top_p": 1.0, "repetition_penalty": 1.0}
# Settings this loop does not implement, with the value that means "off"; anything else is refused, not ignored.
_UNSUPPORTED_GENERATION = {
    "num_beams": 1,
    "num_beam_groups": 1,
    "penalty_alpha": None,
    "typical_p": 1.0,
    "min_p": None,
    "top_h": None,
    "epsilon_cutoff": 0.0,
    "eta_cutoff": 0.0,
    "bad_words_ids": None,
    "suppress_tokens": None,
    "begin_suppress_tokens": None,
    "sequence_bias": None,
    "guidance_scale": None,
    "force_words_ids": None,
    "constraints": None,
    "stop_strings": None,
    "dola_layers": None,
    "return_dict_in_generate": False,
    "output_scores": False,
    "output_logits": False,
}


# What the runtime adds to the graph: the tasks it serves, and the poolings it applies to a classifier's per-position
# logits (the graph computes no pooling of its own).
RUNTIME_TASKS = ("causal-lm", "sequence-classification")
RUNTIME_POOLINGS = ("last", "mean")


class Int8CharGPT:
    """A CharGPT int8 export running on ONNX Runtime; build it with `load_int8(directory)`.

    Attributes: `config` (CharGPTConfig), `generation_config` (causal LMs), `task` ('causal-lm' or
    'sequence-classification'), `export_info` (the export's JSON description), `device` (cpu), `dtype` (float32).
    """

    def __init__(self, path: str, session, config: CharGPTConfig, generation_config, export_info: dict):
        self.path, self.session, self.config = path, session, config
        self.generation_config, self.export_info = generation_config, export_info
        self.task = export_info["task"]
        self.device, self.dtype = torch.device("cpu"), torch.float32
        self._head_dim = config.n_embd // config.n_head
        # A classifier graph traced from the model takes the padding mask and pools itself; a causal LM graph (and a
        # classifier exported by format 1) sees no mask, so only right padding leaves its real tokens untouched.
        self._masked = "attention_mask" in {i.name for i in session.get_inputs()}
        self.padding_sides = ("left", "right") if self._masked else ("right",)

    def eval(self):
        return self  # inference only; mirrors nn.Module.eval() so callers need no special case

    def _run(self, input_ids: np.ndarray, past: list | None, logits_from: int):
        """One graph call: ids (B, T) after `past` -> logits (B, T - logits_from, .), hidden (B, T, C), presents."""
        B, T = input_ids.shape
        past_len = 0 if past is None else past[0].shape[2]
        if past_len + T > self.config.n_positions:
            raise ValueError(
                f"Sequence too long: {past_len + T} tokens ({past_len} cached + {T} new) but the model's context "
                f"length is n_positions={self.config.n_positions}. Truncate the input, or keep prompt length + "
                f"max_new_tokens <= {self.config.n_positions} when generating."
            )
        if past is None:
            empty = np.zeros((B, self.config.n_head, 0, self._head_dim), dtype=np.float32)
            past = [empty] * (2 * self.config.n_layer)
        feed = {"input_ids": input_ids.astype(np.int64, copy=False), "logits_from": np.array([logits_from], np.int64)}
        for i in range(self.config.n_layer):
            feed[f"past_key.{i}"], feed[f"past_value.{i}"] = past[2 * i], past[2 * i + 1]
        logits, hidden, *presents = self.session.run(None, feed)
        return logits, hidden, presents

    def _check_ids(self, input_ids, attention_mask):
        """Token ids as numpy plus the mask (B, T) as numpy (ones when none is given), refusing padding the graph
        cannot mask: every padding side for a masked graph, only right padding otherwise."""
        ids = torch.as_tensor(input_ids)
        if ids.dim() != 2 or ids.numel() == 0 or ids.is_floating_point():
            raise ValueError(f"input_ids must be a non-empty (batch, sequence) integer tensor, got {tuple(ids.shape)}.")
        if int(ids.min()) < 0 or int(ids.max()) >= self.config.vocab_size:
            raise ValueError(f"input_ids holds ids outside the vocabulary [0, {self.config.vocab_size}).")
        if attention_mask is None:
            return ids.numpy(), np.ones(ids.shape, dtype=np.int64)
        mask = torch.as_tensor(attention_mask).bool()
        if mask.shape != ids.shape:
            raise ValueError(f"attention_mask has shape {tuple(mask.shape)} but input_ids {tuple(ids.shape)}.")
        lengths = mask.sum(dim=1)
        right_padded = mask == (torch.arange(ids.shape[1])[None, :] < lengths[:, None])
        if int(lengths.min()) == 0 or not (self._masked or bool(right_padded.all())):
            raise ValueError(
                "The int8 model handles right padding only (and no empty rows): tokenize with "
                "tokenizer.padding_side = 'right', or pass no attention_mask for unpadded input."
            )
        return ids.numpy(), mask.long().numpy()

    def _run_masked(self, ids: np.ndarray, mask: np.ndarray):
        """A masked classifier graph: pooled logits (B, L) and last hidden states (B, T, C)."""
        logits, hidden = self.session.run(None, {"input_ids": ids.astype(np.int64, copy=False), "attention_mask": mask})
        return torch.from_numpy(logits), torch.from_numpy(hidden)

    def __call__(self, input_ids=None, attention_mask=None, **kwargs):
        """Like the PyTorch forward: `.logits` is (B, T, V) for a causal LM, (B, num_labels) for a classifier, pooled
        as `config.classifier_pooling` says (inside the graph traced from the model; for a format-1 classifier, whose
        graph gives the head's logits at every position, by the model's own `pool_sequence`). `.hidden_states`
        holds the last hidden states (B, T, C)."""
        unknown = {k for k, v in kwargs.items() if v is not None} - {"use_cache", "return_dict"}
        if unknown:
            raise TypeError(f"Int8CharGPT does not support the arguments {sorted(unknown)}.")
        ids, mask = self._check_ids(input_ids, attention_mask)
        if self._masked:
            logits, hidden = self._run_masked(ids, mask)
            return SimpleNamespace(logits=logits, hidden_states=hidden)
        logits, hidden, _ = self._run(ids, None, 0)
        logits = torch.from_numpy(logits)
        if self.task == "sequence-classification":  # (B, T, L) -> (B, L), real tokens as the PyTorch model sees them
            given = None if attention_mask is None else torch.from_numpy(mask)
            real = real_tokens(torch.from_numpy(ids), given, self.config.pad_token_id, *ids.shape, logits.device)
            logits = pool_sequence(logits, real, self.config.classifier_pooling)
        return SimpleNamespace(logits=logits, hidden_states=torch.from_numpy(hidden))

    forward = __call__

    def logits_through_cache(self, input_ids, prefix: int) -> torch.Tensor:
        """Logits (B, T, V) of unpadded `input_ids` computed as generation does: the first `prefix` tokens at once,
        then one token a step through the key/value cache."""
        ids, _ = self._check_ids(input_ids, None)
        logits, _, past = self._run(ids[:, :prefix], None, 0)
        steps = [logits]
        for t in range(prefix, ids.shape[1]):
            logits, _, past = self._run(ids[:, t : t + 1], past, 0)
            steps.append(logits)
        return torch.from_numpy(np.concatenate(steps, axis=1))

    @torch.no_grad()
    def embed(self, input_ids, attention_mask=None, normalize=True):
        """Masked-mean sentence embeddings (B, C), L2-normalised by default, as `CharGPTPreTrainedModel.embed`."""
        ids, mask = self._check_ids(input_ids, attention_mask)
        if self._masked:
            hidden = self._run_masked(ids, mask)[1]
        else:
            hidden = torch.from_numpy(self._run(ids, None, ids.shape[1] - 1)[1])
        pooled = mean_pool(hidden, None if attention_mask is None else torch.as_tensor(attention_mask))
        return F.normalize(pooled, dim=-1) if normalize else pooled

    @torch.no_grad()
    def generate(self, input_ids, attention_mask=None, generation_config=None, streamer=None, **kwargs):
        """Greedy or sampled continuation with the key/value cache, with `model.generate()`'s semantics for the
        settings CharGPT uses (do_sample, temperature, top_k, top_p, repetition_penalty, no_repeat_ngram_size,
        max_new_tokens / max_length, min_new_tokens, eos_token_id (one or several), pad_token_id,
        num_return_sequences) and the same streamer protocol (`put(prompt)`, `put(token)` per step, `end()`).
        Returns (B * n, prompt + new) token ids; rows that stopped early are padded with pad_token_id. Other settings
        (beam search, ...) raise ValueError."""
        if self.task != "causal-lm":
            raise ValueError("This int8 export is a classifier; generate() needs a causal LM export.")
        gen = copy.deepcopy(generation_config or self.generation_config or default_generation_config(self.config))
        unused = gen.update(**kwargs)
        if unused:
            raise ValueError(f"Int8CharGPT.generate() got unknown arguments {sorted(unused)}.")
        _check_supported(gen)
        ids, _ = self._check_ids(input_ids, attention_mask)
        if attention_mask is not None and not bool(torch.as_tensor(attention_mask).bool().all()):
            raise ValueError(
                "Int8CharGPT.generate() takes unpadded prompts: generate one prompt (or equal-length prompts) per call."
            )
        ids = torch.from_numpy(ids).repeat_interleave(gen.num_return_sequences or 1, dim=0)
        prompt_len = ids.shape[1]
        max_new = gen.max_new_tokens if gen.max_new_tokens is not None else (gen.max_length or 20) - prompt_len
        if max_new < 1 or prompt_len + max_new > self.config.n_positions:
            raise ValueError(
                f"Cannot generate {max_new} tokens after a {prompt_len}-token prompt: need at least 1 and prompt + "
                f"max_new_tokens <= n_positions={self.config.n_positions}."
            )
        eos = gen.eos_token_id
        eos = torch.tensor([] if eos is None else ([eos] if isinstance(eos, int) else list(eos)), dtype=torch.long)
        pad = gen.pad_token_id if gen.pad_token_id is not None else self.config.pad_token_id or 0
        processors, do_sample = _logits_processors(gen, prompt_len, eos), _setting(gen, "do_sample")
        if streamer is not None:
            streamer.put(ids.clone())
        unfinished = torch.ones(ids.shape[0], dtype=torch.bool)
        step_ids, past = ids.numpy(), None
        for _ in range(max_new):
            logits, _, past = self._run(step_ids, past, step_ids.shape[1] - 1)
            scores = processors(ids, torch.from_numpy(logits[:, -1, :]).clone())
            if do_sample:
                next_tokens = torch.multinomial(scores.softmax(dim=-1), num_samples=1).squeeze(1)
            else:
                next_tokens = scores.argmax(dim=-1)
            next_tokens = torch.where(unfinished, next_tokens, torch.full_like(next_tokens, pad))
            ids = torch.cat([ids, next_tokens[:, None]], dim=1)
            if streamer is not None:
                streamer.put(next_tokens.clone())
            unfinished &= ~torch.isin(next_tokens, eos)
            if not bool(unfinished.any()):
                break
            step_ids = next_tokens[:, None].numpy()
        if streamer is not None:
            streamer.end()
        return ids


def _setting(gen: GenerationConfig, name: str):
    value = getattr(gen, name, None)
    return _GENERATION_DEFAULTS[name] if value is None else value


def _check_supported(gen: GenerationConfig):
    for name, off in _UNSUPPORTED_GENERATION.items():
        value = getattr(gen, name, None)
        if value is not None and value != off:
            raise ValueError(
                f"Int8CharGPT.generate() supports greedy decoding and sampling only; {name}={value!r} is not "
                f"supported. Use the PyTorch model for it."
            )


def _logits_processors(gen: GenerationConfig, prompt_len: int, eos: torch.Tensor) -> LogitsProcessorList:
    """transformers' own processors, in the order `generate()` applies them."""
    processors = LogitsProcessorList()
    if _setting(gen, "repetition_penalty") != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(penalty=_setting(gen, "repetition_penalty")))
    if gen.no_repeat_ngram_size:
        processors.append(NoRepeatNGramLogitsProcessor(gen.no_repeat_ngram_size))
    if gen.min_new_tokens and len(eos):
        processors.append(MinNewTokensLengthLogitsProcessor(prompt_len, gen.min_new_tokens, eos))
    if _setting(gen, "do_sample"):
        if _setting(gen, "temperature") != 1.0:
            processors.append(TemperatureLogitsWarper(_setting(gen, "temperature")))
        if _setting(gen, "top_k"):
            processors.append(TopKLogitsWarper(top_k=_setting(gen, "top_k")))
        if _setting(gen, "top_p") < 1.0:
            processors.append(TopPLogitsWarper(top_p=_setting(gen, "top_p")))
    return processors


def _load_config(path: str, info: dict) -> CharGPTConfig:
    """The export's config, refused when it asks for something this runtime does not implement (a task, or a
    pooling or other option a newer chargpt wrote), rather than run as a different model."""
    if info.get("task") not in RUNTIME_TASKS:
        raise ValueError(
            f"{path} is an int8 export for the task {info.get('task')!r}; this chargpt runs "
            f"{RUNTIME_TASKS}. Upgrade chargpt or re-export."
        )
    try:
        config = CharGPTConfig.from_pretrained(path)
    except ValueError as err:
        raise ValueError(
            f"{path}: its config.json describes a model this chargpt's int8 runtime does not implement "
            f"({err}). Upgrade chargpt, or export the model again with this one."
        ) from err
    pooling = config.classifier_pooling if info["task"] == "sequence-classification" else None
    if pooling is not None and pooling not in RUNTIME_POOLINGS:
        raise ValueError(
            f"{path}: classifier_pooling={pooling!r} is not implemented by this int8 runtime "
            f"({RUNTIME_POOLINGS}). Upgrade chargpt or re-export."
        )
    if pooling == "mean" and info.get("format_version", 0) < 2:
        logger.warning(
            "%s was exported by a chargpt whose int8 runtime pooled every classifier by its last token: it now "
            "pools by the mean, as the model does, but the checks recorded in %s were measured the old way. Export it "
            "again to record the real agreement.",
            path,
            EXPORT_INFO_FILE,
        )
    return config


def _session_options(ort, num_threads: int | None):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if num_threads:
        options.intra_op_num_threads = num_threads
    return options


def session_model(
    onnx_model, config: CharGPTConfig, task: str, generation_config=None, num_threads: int | None = None
) -> Int8CharGPT:
    """An `Int8CharGPT` over an ONNX graph file or in-memory model (`onnx_export.export_float_graph` writes the float
    one), for the export's own checks, tests and benchmarks; exported directories load with `load_int8`."""
    ort = require("onnxruntime")
    source = onnx_model if isinstance(onnx_model, (str, os.PathLike)) else onnx_model.SerializeToString()
    session = ort.InferenceSession(
        source, sess_options=_session_options(ort, num_threads), providers=["CPUExecutionProvider"]
    )
    return Int8CharGPT("<memory>", session, config, generation_config, {"task": task})


def load_int8(path, num_threads: int | None = None) -> Int8CharGPT:
    """Load a directory written by `export_int8` (the only loader for it). `num_threads`: ONNX Runtime intra-op
    threads (default: its own choice, one per physical core)."""
    ort = require("onnxruntime")
    path = str(path)
    if not is_int8_export(path):
        raise ValueError(f"{path} is not an int8 export (no {EXPORT_INFO_FILE}); write one with `chargpt export-int8`.")
    with open(os.path.join(path, EXPORT_INFO_FILE), encoding="utf-8") as f:
        info = json.load(f)
    if info.get("format") != EXPORT_FORMAT or info.get("format_version", 0) > EXPORT_FORMAT_VERSION:
        raise ValueError(
            f"{path} holds export format {info.get('format')!r} version {info.get('format_version')}; this chargpt "
            f"reads {EXPORT_FORMAT!r} up to version {EXPORT_FORMAT_VERSION}. Upgrade chargpt or re-export."
        )
    config = _load_config(path, info)
    generation_config = None
    if os.path.isfile(os.path.join(path, "generation_config.json")):
        generation_config = GenerationConfig.from_pretrained(path)
    graph = os.path.join(path, info["onnx_file"])
    try:
        session = ort.InferenceSession(
            graph, sess_options=_session_options(ort, num_threads), providers=["CPUExecutionProvider"]
        )
    except Exception as err:  # onnxruntime raises its own types (InvalidProtobuf, Fail, NoSuchFile)
        raise ValueError(
            f"Could not load the int8 graph {graph}: {type(err).__name__}: {err}. The file may be truncated or "
            f"damaged: export the model again with `chargpt export-int8`."
        ) from err
    return Int8CharGPT(path, session, config, generation_config, info)
