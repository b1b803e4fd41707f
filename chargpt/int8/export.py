"""Writing an int8 export (`export_int8`): the graph traced from the model and quantized, config, tokenizer and a
description with the checks against the float model, into a directory that appears whole or not at all."""

import datetime
import logging
import math
import os

import numpy as np
import torch
import torch.nn.functional as F

from ..export.checks import CHECK_TOLERANCE, ExportCheckError, probe_inputs, relative_difference, task_output
from ..files import atomic_output_dir, write_json_atomic
from ..tasks import classify_texts
from .format import EXPORT_FORMAT, EXPORT_FORMAT_VERSION, EXPORT_INFO_FILE, ONNX_FILE, require
from .onnx_export import ONNX_OPSET, float_graph_file, model_task, quantize_graph
from .runtime import Int8CharGPT, load_int8, session_model


logger = logging.getLogger(__name__)


def greedy_settings(n_new: int, config) -> dict:
    """Exactly n_new greedy tokens (stop tokens suppressed until then), the same for every backend."""
    return dict(do_sample=False, max_new_tokens=n_new, min_new_tokens=n_new, pad_token_id=config.pad_token_id)


def weights_bytes(path) -> int:
    """Bytes of the weight files in a model directory (safetensors, PyTorch bins or the int8 ONNX graph)."""
    suffixes = (".safetensors", ".bin", ".onnx", ".pt")
    return sum(os.path.getsize(os.path.join(path, n)) for n in os.listdir(path) if n.endswith(suffixes))


def directory_bytes(path) -> int:
    return sum(os.path.getsize(os.path.join(root, n)) for root, _, names in os.walk(path) for n in names)


def _unique_parameter_bytes(model) -> int:
    """What save_pretrained stores: every distinct tensor once (tied weights count once)."""
    seen = {}
    for tensor in list(model.parameters()) + list(model.buffers()):
        seen[tensor.data_ptr()] = tensor.numel() * tensor.element_size()
    return sum(seen.values())


def export_int8(
    model,
    tokenizer,
    output_dir,
    source: str | None = None,
    overwrite: bool = False,
    num_threads: int | None = None,
    eval_texts: list[str] | None = None,
    eval_labels: list[int] | None = None,
) -> dict:
    """Write an int8 ONNX Runtime export of `model` (a CharGPT causal LM or classifier) with its tokenizer to
    `output_dir`, atomically (built in a temporary sibling directory, then renamed). Returns the export description
    that is also written to `chargpt_int8.json`: method, sizes, the checks of the float32 graph and of the int8 export
    against the model (`check_export`: the task's own output on a fixed padded probe; a failed check raises
    ExportCheckError and writes nothing) and, given `eval_texts` (and `eval_labels` for a classifier),
    `compare_on_texts` on them."""
    require("onnx")
    require("onnxruntime")

    task = model_task(model)
    model = model.to(device="cpu", dtype=torch.float32).eval()
    source_bytes = weights_bytes(source) if source and os.path.isdir(source) else _unique_parameter_bytes(model)
    tied = task == "causal-lm" and model.lm_head.weight is model.transformer.wte.weight
    with (
        atomic_output_dir(output_dir, overwrite=overwrite, source=source) as staging,
        float_graph_file(model) as float_path,
    ):
        quantize_graph(float_path, os.path.join(staging, ONNX_FILE))
        config = model.config.to_dict()
        config.pop("auto_map", None)  # the export holds no modeling code; only chargpt.int8.load_int8 reads it
        write_json_atomic(os.path.join(staging, "config.json"), config)
        if task == "causal-lm":
            model.generation_config.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        info = {
            "format": EXPORT_FORMAT,
            "format_version": EXPORT_FORMAT_VERSION,
            "task": task,
            "classifier_pooling": model.config.classifier_pooling if task == "sequence-classification" else None,
            "onnx_file": ONNX_FILE,
            "method": method_description(model.config),
            "tied_embedding_stored_twice": tied,  # the lookup's table and the head's matrix, each int8
            "source": str(source) if source else None,
            "source_weights_bytes": int(source_bytes),
            "int8_weights_bytes": os.path.getsize(os.path.join(staging, ONNX_FILE)),
            "opset": ONNX_OPSET,
            "versions": library_versions(),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        }
        info["size_ratio"] = round(info["int8_weights_bytes"] / info["source_weights_bytes"], 4)
        write_json_atomic(os.path.join(staging, EXPORT_INFO_FILE), info)
        # The float32 graph first: it differs from PyTorch by rounding only, so any real difference is the graph's
        # (or the runtime's) and not quantization's; then the int8 graph as written, through the loader users call.
        float_graph = session_model(float_path, model.config, task, num_threads=num_threads)
        reference = task_output(model, *probe_inputs(model.config), task)
        info["checks"] = {"float32_graph": check_export(model, float_graph, "float32", 0, reference)}
        int8_model = load_int8(staging, num_threads=num_threads)
        info["checks"]["int8"] = check_export(model, int8_model, "int8", reference=reference)
        if eval_texts:
            info["evaluation"] = compare_on_texts(model, int8_model, tokenizer, eval_texts, eval_labels)
        write_json_atomic(os.path.join(staging, EXPORT_INFO_FILE), info)
    logger.info("Wrote the int8 export to %s (%.2f of the float32 weights).", output_dir, info["size_ratio"])
    return info


def method_description(config) -> str:
    """One line saying how the export was made and how each kind of weight is stored, for its description."""
    norms = "RMSNorms" if config.normalization == "rmsnorm" else "LayerNorms"
    rotary = ", rotary angles" if config.position_embedding_type == "rope" else ""
    return (
        f"torch.onnx.export (dynamo, opset {ONNX_OPSET}) of the PyTorch model, then ONNX Runtime quantize_dynamic: "
        "matrix-product weights int8 per output channel (symmetric, 7-bit), activations quantized per call, the "
        f"embedding table int8 (a tied LM head keeps an int8 copy of its own); {norms}{rotary}, biases and pooling "
        "float32 as traced"
    )


def library_versions() -> dict:
    import onnxruntime
    import transformers

    from .. import __version__

    return {
        "chargpt": __version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


@torch.no_grad()
def check_export(model, exported: Int8CharGPT, precision: str, n_new: int = 16, reference=None) -> dict:
    """Compare an export's task output on the probe with the float model's and raise ExportCheckError when their
    `relative_difference` exceeds CHECK_TOLERANCE[precision]. Returns the figures (and, for causal LMs, how many
    greedy tokens of an `n_new`-token continuation match before the first difference, for information; n_new=0 skips
    it). `reference`: the model's `task_output` on the probe, when already computed."""
    task, config = exported.task, model.config
    ids, mask = probe_inputs(config)
    ref = task_output(model, ids, mask, task) if reference is None else reference
    got = task_output(exported, ids, mask, task)
    relative = relative_difference(got, ref)
    result = {
        "compared": "pooled classifier logits"
        if task == "sequence-classification"
        else "next-token logits, whole sequence and through the cache",
        "relative_difference": float(f"{relative:.4g}"),
        "tolerance": CHECK_TOLERANCE[precision],
        "max_abs_logit_diff": round(float((ref - got).abs().max()), 6),
        "logit_scale": round(float(ref.abs().max()), 5),
        "top1_agreement": round(float((ref.argmax(-1) == got.argmax(-1)).float().mean()), 4),
    }
    n_new = min(n_new, config.n_positions - 8)
    if task == "causal-lm" and n_new > 0:
        greedy = greedy_settings(n_new, config)
        a = model.generate(ids[:1, :8], attention_mask=torch.ones(1, 8, dtype=torch.long), **greedy)[0, 8:]
        b = exported.generate(ids[:1, :8], **greedy)[0, 8:]
        result["greedy_tokens_matching_before_first_difference"] = int((a == b).long().cumprod(0).sum())
        result["greedy_tokens_compared"] = int(len(a))
    if not relative <= result["tolerance"]:
        raise ExportCheckError(
            f"The {precision} export does not reproduce the model: its {result['compared']} differ from PyTorch's on "
            f"the probe by {relative:.3g} of their RMS (allowed: {result['tolerance']}). Nothing was written. "
            f"This is a bug in chargpt's int8 export for "
            f"{method_description(config)}; please report it with the model's config.json."
        )
    return result


@torch.no_grad()
def compare_on_texts(
    model, int8_model: Int8CharGPT, tokenizer, texts: list[str], labels: list[int] | None = None, batch_size: int = 16
) -> dict:
    """Agreement on real text. Causal LM: perplexity of each model (all tokens after <bos>, texts truncated to the
    context) and next-token top-1 agreement. Classifier: accuracy of each (when labels are given) and agreement."""
    if not texts:
        raise ValueError("compare_on_texts needs at least one text.")
    if int8_model.task == "causal-lm":
        nll, agree, count = {"fp32": 0.0, "int8": 0.0}, 0, 0
        for text in texts:
            enc = tokenizer(text, truncation=True, max_length=model.config.n_positions, return_tensors="pt")
            ids = enc["input_ids"]
            if ids.shape[1] < 2:
                continue
            outs = {"fp32": model(input_ids=ids).logits[0, :-1], "int8": int8_model(input_ids=ids).logits[0, :-1]}
            for name, logits in outs.items():
                nll[name] += float(F.cross_entropy(logits.float(), ids[0, 1:], reduction="sum"))
            agree += int((outs["fp32"].argmax(-1) == outs["int8"].argmax(-1)).sum())
            count += ids.shape[1] - 1
        if count == 0:
            raise ValueError("None of the texts has a character to predict.")
        ppl = {k: math.exp(v / count) for k, v in nll.items()}
        return {
            "texts": len(texts),
            "tokens": count,
            "perplexity_fp32": round(ppl["fp32"], 4),
            "perplexity_int8": round(ppl["int8"], 4),
            "perplexity_change_pct": round(100 * (ppl["int8"] / ppl["fp32"] - 1), 3),
            "next_token_top1_agreement": round(agree / count, 4),
        }

    preds = {
        name: [r["label_id"] for r in classify_texts(m, tokenizer, texts, batch_size=batch_size)]
        for name, m in (("fp32", model), ("int8", int8_model))
    }
    result = {
        "texts": len(texts),
        "prediction_agreement": round(float(np.mean(np.equal(preds["fp32"], preds["int8"]))), 4),
    }
    if labels is not None:
        for name, p in preds.items():
            result[f"accuracy_{name}"] = round(float(np.mean(np.equal(p, labels))), 4)
        result["accuracy_change"] = round(result["accuracy_int8"] - result["accuracy_fp32"], 4)
    return result
