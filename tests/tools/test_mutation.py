"""tools/mutation.py's choices, without running a mutant: every module with code is under mutation testing,
each runs tests that exist and start no process, and cosmic-ray is kept to what mutmut does not mutate."""

from __future__ import annotations

import importlib.util
import textwrap

from conftest import ROOT

spec = importlib.util.spec_from_file_location("mutation", ROOT / "tools" / "mutation.py")
mutation = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mutation)


def test_every_module_with_code_is_under_mutation_testing_and_empty_ones_are_not():
    found = mutation.modules()
    assert {
        "torchlab/engine/checkpoint.py",
        "torchlab/config.py",
        "torchlab/api.py",
        "torchlab/cli/main.py",
        "torchlab/runtime/output_folder.py",
        "torchlab/tasks/mnist/train.py",
        "torchlab/models/mnist.py",
        "torchlab/gradients/registry.py",
        "torchlab/lessons/descent.py",
        "torchlab/reporting/records.py",
    } <= set(found)
    assert "torchlab/engine/__init__.py" not in found and "torchlab/__main__.py" not in found
    assert set(mutation.MODULES) <= set(found) and set(mutation.COSMIC_TESTS) <= set(found)


def test_every_module_runs_tests_that_exist_and_none_that_start_a_process():
    lane = mutation.serial_lane()
    for module in mutation.modules():
        tests = mutation.tests_for(module)
        paths = [t for t in tests if t.startswith("tests/")]
        assert paths, f"{module} has no tests"
        for path in paths:
            assert (ROOT / path.split("::")[0]).exists(), f"{module}: {path} does not exist"
        if module not in mutation.MODULES:
            chosen = [p for i, p in enumerate(tests) if p.startswith("tests/") and tests[i - 1] != "--deselect"]
            assert not set(chosen) & lane, module
            assert "-m" in tests and "not slow" in tests


def test_the_mirror_rule(tmp_path):
    assert "tests/tasks/mnist/test_mnist.py" in mutation.tests_for("torchlab/tasks/mnist/train.py")
    assert "tests/tasks/digits/test_digits.py" in mutation.tests_for("torchlab/models/digits.py")
    assert "tests/tasks/mnist/test_mnist.py" in mutation.tests_for("torchlab/data/mnist_image.py")
    assert "tests/test_export.py" in mutation.tests_for("torchlab/export.py")
    cli = mutation.tests_for("torchlab/cli/train.py")
    assert "tests/cli/test_cli.py" in cli
    assert any(arg.startswith("tests/cli/test_cli.py::") for arg in cli)  # its tests that start a process: deselected


def test_groups():
    assert mutation.group_of("torchlab/engine/checkpoint.py") == "engine"
    assert mutation.group_of("torchlab/tasks/mnist/train.py") == "tasks"
    assert mutation.group_of("torchlab/config.py") == "config" and mutation.group_of("torchlab/api.py") == "api"


def test_cosmic_ray_is_kept_to_what_mutmut_does_not_mutate():
    source = textwrap.dedent("""\
        LIMIT = 3

        def plain(x):
            return x + LIMIT

        @property
        def decorated(x):
            return x - 1

        class Config:
            size: int = 4

            def method(self):
                return self.size * 2

            @staticmethod
            def static():
                return 5
        """)
    spans = mutation.mutmut_reach(source)
    assert spans == [(4, 4), (14, 14), (18, 18)]  # plain, method and static's bodies; not decorated's, not line 1
    assert ((11, 10), (11, 13)) in mutation.annotations(source)
