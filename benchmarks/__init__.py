"""CharGPT benchmarks: speed, memory and quality against transformers' GPT-2 with the same dimensions.

Run everything with `python benchmarks/run.py` (or `--quick`); see benchmarks/run.py for the options.
"""
