"""Shell completion as docs/CLI.md documents it: click's `_CHAINLAB_COMPLETE` protocol."""

from __future__ import annotations

import pytest

from tests.cli.helpers import Invoke, assert_ok


def test_the_completion_scripts_are_generated(invoke: Invoke) -> None:
    for shell, needle in (("bash", "_chainlab_completion()"), ("zsh", "#compdef chainlab"),
                          ("fish", "function _chainlab_completion")):
        result = invoke(env={"_CHAINLAB_COMPLETE": f"{shell}_source"})
        assert_ok(result)
        assert needle in result.stdout


@pytest.mark.parametrize(("words", "cword", "expected"), [
    ("chainlab m", "1", {"mempool", "mine"}),
    ("chainlab node pe", "2", {"peers"}),
    ("chainlab node peers ", "3", {"list", "add", "remove"}),
    ("chainlab tx s", "2", {"send", "show"}),
])
def test_bash_completes_commands(invoke: Invoke, words: str, cword: str, expected: set[str]) -> None:
    result = invoke(env={"_CHAINLAB_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": cword})
    assert_ok(result)
    assert {line.split(",", 1)[1] for line in result.stdout.splitlines()} == expected
