"""The site's promises that a test can keep without building it (`make docs` builds it, strict):

- every example in docs/ marked runnable (a fenced block whose first line is `# runnable` or `# runnable: SETUP`)
  runs as printed, on small data, in a temporary folder;
- the generated CLI reference holds every flag `torchlab train TASK --help` prints, for every task, and every
  flag of every other command;
- every placeholder a page uses names something the build can fill.
"""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

import pytest

from conftest import ROOT
from torchlab.cli.main import build_parser, main

sys.path.insert(0, str(ROOT / "tools"))
import cli_reference  # noqa: E402
import results_table  # noqa: E402

DOCS = ROOT / "docs"
BLOCK = re.compile(r"^```(python|bash)\n# runnable(?::\s*([\w-]+))?[^\n]*\n(.*?)^```", re.M | re.S)
SETUPS = ("mnist-data", "digits-checkpoint")


def runnable_blocks() -> list[tuple[str, str, str | None, str]]:
    """(page, language, setup, code) of every runnable block under docs/."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for language, setup, code in BLOCK.findall(page.read_text(encoding="utf-8")):
            found.append((page.relative_to(DOCS).as_posix(), language, setup or None, code))
    return found


def prepare(setup: str | None, folder: Path, capsys) -> None:
    if setup == "mnist-data":
        from mnist_files import write_mnist

        write_mnist(folder / "data" / "mnist", n_train=600, n_test=100)
    elif setup == "digits-checkpoint":
        assert main(["train", "digits", "--epochs", "3", "--no-figures", "--no-progress"]) == 0
    else:
        assert setup is None, f"unknown setup {setup!r}; known: {SETUPS}"
    capsys.readouterr()


def run_shell(code: str) -> None:
    """Each line a torchlab command (also as .venv/bin/torchlab), run in-process; comments and blanks skipped."""
    for line in code.splitlines():
        words = shlex.split(line, comments=True)
        if not words:
            continue
        assert Path(words[0]).name == "torchlab", f"a runnable bash line must be a torchlab command: {line}"
        assert main(words[1:]) == 0, line


BLOCKS = runnable_blocks()


def test_the_docs_mark_examples_runnable_on_several_pages():
    pages = {page for page, *_ in BLOCKS}
    assert {"getting-started.md", "trainer.md"} <= pages, pages
    assert all(setup in (None, *SETUPS) for _, _, setup, _ in BLOCKS)


@pytest.mark.parametrize(
    ("page", "language", "setup", "code"), BLOCKS, ids=[f"{page}-{i}" for i, (page, *_) in enumerate(BLOCKS)]
)
def test_a_runnable_example_runs_as_printed(page, language, setup, code, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    prepare(setup, tmp_path, capsys)
    if language == "python":
        exec(compile(code, f"docs/{page}", "exec"), {"__name__": "__docs__"})
    else:
        run_shell(code)
    out = capsys.readouterr().out
    assert out.strip(), f"docs/{page}: the example printed nothing"
    assert "nan" not in out.lower().split(), out


def flags_in(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])--[a-z][\w-]*", text))


def table_flags(section: str) -> set[str]:
    """The flags of a section's argument tables (not its usage block, which lists them all anyway)."""
    return flags_in("\n".join(line.split(" | ")[0] for line in section.splitlines() if line.startswith("| `-")))


def task_section(markdown: str, task: str) -> str:
    return markdown.split(f"### torchlab train {task}\n", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def test_the_cli_reference_holds_every_flag_of_every_train_task(capsys):
    """Against the parser: every option `torchlab train TASK --help` prints is in the task's tables, flag for flag."""
    reference = cli_reference.cli_markdown()
    train = dict((name, p) for name, _, p in cli_reference._subcommands(build_parser(with_tasks=True)))["train"]
    tasks = cli_reference._subcommands(train)
    assert {name for name, _, _ in tasks} >= {
        "digits",
        "mnist",
        "patch",
        "ring",
        "keypoints",
        "digit-mlp",
        "keypoint-net",
    }
    for task, _, parser in tasks:
        with pytest.raises(SystemExit):
            main(["train", task, "--help"])
        printed = flags_in(capsys.readouterr().out)
        options = {s for a in parser._actions for s in a.option_strings if s.startswith("--")} - {"--help"}
        assert {"--epochs", "--recipe", "--device"} <= options <= printed
        missing = options - table_flags(task_section(reference, task))
        assert not missing, f"train {task}: {sorted(missing)} not in the CLI reference"


def test_the_cli_reference_holds_every_command_and_its_flags():
    reference = cli_reference.cli_markdown()
    commands = cli_reference._subcommands(build_parser(with_tasks=False))
    assert len(commands) >= 10
    for name, _, parser in commands:
        section = reference.split(f"\n## torchlab {name}\n", 1)[1].split("\n## ", 1)[0]
        flags = {s for a in parser._actions for s in a.option_strings if s.startswith("--") and s != "--help"}
        assert flags <= table_flags(section), (name, sorted(flags - table_flags(section)))


def test_the_cli_reference_gives_each_recipes_value():
    section = task_section(cli_reference.cli_markdown(), "mnist")
    epochs = next(line for line in section.splitlines() if line.startswith("| `--epochs"))
    assert "default: 3" in epochs and "long: 12" in epochs and "fast: 1" in epochs, epochs


def test_every_placeholder_of_a_page_names_what_the_build_fills():
    import docs_figures

    rows = results_table.load_rows()
    for page in DOCS.rglob("*.md"):
        text = page.read_text(encoding="utf-8")
        for task in re.findall(r"<!-- results-table: (\w+) -->", text):
            assert any(r["task"] == task for r in rows), (page, task)
        for name in re.findall(r"<!-- figures: (\w+) -->", text):
            assert name in docs_figures.RUNS, (page, name)
    for task in results_table.TASKS:
        text = (DOCS / "tasks" / f"{task}.md").read_text(encoding="utf-8")
        assert f"<!-- results-table: {task} -->" in text and f"<!-- figures: {task} -->" in text
