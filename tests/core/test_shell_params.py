"""A task's output reaches a later ``sh>`` script as text, never as code."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_runner import lines, run

from offload.workflow.shellparams import render_script

HOSTILE = "a $(touch pwned1) `touch pwned2`; touch pwned3 ' \" \\ $HOME ${HOME} | & > pwned4"


def store(value: object) -> str:
    return f"echo '{json.dumps({'store_params': {'v': value}})}' > \"$OFFLOAD_IO_DIR/output.json\""


def test_a_stored_value_runs_no_command_in_the_next_script_in_any_quoting(tmp_path: Path) -> None:
    (tmp_path / "value.json").write_text(json.dumps({"store_params": {"v": HOSTILE}}))
    text = (
        '+produce:\n  sh>: cp value.json "$OFFLOAD_IO_DIR/output.json"\n'
        "+use:\n  sh>: |\n"
        '    printf "%s\\n" "${v}"\n'
        "    printf '%s\\n' '${v}'\n"
        "    printf '%s\\n' ${v}\n"
        "    cat <<EOF\n    ${v}\n    EOF\n"
    )
    outcome, logs, _ = run(tmp_path, text)
    assert outcome.state == "succeeded", logs
    assert not list(tmp_path.glob("pwned*"))
    out = lines(logs, "+flow+use")
    assert out[0] == HOSTILE  # double quotes
    assert out[1] == HOSTILE  # single quotes
    assert out[-1] == HOSTILE  # here-document
    assert out[2:-1] == HOSTILE.split()  # unquoted: split into words, as a variable is; never run


def test_params_the_author_wrote_are_pasted_as_in_digdag(tmp_path: Path) -> None:
    outcome, logs, _ = run(tmp_path, "_export:\n  cmd: echo shout\n+a:\n  sh>: ${cmd} | tr a-z A-Z\n")
    assert outcome.state == "succeeded"
    assert lines(logs, "+flow+a") == ["SHOUT"]


def test_a_task_param_that_refers_to_a_stored_value_carries_it_as_text(tmp_path: Path) -> None:
    (tmp_path / "value.json").write_text(json.dumps({"store_params": {"v": "x; touch pwned"}}))
    text = '+produce:\n  sh>: cp value.json "$OFFLOAD_IO_DIR/output.json"\n+use:\n  msg: got ${v}\n  sh>: echo ${msg}\n'
    outcome, logs, _ = run(tmp_path, text)
    assert outcome.state == "succeeded"
    assert not (tmp_path / "pwned").exists()
    assert lines(logs, "+flow+use") == ["got x; touch pwned"]


def test_error_messages_reach_error_tasks_as_text(tmp_path: Path) -> None:
    text = '+fail:\n  sh>: exit 3\n  _error:\n    sh>: |\n      echo "handled: ${error.message}"; echo ${error.task_name}\n'
    _, logs, _ = run(tmp_path, text)
    assert lines(logs, "+flow+fail^error") == ["handled: Command failed with code 3 (runtime)", "+flow+fail"]  # Digdag's wording


@settings(max_examples=200)
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40), st.sampled_from(["'", '"', ""]))
def test_outside_single_quotes_a_task_value_is_always_a_variable(value: str, quote: str) -> None:
    script, env = render_script(f"echo {quote}${{v}}{quote} ${{w}}", {"v": value, "w": "author"}, {"v"})
    if quote == "'":
        assert script == f"echo '{value.replace(chr(39), chr(39) + chr(92) + chr(39) + chr(39))}' author"
        assert env == {}
    else:
        assert script == f"echo {quote}${{OFFLOAD_PARAM_0}}{quote} author"
        assert env == {"OFFLOAD_PARAM_0": value}


@pytest.mark.parametrize(
    ("script", "single"),
    [("echo '${v}'", True), ("echo \"'${v}'\"", False), ("echo \\'${v}", False), ("echo 'a' ${v}", False), ('echo "a" \'${v}\' "${v}"', True)],
)
def test_the_quote_state_is_read_as_the_shell_reads_it(script: str, single: bool) -> None:
    rendered, env = render_script(script, {"v": "x'y"}, {"v"})
    assert ("x'\\''y" in rendered) is single
    assert bool(env) is (not single or script.count("${v}") > 1)
