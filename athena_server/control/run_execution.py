"""Executing an admitted run: wait for its turn if it is pending, compile its context (history and recalled
memory), call the provider with retries under the run's timeout while the cancel watcher can stop it, and
record how it ended (run_endings). Whatever stops the task driving it (its caller leaving, the server
stopping) still leaves the run recorded as ended, never `running`."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from athena.v1 import runs_pb2
from athena_server.control.run_context import RunContext
from athena_server.control.run_endings import abandon, cancelled_error, finish_failed, record_success, stopped
from athena_server.control.run_results import success_result
from athena_server.control.run_states import Admitted, Finished
from athena_server.control.run_turns import await_turn
from athena_server.engine.context import compile_context
from athena_server.engine.execution import Attempts, call_with_retries, verify
from athena_server.engine.providers import ProviderRequest, ProviderResult
from athena_server.errors import AthenaError, ErrorCode
from athena_server.storage import runs
from athena_server.timefmt import now_ms


async def drive(ctx: RunContext, adm: Admitted) -> runs_pb2.RunResult:
    """The run from admission to its ending: its turn first when it is pending, then its execution."""
    if adm.started_ms is None:
        try:
            adm = await await_turn(ctx, adm)
        except asyncio.CancelledError:
            await asyncio.shield(abandon(ctx, adm.run_id, stopped(ctx.closing)))
            raise
    return await execute(ctx, adm)


async def settle(task: asyncio.Task[Any]) -> None:
    """Wait for a cancelled task to finish, whatever it ends with."""
    with contextlib.suppress(BaseException):
        await task


async def _recall(ctx: RunContext, text: str) -> list[tuple[str, str]]:
    """(citation, snippet) of the memory for the run's input, when `ATHENA_MEMORY_IN_CONTEXT` is on."""
    if ctx.memory is None or not ctx.settings.memory_in_context:
        return []
    return await ctx.memory.recall(text, ctx.settings.memory_context_max_chars)


async def _ends_within(task: asyncio.Task[Any], seconds: float) -> bool:
    """Whether `task` ended within `seconds`; it is not cancelled either way, nor when the waiter is. What
    `asyncio.wait({task}, timeout=seconds)` does for one task, without its generic set handling: under
    `CreateRun` load asyncio.wait itself was about 4 % of the loop thread (py-spy)."""
    if task.done():
        return True
    loop = asyncio.get_running_loop()
    waiter: asyncio.Future[None] = loop.create_future()

    def wake(_: object = None) -> None:
        if not waiter.done():
            waiter.set_result(None)

    timer = loop.call_later(seconds, wake)
    task.add_done_callback(wake)
    try:
        await waiter
    finally:
        timer.cancel()
        task.remove_done_callback(wake)
    return task.done()


def _timeout(adm: Admitted) -> AthenaError:
    if adm.spec.schedule:
        return AthenaError(ErrorCode.ERROR_CODE_SCHEDULE_TIMEOUT, f"Schedule run timed out after {adm.timeout_ms}ms")
    return AthenaError(ErrorCode.ERROR_CODE_RUN_TIMEOUT, f"Run timed out after {adm.timeout_ms}ms")


def _finished(ctx: RunContext, adm: Admitted, result: ProviderResult, attempts: int) -> Finished:
    cost = result.cost_usd
    if cost is None:
        cost = ctx.pricing.cost_usd(adm.spec.provider, adm.spec.model, result.input_tokens, result.output_tokens)
    return Finished(
        output=result.output,
        result=result,
        attempts=attempts,
        cost_usd=cost,
        verification=verify(adm.spec.verification_policies, result.evidence),
        finished_ms=now_ms(),
    )


async def execute(ctx: RunContext, adm: Admitted) -> runs_pb2.RunResult:
    """Run the started run's provider call and record its ending; returns the result or raises its error."""
    spec = adm.spec
    assert adm.started_ms is not None
    try:
        recalled = await _recall(ctx, spec.input)
    except asyncio.CancelledError:
        await asyncio.shield(finish_failed(ctx, adm, stopped(ctx.closing), 0))
        raise
    try:
        compiled = compile_context(list(adm.history), spec.input, recalled)
    except AthenaError as err:
        await finish_failed(ctx, adm, err, 0)
        raise

    async def record_pid(pid: int) -> None:
        await ctx.store.write(lambda conn: runs.update_run(conn, adm.run_id, pid=pid))

    request = ProviderRequest(
        run_id=adm.run_id,
        session_id=spec.session_id,
        model=spec.model,
        prompt=compiled.prompt,
        input=spec.input,
        history=adm.history,
        metadata=spec.metadata,
        command=spec.command,
        on_process=record_pid,
    )
    provider = ctx.providers.get(spec.provider)
    attempts = Attempts()
    inner = asyncio.create_task(call_with_retries(provider, request, adm.retry_budget, attempts, ctx.store.metrics))
    handle = ctx.watcher.register(adm.run_id, inner)
    try:
        try:
            done = await _ends_within(inner, adm.timeout_ms / 1000)
        except asyncio.CancelledError:
            # The caller went away (or the server is stopping): stop the provider and record the run
            # as cancelled rather than leaving it "running".
            inner.cancel()
            await asyncio.shield(settle(inner))
            await asyncio.shield(finish_failed(ctx, adm, stopped(ctx.closing), attempts.made))
            raise
        if not done:
            inner.cancel()
            await settle(inner)
            if not handle.requested:
                timeout = _timeout(adm)
                await finish_failed(ctx, adm, timeout, attempts.made)
                raise timeout
        if inner.cancelled() or handle.requested:
            cancelled = cancelled_error(handle.reason)
            await finish_failed(ctx, adm, cancelled, attempts.made)
            raise cancelled
        try:
            result = inner.result()
        except AthenaError as err:
            await finish_failed(ctx, adm, err, attempts.made)
            raise
    finally:
        ctx.watcher.unregister(adm.run_id)
    finished = _finished(ctx, adm, result, attempts.made)
    # Shielded: a caller leaving now must not roll back (PostgreSQL) the record of a finished run.
    await asyncio.shield(ctx.store.write(lambda conn: record_success(conn, adm, finished, compiled)))
    return success_result(adm, finished)
