"""Digdag's ``agent.command_executor.*`` properties, read as java.util.Properties reads them."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from offload.executor.config import build_system_config, read_config_document
from offload.executor.errors import ConfigError
from offload.executor.properties import parse_properties, properties_to_tree

REFERENCE = Path("/work/shared/reference/digdag-command-executor-docs.txt")
P = "agent.command_executor."


def values(text: str) -> dict[str, str]:
    return {key: value for _, key, value in parse_properties(text)}


@pytest.mark.parametrize(
    "line",
    [
        "k=v",
        "k = v",
        "k:v",
        "k : v",
        "k v",
        "k\tv",
        "k \t = \t v",
        "k\f=v",
        "   k=v",
        "\t k : v",
    ],
)
def test_separators_and_surrounding_whitespace(line: str) -> None:
    assert parse_properties(line) == [(1, "k", "v")]


def test_only_the_first_separator_splits_key_and_value() -> None:
    assert values("url = http://example.com:8080/a=b\nk::v\nk2 =: v") == {"url": "http://example.com:8080/a=b", "k": ":v", "k2": ": v"}


def test_trailing_whitespace_of_a_value_is_kept_and_empty_values_are_allowed() -> None:
    assert values("a = v  \nb =\nc\nd:") == {"a": "v  ", "b": "", "c": "", "d": ""}


@pytest.mark.parametrize("comment", ["# a comment", "! a comment", "   # indented", "\t! indented", "#k=v", "!k=v"])
def test_comment_lines_are_skipped(comment: str) -> None:
    assert parse_properties(f"{comment}\nk=v") == [(2, "k", "v")]


def test_a_hash_inside_a_value_is_not_a_comment() -> None:
    assert values("k = a # b\nx=!y") == {"k": "a # b", "x": "!y"}


def test_blank_lines_are_skipped_and_line_numbers_count_physical_lines() -> None:
    assert parse_properties("\n\n   \na=1\n\nb=2") == [(4, "a", "1"), (6, "b", "2")]


def test_all_three_line_endings() -> None:
    assert parse_properties("a=1\r\nb=2\rc=3\nd=4") == [(1, "a", "1"), (2, "b", "2"), (3, "c", "3"), (4, "d", "4")]


def test_only_cr_and_lf_end_a_line() -> None:
    # Java does not end a line at a form feed, a vertical tab or U+2028 (Python's splitlines does)
    assert parse_properties("a=x\fy\u2028z\x0bw") == [(1, "a", "x\fy\u2028z\x0bw")]


def test_continuation_lines_join_without_their_leading_whitespace() -> None:
    text = "k = one, \\\n      two, \\\n\t  three\nnext = 1"
    assert parse_properties(text) == [(1, "k", "one, two, three"), (4, "next", "1")]


def test_a_continued_line_starting_with_hash_is_not_a_comment() -> None:
    assert values("k = a\\\n  # b") == {"k": "a# b"}


def test_an_even_number_of_backslashes_does_not_continue() -> None:
    assert parse_properties("a = x\\\\\nb = y") == [(1, "a", "x\\"), (2, "b", "y")]


def test_a_comment_ending_in_a_backslash_does_not_continue() -> None:
    assert parse_properties("# comment \\\nk=v") == [(2, "k", "v")]


def test_a_continuation_at_the_end_of_the_file_ends_the_value() -> None:
    assert parse_properties("k = v\\") == [(1, "k", "v")]


def test_escapes() -> None:
    assert values(r"k = tab\there\nnew\rret\fff \\ \q \= \: \# \!") == {"k": "tab\there\nnew\rret\fff \\ q = : # !"}


def test_escaped_separators_belong_to_the_key() -> None:
    assert values(r"a\ b\:c\=d = v") == {"a b:c=d": "v"}


def test_unicode_escapes_in_keys_and_values() -> None:
    assert values(r"caf\u00e9 = \u65e5\u672C \u0041") == {"café": "日本 A"}


@pytest.mark.parametrize("bad", [r"\u12", r"\u12G4", r"\u 12a", r"\u0x1f", r"\u+1ff", r"\u1_ff", "\\u"])
def test_a_malformed_unicode_escape_is_an_error_with_its_line(bad: str) -> None:
    # java.util.Properties throws "Malformed \uxxxx encoding"; a silently wrong value would be worse
    with pytest.raises(ConfigError) as e:
        parse_properties(f"ok = 1\nk = {bad}", "digdag.properties")
    (problem,) = e.value.problems
    assert problem.where == "digdag.properties:2"
    assert "malformed \\uXXXX escape" in problem.message


def test_every_malformed_escape_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as e:
        parse_properties("a = \\uZZZZ\nb = ok\nc = \\u12", "x.properties")
    assert [p.where for p in e.value.problems] == ["x.properties:1", "x.properties:3"]


def test_keys_outside_command_executor_are_ignored() -> None:
    text = "\n".join(
        [
            "server.port = 65432",
            "database.type = postgresql",
            "agent.max_threads = 3",
            "agent.command_executorx.y = 1",
            "agent.command_executor = bare",
            f"{P}type = docker",
        ]
    )
    tree, problems = properties_to_tree(parse_properties(text), "digdag.properties")
    assert problems == []
    assert tree == {"command_executor": {"type": "docker"}}


def test_dotted_keys_become_a_tree_and_the_last_duplicate_wins() -> None:
    text = f"{P}docker.image = a\n{P}docker.pull_always = true\n{P}docker.image = b\n{P}order = docker, local"
    tree, problems = properties_to_tree(parse_properties(text), "f.properties")
    assert problems == []
    assert tree == {"command_executor": {"docker": {"image": "b", "pull_always": "true"}, "order": "docker, local"}}


def test_a_value_then_keys_under_it_is_a_conflict_naming_both_lines() -> None:
    text = f"{P}ecs.name = c\n\n{P}ecs.name.region = x"
    tree, problems = properties_to_tree(parse_properties(text), "digdag.properties")
    (problem,) = problems
    assert problem.fatal
    assert problem.where == f"digdag.properties:3: {P}ecs.name.region"
    assert f"'{P}ecs.name' on line 1" in problem.message
    assert tree == {"command_executor": {"ecs": {"name": "c"}}}


def test_keys_then_a_value_over_them_is_a_conflict_naming_both_lines() -> None:
    text = f"# header\n{P}ecs.c1.region = x\n{P}ecs.c1.launch_type = EC2\n{P}ecs.c1 = oops"
    _, problems = properties_to_tree(parse_properties(text), "digdag.properties")
    (problem,) = problems
    assert problem.where == f"digdag.properties:4: {P}ecs.c1"
    assert f"'{P}ecs.c1.region' on line 2" in problem.message


def test_every_conflict_and_empty_segment_is_reported() -> None:
    text = f"{P}a = 1\n{P}a.b = 2\n{P}x..y = 3\n{P}c.d = 4\n{P}c = 5\n{P}ok = 6"
    tree, problems = properties_to_tree(parse_properties(text), "f.properties")
    assert [p.where.split(": ")[0] for p in problems] == ["f.properties:2", "f.properties:3", "f.properties:5"]
    assert "empty key segment" in problems[1].message
    assert tree["command_executor"]["ok"] == "6"


def _reference_example() -> str:
    """The ECS setup example of Digdag's Command Executor page, verbatim."""
    text = REFERENCE.read_text()
    start = text.index("The following is an example configuration for ECS Command Executor.")
    block = text[start : text.index("Each sub keys of agent.command_executor", start)]
    example = block.split("\n", 1)[1]
    assert example.count("agent.command_executor.") == 12, "the reference document changed"
    return example


def test_the_digdag_documentation_example_parses_into_the_expected_tree() -> None:
    tree, problems = properties_to_tree(parse_properties(_reference_example()), "digdag.properties")
    assert problems == []
    assert tree == {
        "command_executor": {
            "ecs": {
                "name": "digdag-test",
                "digdag-test": {
                    "access_key_id": "<ACCESS KEY>",
                    "secret_access_key": "<SECRET KEY>",
                    "launch_type": "FARGATE",
                    "region": "us-east-1",
                    "subnets": "subnet-NNNNN",
                    "max_retries": "3",
                },
                "temporal_storage": {
                    "type": "s3",
                    "s3": {
                        "bucket": "<Bucket>",
                        "endpoint": "s3.amazonaws.com",
                        "credentials": {"access-key-id": "<ACCESS KEY>", "secret-access-key": "<SECRET KEY>"},
                    },
                },
            }
        }
    }


def test_a_digdag_server_config_file_is_read_as_a_system_config(tmp_path: Path) -> None:
    path = tmp_path / "digdag.properties"
    path.write_text("server.bind = 0.0.0.0\n" + _reference_example() + "\nagent.command_executor.type = ecs\n")
    config = build_system_config(read_config_document(str(path)), path.name, environ={})
    assert config.type == "ecs"
    assert config.sections["ecs"]["digdag-test"]["region"] == "us-east-1"
    assert config.source == "digdag.properties"


def test_a_properties_file_with_problems_reports_them_all_with_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "site.properties"
    path.write_text(f"{P}a = 1\n{P}a.b = 2\n{P}c.d = 3\n{P}c = 4\n")
    with pytest.raises(ConfigError) as e:
        read_config_document(str(path))
    assert [re.match(r"site\.properties:(\d+):", p.where)[1] for p in e.value.problems] == ["2", "4"]  # type: ignore[index]
