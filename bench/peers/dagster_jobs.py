"""The three jobs as a Dagster user writes them: ``python dagster_jobs.py JOB in_process|multiprocess``.

Ops built by factories (a chain of ``Nothing`` dependencies for order, values passed as
outputs), a dynamic fan-out for the parallel job. ``in_process`` is
``execute_in_process()``: every op runs in this process, one after another, so the 200
sleeps take at least 40 s. ``multiprocess`` is ``execute_job`` on the instance in
``DAGSTER_HOME`` with the default multiprocess executor: a fresh process per op (``spawn``),
at most ``max_concurrency`` at once (default: the number of CPUs).
"""

import subprocess
import sys

from dagster import (
    DagsterInstance,
    DynamicOut,
    DynamicOutput,
    In,
    Nothing,
    OpDefinition,
    OpExecutionContext,
    execute_job,
    job,
    op,
    reconstructable,
)


def sh(command: str) -> str:
    return subprocess.run(command, shell=True, check=True, capture_output=True, text=True).stdout.strip()


def echo_op(i: int) -> OpDefinition:
    @op(name=f"echo_{i}", ins={"after": In(Nothing)})
    def echo(context: OpExecutionContext) -> None:
        context.log.info(sh(f"echo {i}"))

    return echo


@job
def seq() -> None:
    previous = echo_op(0)()
    for i in range(1, 50):
        previous = echo_op(i)(previous)


@op(out=DynamicOut(int))
def fan_out():  # type: ignore[no-untyped-def]
    for i in range(200):
        yield DynamicOutput(i, mapping_key=str(i))


@op
def sleep(i: int) -> None:
    sh("sleep 0.2")


@job
def parallel() -> None:
    fan_out().map(sleep)


@op
def start() -> int:
    return 0


def add_op(i: int) -> OpDefinition:
    @op(name=f"add_{i}")
    def add_one(v: int) -> int:
        return int(sh(f"echo $(({v} + 1))"))

    return add_one


@job
def chain() -> None:
    v = start()
    for i in range(20):
        v = add_op(i)(v)


JOBS = {"seq": seq, "parallel": parallel, "chain": chain}

if __name__ == "__main__":
    name, executor = sys.argv[1], sys.argv[2]
    if executor == "in_process":
        result = JOBS[name].execute_in_process()
        assert result.success
        print(f"result={result.output_for_node('add_19') if name == 'chain' else None}")
    else:
        with DagsterInstance.get() as instance:
            with execute_job(reconstructable(JOBS[name]), instance=instance) as executed:
                assert executed.success
                print(f"result={executed.output_for_node('add_19') if name == 'chain' else None}")
