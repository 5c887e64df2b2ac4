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
    assert "The commands: eval, fool, robust, corruptions, diagnose, follow, compare, merge, models." in run.stderr
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


@pytest.mark.parametrize("argv, flag, values", [
    (["eval", "samples/imagenet", "--min-top1", "0.7", "--min-top1", "0.8"], "--min-top1", "0.7 and 0.8"),
    (["merge", "p.json", "--max-ece", "0.1", "--max-ece", "0.2"], "--max-ece", "0.1 and 0.2"),
    (["robust", "samples/imagenet", "--min-corruption-top1", "0.3", "--min-corruption-top1", "0.2"],
     "--min-corruption-top1", "0.3 and 0.2"),
    (["eval", "samples/imagenet", "--max-drop-top1", "1pt", "--max-drop-top1", "2pt"], "--max-drop-top1", "1pt and 2pt"),
])
def test_a_gate_given_twice_is_refused_not_silently_dropped(invoke, argv, flag, values):
    run = invoke(*argv)
    assert run.returncode == 2 and run.stderr.strip().splitlines()[-1] == (
        f"Error: Invalid value for '{flag}': given 2 times ({values}); give a gate once, so that none is silently "
        "dropped.")


def test_the_same_gate_value_twice_is_one_gate(invoke):
    run = invoke("eval", "samples/imagenet", "--min-top1", "0.7", "--min-top1", "0.7", "--limit", "x")
    assert run.returncode == 2 and "--min-top1" not in run.stderr  # the gate passed; --limit x is the error


@pytest.mark.parametrize("value, sentence", [
    ("1-2", "'1-2' is not K/N: write 3/8 for the third of eight slices, or auto to take the slice from a scheduler's "
            "array index."),
    ("4/3", "4/3: K must be between 1 and N (N between 1 and 1000000); slices count from 1."),
])
def test_a_bad_shard_is_one_clean_sentence(invoke, value, sentence):
    run = invoke("eval", "samples/imagenet", "--shard", value)
    assert run.returncode == 2 and run.stderr.strip().splitlines()[-1] == f"Error: --shard {sentence}"


@pytest.mark.parametrize("command", [["fool", "samples/imagenet/n02123045/cat.jpg"], ["robust", "samples/imagenet"]])
def test_a_negative_eps_says_the_sign_is_the_problem(invoke, command):
    run = invoke(*command, "--eps", "0,-2/255")
    assert run.returncode == 2
    assert run.stderr.strip().splitlines()[-1].endswith(
        "'-2/255' is negative: a budget is a size, 0 or more (such as 2/255).")


@pytest.mark.parametrize("content, reason", [
    (b"hello\n", "neither a torch.save zip archive nor a pickle"),  # torch: KeyError(101)
    (b"", "empty or cut short"),
    (b"\x80\x02]q\x00(K\x01e", "empty or cut short"),  # a pickle cut before its STOP
])
def test_a_model_file_that_is_not_a_model_is_a_real_sentence(invoke, tmp_path, content, reason):
    model = tmp_path / "model.pt"
    model.write_bytes(content)
    run = invoke("eval", "samples/imagenet", "--model", str(model))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    line = run.stderr.strip().splitlines()[-1]
    assert line.startswith("Error: ") and "(101)" not in line and "pop from empty list" not in line, line
    assert reason in line or "could not be unpickled" in line or "pickled Python objects" in line, line


def test_ctrl_c_before_the_command_runs_is_130_without_a_traceback(monkeypatch, capsys):
    """A SIGINT during the set-up around the command (rank handling, its imports) exits 130 with one line,
    as one inside it does, instead of the interpreter's traceback."""
    import nnprobe.cli as cli

    def interrupted(debug):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_only_rank_zero_speaks", interrupted)
    with pytest.raises(SystemExit) as exit_:
        cli.main(["eval", "--help"])
    assert exit_.value.code == 130 and capsys.readouterr().err == "Interrupted.\n"
