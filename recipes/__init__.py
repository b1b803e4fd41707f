"""The team's experiments beside the library, as transformers keeps `run_clm.py` in `examples/`: the end-to-end demo
on pip-shipped data (`demo`, with `demo_samples`: which of its sample prompts it trained on), the full recipe on the
shared Chinese data (`full`), the fixed held-out splits of that data (`sentiment_splits`, `dialogue_splits`) and the
evaluation of a model directory on them (`heldout`).

Not installed with `pip install chargpt`: the scripts in `train_scripts/` run them from a checkout of the repository,
and they import only the public `chargpt` package.
"""
