"""Targets from the results, the printed summary table and the Markdown report.

`python -m benchmarks.report benchmarks/results/full.json` re-renders a report from a results file.
"""

import sys
from pathlib import Path

from .common import target


NOTES = Path(__file__).with_name("NOTES.md")


def _fmt(value, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return str(value)


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _ci(scores: dict, name: str, form=lambda v: f"{v:.4f}") -> str:
    """`scores[name]` written by `form`, followed by its 95% interval `[low, high]` where the scores have one
    (results written before intervals existed have none); n/a when the figure is missing."""
    if scores.get(name) is None:
        return "n/a"
    interval = scores.get(f"{name}_ci95")
    return form(scores[name]) + (f" [{form(interval[0])}, {form(interval[1])}]" if interval else "")


def targets(results: dict) -> list[dict]:
    """Every target the issue sets, evaluated on whatever sections the results hold."""
    out = []
    speed = results.get("speed") or {}
    for run in speed.get("training", []):
        label = (
            f"training {run['precision']} {'compiled' if run['compile'] else 'eager'} "
            f"{run['batch_size']}x{run['seq_len']}: CharGPT / GPT-2 tokens/s"
        )
        out.append(target(label, run.get("ratio"), 1.3))
    for run in speed.get("generation", []):
        mode = "sampling" if run["sample"] else "greedy"
        if run["batch_size"] == 1:
            out.append(
                target(f"generation batch 1 {mode}: CharGPT / GPT-2 tokens/s", run["speedups"].get("chargpt/gpt2"), 1.5)
            )
            if "chargpt-static-compiled/gpt2" in run["speedups"]:
                out.append(
                    target(
                        f"generation batch 1 {mode}: CharGPT static cache + compile / GPT-2 tokens/s",
                        run["speedups"]["chargpt-static-compiled/gpt2"],
                        1.5,
                    )
                )
        if "chargpt-int8/chargpt" in run["speedups"]:
            out.append(
                target(
                    f"generation batch {run['batch_size']} {mode}: int8 / fp32 tokens/s",
                    run["speedups"]["chargpt-int8/chargpt"],
                    1.5,
                )
            )
    int8 = speed.get("int8_export") or {}
    if int8.get("status") == "run":
        out.append(target("int8 export size / fp32 size", int8["size_ratio"], 0.35, higher_is_better=False))
    quality = results.get("quality") or {}
    for run in (quality.get("sentiment") or {}).get("runs", []):
        if run["model"] == "chargpt" and run["freeze"] == "none" and run["padding_masked"]:
            out.append(target("sentiment accuracy, CharGPT, freeze none", run["accuracy"], 0.93))
    return (
        out
        + _data_targets(results.get("data") or {})
        + _ttq_targets(results.get("time_to_quality") or {})
        + _recipe_targets(results.get("recipe") or {})
    )


def _recipe_targets(recipe: dict) -> list[dict]:
    figures = recipe.get("figures")
    if not figures:
        return []
    out = [
        target("recipe: sentiment accuracy, balanced ChnSentiCorp test", figures.get("sentiment_accuracy"), 0.91),
        target(
            "recipe: sentiment accuracy - TF-IDF floor (same training data)",
            _difference(figures.get("sentiment_accuracy"), figures.get("sentiment_tfidf_accuracy")),
            0.02,
        ),
        target("recipe: cross-domain accuracy (held-out category)", figures.get("cross_domain_accuracy"), 0.80),
        target("recipe: share of repetitive replies", figures.get("repetition_share"), 0.05, higher_is_better=False),
        target("recipe: Distinct-2 of the replies", figures.get("distinct_2"), 0.30),
    ]
    if "perplexity_ratio_vs_gpt2" in recipe:
        out.append(
            target(
                "recipe: held-out perplexity, chat model / GPT-2 (same training time)",
                recipe["perplexity_ratio_vs_gpt2"],
                1.0,
                higher_is_better=False,
            )
        )
    return out


def _difference(a, b):
    return None if a is None or b is None else a - b


def _ttq_targets(ttq: dict) -> list[dict]:
    best = (ttq.get("summary") or {}).get("chargpt-modern")
    if not best:
        return []
    out = [
        target(
            "time to quality: CharGPT modern's time to GPT-2's final loss / GPT-2's time",
            best.get("time_ratio_vs_gpt2"),
            0.5,
            higher_is_better=False,
        ),
        target(
            "time to quality: CharGPT modern's time to Llama's final loss / Llama's time",
            best.get("time_ratio_vs_llama"),
            0.8,
            higher_is_better=False,
        ),
        target(
            "time to quality: final perplexity, CharGPT modern / GPT-2 (same wall time)",
            best.get("perplexity_ratio_vs_gpt2"),
            0.8,
            higher_is_better=False,
        ),
    ]
    if "perplexity_ratio_vs_llama" in best:
        out.append(
            target(
                "time to quality: final perplexity, CharGPT modern / Llama (same wall time)",
                best["perplexity_ratio_vs_llama"],
                1.0,
                higher_is_better=False,
            )
        )
    return out


def _data_targets(data: dict) -> list[dict]:
    out = []
    flow = data.get("throughput")
    if flow:
        out += [
            target(
                "data path (chat template + tokenisation + packing): fast / slow tokenizer chars/s",
                flow["data_path"]["fast/slow"],
                10.0,
            ),
            target(
                "data path, fast tokenizer: characters per CPU-second (one core)",
                flow["fast_data_path_chars_per_cpu_s"],
                1e6,
            ),
            target("tokenizer(texts) alone: fast / slow chars/s", flow["tokenize"]["fast/slow"], 10.0),
        ]
    stream = (data.get("streaming") or {}).get("train")
    if stream:
        gb = data["streaming"]["corpus"]["bytes"] / 1e9
        out += [
            target(
                f"streaming from a {gb:.1f} GB corpus: peak resident memory of training, MiB",
                stream["peak_rss_mib"],
                2048.0,
                higher_is_better=False,
            ),
            target("streaming: data time / step time", stream["data_share"], 0.10, higher_is_better=False),
        ]
    for name, check in (data.get("shards") or {}).items():
        out.append(
            target(
                f"two gloo processes, {name}: disjoint shards whose union is the corpus (1 = yes)",
                float(check["disjoint"]),
                1.0,
            )
        )
    return out


def summary_table(results: dict) -> str:
    """Plain-text table of the targets, for the terminal."""
    rows = [("target", "measured", "threshold", "result")]
    for t in targets(results):
        verdict = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
        rows.append(
            (
                t["name"],
                _fmt(t["value"], 3),
                ("<= " if not t["higher_is_better"] else ">= ") + _fmt(t["threshold"], 2),
                verdict,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows)


def _table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return lines + [""]


def _machine(results: dict) -> list[str]:
    m = results.get("machine", {})
    lines = ["## Runs and machine", ""]
    for section, r in (results.get("runs") or {}).items():
        state = f"finished {r['finished']}, {r['seconds'] / 60:.1f} min" if "finished" in r else "not finished"
        lines.append(
            f"- {section}: `{r['command']}` ({'quick' if r['quick'] else 'full'} mode), started "
            f"{r['started']}, {state}; 1/5/15-min load average before {r.get('load_average_before')}, "
            f"after {r.get('load_average_after')}" + _other_machine(r.get("machine"), m)
        )
    lines += [
        f"- CPU: {m.get('cpu_model')} ({m.get('logical_cpus')} logical CPUs, "
        f"flags: {', '.join(m.get('cpu_flags', []))};"
        f" torch CPU capability {m.get('torch_cpu_capability')}), {m.get('torch_threads')} torch threads",
        f"- torch {m.get('torch')}, transformers {m.get('transformers')}, scikit-learn {m.get('scikit_learn')}, "
        f"Python {m.get('python')}; GPU: {m.get('cuda_device') or 'none'}",
        f"- A load average above {m.get('torch_threads')} means other work shared the cores. The machine is shared: "
        f"every speed comparison runs both models interleaved (A B A B) in one process, so the ratios stay "
        f"meaningful when the absolute numbers drift.",
        "",
    ]
    return lines


def _other_machine(run_machine: dict | None, machine: dict) -> str:
    """A note for a section measured on another machine than the one described below."""
    keys = ("cpu_model", "cpu_flags", "logical_cpus", "torch", "transformers")
    if not run_machine or all(run_machine.get(k) == machine.get(k) for k in keys):
        return ""
    return (
        f"; on another machine: {run_machine.get('cpu_model')} ({run_machine.get('logical_cpus')} logical CPUs, "
        f"flags: {', '.join(run_machine.get('cpu_flags', []))}), torch {run_machine.get('torch')}, transformers "
        f"{run_machine.get('transformers')}"
    )


def _targets_md(results: dict) -> list[str]:
    rows = []
    for t in targets(results):
        verdict = {True: "**met**", False: "**missed**", None: "not measured"}[t["met"]]
        rows.append(
            [
                t["name"],
                _fmt(t["value"], 3),
                ("<= " if not t["higher_is_better"] else ">= ") + _fmt(t["threshold"]),
                verdict,
            ]
        )
    return ["## Targets", ""] + _table(["target", "measured", "threshold", "result"], rows)


def _speed_md(speed: dict) -> list[str]:
    if not speed:
        return ["## Speed", "", "Not run.", ""]
    lines = ["## 1. Training throughput", ""]
    peaks = speed.get("matmul_peak", {})
    lines.append(
        "Measured matrix-multiply peak in this run (best of torch.mm and F.linear over a few shapes): "
        + ", ".join(f"{p} {v['gflops']:.1f} GFLOP/s" for p, v in peaks.items())
        + ". MFU = tokens/s x "
        "model FLOPs per token (6 x matmul parameters + 12 x layers x hidden x length) / that peak."
    )
    lines.append("")
    rows = []
    for r in speed.get("training", []):
        head = [r["precision"], "yes" if r["compile"] else "no", f"{r['batch_size']}x{r['seq_len']}"]
        if r.get("status") in ("failed", "skipped"):
            rows.append(head + [f"{r['status']}: " + r.get("error", r.get("reason", ""))[:200], "", "", "", "", ""])
            continue
        rows.append(
            head
            + [
                r["chargpt"]["tokens_per_s"],
                r["gpt2"]["tokens_per_s"],
                _fmt(r["ratio"], 3),
                _fmt(r.get("ratio_best"), 3),
                _pct(r["chargpt"]["mfu"]),
                _pct(r["gpt2"]["mfu"]),
            ]
        )
    lines += _table(
        [
            "precision",
            "compile",
            "batch x len",
            "CharGPT tok/s",
            "GPT-2 tok/s",
            "ratio (target 1.3)",
            "best-of ratio",
            "CharGPT MFU",
            "GPT-2 MFU",
        ],
        rows,
    )
    lines += [
        "tok/s and MFU are medians over the timed rounds; 'ratio' is the median of per-round GPT-2 time / "
        "CharGPT time (> 1: CharGPT faster); 'best-of ratio' compares each model's fastest round, a check "
        "against bursts of other work that hit some rounds only.",
        "",
    ]
    for r in speed.get("probes", []):
        lines += [
            f"Like-for-like check (not a target): CharGPT with {r['chargpt_overrides']}, i.e. GPT-2's attention "
            f"dropout, so both do the same work; fp32 eager {r['batch_size']}x{r['seq_len']}: CharGPT "
            f"{r['chargpt']['tokens_per_s']:,.0f} tok/s, GPT-2 {r['gpt2']['tokens_per_s']:,.0f} tok/s, ratio "
            f"{r['ratio']:.3f}.",
            "",
        ]
    compile_rows = [
        [
            r["precision"],
            f"{r['batch_size']}x{r['seq_len']}",
            r["first_call_seconds"]["chargpt"],
            r["first_call_seconds"]["gpt2"],
        ]
        for r in speed.get("training", [])
        if r.get("compile") and "first_call_seconds" in r
    ]
    if compile_rows:
        lines += ["First compiled call (compilation + first steps), seconds:", ""]
        lines += _table(["precision", "batch x len", "CharGPT", "GPT-2"], compile_rows)
    lines += [
        "## 2. Generation throughput",
        "",
        "128 new tokens (min = max, so every run does the same work), 16-token prompt, KV cache, greedy or "
        "top-p 0.9 / temperature 0.7 sampling; fp32 PyTorch `generate()` for CharGPT and GPT-2, and the int8 "
        "export's own `generate()` (chargpt.int8, ONNX Runtime).",
        "",
    ]
    rows = []
    for r in speed.get("generation", []):
        int8 = r.get("chargpt-int8", {}).get("tokens_per_s")
        best = r.get("speedups_best", {})
        rows.append(
            [
                r["batch_size"],
                "sampling" if r["sample"] else "greedy",
                r["chargpt"]["tokens_per_s"],
                r["gpt2"]["tokens_per_s"],
                _fmt(r["speedups"].get("chargpt/gpt2"), 3),
                _fmt(best.get("chargpt/gpt2"), 3),
                _fmt(int8),
                _fmt(r["speedups"].get("chargpt-int8/chargpt"), 3),
                _fmt(best.get("chargpt-int8/chargpt"), 3),
            ]
        )
    lines += _table(
        [
            "batch",
            "decoding",
            "CharGPT fp32 tok/s",
            "GPT-2 tok/s",
            "CharGPT / GPT-2",
            "(best-of)",
            "int8 tok/s",
            "int8 / fp32",
            "(best-of)",
        ],
        rows,
    )
    static_rows = [
        [
            r["batch_size"],
            "sampling" if r["sample"] else "greedy",
            r["chargpt-static-compiled"]["tokens_per_s"],
            r["chargpt"]["tokens_per_s"],
            r["gpt2"]["tokens_per_s"],
            _fmt(r["speedups"].get("chargpt-static-compiled/chargpt"), 3),
            _fmt(r["speedups"].get("chargpt-static-compiled/gpt2"), 3),
        ]
        for r in speed.get("generation", [])
        if "chargpt-static-compiled" in r
    ]
    if static_rows:
        lines += [
            "CharGPT's `generate(cache_implementation=\"static\")` with transformers' generate-time "
            "compilation of the forward (`CompileConfig`, switched on for the CPU; compilation happens in the "
            "warm-up round), same weights and prompt:",
            "",
        ]
        lines += _table(
            [
                "batch",
                "decoding",
                "static + compile tok/s",
                "CharGPT dynamic tok/s",
                "GPT-2 tok/s",
                "static / dynamic",
                "static / GPT-2",
            ],
            static_rows,
        )
    int8 = speed.get("int8_export", {})
    if int8.get("status") == "run":
        lines += [
            f"int8 export size: {int8['int8_weights_bytes'] / 2**20:.2f} MiB against "
            f"{int8['fp32_weights_bytes'] / 2**20:.2f} MiB fp32 safetensors = {int8['size_ratio']:.3f} "
            f"(target <= 0.35).",
            "",
        ]
    else:
        lines += [f"int8 export: {int8.get('status')} ({int8.get('reason')}).", ""]
    gpu = speed.get("gpu_half_generation", {})
    if gpu.get("status") == "run":
        rows = [
            [r["batch_size"], r["chargpt"]["tokens_per_s"], r["gpt2"]["tokens_per_s"], _fmt(r["ratio"], 3)]
            for r in gpu["runs"]
        ]
        lines += [f"GPU fp16 greedy generation on {gpu['device']}:", ""]
        lines += _table(["batch", "CharGPT tok/s", "GPT-2 tok/s", "ratio"], rows)
    else:
        lines += [f"GPU half-precision generation: {gpu.get('status', 'not run')} ({gpu.get('reason', '')}).", ""]
    return lines


def _memory_md(memory: dict) -> list[str]:
    if not memory:
        return ["## 3. Peak memory", "", "Not run.", ""]

    def key(r):
        return (r["task"], r["batch_size"], r.get("seq_len"), r.get("new_tokens"))

    peer = {key(r): r for r in memory["runs"] if r["model"] == "gpt2"}
    rows = []
    for r in memory["runs"]:
        shape = (
            f"{r['batch_size']}x{r['seq_len']}"
            if r["task"] == "train"
            else f"batch {r['batch_size']}, {r['new_tokens']} new"
        )
        ref = peer.get(key(r))
        ratio = _fmt(r["peak_mib"] / ref["peak_mib"], 3) if ref and r["model"] != "gpt2" else ""
        rows.append([r["model"], r["task"], shape, r["peak_mib"], r["increase_mib"], ratio])
    return ["## 3. Peak memory", "", memory["method"], ""] + _table(
        ["model", "task", "shape", "peak RSS MiB", "increase MiB", "peak / GPT-2 peak"], rows
    )


def _dialogue_md(quality: dict) -> list[str]:
    d = quality.get("dialogue")
    if not d:
        return []
    lines = ["## 4. Dialogue", ""]
    p = quality["pretraining"]
    c = p["chargpt"]
    lines.append(
        f"Both models pretrained with the same budget: {c['steps']} steps of {c['batch_size']} x "
        f"{c['block_len']} tokens ({c['epochs']:.2f} epochs of {p['corpus_tokens']:,} tokens), AdamW "
        f"(betas 0.9/0.95, weight decay 0.01), peak LR {c['lr']}, 5% warm-up then cosine to 10%, gradient "
        f"clip 1.0, {c['precision']}, same batches in the same order. Wall time: CharGPT "
        f"{c['seconds'] / 60:.1f} min, GPT-2 {p['gpt2']['seconds'] / 60:.1f} min."
    )
    lines += [
        "",
        "Perplexity: per token over whole held-out LCCC validation dialogues (`<bos>turn<sep>...<eos>`, every"
        " predicted character plus `<sep>`/`<eos>`). Replies: one sampled reply (top-p 0.9, temperature 0.7) to"
        " each held-out post; Distinct-n is corpus-level; repetition = share of replies in which some character "
        "2-, 3- or 4-gram occurs three or more times. The human references' figures calibrate the scale.",
        "",
    ]
    base_ppl = d["chargpt"]["perplexity"]
    rows = []
    for name in ("chargpt", "gpt2"):
        r = d[name]
        rows.append(
            [
                name,
                r["perplexity"],
                _fmt(r["perplexity"] / base_ppl, 3),
                r["distinct_1"],
                r["distinct_2"],
                _pct(r["repetition_share"]),
                r["mean_length"],
                _pct(r["empty_share"]),
            ]
        )
    ref = d["references"]
    rows.append(
        [
            "human references",
            "",
            "",
            ref["distinct_1"],
            ref["distinct_2"],
            _pct(ref["repetition_share"]),
            ref["mean_length"],
            _pct(ref["empty_share"]),
        ]
    )
    lines += _table(
        [
            "model",
            "val. perplexity",
            "ppl / CharGPT ppl",
            "Distinct-1",
            "Distinct-2",
            "repetition",
            "mean reply length",
            "empty replies",
        ],
        rows,
    )
    lines += ["Sample replies (CharGPT):", ""]
    lines += [f"- {s['post']} → {s['reply']}" for s in d["samples"]["chargpt"][:5]]
    return lines + [""]


def _sentiment_md(quality: dict) -> list[str]:
    s = quality.get("sentiment")
    if not s:
        return []
    data = quality["data"]["chnsenticorp"]
    lines = [
        "## 5. Sentiment (ChnSentiCorp hotel reviews)",
        "",
        f"Split: {data['split']}; {data['train']} training and {data['test']} test reviews. Input "
        f"`<bos>review<eos>` cut to {s['max_len']} characters, right padding, last real token pooled. Each "
        f"classifier starts from the contender's pretrained LM (section 4).",
        "",
    ]
    rows = [
        [
            "TF-IDF char 1-3-gram + logistic regression",
            "",
            "",
            _pct(s["tfidf_logreg"]["accuracy"]),
            _pct(s["tfidf_logreg"]["macro_f1"]),
            "",
        ]
    ]
    for r in s["runs"]:
        label = r["model"] + ("" if r["padding_masked"] else " (ablation: padding not masked, last position pooled)")
        rows.append(
            [
                label,
                r["freeze"],
                f"{r['trainable_parameters']:,}",
                _pct(r["accuracy"]),
                _pct(r["macro_f1"]),
                f"{r['epochs']} ep, LR {r['lr']}, {r['seconds'] / 60:.1f} min",
            ]
        )
    lines += _table(["model", "freeze", "trainable params", "accuracy", "macro-F1", "training"], rows)
    return lines


def _int8_md(quality: dict) -> list[str]:
    q = quality.get("int8")
    if not q:
        return []
    if q.get("status") != "run":
        return ["## 6. int8 export quality", "", f"Not run: {q.get('reason')}.", ""]
    lm, cls = q["lm"], q["classifier"]
    rows = [
        [
            "LM validation perplexity",
            lm["fp32"]["perplexity"],
            lm["int8"]["perplexity"],
            _fmt(lm["int8"]["perplexity"] / lm["fp32"]["perplexity"], 4),
            _fmt(lm["sizes"]["size_ratio"], 3),
        ],
        [
            "classifier accuracy (freeze none)",
            _pct(cls["fp32"]["accuracy"]),
            _pct(cls["int8"]["accuracy"]),
            "",
            _fmt(cls["sizes"]["size_ratio"], 3),
        ],
        ["classifier macro-F1", _pct(cls["fp32"]["macro_f1"]), _pct(cls["int8"]["macro_f1"]), "", ""],
    ]
    return ["## 6. int8 export quality", ""] + _table(["measure", "fp32", "int8", "int8 / fp32", "size ratio"], rows)


def _data_md(data: dict) -> list[str]:
    if not data:
        return []
    lines = ["## 7. Data path: fast tokenizer and streaming", "", data["method"], ""]
    flow = data.get("throughput")
    if flow:
        lines += [
            f"{flow['dialogues']:,} dialogues of the shared corpora, {flow['characters']:,} characters, "
            f"vocabulary {flow['vocab_size']:,}, blocks of {flow['block_len']} tokens; the fast and slow data "
            f"paths give {'the same' if flow['same_blocks'] else 'DIFFERENT'} blocks.",
            "",
        ]
        rows = []
        for what, key in (("tokenizer(texts)", "tokenize"), ("data path", "data_path")):
            for name, r in flow[key].items():
                if isinstance(r, dict):
                    rows.append([what, name, f"{r['chars_per_s']:,.0f}"])
        lines += _table(["measure", "tokenizer", "characters/s"], rows)
        lines += [
            f"Fast / slow: tokenizer(texts) {flow['tokenize']['fast/slow']:.2f}x, data path "
            f"{flow['data_path']['fast/slow']:.2f}x (against the previous one-template-per-dialogue path: "
            f"{flow['data_path']['fast/slow previous path']:.2f}x). Fast data path per CPU-second: "
            f"{flow['fast_data_path_chars_per_cpu_s']:,.0f} characters.",
            "",
        ]
    stream = data.get("streaming")
    if stream:
        c, t, r = stream["corpus"], stream["train"], stream["read"]
        lines += [
            f"Streamed corpus: {c['bytes'] / 1e9:.2f} GB of JSON lines ({c['copies']} copies of the shared "
            f"dialogues, {c['dialogues']:,} dialogues, about {c['tokens_approx']:,} tokens).",
            "",
            f"- Training (`train_causal_lm`, streaming, packing, {t['steps']} steps of {t['batch_size']} x "
            f"{t['block_len']} tokens, {t['seconds']:.0f} s): peak RSS {t['peak_rss_mib']:,.0f} MiB (after "
            f"the first step {t['rss_mib_first_last'][0]:,.0f} MiB, after the last "
            f"{t['rss_mib_first_last'][1]:,.0f} MiB; every 10 steps: "
            f"{', '.join(f'{x:,.0f}' for x in t.get('rss_mib_every_10_steps', []))} MiB); data time "
            f"{100 * t['data_share']:.2f}% of step time "
            f"({100 * t['data_share_after_first_step']:.2f}% after the first step, which opens the stream: "
            f"{t['first_step_data_s']:.2f} s); median step {t['median_step_s']:.2f} s.",
            f"- Data path alone ({r['seconds']:.0f} s): {r['tokens']:,} tokens ({100 * r['share_of_corpus_read']:.1f}%"
            f" of the corpus), {r['tokens_per_s']:,.0f} tokens/s ({r['tokens_per_cpu_s']:,.0f} per CPU-second), "
            f"peak RSS {r['peak_rss_mib']:,.0f} MiB; RSS every 2,000 blocks: "
            f"{', '.join(str(x) for x in r['rss_mib_samples'][:12])} MiB.",
            "",
        ]
    shards = data.get("shards")
    if shards:
        rows = [
            [
                name,
                s["files"],
                s["whole"],
                " + ".join(str(n) for n in s["per_process"]),
                "yes" if s["union_equals_whole"] else "NO",
                s["overlap"],
                s["repeated_in_corpus"],
            ]
            for name, s in shards.items()
        ]
        lines += ["Shards (`split_dataset_by_node` in two gloo processes, one pass, sequences compared by digest):", ""]
        lines += _table(
            [
                "corpus",
                "files",
                "sequences, one process",
                "two processes",
                "union = one process",
                "in both",
                "repeated in the corpus",
            ],
            rows,
        )
    return lines


def _ttq_md(ttq: dict) -> list[str]:
    if not ttq or not ttq.get("runs"):
        return []
    st, d = ttq["settings"], ttq["data"]
    lines = [
        "## 8. Time to quality",
        "",
        f"Each model trains with transformers' Trainer for {st['budget_s']:.0f} s of wall time ({st['threads']} "
        f"torch threads; evaluation pauses the clock) on the same batches of {st['batch_size']} x "
        f"{st['block_len']} tokens, schedule {st['schedule']}. Data: every dialogue corpus in ../shared/data "
        f"({len(d['files'])} files, {d['dialogues']['train']:,} training and {d['dialogues']['valid']:,} "
        f"validation dialogues, {d['characters']:,} characters), character vocabulary of {d['vocab_size']:,}; "
        f"the validation loss is over {d['valid_blocks']} held-out blocks. See benchmarks/time_to_quality.py "
        f"for the contenders' configurations.",
        "",
    ]
    summary = ttq.get("summary", {})
    rows = []
    for name, r in ttq["runs"].items():
        s = summary.get(name, {})
        steps = (
            r["steps"] if r["steps"] == r.get("planned_steps", r["steps"]) else f"{r['steps']} of {r['planned_steps']}"
        )
        rows.append(
            [
                name,
                f"{r['parameters']:,}",
                f"{r['optimizer']} {r['learning_rate']:g}",
                steps,
                f"{r['seconds']:.0f}",
                f"{r['tokens_per_second']:,.0f}",
                f"{r['final_loss']:.3f}",
                f"{r['final_perplexity']:.1f}",
                _fmt(s.get("time_to_gpt2_loss"), 0),
                _fmt(s.get("time_ratio_vs_gpt2"), 2),
                _fmt(s.get("time_to_llama_loss"), 0),
                _fmt(s.get("time_ratio_vs_llama"), 2),
            ]
        )
    lines += _table(
        [
            "model",
            "parameters",
            "optimizer, peak LR",
            "steps",
            "train s",
            "tokens/s",
            "final val loss",
            "perplexity",
            "s to GPT-2's loss",
            "/ GPT-2's time",
            "s to Llama's loss",
            "/ Llama's time",
        ],
        rows,
    )
    lines += [
        'Steps "N of M": the run reached the time limit (1.1 x the budget) before the M steps its measured rate '
        "promised. At equal wall time (each model's validation loss, interpolated, when the reference run "
        "ended): "
        + "; ".join(
            f"{name} perplexity {_fmt(s.get('perplexity_ratio_vs_gpt2'), 3)} x GPT-2's, "
            f"{_fmt(s.get('perplexity_ratio_vs_llama'), 3)} x Llama's"
            for name, s in summary.items()
        )
        + ".",
        "",
    ]
    if ttq.get("plot"):
        lines += [f"![validation loss against training time]({ttq['plot']})", ""]
    lines += ["Validation loss at each evaluation (training seconds: loss):", ""]
    for name, r in ttq["runs"].items():
        lines.append(f"- {name}: " + ", ".join(f"{p['seconds']:.0f}: {p['loss']:.3f}" for p in r["curve"]))
    return lines + [""]


def _recipe_md(recipe: dict) -> list[str]:
    if not recipe or not recipe.get("figures"):
        return []
    a, t = recipe["arguments"], recipe["timings_seconds"]
    lines = [
        "## 9. The recipe on the held-out splits",
        "",
        f"`python train_scripts/run_recipe.py` (measured directory: {recipe['recipe_dir']}), "
        f"{t['total'] / 60:.1f} min end to end: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in t.items() if k != "total")
        + ". "
        f"Chat model: {a['chat_epochs']:g} epoch(s) over every dialogue corpus; review language model: "
        f"{a.get('review_lm_epochs', 1.0):g} epoch(s) over the training reviews' text; classifier: "
        f"{a['classifier_epochs']:g} epoch(s) over the hotel reviews"
        f"{' and eight online-shopping categories' if a['extra_labelled'] else ''}; held-out category "
        f"{a['holdout_category']}. The tests are the fixed splits of recipes/ (seed {a['seed']}).",
        "",
    ]
    lines += _recipe_sentiment_md(recipe["sentiment"])
    chat, gpt2 = recipe["chat"], recipe.get("gpt2")
    rows = [["CharGPT chat model (recipe)", f"{chat['train_seconds']:.0f}", _ci(chat, "perplexity", _f2)]]
    rows[-1] += _reply_cells(chat["replies"])
    if gpt2:
        rows.append(
            [
                f"GPT-2, same data and training time (AdamW {gpt2['learning_rate']:g}, {gpt2['steps']} steps)",
                f"{gpt2['train_seconds']:.0f}",
                _ci(gpt2, "perplexity", _f2),
                *_reply_cells(gpt2["replies"]),
            ]
        )
    rows.append(["human replies", "", "", *_reply_cells(chat["references"])])
    lines += _table(
        ["dialogue model", "train s", "held-out perplexity", "Distinct-1", "Distinct-2", "repetitive", "mean length"],
        rows,
    )
    method = recipe.get("intervals")
    if method:
        lines += [
            f"Brackets: {method['confidence']:.0%} {method['method']} intervals ({method['resamples']} resamples, "
            f"seed {method['seed']}) over the test rows, dialogues or replies; CharGPT - floor is the paired interval "
            "of the difference (both scored on the same resampled rows).",
            "",
        ]
    chosen = (recipe.get("sampling") or {}).get("chosen")
    if chosen:
        lines += [
            f"Replies to the {chat['replies']['n']} held-out posts are sampled with the settings chosen on "
            f"validation posts: " + ", ".join(f"{k} {v}" for k, v in chosen.items()) + ".",
            "",
        ]
    lines += ["Sample replies (held-out posts):", ""]
    lines += [f"- {s['post']} -> {s['reply']} (human: {s['reference']})" for s in chat.get("samples", [])]
    return lines + [""]


def _recipe_peers_md(section: dict) -> list[str]:
    """Section 10: each scale's arms (CharGPT's recipe and the same recipe with GPT-2 and Llama), one row a run."""
    arms = section.get("arms") or []
    if not arms:
        return []
    lines = [
        "## 10. The same recipe with transformers' GPT-2 and Llama",
        "",
        "Each row is one `run_recipe.py` run (`--peer gpt2|llama` for the peers: CharGPT's size, tokenizer, data, "
        "epochs and batches; AdamW at the peer's tuned learning rate; its own `...ForSequenceClassification`). "
        "Held-out tests as in section 9; brackets are 95% percentile-bootstrap intervals over the test rows, "
        "dialogues or replies. n/a: the run did not produce that figure (the analysis at the end says why). Wall "
        "time: the finished steps'. A hotel-only arm fine-tunes on the hotel reviews alone (`--extra_labelled "
        "false`), with the chat model of the mixed arm it is compared with (`--chat_from`); its floor is refit on the "
        "same hotel reviews.",
        "",
    ]
    by_scale = {}
    for arm in arms:
        by_scale.setdefault(arm.get("scale") or "cpu", []).append(arm)
    for scale, group in by_scale.items():
        lines += [f"`--scale {scale}`:", ""]
        rows, floors = [], {}
        for arm in group:
            f, v, t = arm["figures"], arm["validation"], arm["timings_seconds"]
            total = t.get("total") or sum(t.values())
            data = (_labelled_reviews(arm), arm.get("holdout_category", "books").replace(",", ", "))
            rows.append(
                [
                    arm["name"] + ("" if arm["finished"] else f" (stopped after {list(t)[-1] if t else 'no step'})"),
                    *data,
                    _ci(f, "sentiment_accuracy"),
                    _ci(f, "cross_domain_accuracy"),
                    _ci(f, "chat_heldout_perplexity", _f2),
                    _ci(f, "distinct_2", lambda x: f"{x:.3f}"),
                    _ci(f, "repetition_share", _pct),
                    _fmt(v.get("chat_loss"), 3),
                    _fmt(v.get("classifier_macro_f1"), 3),
                    f"{total / 60:.1f}" + (" + reused chat" if arm.get("chat_from") else ""),
                ]
            )
            if "sentiment_tfidf_accuracy" in f:
                floors.setdefault(data, f)  # every arm of the same training and held-out reviews has this floor
        for data, floor in floors.items():
            rows.append(
                [
                    "TF-IDF + LR floor (same training files)",
                    *data,
                    _ci(floor, "sentiment_tfidf_accuracy"),
                    _ci(floor, "cross_domain_tfidf_accuracy"),
                    *[""] * 6,
                ]
            )
        lines += _table(
            [
                "arm",
                "labelled training reviews",
                "held-out categories",
                "ChnSentiCorp test accuracy",
                "cross-domain accuracy",
                "chat held-out perplexity",
                "Distinct-2",
                "repetitive",
                "chat validation loss",
                "classifier validation macro-F1",
                "wall min",
            ],
            rows,
        )
        lines += [
            f"- {a['name']}: `{a['directory']}`{_environment_note(a)}{_reuse_note(a)}{_by_category_note(a)}"
            for a in group
        ]
        lines += [""] + _paired_md(group)
    return lines


def _paired_md(group: list[dict]) -> list[str]:
    """CharGPT's accuracy minus each peer's, paired over the same test reviews (arms whose reports hold their
    predictions)."""
    paired = [a for a in group if a.get("chargpt_minus_this")]
    if not paired:
        return []
    rows = []
    for arm in paired:
        d = arm["chargpt_minus_this"]
        cells = [_ci(d[t], "accuracy", _points) if t in d else "n/a" for t in ("sentiment", "cross_domain")]
        rows.append([f"{d['against']} minus {arm['name']}", _labelled_reviews(arm), *cells])
    header = ["paired over the same test reviews", "labelled training reviews", "ChnSentiCorp test (points)"]
    return _table(header + ["cross-domain (points)"], rows)


def _labelled_reviews(arm: dict) -> str:
    """What an arm's classifier (and its floor) was trained on: the hotel reviews, with or without the other
    online-shopping categories (`--extra_labelled`)."""
    return "hotel + other categories" if arm.get("extra_labelled", True) else "hotel only"


def _reuse_note(arm: dict) -> str:
    """Where a `--chat_from` arm's vocabulary, chat model and sampling settings came from, and their wall time."""
    reused = arm.get("chat_from")
    if not reused:
        return ""
    minutes = sum(reused.get("timings_seconds", {}).values()) / 60
    return (
        f"; vocabulary, chat model and sampling settings reused from `{reused['directory']}` (`--chat_from`; their "
        f"steps took {minutes:.1f} min there)"
    )


def _recipe_levers_md(section: dict) -> list[str]:
    """Section 11: each fine-tuning lever's classifier against the recipe's own, on the validation splits."""
    levers = section.get("levers") or {}
    if not levers:
        return []
    lines = [
        "## 11. Fine-tuning levers, on validation",
        "",
        f"The classifier of the recipe run `{section['recipe_dir']}` retrained from the same review-LM body with one "
        "lever switched on, or several joined by + (`python benchmarks/run.py --only recipe_levers --recipe_dir DIR "
        "[--levers ...]`; a lever trained by an earlier call with the same settings is scored again, not retrained, "
        "and keeps that call's train time), against the run's own "
        "classifier (the baseline). Hotel: the balanced validation split that also picks each run's best checkpoint; "
        "shopping: the training categories' held-back reviews, which choose nothing. Brackets: 95% bootstrap "
        f"intervals; the differences are paired over the same reviews. Rule: {section['rule']}.",
        "",
    ]

    def cells(scores: dict) -> list[str]:
        out = []
        for split in ("hotel", "shop"):
            out.append(_ci(scores[split], "accuracy"))
            paired = scores[split].get("minus_baseline")
            out.append(_ci(paired, "accuracy", _points) if paired else "")
        return out

    rows = [["baseline (the recipe's classifier)", "", *cells(section["baseline"]["scores"]), "", ""]]
    for name, lever in levers.items():
        settings = ", ".join(f"{k.removeprefix('classifier_')} {v:.3g}" for k, v in lever["settings"].items())
        kept = "kept" if lever["kept"] else "not kept"
        minutes = f"{lever['train_seconds'] / 60:.1f}" + (" (earlier call)" if lever.get("reused") else "")
        rows.append([name, settings, *cells(lever["scores"]), minutes, kept])
    header = [
        "lever",
        "settings",
        "hotel accuracy",
        "minus baseline (points)",
        "shopping accuracy",
        "minus baseline (points)",
    ]
    return lines + _table(header + ["train min", "verdict"], rows) + [""]


def _by_category_note(arm: dict) -> str:
    """A pooled cross-domain test's accuracy on each of its categories."""
    by_category = arm.get("by_category")
    if not by_category:
        return ""
    return "; cross-domain accuracy by category: " + ", ".join(
        f"{c} {_ci(scores, 'accuracy')} (n={scores['n']})" for c, scores in by_category.items()
    )


def _environment_note(arm: dict) -> str:
    env = arm.get("environment")
    if not env:
        return ""
    return f" ({env['device']}, {env['cpus']} CPUs, torch {env['torch']}, transformers {env['transformers']})"


def _points(value) -> str:
    """A difference of two accuracies in percentage points, signed."""
    return f"{100 * value:+.1f}"


def _f2(value) -> str:
    return f"{value:.2f}"


def _reply_cells(replies: dict) -> list[str]:
    """Distinct-1, Distinct-2, the repetitive share and the mean length of a set of replies, with intervals if any."""
    return [
        _ci(replies, "distinct_1", lambda v: f"{v:.3f}"),
        _ci(replies, "distinct_2", lambda v: f"{v:.3f}"),
        _ci(replies, "repetition_share", _pct),
        f"{replies['mean_length']:.1f}",
    ]


def _recipe_sentiment_md(sentiment: dict) -> list[str]:
    """Section 9's sentiment table: CharGPT and the TF-IDF floor on each test, and their paired difference where
    the results have it."""
    paired = any("model_minus_tfidf_logreg" in sentiment.get(task, {}) for task in ("sentiment", "cross_domain"))
    rows = []
    for task, name in (
        ("sentiment", "ChnSentiCorp balanced test (250 + 250)"),
        ("cross_domain", "cross-domain test (held-out category)"),
    ):
        if task in sentiment:
            model, floor = sentiment[task]["model"], sentiment[task].get("tfidf_logreg", {})
            row = [name, _ci(model, "accuracy"), _ci(model, "macro_f1"), _ci(floor, "accuracy")]
            if paired:
                row.append(_ci(sentiment[task].get("model_minus_tfidf_logreg", {}), "accuracy"))
            rows.append([*row, model["n"]])
    header = ["test", "CharGPT accuracy", "macro-F1", "TF-IDF + LR accuracy (same training files)"]
    return _table(header + (["CharGPT - floor (paired)"] if paired else []) + ["rows"], rows)


def _profiles_md(speed: dict) -> list[str]:
    profiles = (speed or {}).get("profiles")
    if not profiles:
        return []
    lines = ["## Where the time goes (torch.profiler, self CPU time, top ops)", ""]
    for name, ops in profiles.items():
        lines.append(f"- {name}: " + "; ".join(f"{o['op']} {100 * o['share']:.0f}%" for o in ops[:6]))
    return lines + [""]


def render(results: dict) -> str:
    quality = results.get("quality") or {}
    lines = [
        "# CharGPT benchmarks: CharGPT against transformers' GPT-2 with the same dimensions",
        "",
        "Generated by `python benchmarks/run.py` from the results file beside this report; do not edit by hand "
        "(the analysis of missed targets comes from benchmarks/NOTES.md).",
        "",
        "Peer: `GPT2LMHeadModel` / `GPT2ForSequenceClassification` as a user would configure it instead of "
        "installing CharGPT: hidden 256, 8 heads, 6 layers, feed-forward 1024, context 512, the same character "
        'vocabulary, exact GELU, tied embeddings, `attn_implementation="sdpa"` (PyTorch\'s fused attention, '
        "like CharGPT), everything else at GPT-2's defaults (dropout 0.1 on residuals, embeddings and attention "
        "probabilities). CharGPT runs at its own defaults: the same, except attention-probability dropout 0.0. "
        "A like-for-like check (CharGPT with attention dropout 0.1) is reported beside the training table.",
        "",
    ]
    lines += _machine(results) + _targets_md(results) + _speed_md(results.get("speed") or {})
    lines += _memory_md(results.get("memory") or {})
    if quality:
        d = quality["data"]
        lines += [
            "## Data and splits",
            "",
            f"- LCCC: {d['lccc']['split']}.",
            f"- Pretraining corpus: {d['pretraining_corpus']}; {d['kdconv_dialogues']} KdConv dialogues.",
            f"- Tokenizer: {d['tokenizer']}, {d['vocab_size']} tokens.",
            "",
        ]
    lines += _dialogue_md(quality) + _sentiment_md(quality) + _int8_md(quality) + _data_md(results.get("data") or {})
    lines += _ttq_md(results.get("time_to_quality") or {})
    lines += _recipe_md(results.get("recipe") or {})
    lines += _recipe_peers_md(results.get("recipe_peers") or {})
    lines += _recipe_levers_md(results.get("recipe_levers") or {})
    lines += _profiles_md(results.get("speed"))
    if NOTES.exists():
        lines += [NOTES.read_text(encoding="utf-8").strip(), ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import json

    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m benchmarks.report RESULTS.json")
    with open(sys.argv[1], encoding="utf-8") as f:
        print(render(json.load(f)))
