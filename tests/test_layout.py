"""The package's shape: what lives where, what may import what, and the reading path in the README.

These rules keep torchlab readable as it grows: a task's code in its folder, the engine free of
tasks, the CLI the only place that parses flags or prints, configs free of torch, no import cycle,
tests mirroring the package, and the README's list of the files a reader opens from
`torchlab train mnist` to `optimizer.step()` true to the code.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import torchlab.tasks

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "torchlab"
TOP_LEVEL = {"__init__.py", "__main__.py", "api.py", "config.py", "errors.py", "export.py", "version.py"}
TASK_FILES = {"__init__.py", "config.py", "train.py", "infer.py", "plots.py"}
TASK_FREE = ("engine", "runtime", "reporting")  # task-agnostic layers


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, ast.Module]:
    return {module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))}


def type_checking_blocks(tree: ast.Module) -> set[int]:
    """ids of the nodes inside `if TYPE_CHECKING:` blocks: imports for type hints only, never run."""
    inside: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            inside |= {id(n) for statement in node.body for n in ast.walk(statement)}
    return inside


def imported(tree: ast.Module, known: set[str]) -> set[str]:
    """torchlab modules a module imports anywhere in its body (top level or inside functions), type-only imports
    (under `if TYPE_CHECKING:`) left out."""
    out = set()
    hints = type_checking_blocks(tree)
    for node in ast.walk(tree):
        if id(node) in hints:
            continue
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("torchlab"):
            if node.module in known:
                out.add(node.module)
            out |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known}
    return out


def import_graph() -> dict[str, set[str]]:
    trees = modules()
    return {name: imported(tree, set(trees)) - {name} for name, tree in trees.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle (a -> b -> ... -> a) among the modules, or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        path.pop()
        state[node] = 2
        return []

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return []


# ------------------------------------------------------------------- the tree
def test_seven_modules_at_the_top_level_and_the_layers_as_folders():
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top == TOP_LEVEL
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == {
        "cli",
        "data",
        "engine",
        "gradients",
        "lessons",
        "models",
        "reporting",
        "runtime",
        "search",
        "tasks",
    }


def test_the_version_is_written_once_in_version_py():
    """pyproject.toml reads it from torchlab/version.py; no other file of the package assigns one."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = pyproject.split("[project]", 1)[1].split("\n[", 1)[0]
    assert not re.search(r"^version\s*=", project, flags=re.M)
    assert re.search(r'^dynamic\s*=\s*\[[^]]*"version"', project, flags=re.M)
    assert re.search(r'^version\s*=\s*\{\s*attr\s*=\s*"torchlab\.version\.__version__"\s*\}', pyproject, flags=re.M)
    written = [
        p.relative_to(ROOT).as_posix()
        for p in PACKAGE.rglob("*.py")
        if re.search(r"^__version__\s*=", p.read_text(encoding="utf-8"), flags=re.M)
    ]
    assert written == ["torchlab/version.py"]
    from torchlab.version import __version__

    assert re.fullmatch(r"\d+\.\d+\.\d+", __version__) and torchlab.__version__ == __version__


def test_every_task_is_one_folder_with_its_config_train_infer_and_plots():
    folders = {p.name for p in (PACKAGE / "tasks").iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(torchlab.tasks.TASK_FOLDERS)
    for folder in folders:
        files = {p.name for p in (PACKAGE / "tasks" / folder).glob("*.py")}
        assert TASK_FILES <= files, (folder, TASK_FILES - files)
    assert {p.name for p in (PACKAGE / "tasks").glob("*.py")} == {"__init__.py", "run.py", "guards.py"}


def test_every_registered_task_names_functions_of_its_own_folder():
    assert torchlab.tasks.task_names() == ["digits", "keypoints", "mnist", "patch", "ring"]
    for name in torchlab.tasks.task_names():
        task = torchlab.tasks.get_task(name)
        folder = task.package.rpartition(".")[2]
        assert folder in torchlab.tasks.TASK_FOLDERS
        for role in ("train", "evaluate", "predict", "example_inputs"):
            function = task.function(role)
            assert callable(function) and function.__module__.startswith(task.package + "."), (name, role)
        assert task.models, name  # the models its checkpoints may hold


def test_no_module_named_small_and_no_old_nouns_or_spellings():
    assert not [p for p in PACKAGE.rglob("small.py")]
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"normalis|TaskSpec|TaskCard|optimiser|\bcentre\b|\bcolour", line):
                offenders.append(f"{path.relative_to(ROOT)}:{number}")
    assert offenders == []


def test_scripts_holds_the_five_training_scripts_and_tools_the_rest():
    assert sorted(p.name for p in (ROOT / "scripts").glob("*.py")) == [
        "train_digits.py",
        "train_keypoints.py",
        "train_mnist.py",
        "train_patch.py",
        "train_ring.py",
    ]
    tools = {p.name for p in (ROOT / "tools").glob("*.py")}
    assert {"gpu_check.py", "mutation.py", "bench_mnist.py"} <= tools


def test_tests_mirror_the_package():
    """tests/<folder>/ exists only for a folder of torchlab/ (or scripts/, tools/), and each test file sits in one."""
    allowed = {
        module_name(p).replace("torchlab.", "", 1).replace(".", "/")
        for p in PACKAGE.rglob("__init__.py")
        if p.parent != PACKAGE
    } | {"scripts", "tools"}
    tests = ROOT / "tests"
    folders = {p.parent.relative_to(tests).as_posix() for p in tests.rglob("test_*.py")} - {"."}
    assert folders <= allowed, folders - allowed
    top = {p.name for p in tests.glob("test_*.py")}
    assert top == {
        "test_api.py",
        "test_docs.py",
        "test_export.py",
        "test_layout.py",
        "test_readme.py",
    }  # the top-level modules


# ------------------------------------------------------------------ the rules
def test_no_import_cycle():
    graph = import_graph()
    graph = {a: {b for b in bs if b != "torchlab"} for a, bs in graph.items() if a != "torchlab"}
    assert find_cycle(graph) == []


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) == []


def test_argparse_and_print_only_in_the_cli():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel.startswith("cli/"):
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


def test_nothing_task_specific_in_engine_runtime_or_reporting():
    """The task-agnostic layers import no task, lesson, CLI, data set or model family."""
    graph = import_graph()
    allowed = (
        "torchlab.config",
        "torchlab.errors",
        "torchlab.version",
        "torchlab.engine",
        "torchlab.runtime",
        "torchlab.reporting",
        "torchlab.data.batcher",
        "torchlab.data.splits",
    )
    offenders = [
        f"{a} imports {b}"
        for a, bs in graph.items()
        if a.split(".")[1:2] and a.split(".")[1] in TASK_FREE
        for b in bs
        if not (b.startswith(allowed) or b in ("torchlab", "torchlab.models"))
    ]
    assert offenders == []
    for layer in TASK_FREE:  # nor do they name one
        for path in (PACKAGE / layer).rglob("*.py"):
            code = path.read_text(encoding="utf-8")
            assert not re.search(r"[\"'](mnist|digit-mlp|keypoint-\w+|patch-linear|ring-mlp)[\"']", code), path


# The layers, bottom up: a module imports only from its own layer or the ones below (peers in one layer may
# import each other; test_no_import_cycle keeps them from doing it both ways). Top-level modules go by their
# name, folders by theirs; "__init__" is the package itself (torchlab/__init__.py, the public API).
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "version", "config"),  # no torch: the words every layer uses
    ("runtime",),  # where a run executes: device, DDP, output folder, atomic files
    ("data", "models"),  # data sets and the facts configs check; nn.Modules
    ("engine", "reporting"),  # the task-agnostic Trainer and its checkpoints; progress, figures, records
    ("gradients", "lessons"),  # gradient checks and notebook explorations over models and data
    ("tasks",),  # one folder per problem: config, train, infer, plots
    ("export", "api"),  # what a user calls: train(), evaluate(), predict(), export
    ("search",),  # a study: many runs of torchlab.train, on Optuna
    ("cli", "__main__", "__init__"),  # the command line and the package's front door
)


def layer_of(module: str) -> int:
    """The index in LAYERS of a torchlab module (torchlab.engine.trainer -> engine's)."""
    part = module.split(".")[1] if "." in module else "__init__"
    return next(i for i, names in enumerate(LAYERS) if part in names)


def up_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import from a lower layer into a higher one, as "a (layer i) imports b (layer j)"."""
    return [
        f"{a} (layer {layer_of(a)}) imports {b} (layer {layer_of(b)})"
        for a, bs in sorted(graph.items())
        for b in sorted(bs)
        if layer_of(b) > layer_of(a)
    ]


def test_every_module_sits_in_a_layer():
    placed = {name for names in LAYERS for name in names}
    parts = {m.split(".")[1] if "." in m else "__init__" for m in import_graph()}
    assert parts == placed, (parts - placed, placed - parts)


def test_no_import_runs_from_a_lower_layer_up_to_a_higher_one():
    """data/, models/, engine/, runtime/, reporting/ never reach up into tasks/, the API or the CLI; and so on."""
    assert up_imports(import_graph()) == []


def test_the_layer_check_names_an_up_import():
    graph = {
        "torchlab.data.mnist": {"torchlab.tasks.mnist.config", "torchlab.errors"},
        "torchlab.tasks.mnist.config": {"torchlab.data.facts"},
        "torchlab.engine.trainer": {"torchlab"},
    }
    assert up_imports(graph) == [
        "torchlab.data.mnist (layer 2) imports torchlab.tasks.mnist.config (layer 5)",
        "torchlab.engine.trainer (layer 3) imports torchlab (layer 8)",
    ]


def test_no_task_reaches_into_another_task():
    graph = import_graph()
    offenders = []
    for a, bs in graph.items():
        own = re.match(r"torchlab\.tasks\.(\w+)\.", a)
        for b in bs:
            other = re.match(r"torchlab\.tasks\.(\w+)(\.|$)", b)
            if own and other and other.group(1) not in (own.group(1), "run"):
                offenders.append(f"{a} imports {b}")
    assert offenders == []


def test_configs_the_registry_and_the_train_flags_are_torch_free():
    """`torchlab train TASK --help` and its usage errors come from the configs alone: no torch imported."""
    code = (
        "import sys\nimport torchlab.tasks as t\nfrom torchlab.cli.main import build_parser\n"
        "names = t.task_names()\nbuild_parser(with_tasks=True)\n"
        "print(' '.join(names), 'torch' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    *names, loads_torch = proc.stdout.split()
    assert loads_torch == "False", proc.stderr
    assert names == torchlab.tasks.task_names()


# ---------------------------------------------------------------- reading path
MAX_READING_LINES = 1200


def reading_path() -> list[str]:
    """The files the README's "How a run flows" section lists, in order."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## How a run flows", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\d+\. `(torchlab/[\w/]+\.py)`", section, flags=re.M)


def traced_reading_path(tmp_path: Path) -> list[str]:
    """The files of the calls from `torchlab train mnist` down to the first `optimizer.step()`, outermost
    first: the call stack at that moment, traced in a tiny real run (120 synthetic images, one epoch)."""
    from mnist_files import write_mnist
    from torchlab.cli.main import main

    data = write_mnist(tmp_path / "mnist", n_train=120, n_test=20)
    stack: list[str] = []

    def watch(frame, event, arg):
        if event == "call" and frame.f_code.co_name == "step" and "torch/optim" in frame.f_code.co_filename:
            sys.setprofile(None)
            caller = frame.f_back
            while caller is not None:
                path = Path(caller.f_code.co_filename)
                if path.is_relative_to(PACKAGE):
                    stack.insert(0, path.relative_to(ROOT).as_posix())
                caller = caller.f_back

    sys.setprofile(watch)
    try:
        assert (
            main(
                [
                    "train",
                    "mnist",
                    "--data-dir",
                    str(data),
                    "--epochs",
                    "1",
                    "--val-size",
                    "20",
                    "--device",
                    "cpu",
                    "--out",
                    str(tmp_path / "run"),
                    "--no-figures",
                    "--no-progress",
                ]
            )
            == 0
        )
    finally:
        sys.setprofile(None)
    return list(dict.fromkeys(stack))  # each file once, where the calls first enter it


def test_the_readme_reading_path_is_the_call_path_of_a_real_run(tmp_path, capsys):
    """README's list is what the code does: the files a reader follows from the command to optimizer.step()."""
    traced = traced_reading_path(tmp_path)
    assert traced[0] == "torchlab/cli/main.py" and traced[-1] == "torchlab/engine/trainer.py", traced
    assert reading_path() == traced
    assert len(traced) <= 8
    assert sum(len((ROOT / p).read_text(encoding="utf-8").splitlines()) for p in traced) <= MAX_READING_LINES


def test_optimizer_step_sits_in_train_step_a_short_function_of_the_trainer():
    tree = ast.parse((PACKAGE / "engine" / "trainer.py").read_text(encoding="utf-8"))
    steps = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef) and "self.optimizer.step()" in ast.unparse(node)
    ]
    assert [node.name for node in steps] == ["train_step"]
    assert steps[0].end_lineno - steps[0].lineno + 1 <= 35
    assert len((PACKAGE / "engine" / "trainer.py").read_text(encoding="utf-8").splitlines()) <= 300


# ------------------------------------------------------------------- hermetic
def test_each_test_runs_in_its_own_folder_outside_the_repository():
    """A default output (checkpoints/<task>) of a test lands in a fresh folder, not where `make demo` wrote."""
    cwd = Path.cwd().resolve()
    assert ROOT not in (cwd, *cwd.parents) and not any(cwd.iterdir())


def test_the_tree_check_sees_a_file_added_changed_or_removed(tmp_path):
    from conftest import tree_changes, tree_snapshot

    (tmp_path / "kept.txt").write_text("a")
    (tmp_path / "gone.txt").write_text("b")
    (tmp_path / "__pycache__").mkdir()
    before = tree_snapshot(tmp_path)
    (tmp_path / "kept.txt").write_text("a longer text")
    (tmp_path / "gone.txt").unlink()
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "new.pt").write_text("c")
    (tmp_path / "__pycache__" / "x.pyc").write_text("cache")  # caches are left out
    assert tree_changes(before, tree_snapshot(tmp_path)) == ["added sub/new.pt", "removed gone.txt", "changed kept.txt"]
