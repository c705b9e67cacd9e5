"""``offload report``'s page: one self-contained HTML file showing a run's timeline.

Plain HTML and inline CSS, no script at all, nothing fetched: the page carries a
Content-Security-Policy that forbids every load and every script, so even a page that a
bug left unescaped could not run what a task printed. Every text from the journal or a
log (task names, errors, log lines) goes through :func:`html.escape`.

Each task attempt is one bar in the lane of its task, in the group of its backend; the bar
has up to three segments — queued (handed to the backend), starting (the backend has it,
the command has not started), running — coloured by the attempt's state. A task that is
still going is drawn up to the instant the journal was read.
"""

from __future__ import annotations

import datetime as dt
import html
import os
from collections.abc import Iterable

import attrs

from offload import __version__
from offload.executor.models import TaskState
from offload.workflow.history import human_duration
from offload.workflow.htmlreport_data import Attempt, RunData

#: Tick steps of the time axis, in seconds: the first that gives at most :data:`MAX_TICKS`.
TICK_STEPS = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_TICKS = 10
NOT_SUBMITTED = "not submitted"
#: Bars narrower than this (percent of the timeline) show their attempt number after their end.
LABEL_INSIDE_PCT = 2.5

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

STYLE = """
:root{--ok:#2f9e44;--fail:#e03131;--cancel:#868e96;--run:#1c7ed6;--unknown:#ae3ec9;--fg:#212529;--mut:#6c757d;--line:#dee2e6;
--label:18rem;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:#fff}
body{margin:0;padding:1rem 1.5rem 3rem}
h1{font-size:1.4rem;margin:0 0 .5rem}h2{font-size:1.05rem;margin:1.2rem 0 .3rem}h3{font-size:1rem;margin:0 0 .4rem}
.badge{display:inline-block;padding:.05rem .55rem;border-radius:1rem;color:#fff;font-size:.85rem;vertical-align:middle;background:var(--c)}
.meta{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:.5rem 0 1rem}.meta dt{color:var(--mut)}.meta dd{margin:0}
code,pre{font:12px/1.45 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.counts span{margin-right:1rem;white-space:nowrap}
.counts i{display:inline-block;width:.7rem;height:.7rem;border-radius:2px;background:var(--c);margin-right:.3rem}
.legend{display:flex;flex-wrap:wrap;gap:.4rem 1.2rem;align-items:center;color:var(--mut);font-size:.85rem;margin:.5rem 0}
.legend .sw{display:inline-flex;width:3.6rem;height:.8rem;vertical-align:middle;margin-right:.3rem}
.s-succeeded{--c:var(--ok)}.s-failed{--c:var(--fail)}.s-cancelled{--c:var(--cancel)}.s-running{--c:var(--run)}.s-unfinished{--c:var(--unknown)}
.grid{display:grid;grid-template-columns:var(--label) 1fr;align-items:center}
.axis{position:sticky;top:0;background:#fffe;z-index:2;border-bottom:1px solid var(--line);height:1.6rem}
.ticks{position:relative;height:100%}
.tick{position:absolute;top:0;bottom:0;border-left:1px solid var(--line);padding-left:3px;font-size:.75rem;color:var(--mut)}
.group h2{border-bottom:2px solid var(--line);padding-bottom:.15rem}.group h2 small{color:var(--mut);font-weight:normal}
.row{min-height:1.35rem;border-bottom:1px solid #f1f3f5}.row:hover{background:#f8f9fa}
.name{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;padding-right:.6rem;font-size:.85rem}
.track{position:relative;height:1.1rem}
.a{position:absolute;top:.1rem;bottom:.1rem;min-width:3px;display:flex;border-radius:2px;overflow:hidden;text-decoration:none;color:#fff;box-sizing:border-box}
.a.live{box-shadow:inset -3px 0 0 #0005}
.seg{height:100%;background:var(--c);flex:none}.seg.q{opacity:.28}.seg.st{opacity:.6}
.a b{position:absolute;left:3px;top:0;font-size:.7rem;line-height:.9rem;font-weight:600;white-space:nowrap;text-shadow:0 0 2px #000a}
.out{position:absolute;top:.1rem;margin-left:2px;font-size:.7rem;line-height:.9rem;font-weight:600;color:var(--c);white-space:nowrap;pointer-events:none}
.now{position:absolute;top:0;bottom:0;border-left:2px dashed var(--run);z-index:1}
.filter{font-size:.85rem;color:var(--mut)}
body:has(#only-failed:checked) .row:not(.has-failed),body:has(#only-failed:checked) .group:not(:has(.has-failed)){display:none}
.failure{border-left:4px solid var(--fail);padding:.4rem .8rem;margin:.8rem 0;background:#fff5f5}
.failure pre{white-space:pre-wrap;word-break:break-word;margin:.3rem 0;padding:.4rem .6rem;background:#fff;border:1px solid var(--line)}
.failure .note{color:var(--mut);font-size:.85rem}
"""


@attrs.frozen
class Bar:
    attempt: Attempt
    css_state: str
    start: float
    end: float
    #: (kind, from, to) with kind ``q`` (queued), ``st`` (starting) or ``r`` (running)
    segments: tuple[tuple[str, float, float], ...]
    live: bool


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def css_state(attempt: Attempt, run_going: bool) -> str:
    """The colour class of an attempt: its final state, or ``running`` while the run goes on."""
    if attempt.state is TaskState.SUCCEEDED:
        return "succeeded"
    if attempt.state in (TaskState.FAILED, TaskState.LOST):
        return "failed"
    if attempt.state is TaskState.CANCELLED:
        return "cancelled"
    return "running" if run_going else "unfinished"


def bar_of(attempt: Attempt, now: float, run_going: bool) -> Bar:
    """The bar of one attempt: its instants put in order (clocks of different machines may
    disagree by a little), and its unfinished part drawn up to ``now``."""
    state = css_state(attempt, run_going)
    final = state not in ("running", "unfinished")
    known = [t for t in (attempt.queued_at, attempt.submitted_at, attempt.started_at, attempt.finished_at) if t is not None]
    start = attempt.queued_at if attempt.queued_at is not None else min(known, default=now)
    end = max([t for t in (attempt.finished_at, attempt.started_at, attempt.submitted_at) if t is not None], default=start) if final else now
    end = max(end, start)
    submitted = None if attempt.submitted_at is None else min(max(attempt.submitted_at, start), end)
    started = None if attempt.started_at is None else min(max(attempt.started_at, start if submitted is None else submitted), end)
    segments: list[tuple[str, float, float]] = []
    if not final and started is None and submitted is not None:
        # the journal learns when the command started only from its result: it may run already
        segments = [("q", start, submitted), ("r", submitted, end)]
    else:
        segments.append(("q", start, submitted if submitted is not None else started if started is not None else end))
        if submitted is not None:
            segments.append(("st", submitted, started if started is not None else end))
        if started is not None:
            segments.append(("r", started, end))
    return Bar(attempt, state, start, end, tuple(segments), live=not final)


def duration(seconds: float) -> str:
    return human_duration(seconds, fine=True)


def clock(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")


def _tick_label(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:g}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m" + (f"{whole % 60:02d}s" if whole % 60 else "")
    return f"{whole // 3600}h" + (f"{whole % 3600 // 60:02d}m" if whole % 3600 else "")


def ticks(span: float) -> list[float]:
    step = next((s for s in TICK_STEPS if span / s <= MAX_TICKS), None) or TICK_STEPS[-1] * max(1, round(span / TICK_STEPS[-1] / MAX_TICKS))
    count = int(span / step + 1e-9)
    return [i * step for i in range(count + 1)]


def _pct(value: float) -> str:
    return f"{value:.3f}%"


def render(data: RunData) -> str:
    """The whole page for the run in ``data``."""
    run_going = data.state == TaskState.RUNNING.value
    run_end = data.finished_at if data.finished_at is not None and not run_going else data.now
    # a task left unfinished by a run that ended (its driver died) is drawn up to that end
    bars = [bar_of(a, run_end, run_going) for a in data.attempts]
    t0 = min([data.started_at, *(b.start for b in bars)])
    t1 = max([run_end, *(b.end for b in bars)])
    span = max(t1 - t0, 1e-3)
    failures = [b for b in sorted(bars, key=lambda b: (b.start, b.attempt.task_name, b.attempt.attempt)) if b.css_state == "failed"]
    anchors = {(b.attempt.task_name, b.attempt.attempt): f"fail-{i}" for i, b in enumerate(failures, 1)}
    title = f"offload report: {os.path.basename(data.workflow)} run {data.run_id}"
    parts = [
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>",
        f'<meta http-equiv="Content-Security-Policy" content="{esc(CSP)}">',
        '<meta name=viewport content="width=device-width,initial-scale=1">',
        '<meta name=referrer content="no-referrer">',
        f"<title>{esc(title)}</title><style>{STYLE}</style></head><body>",
        *_header(data, bars, run_going, t0, run_end),
        *_timeline(bars, anchors, t0, span, data.now if run_going else None),
        *_failures(failures, anchors, bars),
        f"<footer class=legend>written by offload {esc(__version__)} at {esc(clock(data.now))} from {esc(os.path.join(data.project_dir, '.offload'))}</footer>",
        "</body></html>\n",
    ]
    return "\n".join(parts)


def _header(data: RunData, bars: list[Bar], run_going: bool, t0: float, run_end: float) -> Iterable[str]:
    latest: dict[str, Bar] = {}
    for bar in bars:
        if bar.attempt.task_name not in latest or bar.attempt.attempt > latest[bar.attempt.task_name].attempt.attempt:
            latest[bar.attempt.task_name] = bar
    counts: dict[str, int] = {}
    for bar in latest.values():
        counts[bar.css_state] = counts.get(bar.css_state, 0) + 1
    retries = len(bars) - len(latest)
    run_state = data.state if data.state in ("succeeded", "failed", "cancelled", "running") else "unfinished"
    took = duration(run_end - data.started_at) + (" so far (still running)" if run_going else "")
    yield f"<header><h1>{esc(os.path.basename(data.workflow))} <span class='badge s-{run_state}' id=run-state>{esc(data.state)}</span></h1>"
    yield "<dl class=meta>"
    rows = [
        ("workflow", f"<code>{esc(data.workflow)}</code>"),
        ("run", f"<code id=run-id>{esc(data.run_id)}</code>"),
        ("session time", esc(data.session_time)),
        ("started", esc(clock(data.started_at))),
        ("finished", "—" if run_going or data.finished_at is None else esc(clock(data.finished_at))),
        ("duration", esc(took)),
        ("tasks", f"{len(latest)} tasks, {len(bars)} attempts ({retries} retried)"),
    ]
    for key, value in rows:
        yield f"<dt>{key}</dt><dd>{value}</dd>"
    order = ("succeeded", "failed", "cancelled", "running", "unfinished")
    spans = "".join(f"<span class=s-{s}><i></i>{counts[s]} {s}</span>" for s in order if counts.get(s))
    yield f"<dt>by state</dt><dd class=counts id=counts>{spans or 'no task ran'}</dd></dl></header>"


def _legend() -> str:
    def swatch(state: str) -> str:
        segments = "".join(f"<i class='seg {kind}' style='width:{width}%'></i>" for kind, width in (("q", 33), ("st", 33), ("r", 34)))
        return f"<span><span class='sw s-{state}'>{segments}</span>{state}</span>"

    shades = "<span>each bar: <b style='opacity:.45'>queued</b> → <b style='opacity:.7'>starting</b> → <b>running</b>; #N is the attempt</span>"
    return f"<div class=legend>{''.join(swatch(s) for s in ('succeeded', 'failed', 'cancelled', 'running'))}{shades}</div>"


def _timeline(bars: list[Bar], anchors: dict[tuple[str, int], str], t0: float, span: float, now: float | None) -> Iterable[str]:
    yield "<main><h2>Timeline</h2>"
    yield _legend()
    if not bars:
        yield "<p class=filter>No task of this run has been handed to a backend yet.</p></main>"
        return
    yield "<label class=filter><input type=checkbox id=only-failed> only tasks with a failed attempt</label>"
    marks = "".join(f"<span class=tick style='left:{_pct(t / span * 100)}'>{esc(_tick_label(t))}</span>" for t in ticks(span))
    if now is not None:
        marks += f"<span class=now style='left:{_pct((now - t0) / span * 100)}' title='now'></span>"
    yield f"<div class='grid axis'><div class=name></div><div class=ticks>{marks}</div></div>"
    groups: dict[str, list[Bar]] = {}
    for bar in sorted(bars, key=lambda b: (b.start, b.attempt.task_name, b.attempt.attempt)):
        groups.setdefault(bar.attempt.backend or NOT_SUBMITTED, []).append(bar)
    for backend, members in groups.items():
        lanes: dict[str, list[Bar]] = {}
        for bar in members:
            lanes.setdefault(bar.attempt.task_name, []).append(bar)
        yield f"<section class=group data-backend='{esc(backend)}'><h2>{esc(backend)} <small>{len(lanes)} tasks, {len(members)} attempts</small></h2>"
        for name, lane in lanes.items():
            failed = any(b.css_state == "failed" for b in lane)
            cells = "".join(_bar(b, anchors, t0, span) for b in lane)
            yield (
                f"<div class='grid row{' has-failed' if failed else ''}'><div class=name title='{esc(name)}'>{esc(name)}</div>"
                f"<div class=track>{cells}</div></div>"
            )
        yield "</section>"
    yield "</main>"


def _bar(bar: Bar, anchors: dict[tuple[str, int], str], t0: float, span: float) -> str:
    a = bar.attempt
    length = bar.end - bar.start
    names = {"q": "queued", "st": "starting", "r": "running"}
    segs = []
    tips = []
    for kind, begin, end in bar.segments:
        width = (end - begin) / length * 100 if length > 0 else 100 / len(bar.segments)
        segs.append(f"<i class='seg {kind}' style='width:{_pct(width)}'></i>")
        tips.append(f"{names[kind]} {duration(end - begin)}{' so far' if bar.live and end == bar.end else ''}")
    state = a.state.value if bar.css_state != "running" else "running now"
    tip = [f"{a.task_name} #{a.attempt}: {state} on {a.backend or NOT_SUBMITTED}", ", ".join(tips)]
    if a.exit_code is not None and bar.css_state == "failed":
        tip.append(f"exit code {a.exit_code}")
    if a.error and a.error.strip():
        tip.append(a.error.strip().splitlines()[0][:300])
    attrs_ = (
        f"class='a s-{bar.css_state}{' live' if bar.live else ''}' style='left:{_pct((bar.start - t0) / span * 100)};width:{_pct(length / span * 100)}' "
        f"title='{esc(chr(10).join(tip))}' data-task='{esc(a.task_name)}' data-attempt='{a.attempt}' data-state='{bar.css_state}'"
    )
    # the attempt number: inside a bar wide enough for it, else just after its end
    wide = length / span * 100 >= LABEL_INSIDE_PCT
    label = f"<b>#{a.attempt}</b>" if wide else ""
    after = "" if wide else f"<b class='out s-{bar.css_state}' style='left:{_pct((bar.end - t0) / span * 100)}'>#{a.attempt}</b>"
    inner = "".join(segs) + label
    anchor = anchors.get((a.task_name, a.attempt))
    if anchor:
        return f"<a href='#{anchor}' {attrs_}>{inner}</a>{after}"
    return f"<span {attrs_}>{inner}</span>{after}"


def _failures(failures: list[Bar], anchors: dict[tuple[str, int], str], bars: list[Bar]) -> Iterable[str]:
    last: dict[str, Bar] = {}
    for bar in bars:
        if bar.attempt.task_name not in last or bar.attempt.attempt > last[bar.attempt.task_name].attempt.attempt:
            last[bar.attempt.task_name] = bar
    yield f"<section id=failures><h2>Failed attempts ({len(failures)})</h2>"
    if not failures:
        yield "<p class=filter>None.</p>"
    for bar in failures:
        a = bar.attempt
        anchor = anchors[(a.task_name, a.attempt)]
        facts = [f"attempt {a.attempt}", f"on {a.backend or NOT_SUBMITTED}"]
        if a.exit_code is not None:
            facts.append(f"exit code {a.exit_code}")
        if a.state is TaskState.LOST:
            facts.append("lost by its backend")
        if a.finished_at is not None:
            facts.append(f"ended {clock(a.finished_at)}")
        final = last[a.task_name]
        if final.attempt.attempt > a.attempt:
            facts.append(f"retried: attempt {final.attempt.attempt} {final.attempt.state.value if final.css_state != 'running' else 'is running'}")
        yield f"<article class=failure id={anchor} data-task='{esc(a.task_name)}' data-attempt='{a.attempt}'>"
        yield f"<h3><code>{esc(a.task_name)}</code> <small>{esc(' · '.join(facts))}</small></h3>"
        yield f"<pre class=error>{esc(a.error or '(no error message was recorded)')}</pre>"
        if a.log_tail is None:
            yield "<p class=note>No log was kept for this attempt.</p>"
        else:
            yield f"<p class=note>Last {len(a.log_tail)} lines of its log <code>{esc(a.log_path or '')}</code>:</p>"
            yield f"<pre class=log>{esc(chr(10).join(a.log_tail))}</pre>"
        yield "</article>"
    yield "</section>"
