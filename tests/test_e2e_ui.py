"""The operator dashboard at /ui, end to end in a real headless Chromium (Debian's `chromium`, driven by
Playwright) against real `athena api serve` processes: the page is served with its strict CSP and only its
own files, a run created through the API appears live in the active list, its cancel button cancels it, a
dead letter is requeued and another discarded from the page, each with its audit note, a workflow run is drawn
as its DAG, and with auth on the page shows the 401 until it is given a token.

A screenshot of each panel is saved under `test-artifacts/ui/` (ignored by git; the path is printed), which
CI keeps. Nothing downloads a browser: the tests fail, not skip, when /usr/bin/chromium is missing
(`scripts/test-deps` installs it)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from athena_client.contract import API_TOKEN_HEADER
from athena_client.vocab import A2aMessageStatus, CancelStatus, EventType, RunStatus, WorkflowRunStatus
from athena_gateway.ui import CONTENT_SECURITY_POLICY, UI_FILES
from athena_server.access.config import token_digest
from tests.support.events import events_of
from tests.support.processes import ROOT, AthenaProcess, running_api, serving
from tests.support.shapes import error_of, new_session, ok_data
from tests.support.waiting import DEADLINE_S, wait_until

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "ui"
#: Playwright's waits, in ms: they bound a hang (like wait_until's deadline), they time nothing.
WAIT_MS = DEADLINE_S * 1000
expect.set_options(timeout=WAIT_MS)
SLOW = {"mock.delayMs": "60000"}  # a run that stays active until cancelled
FAIL = {"mock.failAttempts": "99"}  # every delivery attempt fails: the message is dead-lettered
FAST_BUS = {"ATHENA_A2A_RETRY_DELAY_MS": "20", "ATHENA_A2A_POLL_SECONDS": "0.1", "ATHENA_SCHEDULE_TICK_SECONDS": "0"}
TOKEN = "tok-ui-operator-5d1e"
AUTH_ENV = {
    **FAST_BUS,
    "ATHENA_AUTH_ENABLED": "true",
    "ATHENA_AUTH_API_TOKENS": f"ui:ui-operator:Operator:{token_digest(TOKEN).hex()}",
}
PROFILE = {
    "displayName": "UI test",
    "version": "v1",
    "config": {"provider": "mock", "model": "default", "tools": ["shell"]},
    "policies": {"timeoutMs": 60000, "retryLimit": 1, "budgetUsd": 0},
}


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run scripts/test-deps (Debian package `chromium`)"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nUI screenshots: {ARTIFACTS}")
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with serving(tmp_path_factory.mktemp("ui"), env=FAST_BUS) as s:
        yield s


@pytest.fixture()
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    yield opened
    context.close()
    assert errors == [], errors  # no script error, whatever the test checked


def open_dashboard(page: Page, server: AthenaProcess) -> None:
    """The page, loaded and following the live stream."""
    page.goto(f"{server.rest_url}/ui")
    expect(page.locator("#stream-state")).to_have_attribute("data-state", "live")


def shot(page: Page, panel: str, name: str) -> None:
    page.locator(f"#panel-{panel}").screenshot(path=str(ARTIFACTS / f"{name}.png"))


def start_slow_run(rest: httpx.Client, session: str, headers: dict[str, str] | None = None) -> str:
    body = {"sessionId": session, "input": "slow", "wait": False, "metadata": SLOW}
    result = ok_data(rest.post("/api/v1/runs", json=body, headers=headers), 202)
    assert result["status"] == RunStatus.RUNNING
    return str(result["runId"])


def run_status(rest: httpx.Client, run_id: str) -> str:
    return str(ok_data(rest.get(f"/api/v1/runs/{run_id}"))["status"])


def dead_letter(rest: httpx.Client) -> dict[str, Any]:
    """A message sent to a target whose every run fails, once it is dead-lettered (maxAttempts 1)."""
    body = {"fromSessionId": new_session(), "toSessionId": new_session(), "input": "doomed", "metadata": FAIL}
    sent = ok_data(rest.post("/api/v1/a2a/messages", json={**body, "maxAttempts": 1}), 202)

    def dead() -> dict[str, Any] | None:
        message = ok_data(rest.get(f"/api/v1/a2a/messages/{sent['id']}"))
        return message if message["status"] == A2aMessageStatus.DEAD_LETTERED else None

    return wait_until(dead, f"{sent['id']} dead-lettered")


# ---- serving -------------------------------------------------------------------------------------------


def test_the_page_and_only_its_files_are_served_with_a_strict_csp(served: Any) -> None:
    rest: httpx.Client = served.rest
    page = rest.get("/ui")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert CONTENT_SECURITY_POLICY.startswith("default-src 'self'; ")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert '<script type="module" src="/ui/app.js"></script>' in page.text
    for name, content_type in UI_FILES.items():
        answer = rest.get(f"/ui/{name}")
        assert (answer.status_code, answer.headers["content-type"]) == (200, content_type), name
        assert answer.content == (ROOT / "athena_gateway" / "ui" / name).read_bytes()
    # Everything the page loads is one of its files: no CDN, nothing the table does not list.
    for module in (ROOT / "athena_gateway" / "ui").glob("*.js"):
        for imported in re.findall(r'from "\./([^"]+)"', module.read_text()):
            assert imported in UI_FILES, (module.name, imported)
    text = "".join((ROOT / "athena_gateway" / "ui" / name).read_text() for name in UI_FILES)
    assert set(re.findall(r"https?://[^\s\"']+", text)) == {"http://www.w3.org/2000/svg"}  # a namespace, not a load
    # Only the known files: no other name, no way out of the folder.
    for path in ("/ui/ui.py", "/ui/..%2fui.py", "/ui/%2e%2e/app.py", "/ui/app.js/x", "/ui/.gitignore"):
        error_of(rest.get(path), 404, "NOT_FOUND")
    redirect = rest.get("/ui/")
    assert (redirect.status_code, redirect.headers["location"]) == (308, "/ui")
    # The Host allow-list holds for the page as for every route.
    error_of(rest.get("/ui", headers={"host": "evil.example"}), 400, "HOST_NOT_ALLOWED")


# ---- live runs ----------------------------------------------------------------------------------------


def test_a_new_run_appears_live_and_the_page_cancels_it(served: Any, page: Page) -> None:
    rest: httpx.Client = served.rest
    open_dashboard(page, served.process)
    session = new_session()
    run_id = start_slow_run(rest, session)

    row = page.locator(f'#panel-active tr[data-run-id="{run_id}"]')
    expect(row).to_be_visible()  # through the event stream: the page was not reloaded
    expect(row.locator("td").first).to_have_text(session)
    expect(page.locator(f'#panel-recent tr[data-run-id="{run_id}"]')).to_have_attribute(
        "data-status", RunStatus.RUNNING
    )
    # The tail is fed only by the stream (never reloaded): the run's events there prove the page is live.
    expect(
        page.locator(f'#panel-events tr[data-type="{EventType.RUN_STARTED}"][data-run-id="{run_id}"]')
    ).to_be_visible()
    shot(page, "active", "active-runs")
    shot(page, "events", "event-tail")

    row.locator("button.cancel").click()
    expect(page.locator("#panel-active .msg")).to_have_text(f"Cancel {run_id}: {CancelStatus.CANCELLED}")
    wait_until(lambda: run_status(rest, run_id) == RunStatus.CANCELLED, f"{run_id} cancelled")
    expect(row).to_have_count(0)
    recent = page.locator(f'#panel-recent tr[data-run-id="{run_id}"]')
    expect(recent).to_have_attribute("data-status", RunStatus.CANCELLED)
    expect(recent.locator(".badge")).to_have_text(RunStatus.CANCELLED)
    [cancel] = events_of(rest, session, EventType.RUN_CANCEL_REQUESTED)
    assert cancel["payload"]["reason"] == "Cancelled from the dashboard"
    shot(page, "recent", "recent-runs")
    shot(page, "fleet", "fleet")

    # The event tail's filters narrow the rows to one run's events, in order, newest first.
    page.locator("#panel-events input[name=run]").fill(run_id)
    types = page.locator("#panel-events tbody tr").evaluate_all("rows => rows.map(r => r.dataset.type)")
    assert types == [
        EventType.RUN_CANCELLED,
        EventType.RUN_CANCEL_REQUESTED,
        EventType.RUN_STARTED,
        EventType.RUN_CREATED,
    ]


def test_sessions_show_their_transcript(served: Any, page: Page) -> None:
    rest: httpx.Client = served.rest
    session = new_session()
    ok_data(rest.post("/api/v1/runs", json={"sessionId": session, "input": "<b>hello</b> & bye"}))
    open_dashboard(page, served.process)
    page.locator(f'#panel-sessions li[data-session-id="{session}"]').click()
    entries = page.locator("#panel-sessions .transcript pre")
    # Escaped, never parsed: the markup in the input is shown as text.
    expect(entries).to_have_text(["<b>hello</b> & bye", "Echo: user: <b>hello</b> & bye"])
    assert page.locator("#panel-sessions .transcript b").count() == 0
    shot(page, "sessions", "sessions")


# ---- the dead-letter queue ----------------------------------------------------------------------------


def test_the_page_requeues_and_discards_dead_letters(served: Any, page: Page) -> None:
    rest: httpx.Client = served.rest
    open_dashboard(page, served.process)
    requeued, discarded = dead_letter(rest), dead_letter(rest)
    for item in (requeued, discarded):
        expect(page.locator(f'#panel-dlq tr[data-dlq-id="{item["id"]}"]')).to_be_visible()  # live: a2a events
    shot(page, "dlq", "dlq")

    page.locator(f'#panel-dlq button.requeue[data-dlq-id="{requeued["id"]}"]').click()
    form = page.locator("#panel-dlq form.audit")
    expect(form.locator(".audit-title")).to_have_text(f"Requeue dead letter {requeued['id']}")
    form.locator(".audit-confirm").click()  # the note is required: nothing is sent without it
    expect(form).to_be_visible()
    form.locator("input[name=note]").fill("target fixed")
    form.locator(".audit-confirm").click()
    expect(page.locator("#panel-dlq .msg")).to_have_text(f"Requeued {requeued['id']} (updated: true)")

    def requeued_once() -> dict[str, Any] | None:
        message = ok_data(rest.get(f"/api/v1/a2a/messages/{requeued['id']}"))
        return message if message["requeues"] == 1 else None

    wait_until(requeued_once, f"{requeued['id']} requeued")
    [event] = events_of(rest, requeued["toSessionId"], EventType.A2A_DLQ_REQUEUED)
    assert event["payload"] == {"id": requeued["id"], "auditNote": "target fixed"}

    page.locator(f'#panel-dlq button.discard[data-dlq-id="{discarded["id"]}"]').click()
    expect(form.locator(".audit-title")).to_have_text(f"Discard dead letter {discarded['id']}")
    form.locator(".audit-confirm").click()  # the note is required: nothing is sent without it
    expect(form).to_be_visible()
    assert events_of(rest, discarded["toSessionId"], EventType.A2A_DLQ_DISCARDED) == []
    form.locator("input[name=note]").fill("obsolete: <i>target retired</i>")
    form.locator(".audit-confirm").click()
    expect(page.locator("#panel-dlq .msg")).to_have_text(f"Discarded {discarded['id']} (updated: true)")
    expect(page.locator(f'#panel-dlq tr[data-dlq-id="{discarded["id"]}"]')).to_have_count(0)
    [event] = events_of(rest, discarded["toSessionId"], EventType.A2A_DLQ_DISCARDED)
    assert event["payload"] == {"id": discarded["id"], "auditNote": "obsolete: <i>target retired</i>"}


# ---- schedules, workflows, policy ---------------------------------------------------------------------


def test_schedules_workflows_and_policy_panels(tmp_path: Path, page: Page) -> None:
    """On a server of its own: the policy it sets would hold back other tests' runs."""
    with serving(tmp_path, env=FAST_BUS) as s:
        rest = s.rest
        open_dashboard(page, s.process)
        schedule = {"id": "nightly", "sessionId": new_session(), "input": "report", "everyMinutes": 5}
        ok_data(rest.post("/api/v1/schedules", json=schedule))
        ok_data(rest.post("/api/v1/schedules/nightly/run", json={}))
        row = page.locator('#panel-schedules tr[data-schedule-id="nightly"]')
        expect(row.locator("td").nth(2)).to_have_text("5 min")
        row.locator("button.logs-button").click()
        expect(page.locator("#panel-schedules .logs tbody tr .badge")).to_have_text(["ok"])
        shot(page, "schedules", "schedules")

        profile = ok_data(rest.post("/api/v1/harness-profiles", json=PROFILE))["id"]
        directive = ok_data(rest.post("/api/v1/directives", json={"input": "work on it"}))["id"]
        steps = [
            {"id": name, "directiveId": directive, "harnessProfileId": profile} for name in ("plan", "build", "test")
        ]
        deps = [{"from": "plan", "to": "build"}, {"from": "plan", "to": "test"}]
        workflow = ok_data(rest.post("/api/v1/workflows", json={"definition": {"steps": steps, "dependencies": deps}}))
        run = ok_data(rest.post(f"/api/v1/workflows/run/{workflow['id']}/resume", json={}))
        assert run["status"] == WorkflowRunStatus.OK
        page.locator(f'#panel-workflows li[data-workflow-id="{workflow["id"]}"]').click()
        boxes = page.locator("#panel-workflows svg g.step")
        expect(boxes).to_have_count(3)
        for name in ("plan", "build", "test"):
            expect(page.locator(f'#panel-workflows g.step[data-step="{name}"]')).to_have_attribute(
                "data-status", WorkflowRunStatus.OK
            )
        expect(page.locator("#panel-workflows svg line.edge")).to_have_count(2)
        shot(page, "workflows", "workflow-dag")

        ok_data(rest.put("/api/v1/policy", json={"schemaVersion": 1, "maxConcurrentRuns": 1}))
        busy = start_slow_run(rest, new_session())
        refused = new_session()
        error_of(
            rest.post("/api/v1/runs", json={"sessionId": refused, "input": "x"}),
            429,
            "POLICY_CONCURRENCY_LIMIT_EXCEEDED",
        )
        expect(page.locator("#panel-policy dl.policy dd").first).to_have_text("1")
        expect(page.locator("#panel-policy tbody tr td").nth(1)).to_have_text(refused)
        shot(page, "policy", "policy")
        ok_data(rest.post(f"/api/v1/run-control/by-run/{busy}/cancel", json={}))


# ---- auth ---------------------------------------------------------------------------------------------


def test_with_auth_on_the_page_shows_the_401_then_works_with_a_token(tmp_path: Path, page: Page) -> None:
    with running_api(tmp_path, env=AUTH_ENV) as server, httpx.Client(base_url=server.rest_url, timeout=60) as rest:
        page.goto(f"{server.rest_url}/ui")
        banner = page.locator("#auth-banner")
        expect(banner).to_be_visible()
        expect(banner).to_contain_text("401 AUTH_TOKEN_MISSING")
        expect(page.locator("#panel-fleet .msg")).to_contain_text("401 AUTH_TOKEN_MISSING")
        expect(page.locator("#stream-state")).to_have_attribute("data-state", "error")
        shot(page, "fleet", "auth-refused")
        page.screenshot(path=str(ARTIFACTS / "auth-refused-page.png"))

        page.locator("#token-input").fill(TOKEN)
        page.locator("#token-save").click()
        expect(page.locator("#stream-state")).to_have_attribute("data-state", "live")
        expect(banner).to_be_hidden()
        # Every panel that was refused loads again with the token, and its refusal is gone.
        expect(page.locator(".panel .msg.error")).to_have_count(0)
        assert page.evaluate("sessionStorage.getItem('athena.token')") == TOKEN
        # The backlog loads once the token is given: the tail shows the refusals of the page's first calls.
        expect(page.locator(f'#panel-events tr[data-type="{EventType.AUTHZ_DENIED}"]').first).to_be_visible()
        run_id = start_slow_run(rest, new_session(), headers={API_TOKEN_HEADER: TOKEN})
        row = page.locator(f'#panel-active tr[data-run-id="{run_id}"]')
        expect(row).to_be_visible()
        row.locator("button.cancel").click()
        wait_until(lambda: run_status_as(rest, run_id) == RunStatus.CANCELLED, f"{run_id} cancelled")
        # The page's calls were the token's: the cancel request names its identity.
        [event] = [
            e
            for e in ok_data(rest.get("/api/v1/events", params={"runId": run_id}, headers={API_TOKEN_HEADER: TOKEN}))[
                "events"
            ]
            if e["type"] == EventType.RUN_CANCEL_REQUESTED
        ]
        assert event["actor"] == "ui-operator"
        page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)


def run_status_as(rest: httpx.Client, run_id: str) -> str:
    answer = rest.get(f"/api/v1/runs/{run_id}", headers={API_TOKEN_HEADER: TOKEN})
    return str(ok_data(answer)["status"])
