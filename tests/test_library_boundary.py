"""What `pip install chargpt` installs is a library: the package imports nothing from the repository's experiments
(`recipes/`, `benchmarks/`, `train_scripts/`, `tests/`), names no file of the team's shared data layout, and every
folder of code in it is a package that a (non-editable) install carries."""

import ast
from pathlib import Path

import pytest
from setuptools import find_packages


REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "chargpt"
EXPERIMENTS = ("recipes", "benchmarks", "train_scripts", "tests")
# Fragments of the shared data's paths (../shared/data, see its README): a module that names them is a recipe.
DATA_LAYOUT = ("shared/data", "lccc_base/", "lccc/lccc_toy", "chnsenticorp/", "online_shopping/", "kdconv/", "cped/")


def _modules():
    return sorted(PACKAGE.rglob("*.py"))


def _imported_names(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_library_module_imports_the_repositorys_experiments(path):
    wrong = [name for name in _imported_names(path) if name.split(".")[0] in EXPERIMENTS]
    assert not wrong, f"{path.relative_to(REPO)} imports {wrong}; the installed package cannot reach them"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_library_module_names_a_file_of_the_shared_data_layout(path):
    strings = [
        node.value
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    ]
    found = sorted({fragment for text in strings for fragment in DATA_LAYOUT if fragment in text})
    assert not found, f"{path.relative_to(REPO)} names {found}: paths of one data layout belong in recipes/"


def test_the_distribution_carries_every_code_folder_of_chargpt_and_nothing_else():
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    include = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = set(find_packages(where=str(REPO), include=include))
    code_folders = {
        ".".join(folder.relative_to(REPO).parts)
        for folder in [PACKAGE, *PACKAGE.rglob("*")]
        if folder.is_dir() and any(folder.glob("*.py"))
    }
    assert code_folders - packages == set(), "a folder of chargpt code has no __init__.py: a wheel would drop it"
    assert {name.split(".")[0] for name in packages} == {"chargpt"}
