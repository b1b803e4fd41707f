"""Shared pieces of the data, training and distributed tests: tiny corpora, a tiny tokenizer, script runners."""

import csv
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

from chargpt import CharGPTTokenizer


REPO = Path(__file__).resolve().parents[1]
SCRIPTS = REPO / "train_scripts"
ACCELERATE_CONFIGS = SCRIPTS / "accelerate_configs"

# Short everyday utterances; dialogues are built from them deterministically.
PHRASES = [
    "你好",
    "今天天气很好",
    "我们去公园散步吧",
    "好的,几点出发",
    "下午三点怎么样",
    "没问题,到时候见",
    "你吃饭了吗",
    "还没有,一起去吧",
    "这本书很有意思",
    "讲的是什么故事",
    "周末有什么安排",
    "打算在家看电影",
]

# A tiny model: hidden 32, 2 layers, 2 heads, as the style guide asks for tests.
TINY_MODEL_FLAGS = ["--n_embd", "32", "--n_layer", "2", "--n_head", "2", "--n_positions", "64"]


def write_pairs(path: Path, n: int = 64) -> Path:
    """`n` distinct LCCC-style `post<TAB>response` lines (characters not spaced)."""
    lines = [f"{PHRASES[i % len(PHRASES)]}{i}\t{PHRASES[(i * 5 + 3) % len(PHRASES)]}{i % 7}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_labelled_csv(path: Path, n: int = 48, extra_chars: str = "") -> Path:
    """`label,review` rows; positive rows say 好/喜欢, negative ones 差/失望, so a few steps can learn something."""
    pos, neg = ["很好,很喜欢", "服务好,推荐", "干净舒适,满意"], ["太差了,失望", "服务差,不推荐", "又脏又吵,后悔"]
    with path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["label", "review"])
        for i in range(n):
            text = (pos if i % 2 else neg)[i % 3] + str(i) + (extra_chars[i % len(extra_chars)] if extra_chars else "")
            writer.writerow([i % 2, text])
    return path


def tiny_tokenizer(directory: Path, texts, normalization: str | None = "NFKC") -> Path:
    CharGPTTokenizer.from_texts(texts, normalization=normalization, model_max_length=64).save_pretrained(str(directory))
    return directory


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def script_env() -> dict:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("ACCELERATE_USE_CPU", None)
    return env


def run_command(cmd: list[str], cwd: Path, timeout: int = 240) -> subprocess.CompletedProcess:
    """Run a command; on failure the assertion message carries its output."""
    result = subprocess.run(cmd, cwd=cwd, env=script_env(), capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"{' '.join(map(str, cmd))} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    )
    return result


def python_script(name: str, *args) -> list[str]:
    return [sys.executable, str(SCRIPTS / name), *map(str, args)]


def accelerate_script(launch_args: list, name: str, *args) -> list[str]:
    return [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        *map(str, launch_args),
        str(SCRIPTS / name),
        *map(str, args),
    ]


def load_script(name: str):
    """A script of train_scripts/ imported as a module, so that its `main(argv)` runs in the test's process."""
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), SCRIPTS / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
