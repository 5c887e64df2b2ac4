"""Small things users expect: "did you mean" for a misspelt command (click gives it for options), shell
completion as documented in the README, and an ambiguous --target name that asks for the index."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
from helpers import TESTS


def test_a_misspelt_command_gets_did_you_mean_and_the_list(invoke):
    run = invoke("evl", "samples/imagenet")
    assert run.returncode == 2 and "Error: No such command 'evl'. Did you mean 'eval'?" in run.stderr
    assert "The commands: eval, fool, robust, diagnose, compare, merge." in run.stderr
    far = invoke("xyz")
    assert far.returncode == 2 and "Did you mean" not in far.stderr and "No such command 'xyz'." in far.stderr


def test_a_misspelt_option_gets_did_you_mean(invoke):
    run = invoke("eval", "samples/imagenet", "--min-top", "0.5")
    assert run.returncode == 2 and "No such option '--min-top'" in run.stderr and "'--min-top1'" in run.stderr


def complete(words: str, shell: str = "bash") -> str:
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = dict(os.environ, COMP_WORDS=words, COMP_CWORD=str(cword), _NNPROBE_COMPLETE=f"{shell}_complete")
    return subprocess.run([sys.executable, "-m", "nnprobe"], env=env, capture_output=True, text=True,
                          timeout=120).stdout


def test_shell_completion_as_the_readme_says():
    readme = (TESTS.parent / "README.md").read_text()
    for shell in ("bash", "zsh", "fish"):
        assert f"_NNPROBE_COMPLETE={shell}_source nnprobe" in readme
    source = subprocess.run([sys.executable, "-m", "nnprobe"], env=dict(os.environ, _NNPROBE_COMPLETE="bash_source"),
                            capture_output=True, text=True, timeout=120).stdout
    assert "_nnprobe_completion()" in source and "complete " in source
    assert complete("nnprobe ev").split() == ["plain,eval"]
    assert complete("nnprobe eval --min-t").split() == ["plain,--min-top1", "plain,--min-top5"]


@pytest.mark.parametrize("word, pair", [("crane", (134, 517)), ("Maillot", (638, 639))])
def test_an_imagenet_homonym_asks_for_the_index(color_classifier, word, pair):
    from nnprobe.attacks.photo import resolve_target
    from nnprobe.errors import UsageError

    with pytest.raises(UsageError, match=rf"names two ImageNet classes, {pair[0]} \(.*\) and {pair[1]} \(.*\): give "
                                         "the index"):
        resolve_target(color_classifier, word)
    assert resolve_target(color_classifier, str(pair[0])) == pair[0]
    longer = [i for i in pair if color_classifier.class_names[i].lower() != word.lower()]
    assert len(longer) == 1 and resolve_target(color_classifier, color_classifier.class_names[longer[0]]) == longer[0]
