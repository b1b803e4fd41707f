"""Using a trained CharGPT from Python: one import for loading (`chargpt.loading`), the tasks (`chargpt.tasks`:
generation, classification, embeddings, similarity), reading and writing texts (`chargpt.textio`) and atomic output
(`chargpt.files`). The code lives in those modules; this one keeps `from chargpt.inference import ...` working."""

from .files import atomic_output_dir, atomic_write_text, clean_stale_staging
from .loading import (
    TASKS,
    check_model_and_tokenizer,
    check_model_dir,
    detect_task,
    load_config,
    load_model,
    load_model_and_tokenizer,
    load_tokenizer,
    remote_class,
    resolve_device,
    resolve_dtype,
)
from .tasks import (
    Generation,
    check_known_characters,
    classify_texts,
    cosine_similarity,
    effective_max_new_tokens,
    embed_texts,
    encode,
    generate_texts,
    label_names,
    most_similar,
    sampling_kwargs,
)
from .textio import TextRecord, make_record, read_records, write_rows


__all__ = [
    "TASKS",
    "check_model_dir",
    "load_model",
    "load_tokenizer",
    "load_model_and_tokenizer",
    "check_model_and_tokenizer",
    "check_known_characters",
    "remote_class",
    "clean_stale_staging",
    "load_config",
    "detect_task",
    "resolve_device",
    "resolve_dtype",
    "sampling_kwargs",
    "effective_max_new_tokens",
    "generate_texts",
    "encode",
    "Generation",
    "classify_texts",
    "label_names",
    "embed_texts",
    "cosine_similarity",
    "most_similar",
    "read_records",
    "TextRecord",
    "make_record",
    "write_rows",
    "atomic_write_text",
    "atomic_output_dir",
]
