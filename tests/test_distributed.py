"""Distributed training on CPU with gloo, through the real scripts and launchers: two processes give the same
parameters as one process with the same global batch, and two "machines" on 127.0.0.1 finish one run together.

Each test starts real processes (`python`, `accelerate launch`), so they are marked slow; each takes well under a
minute on two cores."""

import json
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from ._helpers_training import (
    ACCELERATE_CONFIGS,
    TINY_MODEL_FLAGS,
    accelerate_script,
    free_port,
    python_script,
    run_command,
    script_env,
    tiny_tokenizer,
    write_pairs,
)


pytestmark = pytest.mark.slow

# Largest parameter difference accepted between one process and two: the two runs add the same gradients in a
# different order (all-reduce), which changes float32 sums in the last bits (measured: about 1e-7).
TOLERANCE = 1e-5
# With Muon, whose Newton-Schulz iterations amplify those last-bit differences of the gradients in the orthogonalised
# update (measured: up to about 1e-4 after a few steps).
MUON_TOLERANCE = 1e-3


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("dist")
    pairs = write_pairs(root / "pairs.txt", n=64)
    tiny_tokenizer(root / "tok", pairs.read_text(encoding="utf-8").splitlines())
    return root


def lm_flags(output_dir, per_device_batch: int, max_steps: int, *extra) -> list:
    return [
        "--tokenizer_name_or_path",
        "tok",
        "--train_files",
        "pairs.txt",
        *TINY_MODEL_FLAGS,
        "--dropout",
        "0",
        "--max_steps",
        max_steps,
        "--per_device_train_batch_size",
        per_device_batch,
        "--seed",
        "0",
        "--validation_split_size",
        "0",
        "--test_split_size",
        "0",
        "--eval_strategy",
        "no",
        "--load_best_model_at_end",
        "false",
        "--report_to",
        "none",
        "--logging_steps",
        "1",
        "--output_dir",
        output_dir,
        *extra,
    ]


def losses(run_dir):
    state = json.loads((run_dir / "trainer_state.json").read_text())
    return [e["loss"] for e in state["log_history"] if "loss" in e]


@pytest.mark.parametrize(
    "packing, optimizer",
    [(True, "adamw_torch_fused"), (False, "adamw_torch_fused"), (False, "muon")],
    ids=["packed", "padded", "muon"],
)
def test_two_cpu_processes_match_one_process_with_the_same_global_batch(corpus, packing, optimizer):
    extra = ["--save_strategy", "no", "--optim", optimizer, *(["--packing", "--block_size", "32"] if packing else [])]
    one, two = f"one-{packing}-{optimizer}", f"two-{packing}-{optimizer}"
    run_command(python_script("train_lm.py", *lm_flags(one, 8, 4, "--use_cpu", *extra)), cwd=corpus)
    # No --use_cpu: the script itself switches Trainer to CPU processes when it finds no GPU.
    launch = ["--config_file", ACCELERATE_CONFIGS / "cpu_2proc.yaml", "--main_process_port", free_port()]
    run_command(accelerate_script(launch, "train_lm.py", *lm_flags(two, 4, 4, *extra)), cwd=corpus)

    state = json.loads((corpus / two / "trainer_state.json").read_text())
    assert state["epoch"] == pytest.approx(json.loads((corpus / one / "trainer_state.json").read_text())["epoch"])
    single, double = (
        load_file(str(corpus / one / "model.safetensors")),
        load_file(str(corpus / two / "model.safetensors")),
    )
    gap = max((single[k] - double[k]).abs().max().item() for k in single)
    tolerance = MUON_TOLERANCE if optimizer == "muon" else TOLERANCE
    assert gap < tolerance, f"parameters differ by {gap}"
    assert losses(corpus / two) == pytest.approx(losses(corpus / one), abs=tolerance)


def test_two_machines_on_localhost_finish_one_run_and_write_one_checkpoint(corpus):
    port = free_port()
    out = "machines"
    flags = lm_flags(out, 4, 6, "--save_strategy", "steps", "--save_steps", "6")
    commands = [
        accelerate_script(
            [
                "--multi_gpu",
                "--num_machines",
                2,
                "--num_processes",
                2,
                "--machine_rank",
                rank,
                "--main_process_ip",
                "127.0.0.1",
                "--main_process_port",
                port,
            ],
            "train_lm.py",
            *flags,
        )
        for rank in (0, 1)
    ]
    procs = [
        subprocess.Popen(cmd, cwd=corpus, env=script_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for cmd in commands
    ]
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=180)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for rank, (proc, output) in enumerate(zip(procs, outputs)):
        assert proc.returncode == 0, f"machine {rank} failed:\n{output[-6000:]}"
    run_dir = corpus / out
    assert sorted(p.name for p in run_dir.glob("checkpoint-*")) == ["checkpoint-6"]
    assert (run_dir / "checkpoint-6" / "model.safetensors").is_file()
    state = json.loads((run_dir / "trainer_state.json").read_text())
    # 64 dialogues, 4 per process: 8 steps per epoch with two processes (16 with one), so 6 steps are 0.75 epoch.
    assert state["global_step"] == 6 and state["epoch"] == pytest.approx(0.75)
    assert "Model directory" in outputs[0] and "Model directory" not in outputs[1]


def test_torchrun_also_distributes_on_cpu(corpus):
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_addr",
        "127.0.0.1",
        "--master_port",
        str(port),
        str(python_script("train_lm.py")[1]),
        *map(str, lm_flags("torchrun", 4, 2, "--save_strategy", "no")),
    ]
    run_command(cmd, cwd=corpus)
    state = json.loads((corpus / "torchrun" / "trainer_state.json").read_text())
    assert state["global_step"] == 2 and state["epoch"] == pytest.approx(0.25)


def test_the_classifier_levers_train_two_processes_as_one(corpus):
    """The auxiliary loss, the gated per-layer rates and the weight average under DDP: two processes end with the
    parameters of one process with the same global batch. The reviews have one length, so each process's mean
    next-character loss weighs the characters as the single process's does."""
    run_command(python_script("train_lm.py", *lm_flags("lever-lm", 8, 2, "--use_cpu", "--save_strategy", "no")), corpus)
    phrases = ["很好很喜欢", "服务好推荐", "太差了失望", "服务差后悔"]
    rows = [f"{i % 2},{phrases[i % 4]}{i:02d}" for i in range(32)]
    (corpus / "same_length.csv").write_text("label,review\n" + "\n".join(rows) + "\n", encoding="utf-8")

    def flags(output_dir, per_device_batch):
        return [
            *("--model_name_or_path", "lever-lm", "--train_files", "same_length.csv", "--output_dir", output_dir),
            *("--validation_split_size", "0", "--test_split_size", "0", "--eval_strategy", "no"),
            *("--load_best_model_at_end", "false", "--save_strategy", "no", "--report_to", "none", "--seed", "0"),
            *("--max_steps", "4", "--per_device_train_batch_size", per_device_batch, "--learning_rate", "1e-2"),
            *("--optim", "adamw_torch", "--aux_lm_weight", "0.5", "--layer_lr_decay", "0.5"),
            *("--gradual_unfreezing", "0.5", "--ema_decay", "0.9"),
        ]

    run_command(python_script("train_classifier.py", *flags("lever-one", 8), "--use_cpu"), cwd=corpus)
    launch = ["--config_file", ACCELERATE_CONFIGS / "cpu_2proc.yaml", "--main_process_port", free_port()]
    run_command(accelerate_script(launch, "train_classifier.py", *flags("lever-two", 4)), cwd=corpus)
    single = load_file(str(corpus / "lever-one" / "model.safetensors"))
    double = load_file(str(corpus / "lever-two" / "model.safetensors"))
    lm = load_file(str(corpus / "lever-lm" / "model.safetensors"))
    gap = max((single[k] - double[k]).abs().max().item() for k in single)
    assert gap < TOLERANCE, f"parameters differ by {gap}"
    trained = [k for k in lm if ".h.0." in k and not single[k].equal(lm[k])]
    assert trained, "the first block did not train"  # unfrozen by the last steps
