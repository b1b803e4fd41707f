"""The accelerate configs in train_scripts/accelerate_configs/ are ones the installed accelerate reads as intended,
checked offline and without a GPU: accelerate's own loader and launch-time validation accept every file, every key is
one accelerate knows (a misspelt key would otherwise be dropped silently or stop `accelerate launch`), and the FSDP
and DeepSpeed files reach the launched process with the settings their comments promise. Also: benchmarks/gpu_check.py
imports without a GPU, its comparison helper works, and run without CUDA it says so and exits 2."""

import os
import subprocess
import sys

import pytest
import torch
import yaml
from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file
from accelerate.commands.launch import _validate_launch_command, launch_command_parser
from accelerate.utils import DeepSpeedPlugin
from accelerate.utils.launch import prepare_deepspeed_cmd_env, prepare_multi_gpu_env

from chargpt import modeling_chargpt

from ._helpers_training import ACCELERATE_CONFIGS, REPO


CONFIG_FILES = sorted(ACCELERATE_CONFIGS.glob("*.yaml"))


def launch_group_keys(title: str) -> set[str]:
    """Option names of one argument group of `accelerate launch`: its loader copies fsdp_config and deepspeed_config
    entries onto these options (commands/launch.py), so a key outside them is never read."""
    groups = [g for g in launch_command_parser()._action_groups if g.title == title]
    assert groups, f"accelerate launch has no '{title}' argument group any more; update this test"
    return {action.dest for action in groups[0]._group_actions}


def validated_launch_args(config, *launch_args):
    """What `accelerate launch --config_file CONFIG LAUNCH_ARGS script.py` settles on, before it starts anything."""
    args = launch_command_parser().parse_args(["--config_file", str(config), *launch_args, "script.py"])
    return _validate_launch_command(args)[0]


@pytest.fixture(autouse=True)
def no_inherited_accelerate_env(monkeypatch):
    """Run as if from a plain shell: launcher variables of an enclosing `accelerate launch` would change results."""
    for name in [n for n in os.environ if n.startswith(("ACCELERATE_", "FSDP_"))]:
        monkeypatch.delenv(name)


def test_the_new_configs_are_shipped():
    names = {p.name for p in CONFIG_FILES}
    assert {"bf16.yaml", "fsdp.yaml", "deepspeed_zero2.yaml", "fp16.yaml", "multi_gpu.yaml"} <= names


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_config_names_distributed_type_and_mixed_precision_and_only_cluster_config_keys(path):
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert "distributed_type" in raw and "mixed_precision" in raw
    unknown = set(raw) - set(ClusterConfig.__dataclass_fields__)
    assert not unknown, f"{path.name}: keys accelerate's ClusterConfig does not have: {sorted(unknown)}"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_config_sub_keys_are_options_accelerate_launch_reads(path):
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    for block, title in (("fsdp_config", "FSDP Arguments"), ("deepspeed_config", "DeepSpeed Arguments")):
        # launch.py prefixes fsdp_config keys that lack it with "fsdp_"; deepspeed_config keys are taken as they are
        keys = {k if block != "fsdp_config" or k.startswith("fsdp") else f"fsdp_{k}" for k in raw.get(block) or {}}
        unknown = keys - launch_group_keys(title)
        assert not unknown, f"{path.name}: {block} keys accelerate launch ignores: {sorted(unknown)}"


@pytest.mark.parametrize("path", CONFIG_FILES, ids=lambda p: p.name)
def test_config_loads_with_accelerates_loader_and_passes_launch_validation(path):
    config = load_config_from_file(str(path))
    assert isinstance(config, ClusterConfig)
    args = validated_launch_args(path)
    assert args.mixed_precision == yaml.safe_load(path.read_text(encoding="utf-8"))["mixed_precision"]


def test_bf16_config_is_one_gpu_with_bf16_autocast():
    args = validated_launch_args(ACCELERATE_CONFIGS / "bf16.yaml")
    assert (args.mixed_precision, args.num_processes, args.multi_gpu, args.use_fsdp) == ("bf16", 1, False, False)


def test_fsdp_config_wraps_chargpts_decoder_block_class():
    name = yaml.safe_load((ACCELERATE_CONFIGS / "fsdp.yaml").read_text())["fsdp_config"][
        "fsdp_transformer_layer_cls_to_wrap"
    ]
    assert hasattr(modeling_chargpt, name)
    # FSDP's transformer_auto_wrap_policy matches module classes by name: the blocks must be modules of the model
    config = modeling_chargpt.CharGPTConfig(vocab_size=16, n_embd=8, n_layer=2, n_head=2, n_inner=16, n_positions=8)
    model = modeling_chargpt.CharGPTForCausalLM(config)
    assert sum(type(m).__name__ == name for m in model.modules()) == config.n_layer
    assert name in model._no_split_modules


def test_fsdp_config_reaches_the_process_as_full_shard_block_wrap_full_state_dict_on_one_gpu():
    args = validated_launch_args(ACCELERATE_CONFIGS / "fsdp.yaml", "--num_processes", "1")
    assert args.use_fsdp and args.num_processes == 1
    env = prepare_multi_gpu_env(args)
    expected = {
        "ACCELERATE_USE_FSDP": "true",
        "ACCELERATE_MIXED_PRECISION": "bf16",
        "FSDP_VERSION": "1",
        "FSDP_SHARDING_STRATEGY": "FULL_SHARD",  # what accelerate's FSDP1 plugin reads first
        "FSDP_AUTO_WRAP_POLICY": "TRANSFORMER_BASED_WRAP",
        "FSDP_TRANSFORMER_CLS_TO_WRAP": "CharGPTBlock",
        "FSDP_STATE_DICT_TYPE": "FULL_STATE_DICT",
        "FSDP_USE_ORIG_PARAMS": "true",
        "FSDP_CPU_RAM_EFFICIENT_LOADING": "true",
        "FSDP_SYNC_MODULE_STATES": "true",
        "FSDP_OFFLOAD_PARAMS": "false",
    }
    assert {k: env.get(k) for k in expected} == expected


def test_deepspeed_config_builds_a_zero2_plugin_leaving_accumulation_and_clipping_to_trainer(monkeypatch):
    args = validated_launch_args(ACCELERATE_CONFIGS / "deepspeed_zero2.yaml", "--num_processes", "1")
    assert args.use_deepspeed
    args.deepspeed_fields_from_accelerate_config = ""  # set by launch_command just before it calls the launcher
    _, env = prepare_deepspeed_cmd_env(args)
    for name, value in env.items():
        if name.startswith("ACCELERATE_"):
            monkeypatch.setenv(name, value)
    plugin = DeepSpeedPlugin()  # reads the launcher's variables, as in the launched process; deepspeed not needed
    plugin.set_mixed_precision(env["ACCELERATE_MIXED_PRECISION"])
    ds = plugin.deepspeed_config
    assert ds["zero_optimization"]["stage"] == 2
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "none"
    assert ds["zero_optimization"]["offload_param"]["device"] == "none"
    # 'auto': Trainer fills them from --gradient_accumulation_steps / --max_grad_norm, so they cannot disagree
    assert ds["gradient_accumulation_steps"] == "auto" and ds["gradient_clipping"] == "auto"
    assert ds["bf16"]["enabled"] is True and ds["fp16"]["enabled"] is False


def test_gpu_check_helpers_import_without_a_gpu_and_kernels_agree_on_cpu_fp32():
    from benchmarks import gpu_check

    assert "n_embd=" in gpu_check.TRAIN_LM_SIZE
    status, detail = gpu_check.check_attention(torch.float32, "sdpa", device="cpu")
    assert status == "PASS", detail


def test_gpu_check_script_without_cuda_says_so_and_exits_2():
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")  # hides any GPU, so the result is the same on GPU machines
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_check.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2, result.stdout + result.stderr
    assert "No CUDA GPU is available" in result.stdout
