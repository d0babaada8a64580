"""The package's boundaries: no import cycles, argparse and print only in the CLI layer, tasks only in tasks/."""

from __future__ import annotations

import ast
from pathlib import Path

import torchlab.recipes
import torchlab.tasks

PACKAGE = Path(__file__).resolve().parents[1] / "torchlab"
CLI_LAYER = ("cli.py", "commands/")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))}


def imported(tree: ast.Module, known: set[str]) -> set[str]:
    """torchlab modules a module imports anywhere in its body (top level or inside functions)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("torchlab"):
            if node.module in known:
                out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known}
    return out


def test_no_module_imports_one_that_imports_it_back():
    trees = modules()
    graph = {name: imported(tree, set(trees)) - {name} for name, tree in trees.items()}
    cycles = sorted((a, b) for a in graph for b in graph[a] if a < b and a in graph.get(b, set())
                    and a != "torchlab" and b != "torchlab")
    assert cycles == []


def test_argparse_and_print_only_in_the_cli_layer():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith(CLI_LAYER):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                if "argparse" in names:
                    offenders.append(f"{rel}: imports argparse")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{rel}:{node.lineno}: print")
    assert offenders == []


def test_only_task_modules_are_registered_as_tasks():
    files = {p.stem for p in (PACKAGE / "tasks").glob("*.py")} - {"__init__", "base"}
    assert set(torchlab.tasks.TASK_MODULES) == files  # every file in tasks/ is a task, and only those
    assert torchlab.tasks.task_names() == ["digit-mlp", "keypoint-cnn", "keypoint-fcn", "keypoint-net", "mnist",
                                           "patch-linear", "ring-mlp"]


def test_recipes_are_torch_free_and_match_the_registered_tasks():
    """The CLI builds `train TASK` from torchlab.recipes alone: importing every card must not load torch."""
    import subprocess
    import sys

    code = ("import sys\nfrom torchlab.recipes import card_names, get_card\n"
            "print(' '.join(card_names()), 'torch' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    *names, loads_torch = proc.stdout.split()
    assert loads_torch == "False", proc.stderr
    assert names == torchlab.tasks.task_names()
    files = {p.stem for p in (PACKAGE / "recipes").glob("*.py")} - {"__init__"}
    assert set(torchlab.recipes.RECIPE_MODULES) == files
    for name in names:
        card, spec = torchlab.recipes.get_card(name), torchlab.tasks.get_task(name)
        assert (spec.config_class, spec.recipes, spec.help, spec.description) == (
            card.config_class, card.recipes, card.help, card.description)
