"""The benchmark code (benchmarks/) at toy size: timing, peers, splits, loops, memory, report, one run. (Its metrics
and TF-IDF floor are chargpt.evaluation's, tested in test_evaluation.py.)"""

import csv
import json
import math
import random

import pytest
import torch

from benchmarks import common, corpora, loop, report, speed
from benchmarks.int8 import int8_unavailable_reason
from benchmarks.peers import ModelDims, build_causal_lms, classifier_from_lm, parameter_count
from benchmarks.settings import QUICK, BenchmarkArguments, apply_quick, explicit_fields
from chargpt.evaluation import accuracy


TINY = ModelDims(vocab_size=64, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=64, dropout=0.0)
TINY_CLI = ["--n_embd", "32", "--n_layer", "2", "--n_head", "4", "--n_inner", "64", "--n_positions", "64"]


# ------------------------------------------------------------------------------------------------ timing and files


def test_interleaved_times_alternates_contenders_after_warmup():
    calls = []
    times = common.interleaved_times(
        {"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repetitions=3, warmup=1
    )
    assert calls == ["a", "b"] * 4  # one warm-up round, then three timed rounds, always A then B
    assert [len(t) for t in times.values()] == [3, 3]
    assert all(t >= 0 for ts in times.values() for t in ts)


def test_paired_ratio_is_median_of_per_round_peer_over_ours():
    # rounds: 2/1, 3/1, 10/2 -> ratios 2, 3, 5 -> median 3 (> 1: ours faster)
    assert common.paired_ratio([1.0, 1.0, 2.0], [2.0, 3.0, 10.0]) == 3.0
    with pytest.raises(ValueError):
        common.paired_ratio([1.0], [1.0, 2.0])


def test_best_ratio_compares_each_contenders_fastest_round():
    assert common.best_ratio([2.0, 1.0, 9.0], [3.0, 8.0, 1.5]) == 1.5


def test_write_json_atomic_roundtrips_and_leaves_no_temp_file(tmp_path):
    path = tmp_path / "sub" / "r.json"
    common.write_json_atomic(path, {"x": [1, 2], "名": "字"})
    assert json.loads(path.read_text(encoding="utf-8")) == {"x": [1, 2], "名": "字"}
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]


def test_load_results_rejects_corrupt_json_with_advice(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid JSON"):
        common.load_results(path)
    assert common.load_results(tmp_path / "missing.json") == {}


def test_machine_info_names_cpu_and_library_versions():
    info = common.machine_info()
    assert info["torch"] == torch.__version__
    assert info["transformers"] and info["cpu_model"] and info["logical_cpus"] >= 1


# ------------------------------------------------------------------------------------------------ peers and speed


def test_peer_gpt2_matches_chargpt_size_and_uses_sdpa():
    models = build_causal_lms(TINY)
    ours, peer = models["chargpt"], models["gpt2"]
    assert parameter_count(ours) == parameter_count(peer)
    assert peer.config._attn_implementation == "sdpa"
    assert (peer.config.n_embd, peer.config.n_layer, peer.config.n_head, peer.config.n_inner) == (32, 2, 4, 64)
    assert peer.config.activation_function == ours.config.activation_function == "gelu"
    assert peer.lm_head.weight is peer.transformer.wte.weight  # tied, like CharGPT


def test_each_model_keeps_its_own_dropout_defaults_unless_matched():
    from chargpt import CharGPTConfig

    dims = ModelDims(vocab_size=64, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=64, dropout=0.1)
    models = build_causal_lms(dims)
    assert models["chargpt"].config.attn_pdrop == CharGPTConfig().attn_pdrop  # the package's default
    assert models["chargpt"].config.resid_pdrop == models["gpt2"].config.resid_pdrop == 0.1
    assert models["gpt2"].config.attn_pdrop == 0.1  # GPT-2's default
    matched = build_causal_lms(dims, chargpt_overrides={"attn_pdrop": 0.1})["chargpt"]
    assert matched.config.attn_pdrop == 0.1


@pytest.mark.parametrize("name", ["chargpt", "gpt2"])
def test_classifier_from_lm_copies_every_decoder_weight(name):
    lm = build_causal_lms(TINY, seed=3)[name]
    classifier = classifier_from_lm(lm, name, TINY, seed=4)
    lm_state = lm.transformer.state_dict()
    for key, value in classifier.transformer.state_dict().items():
        assert torch.equal(value, lm_state[key]), key
    assert classifier.score.weight.shape == (2, TINY.n_embd)


def test_train_flops_per_token_counts_matmuls_and_attention():
    model = build_causal_lms(TINY)["chargpt"]
    matmul_params = parameter_count(model) - TINY.n_positions * TINY.n_embd
    expected = 6 * matmul_params + 12 * TINY.n_layer * TINY.n_embd * 16
    assert speed.train_flops_per_token(model, TINY, 16) == expected


def test_matmul_peak_reports_best_shape():
    peak = speed.matmul_peak(torch.float32, shapes=((64, 32, 48),), reps=2)
    assert set(peak["by_shape"]) == {"mm 64x32x48", "linear 64x32x48"}
    assert peak["gflops"] == max(peak["by_shape"].values()) > 0


def test_training_throughput_records_both_models_ratio_and_mfu():
    result = speed.training_throughput(TINY, 2, 8, "fp32", False, peak_gflops=10.0, repetitions=2, steps_per_rep=1)
    assert result["ratio"] == common.paired_ratio(result["chargpt"]["times_s"], result["gpt2"]["times_s"])
    assert result["ratio_best"] == min(result["gpt2"]["times_s"]) / min(result["chargpt"]["times_s"])
    for name in ("chargpt", "gpt2"):
        r = result[name]
        assert r["tokens_per_s"] == pytest.approx(16 / common.median(r["times_s"]))
        assert r["mfu"] == pytest.approx(r["tokens_per_s"] * result["flops_per_token"] / 10e9)


def test_generation_throughput_generates_exactly_the_new_tokens_for_every_contender():
    models = build_causal_lms(TINY)
    result = speed.generation_throughput(
        models,
        TINY.vocab_size,
        batch_size=2,
        sample=True,
        speedups=[("chargpt", "gpt2")],
        new_tokens=5,
        prompt_len=4,
        repetitions=2,
    )
    assert set(result["speedups"]) == {"chargpt/gpt2"}
    assert result["speedups"]["chargpt/gpt2"] == common.paired_ratio(
        result["chargpt"]["times_s"], result["gpt2"]["times_s"]
    )
    assert result["gpt2"]["tokens_per_s"] == pytest.approx(2 * 5 / common.median(result["gpt2"]["times_s"]))


def test_static_cache_contender_generates_what_the_dynamic_cache_does():
    model = build_causal_lms(TINY)["chargpt"].eval()
    prompt = torch.tensor([[5, 6, 7, 8]])
    config = speed.generation_config(6, sample=False)
    static = speed.StaticCacheGenerate(model, compile=False).eval()
    with torch.inference_mode():
        expected = model.generate(input_ids=prompt, generation_config=config)
        got = static.generate(input_ids=prompt, generation_config=config)
    assert torch.equal(got, expected)
    assert config.cache_implementation is None  # the caller's config is not changed
    contenders = {"chargpt": model, "gpt2": build_causal_lms(TINY)["gpt2"], "chargpt-static-compiled": static}
    pairs = [("chargpt-static-compiled", "gpt2"), ("chargpt-static-compiled", "chargpt")]
    result = speed.generation_throughput(
        contenders,
        TINY.vocab_size,
        batch_size=1,
        sample=False,
        new_tokens=4,
        prompt_len=3,
        repetitions=1,
        speedups=pairs,
    )
    assert set(result["speedups"]) == {"chargpt-static-compiled/gpt2", "chargpt-static-compiled/chargpt"}
    record = {**result, "speedups": {**result["speedups"], "chargpt/gpt2": 1.0}}
    text = "\n".join(report._speed_md({"generation": [record]}))
    assert "static + compile tok/s" in text
    names = [t["name"] for t in report.targets({"speed": {"generation": [result]}})]
    assert "generation batch 1 greedy: CharGPT static cache + compile / GPT-2 tokens/s" in names


def test_generate_closure_refuses_short_generations():
    model = build_causal_lms(TINY)["chargpt"].eval()
    config = speed.generation_config(4, sample=False)
    config.min_new_tokens = None
    config.eos_token_id = list(range(TINY.vocab_size))  # every token stops generation at once
    with pytest.raises(RuntimeError, match="new tokens"):
        speed.generate_closure(model, torch.tensor([[5, 6, 7]]), config)()


def test_profile_top_ops_shares_sum_below_one():
    ops = speed.profile_top_ops(lambda: torch.randn(64, 64) @ torch.randn(64, 64), rows=3)
    assert 1 <= len(ops) <= 3 and all(0 <= o["share"] <= 1 for o in ops)
    assert sum(o["share"] for o in ops) <= 1.0 + 1e-9


def test_bf16_without_native_support_is_timed_at_the_first_shape_only():
    args = BenchmarkArguments(train_shapes="2x8,2x16")
    peaks = {"fp32": {"gflops": 100.0}, "bf16": {"gflops": 5.0}}
    skipped = speed._training_config(args, TINY, peaks, "bf16", "eager", (2, 16))
    assert skipped["status"] == "skipped" and "first shape only" in skipped["reason"]
    args.train_repetitions = args.bf16_repetitions = 1
    measured = speed._training_config(args, TINY, peaks, "bf16", "eager", (2, 8))
    assert measured["precision"] == "bf16" and measured["ratio"] > 0


def test_gpu_half_generation_is_recorded_as_not_run_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present, so the GPU path runs instead")
    assert speed.gpu_half_generation(TINY, [1], 4, 1) == {
        "status": "not run",
        "reason": "no CUDA device on this machine",
    }


# ------------------------------------------------------------------------------------------------ data and splits


def _spaced(text: str) -> str:
    return " ".join(text)


def make_data(root, n_pairs=80, n_dialogs=20, n_neg=300, n_pos=360, seed=0):
    """A miniature copy of ../shared/data's formats, written under `root`."""
    rng = random.Random(seed)
    words = ["你好", "今天", "天气", "不错", "我们", "去", "吃饭", "好的", "电影", "喜欢", "音乐", "哈哈"]
    sentence = lambda k: "".join(rng.choice(words) for _ in range(k))  # noqa: E731
    (root / "lccc").mkdir(parents=True)
    with open(root / "lccc" / "lccc_toy_train_pairs.txt", "w", encoding="utf-8") as f:
        for _ in range(n_pairs):
            f.write(f"{_spaced(sentence(3))}\t{_spaced(sentence(2))}\n")
    with open(root / "lccc" / "lccc_toy_train_dialogs.json", "w", encoding="utf-8") as f:
        json.dump({"train": [[_spaced(sentence(2)) for _ in range(3)] for _ in range(n_dialogs)]}, f)
    (root / "kdconv").mkdir()
    with open(root / "kdconv" / "kdconv_film_dev.json", "w", encoding="utf-8") as f:
        json.dump(
            [
                {"messages": [{"message": sentence(3)}, {"message": sentence(2), "attrs": []}], "name": "x"}
                for _ in range(10)
            ],
            f,
            ensure_ascii=False,
        )
    (root / "chnsenticorp").mkdir()
    with open(root / "chnsenticorp" / "ChnSentiCorp_htl_train.csv", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "review"])
        for i in range(n_neg + n_pos):
            label = int(i >= n_neg)
            text = ("房间干净，服务很好，" if label else "房间很脏，服务太差，") + sentence(2)
            writer.writerow([label, text + ("\n第二行" if i % 7 == 0 else "")])
    return root


def test_readers_parse_every_format(tmp_path):
    data = make_data(tmp_path)
    pairs = corpora.load_lccc_pairs(data / corpora.LCCC_PAIRS)
    assert len(pairs) == 80 and all(" " not in t for pair in pairs for t in pair)
    assert len(corpora.load_lccc_dialogs(data / corpora.LCCC_DIALOGS)) == 20
    assert len(corpora.load_kdconv(data)) == 10
    reviews = corpora.load_chnsenticorp(data / corpora.CHNSENTICORP)
    assert len(reviews) == 660 and reviews[0][1] == 0 and "\n第二行" in reviews[0][0]


def test_readers_name_the_bad_line(tmp_path):
    path = tmp_path / "pairs.txt"
    path.write_text("你 好\t好\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"pairs.txt:2"):
        corpora.load_lccc_pairs(path)
    csv_path = tmp_path / "c.csv"
    csv_path.write_text("label,review\n2,坏标签\n", encoding="utf-8")
    with pytest.raises(ValueError, match="label 0/1"):
        corpora.load_chnsenticorp(csv_path)
    with pytest.raises(FileNotFoundError, match="--data_dir"):
        corpora.load_lccc_pairs(tmp_path / "absent.txt")


def test_dialogue_splits_are_disjoint_sized_and_reproducible(tmp_path):
    data = make_data(tmp_path)
    pairs = corpora.load_lccc_pairs(data / corpora.LCCC_PAIRS)
    dialogs = corpora.load_lccc_dialogs(data / corpora.LCCC_DIALOGS)
    a = corpora.dialogue_splits(pairs, dialogs, seed=7, n_valid_pairs=10, n_valid_dialogs=4, n_test=15)
    b = corpora.dialogue_splits(pairs, dialogs, seed=7, n_valid_pairs=10, n_valid_dialogs=4, n_test=15)
    assert a == b
    assert (len(a.test_pairs), len(a.valid_dialogs), len(a.train_dialogs)) == (15, 14, 80 - 25 + 16)
    test_ids = {id(p) for p in a.test_pairs}
    assert not test_ids & {id(d) for d in a.train_dialogs + a.valid_dialogs}
    with pytest.raises(ValueError, match="Not enough"):
        corpora.dialogue_splits(pairs, dialogs, seed=7, n_valid_pairs=70, n_valid_dialogs=4, n_test=15)


def test_sentiment_splits_balance_classes_and_hold_out_250_each(tmp_path):
    reviews = corpora.load_chnsenticorp(make_data(tmp_path) / corpora.CHNSENTICORP)
    splits = corpora.sentiment_splits(reviews, seed=1)
    assert sorted(label for _, label in splits.test).count(0) == 250 == [label for _, label in splits.test].count(1)
    assert [label for _, label in splits.train].count(0) == [label for _, label in splits.train].count(1) == 50
    assert splits.n_dropped_majority == 60
    assert not {id(r) for r in splits.test} & {id(r) for r in splits.train}  # no review in both
    capped = corpora.sentiment_splits(reviews, seed=1, max_train=20)
    assert [label for _, label in capped.train].count(1) == 10 and len(capped.train) == 20


# ------------------------------------------------------------------------------------------------ loops


def test_lr_schedule_warms_up_then_decays_to_a_tenth():
    assert loop.lr_at(0, 100, 1.0, 10) == pytest.approx(0.1)
    assert loop.lr_at(9, 100, 1.0, 10) == pytest.approx(1.0)
    assert loop.lr_at(10, 100, 1.0, 10) == pytest.approx(1.0)
    assert loop.lr_at(100, 100, 1.0, 10) == pytest.approx(0.1)


def test_pack_blocks_cuts_the_stream_into_full_blocks():
    blocks = loop.pack_blocks([[1, 2, 3], [4, 5], [6, 7, 8, 9]], 4)
    assert blocks.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    with pytest.raises(ValueError, match="shorter than one block"):
        loop.pack_blocks([[1]], 4)


@pytest.mark.parametrize("name", ["chargpt", "gpt2"])
def test_freeze_modes_leave_the_documented_parameters_trainable(name):
    classifier = classifier_from_lm(build_causal_lms(TINY)[name], name, TINY)
    total = parameter_count(classifier)
    head = classifier.score.weight.numel()
    block = sum(p.numel() for p in classifier.transformer.h[-1].parameters())
    ln_f = sum(p.numel() for p in classifier.transformer.ln_f.parameters())
    assert loop.freeze(classifier, "none")["trainable_parameters"] == total
    assert loop.freeze(classifier, "all")["trainable_parameters"] == head
    assert loop.freeze(classifier, "last-2")["trainable_parameters"] == head + 2 * block + ln_f
    with pytest.raises(ValueError, match="freeze mode"):
        loop.freeze(classifier, "last-3")


class _UniformLM(torch.nn.Module):
    """Equal logits everywhere: its perplexity is exactly the vocabulary size."""

    def forward(self, input_ids, attention_mask=None):
        return type("Out", (), {"logits": torch.zeros(*input_ids.shape, 50)})()


def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    result = loop.perplexity(_UniformLM(), [[3, 7, 8, 4], [3, 9, 4]], pad_id=0, batch_size=1)
    assert result["tokens"] == 5  # padding is never a target
    assert result["perplexity"] == pytest.approx(50.0)


def test_train_lm_lowers_the_loss_on_a_repetitive_text():
    torch.manual_seed(0)
    model = build_causal_lms(TINY)["chargpt"]
    blocks = loop.pack_blocks([[3, 10, 11, 12, 13, 4] * 20], 16)
    before = loop.perplexity(model, blocks.tolist(), pad_id=0)["perplexity"]
    stats = loop.train_lm(model, blocks, steps=30, batch_size=4, lr=3e-3, log_every=0)
    after = loop.perplexity(model, blocks.tolist(), pad_id=0)["perplexity"]
    assert stats["steps"] == 30 and stats["tokens_per_s"] > 0
    assert after < before / 3


def test_classifier_learns_a_separable_task_and_the_unmasked_ablation_pools_padding():
    examples = [([3, 10 + (i % 5), 20, 4], 0) for i in range(20)] + [
        ([3, 10 + (i % 5), 21, 22, 4], 1) for i in range(20)
    ]
    classifier = classifier_from_lm(build_causal_lms(TINY)["chargpt"], "chargpt", TINY)
    loop.train_classifier(classifier, examples, epochs=8, batch_size=8, lr=3e-3, pad_id=0)
    predictions = loop.predict_classifier(classifier, examples, pad_id=0)
    assert accuracy([y for _, y in examples], predictions) == 1.0
    ids, mask = loop._classifier_inputs(examples, [0, 20], pad_id=0, unmasked=True)
    assert mask.tolist() == [[1] * 5, [1] * 5] and ids[0, -1] == 0  # the short row's last position is padding


# ------------------------------------------------------------------------------------------------ settings, report


def test_quick_mode_keeps_explicit_settings():
    args = apply_quick(
        BenchmarkArguments(quick=True, train_compile="eager,compile"),
        explicit_fields(["--quick", "--train_compile", "eager,compile"]),
    )
    assert args.train_compile == "eager,compile"  # given explicitly: kept
    assert args.lm_steps == QUICK["lm_steps"] != BenchmarkArguments().lm_steps  # left at its default: replaced
    assert apply_quick(BenchmarkArguments(quick=False)).lm_steps == BenchmarkArguments().lm_steps
    with pytest.raises(ValueError, match="--only"):
        BenchmarkArguments(only="speed,colour")


def test_every_setting_has_help_that_argparse_can_format():
    from dataclasses import fields

    from transformers import HfArgumentParser

    assert all(f.metadata.get("help") for f in fields(BenchmarkArguments))
    assert "--lm_steps" in HfArgumentParser(BenchmarkArguments).format_help()  # a stray % would raise here


def test_targets_judge_each_threshold_in_its_direction():
    results = {
        "speed": {
            "training": [{"precision": "fp32", "compile": False, "batch_size": 4, "seq_len": 8, "ratio": 1.4}],
            "generation": [
                {"batch_size": 1, "sample": False, "speedups": {"chargpt/gpt2": 1.2, "chargpt-int8/chargpt": 2.0}}
            ],
            "int8_export": {"status": "run", "size_ratio": 0.4},
        }
    }
    verdicts = {t["name"]: t["met"] for t in report.targets(results)}
    assert list(verdicts.values()) == [True, False, True, False]
    text = report.summary_table(results)
    assert "MISSED" in text and "met" in text and "1.400" in text


def test_report_renders_skipped_and_failed_training_configs_with_their_reason():
    results = {
        "speed": {
            "matmul_peak": {"fp32": {"gflops": 100.0}},
            "training": [
                {
                    "precision": "bf16",
                    "compile": False,
                    "batch_size": 16,
                    "seq_len": 256,
                    "status": "skipped",
                    "reason": "no native bf16",
                },
                {
                    "precision": "fp32",
                    "compile": True,
                    "batch_size": 4,
                    "seq_len": 8,
                    "status": "failed",
                    "error": "CompilerError: no cc",
                },
            ],
        }
    }
    results["memory"] = {
        "method": "m",
        "runs": [
            {"model": m, "task": "train", "batch_size": 4, "seq_len": 8, "peak_mib": peak, "increase_mib": 1.0}
            for m, peak in (("chargpt", 150.0), ("gpt2", 200.0))
        ],
    }
    text = report.render(results)
    assert "skipped: no native bf16" in text and "failed: CompilerError: no cc" in text
    assert "| chargpt | train | 4x8 | 150.00 | 1.00 | 0.750 |" in text  # peak over the peer's at the same shape
    assert [t["met"] for t in report.targets(results)] == [None, None]  # not measured, never "missed"


# ------------------------------------------------------------------------------------------------ subprocess, run


@pytest.mark.slow
def test_memory_measurement_in_a_subprocess_sees_training_allocations():
    from benchmarks.memory import measure

    record = measure(
        "chargpt",
        "train",
        ModelDims(vocab_size=64, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=64),
        batch_size=8,
        seq_len=64,
        threads=1,
    )
    assert record["model"] == "chargpt" and record["seq_len"] == 64
    assert record["peak_mib"] >= record["baseline_mib"] > 50  # the interpreter with torch alone is well over 50 MiB
    assert record["increase_mib"] == pytest.approx(record["peak_mib"] - record["baseline_mib"])


@pytest.mark.skipif(
    int8_unavailable_reason() is not None, reason="int8 export unavailable (chargpt.int8, onnx or onnxruntime missing)"
)
def test_int8_export_is_smaller_and_scores_like_fp32(tmp_path):
    from benchmarks.int8 import export_and_load, placeholder_tokenizer

    model = build_causal_lms(TINY)["chargpt"].eval()
    int8_model, sizes = export_and_load(model, placeholder_tokenizer(TINY.vocab_size, TINY.n_positions), str(tmp_path))
    assert sizes["int8_weights_bytes"] < sizes["fp32_weights_bytes"]
    sequences = [[3, 10, 11, 12, 4], [3, 20, 21, 4]]
    fp32, int8 = loop.perplexity(model, sequences, 0), loop.perplexity(int8_model, sequences, 0)
    assert int8["tokens"] == fp32["tokens"] and int8["perplexity"] == pytest.approx(fp32["perplexity"], rel=0.05)


@pytest.mark.slow
def test_run_writes_results_and_report_for_speed_and_quality(tmp_path):
    from benchmarks.run import main

    data = make_data(tmp_path / "data")
    out = tmp_path / "results"
    argv = [
        "--quick",
        "--only",
        "speed,quality",
        "--name",
        "toy",
        "--results_dir",
        str(out),
        "--data_dir",
        str(data),
        *TINY_CLI,
        "--speed_vocab_size",
        "64",
        "--train_shapes",
        "2x8",
        "--train_precisions",
        "fp32",
        "--generation_batches",
        "1",
        "--generation_new_tokens",
        "4",
        "--generation_repetitions",
        "1",
        "--train_repetitions",
        "1",
        "--profile",
        "false",
        "--lm_steps",
        "5",
        "--lm_batch_size",
        "4",
        "--lm_block_len",
        "16",
        "--n_valid_pairs",
        "5",
        "--n_valid_dialogs",
        "2",
        "--n_test_posts",
        "5",
        "--reply_max_new_tokens",
        "4",
        "--cls_max_len",
        "24",
        "--cls_max_train",
        "20",
        "--cls_epochs",
        "1",
    ]
    assert main(argv) == 0
    results = json.loads((out / "toy.json").read_text(encoding="utf-8"))
    assert list(results["runs"]) == ["speed", "quality"] and "memory" not in results
    assert results["runs"]["quality"]["settings"]["lm_steps"] == 5 and results["runs"]["speed"]["seconds"] > 0
    assert "partial" not in results["speed"] and "partial" not in results["quality"]  # completed sections
    assert results["machine"]["cpu_model"]
    train = results["speed"]["training"][0]
    assert (train["batch_size"], train["seq_len"], train["precision"]) == (2, 8, "fp32") and train["ratio"] > 0
    quality = results["quality"]
    assert quality["data"]["chnsenticorp"] == {**quality["data"]["chnsenticorp"], "train": 20, "test": 500}
    assert {(r["model"], r["freeze"], r["padding_masked"]) for r in quality["sentiment"]["runs"]} == {
        ("chargpt", "none", True),
        ("chargpt", "all", True),
        ("chargpt", "last-2", True),
        ("gpt2", "none", True),
        ("chargpt", "none", False),
    }
    for name in ("chargpt", "gpt2"):
        assert math.isfinite(quality["dialogue"][name]["perplexity"])
        assert 0 <= quality["dialogue"][name]["distinct_1"] <= 1
    assert 0.5 <= quality["sentiment"]["tfidf_logreg"]["accuracy"] <= 1
    text = (out / "toy.md").read_text(encoding="utf-8")
    assert "## Targets" in text and results["machine"]["cpu_model"] in text and "Distinct-1" in text


# ------------------------------------------------------------------------------------------------ data path


def test_shard_comparison_needs_every_dialogue_seen_by_exactly_one_process():
    from benchmarks.data import compare_shards

    whole = ["a", "b", "c", "c", "d"]
    good = compare_shards(whole, [["a", "c", "d"], ["b", "c"]], files=1)
    assert good["disjoint"] and good["union_equals_whole"] and good["overlap"] == good["repeated_in_corpus"] == 1
    assert not compare_shards(whole, [["a", "b", "c"], ["b", "c", "d"]], files=1)["disjoint"]  # b twice, c thrice
    assert not compare_shards(whole, [["a", "c"], ["b", "c"]], files=1)["union_equals_whole"]  # d missing


def test_stream_corpus_repeats_the_dialogues_to_the_requested_size(tmp_path):
    from benchmarks.data import make_stream_corpus

    made = make_stream_corpus([["你好", "好"], ["在吗", "在", "嗯"]], tmp_path / "c.jsonl", min_bytes=1000)
    lines = (tmp_path / "c.jsonl").read_text(encoding="utf-8").splitlines()
    assert made["bytes"] == (tmp_path / "c.jsonl").stat().st_size >= 1000 and len(lines) == made["dialogues"]
    assert json.loads(lines[2]) == ["你好", "好"] and made["tokens_approx"] == made["copies"] * (3 + 3 + 2 + 2 + 4)


@pytest.mark.slow
def test_data_section_writes_throughput_streaming_and_shards_at_toy_size(tmp_path):
    from benchmarks.run import main

    data = make_data(tmp_path / "data", n_pairs=300, n_dialogs=40)
    out = tmp_path / "results"
    argv = [
        "--only",
        "data",
        "--name",
        "toy",
        "--results_dir",
        str(out),
        "--data_dir",
        str(data),
        *TINY_CLI,
        "--train_shapes",
        "2x8",
        "--data_repetitions",
        "1",
        "--data_block_len",
        "16",
        "--data_stream_gb",
        "0.0005",
        "--data_stream_steps",
        "2",
        "--data_batch_size",
        "2",
        "--data_read_seconds",
        "1",
    ]
    assert main(argv) == 0
    results = json.loads((out / "toy.json").read_text(encoding="utf-8"))["data"]
    flow = results["throughput"]
    assert flow["dialogues"] == 350 and flow["same_blocks"] and flow["data_path"]["fast"]["chars_per_s"] > 0
    stream = results["streaming"]
    assert stream["corpus"]["bytes"] >= 500_000 and not list(tmp_path.glob("**/stream_corpus.jsonl"))
    assert stream["train"]["steps"] == 2 and 0 < stream["train"]["data_share"] < 1
    assert stream["train"]["peak_rss_mib"] > 100 and stream["read"]["tokens"] > 0
    (check,) = results["shards"].values()  # three toy files: every second dialogue each
    assert check["disjoint"] and sum(check["per_process"]) == check["whole"] > 0
    text = (out / "toy.md").read_text(encoding="utf-8")
    assert "## 7. Data path" in text and "disjoint shards" in text


def test_a_section_measured_on_another_machine_says_so_in_the_report():
    machine = {"cpu_model": "EPYC", "cpu_flags": ["avx2"], "logical_cpus": 2, "torch": "2.13", "transformers": "5.23"}
    run = {"command": "python benchmarks/run.py", "quick": False, "started": "t0", "finished": "t1", "seconds": 60}
    results = {
        "machine": machine,
        "runs": {
            "speed": {**run, "machine": machine},
            "data": {**run, "machine": {**machine, "cpu_flags": ["avx512f"]}},
        },
    }
    lines = [line for line in report.render(results).splitlines() if line.startswith("- ")]
    assert "another machine" not in lines[0] and "on another machine: EPYC (2 logical CPUs, flags: avx512f)" in lines[1]


# ------------------------------------------------------------------------------------------------ the recipe section


def _replies(distinct_1, distinct_2, repetition_share, mean_length, n=500):
    return {
        "distinct_1": distinct_1,
        "distinct_2": distinct_2,
        "repetition_share": repetition_share,
        "mean_length": mean_length,
        "empty_share": 0.0,
        "n": n,
    }


def recipe_section(gpt2: bool = True) -> dict:
    """A `recipe` results entry shaped like benchmarks.recipe.run_recipe_section's return value."""
    figures = {
        "sentiment_accuracy": 0.92,
        "sentiment_tfidf_accuracy": 0.88,
        "cross_domain_accuracy": 0.75,
        "cross_domain_tfidf_accuracy": 0.7,
        "chat_heldout_perplexity": 45.0,
        "distinct_1": 0.05,
        "distinct_2": 0.2,
        "repetition_share": 0.03,
    }
    section = {
        "recipe_dir": "runs/recipe",
        "arguments": {
            "chat_epochs": 3.0,
            "classifier_epochs": 2.0,
            "extra_labelled": True,
            "holdout_category": "books",
            "seed": 42,
        },
        "timings_seconds": {"splits": 12.0, "chat_model": 3000.0, "classifier": 600.0, "total": 3720.0},
        "figures": figures,
        "sampling": {
            "chosen": {"temperature": 0.9, "top_p": 0.95, "repetition_penalty": 1.2, "no_repeat_ngram_size": 3}
        },
        "sentiment": {
            "sentiment": {
                "model": {"accuracy": 0.92, "macro_f1": 0.9199, "n": 500},
                "tfidf_logreg": {"accuracy": 0.88},
            },
            "cross_domain": {
                "model": {"accuracy": 0.75, "macro_f1": 0.74, "n": 3850},
                "tfidf_logreg": {"accuracy": 0.7},
            },
        },
        "chat": {
            "train_seconds": 3000.0,
            "perplexity": 45.0,
            "replies": _replies(0.05, 0.2, 0.03, 12.5),
            "references": _replies(0.08, 0.45, 0.0, 9.8),
            "samples": [{"post": "你好", "reply": "你好呀", "reference": "嗨"}],
        },
    }
    if gpt2:
        section["gpt2"] = {
            "learning_rate": 1e-3,
            "steps": 120,
            "train_seconds": 2990.0,
            "perplexity": 50.0,
            "replies": _replies(0.04, 0.15, 0.08, 14.0),
        }
        section["perplexity_ratio_vs_gpt2"] = 0.9
    return section


def test_recipe_section_renders_accuracy_tfidf_floor_gpt2_and_human_rows():
    text = report.render({"recipe": recipe_section()})
    assert "## 9. The recipe on the held-out splits" in text
    assert "62.0 min end to end: splits 12 s, chat_model 3000 s, classifier 600 s." in text
    assert "| ChnSentiCorp balanced test (250 + 250) | 0.9200 | 0.9199 | 0.8800 | 500 |" in text
    assert "| cross-domain test (held-out category) | 0.7500 | 0.7400 | 0.7000 | 3850 |" in text
    assert "| CharGPT chat model (recipe) | 3000 | 45.00 | 0.050 | 0.200 | 3.0% | 12.5 |" in text
    gpt2_row = "| GPT-2, same data and training time (AdamW 0.001, 120 steps) | 2990 | 50.00 | 0.040 | 0.150 | 8.0% |"
    assert gpt2_row + " 14.0 |" in text
    assert "| human replies |  |  | 0.080 | 0.450 | 0.0% | 9.8 |" in text
    assert "temperature 0.9, top_p 0.95, repetition_penalty 1.2, no_repeat_ngram_size 3." in text
    assert "- 你好 -> 你好呀 (human: 嗨)" in text
    without = report.render({"recipe": recipe_section(gpt2=False)})
    assert "## 9. The recipe" in without and "GPT-2, same data" not in without and "| human replies |" in without
    assert "## 9. The recipe" not in report.render({"recipe": {**recipe_section(), "figures": {}}})


def test_recipe_targets_judge_each_figure_in_its_direction():
    verdicts = {t["name"]: (t["value"], t["met"]) for t in report.targets({"recipe": recipe_section()})}
    assert verdicts["recipe: sentiment accuracy, balanced ChnSentiCorp test"] == (0.92, True)
    value, met = verdicts["recipe: sentiment accuracy - TF-IDF floor (same training data)"]
    assert value == pytest.approx(0.04) and met is True  # 0.92 - 0.88 >= 0.02
    assert verdicts["recipe: cross-domain accuracy (held-out category)"] == (0.75, False)
    assert verdicts["recipe: share of repetitive replies"] == (0.03, True)  # at most 0.05
    assert verdicts["recipe: Distinct-2 of the replies"] == (0.2, False)
    assert verdicts["recipe: held-out perplexity, chat model / GPT-2 (same training time)"] == (0.9, True)
    assert len(verdicts) == 6
    # Without GPT-2 there is no perplexity target; without the floor, the difference is not measured (not missed).
    section = recipe_section(gpt2=False)
    del section["figures"]["sentiment_tfidf_accuracy"]
    verdicts = {t["name"]: t["met"] for t in report.targets({"recipe": section})}
    assert len(verdicts) == 5 and verdicts["recipe: sentiment accuracy - TF-IDF floor (same training data)"] is None
    assert "recipe: sentiment accuracy, balanced ChnSentiCorp test" in report.summary_table({"recipe": section})
