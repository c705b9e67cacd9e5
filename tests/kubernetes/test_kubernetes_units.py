"""The intricate parts of the Kubernetes backend on their own: the log cursor, times, labels,
and the merge of a user's pod template under offload's spec."""

from __future__ import annotations

from offload_kubernetes.jobspec import label_value, merge
from offload_kubernetes.logs import LogCursor, parse_time_ns, take

MARKER = "offload-end-of-log abc"


def reply(*lines: tuple[str, str]) -> str:
    return "".join(f"{stamp} {text}\n" for stamp, text in lines)


def test_times_with_any_number_of_decimals_and_offsets() -> None:
    assert parse_time_ns("2026-11-23T18:04:31Z") == 1795457071 * 10**9
    assert parse_time_ns("2026-11-23T18:04:31.5Z") == 1795457071 * 10**9 + 500_000_000
    assert parse_time_ns("2026-11-23T18:04:31.123456789Z") == 1795457071 * 10**9 + 123456789
    assert parse_time_ns("2026-11-23T19:04:31.1+01:00") == 1795457071 * 10**9 + 100_000_000


def test_a_read_from_the_cursors_second_skips_exactly_the_lines_handed_out_even_with_equal_times() -> None:
    t = "2026-11-23T18:04:31.5Z"
    first, cursor = take(reply(("2026-11-23T18:04:31.1Z", "a"), (t, "b"), (t, "c")), LogCursor(), MARKER, False)
    assert first == ["a", "b", "c"] and cursor.same == 2
    again = reply(("2026-11-23T18:04:31.1Z", "a"), (t, "b"), (t, "c"), (t, "d"), ("2026-11-23T18:04:32Z", "e"))
    second, cursor = take(again, cursor, MARKER, False)
    assert second == ["d", "e"]
    third, _ = take(again, cursor, MARKER, False)
    assert third == []


def test_a_partial_last_line_waits_while_the_container_runs_and_comes_once_it_ended() -> None:
    text = reply(("2026-11-23T18:04:31Z", "whole")) + "2026-11-23T18:04:32Z half a li"
    lines, cursor = take(text, LogCursor(), MARKER, False)
    assert lines == ["whole"]
    lines, cursor = take(text + "ne", cursor, MARKER, True)
    assert lines == ["half a line"]


def test_the_marker_ends_the_log_and_the_inline_output_is_not_the_tasks() -> None:
    text = reply(
        ("2026-11-23T18:04:31Z", "out"),
        ("2026-11-23T18:04:32Z", "last without newline" + MARKER + ":output"),
        ("2026-11-23T18:04:32Z", "H4sIAAAA"),
        ("2026-11-23T18:04:32Z", MARKER + ":end"),
        ("2026-11-23T18:04:33Z", MARKER),
        ("2026-11-23T18:04:34Z", "after the end"),
    )
    lines, cursor = take(text, LogCursor(), MARKER, True)
    assert lines == ["out", "last without newline"]
    assert cursor.ended and cursor.output_ns == parse_time_ns("2026-11-23T18:04:32Z") and not cursor.in_output


def test_label_values_are_kept_when_valid_and_made_safe_and_distinct_when_not() -> None:
    assert label_value("t-1.a_b") == "t-1.a_b"
    a, b = label_value("+flow+step^sub"), label_value("+flow+step^sub2")
    assert a != b and len(a) <= 63 and a[0].isalnum() and a[-1].isalnum()
    assert len(label_value("x" * 200)) <= 63


def test_the_pod_template_goes_under_offloads_spec_and_named_lists_merge_by_name() -> None:
    container = {"name": "task", "workingDir": "/w", "env": [{"name": "A", "value": "1"}]}
    template = {"restartPolicy": "Always", "containers": [container], "priorityClassName": "low"}
    ours = {"restartPolicy": "Never", "containers": [{"name": "task", "image": "i", "env": [{"name": "B", "value": "2"}]}]}
    merged = merge(template, ours)
    assert merged["restartPolicy"] == "Never" and merged["priorityClassName"] == "low"
    assert merged["containers"] == [{"name": "task", "workingDir": "/w", "image": "i", "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]}]
