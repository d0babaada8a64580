"""The CLI reference as Markdown, generated from the argparse parsers (torchlab.cli.main.build_parser).

Every sub-command gets its description, usage and a table of its arguments; `train` gets one section per task
with every flag of `torchlab train TASK --help` and each recipe's value (the flags' help carries them). The
site's hook (tools/docs_hooks.py) puts this text into docs/reference/cli.md at build time.

    python tools/cli_reference.py > cli.md
"""

from __future__ import annotations

import argparse
import sys


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(name, one-line help, parser) of each sub-command, in the order `--help` lists them."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return [(name, helps.get(name, ""), sub) for name, sub in action.choices.items()]
    return []


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _arguments(parser: argparse.ArgumentParser) -> str:
    """Each argument group as a table: the flag as `--help` writes it, and its help with defaults filled in."""
    formatter = parser._get_formatter()
    blocks = []
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if a.help != argparse.SUPPRESS
            and not isinstance(a, argparse._SubParsersAction)
            and not isinstance(a, argparse._HelpAction)
        ]
        if not actions:
            continue
        rows = [f"**{group.title}**", "", "| argument | what |", "| --- | --- |"]
        for action in actions:
            invocation = formatter._format_action_invocation(action)
            rows.append(f"| `{_cell(invocation)}` | {_cell(formatter._expand_help(action) if action.help else '')} |")
        blocks.append("\n".join(rows))
    return "\n\n".join(blocks)


def _usage(parser: argparse.ArgumentParser) -> str:
    return "```text\n" + parser.format_usage().strip() + "\n```"


def _description(parser: argparse.ArgumentParser) -> str:
    """A description as written; one laid out by hand (indented code, a recipe list) stays preformatted."""
    text = (parser.description or "").strip("\n")
    if not text:
        return ""
    if "\n" in text:
        return "```text\n" + text + "\n```"
    return text


def cli_markdown() -> str:
    """The whole reference: `torchlab` and each sub-command, then `train TASK` for every task."""
    from torchlab.cli.main import build_parser

    parser = build_parser(with_tasks=True)
    out = [
        "## torchlab",
        "",
        _description(parser),
        "",
        _usage(parser),
        "",
        "| command | what it does |",
        "| --- | --- |",
    ]
    commands = _subcommands(parser)
    out += [f"| [`{name}`](#torchlab-{name}) | {_cell(help_text)} |" for name, help_text, _ in commands]
    for name, help_text, sub in commands:
        out += ["", f"## torchlab {name}", "", _description(sub) or help_text, "", _usage(sub), ""]
        arguments = _arguments(sub)
        if arguments:
            out += [arguments]
        if name == "train":
            tasks = _subcommands(sub)
            out += ["", "Tasks: " + ", ".join(f"[`{task}`](#torchlab-train-{task})" for task, _, _ in tasks) + "."]
            for task, task_help, task_parser in tasks:
                out += [
                    "",
                    f"### torchlab train {task}",
                    "",
                    task_help,
                    "",
                    _usage(task_parser),
                    "",
                    _description(task_parser),
                    "",
                    _arguments(task_parser),
                ]
    return "\n".join(out).replace("\n\n\n", "\n\n") + "\n"


if __name__ == "__main__":
    sys.stdout.write(cli_markdown())
