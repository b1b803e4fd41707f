"""The package's int8 export (chargpt.quantization: ONNX Runtime, int8 weights) as a benchmark contender.

When the export cannot run here (module or onnx/onnxruntime missing) every int8 measurement is recorded as not run,
with the reason, instead of failing the whole benchmark.
"""

import os

from chargpt import CharGPTTokenizer


def int8_unavailable_reason() -> str | None:
    """None when the int8 export can run here, else why not."""
    try:
        from chargpt import quantization  # noqa: F401
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as err:
        return f"int8 export unavailable: {err}"
    return None


def placeholder_tokenizer(vocab_size: int, model_max_length: int = 512) -> CharGPTTokenizer:
    """A tokenizer of exactly `vocab_size` ids (CJK characters after the five specials), for exporting models with
    random weights in the speed and memory runs, where no real vocabulary exists."""
    return CharGPTTokenizer.from_texts(["".join(chr(0x4E00 + i) for i in range(vocab_size - 5))],
                                       model_max_length=model_max_length)


def export_and_load(model, tokenizer, directory: str, threads: int | None = None):
    """Export `model` (CharGPT causal LM or classifier) to int8 in `directory`, save the float32 model beside it, and
    return (int8 model, sizes) with the bytes of both weight files and their ratio."""
    from chargpt.quantization import export_int8, load_int8, weights_bytes

    fp32_dir, int8_dir = os.path.join(directory, "fp32"), os.path.join(directory, "int8")
    model.save_pretrained(fp32_dir)
    tokenizer.save_pretrained(fp32_dir)
    info = export_int8(model, tokenizer, int8_dir, source=fp32_dir, num_threads=threads)
    sizes = {"fp32_weights_bytes": weights_bytes(fp32_dir), "int8_weights_bytes": weights_bytes(int8_dir)}
    sizes["size_ratio"] = sizes["int8_weights_bytes"] / sizes["fp32_weights_bytes"]
    sizes["probe_check"] = info.get("probe_check")
    return load_int8(int8_dir, num_threads=threads), sizes
