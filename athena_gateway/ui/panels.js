// The dashboard's panels. Each loads its data from a public list route and follows the event stream:
// `onEvent(event, backlog)` updates what the event itself says at once (a run appears, a run ends) and
// schedules a reload of the list (debounced) where the event only says "something changed".

import { api, seg } from "./api.js";
import { badge, duration, fillTable, h, message, shortId, when } from "./dom.js";
import { barChart, dag } from "./svg.js";

// Spellings from the contract (events.proto EventType, runs.proto RunStatus, a2a_dlq.proto A2aDlqStatus).
const EVENT = {
  RUN_CREATED: "run.created",
  RUN_STARTED: "run.started",
  RUN_COMPLETED: "run.completed",
  RUN_FAILED: "run.failed",
  RUN_CANCELLED: "run.cancelled",
  WORKFLOW_CREATED: "workflow.created",
};
const RUN_ENDS = new Set([EVENT.RUN_COMPLETED, EVENT.RUN_FAILED, EVENT.RUN_CANCELLED]);
const RUN = { PENDING: "pending", RUNNING: "running", SUCCEEDED: "succeeded", FAILED: "failed", CANCELLED: "cancelled" };
const DLQ_PENDING = "pending";
const CANCEL_REASON = "Cancelled from the dashboard";
const MAX_TAIL = 500;
const SHOWN_TAIL = 100;
const SHOWN_RECENT = 50;
const REJECTION_WINDOW_MS = 24 * 3600 * 1000;

const byId = (id) => document.getElementById(id);

/** Runs `load` now, or soon (at most once per `ms` however many events ask); errors go to the panel. */
function loader(panel, load, ms = 300) {
  let timer = null;
  let running = false;
  let again = false;
  async function now() {
    clearTimeout(timer);
    timer = null;
    if (running) {
      again = true;
      return;
    }
    running = true;
    try {
      await load();
      // A load that worked ends the error an earlier one showed (a refusal before the token was given).
      if (panel.querySelector(".msg.error")) message(panel, "");
    } catch (exc) {
      message(panel, String(exc));
    } finally {
      running = false;
      if (again) {
        again = false;
        soon();
      }
    }
  }
  function soon() {
    if (!timer) timer = setTimeout(now, ms);
  }
  return { now, soon };
}

/** All pages of a list route, up to `maxPages`. */
async function pages(path, key, query, maxPages = 4) {
  const items = [];
  let cursor;
  for (let i = 0; i < maxPages; i++) {
    const page = await api(path, { query: { ...query, cursor } });
    items.push(...(page[key] || []));
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  return items;
}

export function fleetPanel() {
  const panel = byId("panel-fleet");
  const load = loader(panel, async () => {
    const f = await api("/api/v1/fleet/summary");
    message(panel, "");
    const bars = [RUN.RUNNING, RUN.PENDING, RUN.SUCCEEDED, RUN.FAILED, RUN.CANCELLED].map((s) => [s, f[s] || 0, `status-${s}`]);
    panel
      .querySelector(".body")
      .replaceChildren(h("p", { class: "total" }, `${f.total || 0} runs in total`), barChart(bars));
  }, 500);
  return {
    refresh: load.now,
    onEvent(event, backlog) {
      if (!backlog && event.type.startsWith("run.")) load.soon();
    },
  };
}

export function activePanel() {
  const panel = byId("panel-active");
  const active = new Map();
  const ended = new Set(); // runs seen ending: a list answer that raced their end must not bring them back

  function render() {
    const rows = [...active.values()]
      .sort((a, b) => String(b.startedAt).localeCompare(String(a.startedAt)))
      .map((run) => {
        const button = h("button", { class: "cancel", type: "button", "data-run-id": run.runId }, "Cancel");
        button.addEventListener("click", () => cancel(run.runId, button));
        return h(
          "tr",
          { "data-run-id": run.runId },
          h("td", {}, run.sessionId || ""),
          h("td", {}, shortId(run.runId)),
          h("td", {}, when(run.startedAt)),
          h("td", {}, button),
        );
      });
    fillTable(panel, rows);
  }

  async function cancel(runId, button) {
    button.disabled = true;
    try {
      const answer = await api(`/api/v1/run-control/by-run/${seg(runId)}/cancel`, {
        method: "POST",
        body: { reason: CANCEL_REASON },
      });
      message(panel, `Cancel ${runId}: ${answer.status}`, false);
    } catch (exc) {
      message(panel, `Cancel ${runId} refused: ${exc}`);
      button.disabled = false;
    }
  }

  const load = loader(panel, async () => {
    const items = await pages("/api/v1/runs/active", "items", { limit: 500 }, 2);
    message(panel, "");
    active.clear();
    for (const run of items) if (!ended.has(run.runId)) active.set(run.runId, run);
    render();
  }, 500);

  return {
    refresh: load.now,
    onEvent(event, backlog) {
      if (backlog || !event.runId) return;
      if (event.type === EVENT.RUN_STARTED && !ended.has(event.runId)) {
        active.set(event.runId, { runId: event.runId, sessionId: event.sessionId, startedAt: event.createdAt });
        render();
      } else if (RUN_ENDS.has(event.type)) {
        ended.add(event.runId);
        if (ended.size > 5000) ended.clear();
        active.delete(event.runId);
        render();
      }
    },
  };
}

export function recentPanel() {
  const panel = byId("panel-recent");
  const runs = new Map();

  function outcome(event) {
    if (event.type === EVENT.RUN_COMPLETED) return RUN.SUCCEEDED;
    if (event.type === EVENT.RUN_CANCELLED) return RUN.CANCELLED;
    return (event.payload && event.payload.status) || RUN.FAILED; // run.failed: failed or timed-out
  }

  function render() {
    const rows = [...runs.values()]
      .sort((a, b) => String(b.createdAt || b.endedAt).localeCompare(String(a.createdAt || a.endedAt)))
      .slice(0, SHOWN_RECENT)
      .map((run) => {
        const end = run.endedAt ? Date.parse(run.endedAt) : null;
        const start = run.createdAt ? Date.parse(run.createdAt) : null;
        const took = start !== null ? (end !== null ? end - start : null) : null;
        return h(
          "tr",
          { "data-run-id": run.runId, "data-status": run.status },
          h("td", {}, run.sessionId || ""),
          h("td", {}, shortId(run.runId)),
          h("td", {}, badge(run.status)),
          h("td", {}, took === null ? (run.endedAt ? "—" : "running…") : duration(took)),
          h("td", {}, when(run.createdAt)),
        );
      });
    fillTable(panel, rows);
  }

  let pending = false;
  return {
    refresh() {
      render();
    },
    reset() {
      runs.clear();
      render();
    },
    onEvent(event, backlog) {
      if (!event.runId || !event.type.startsWith("run.")) return;
      let run = runs.get(event.runId);
      if (!run) {
        if (!(event.type === EVENT.RUN_CREATED || event.type === EVENT.RUN_STARTED || RUN_ENDS.has(event.type))) return;
        run = { runId: event.runId, sessionId: event.sessionId, status: RUN.PENDING };
        runs.set(event.runId, run);
        if (runs.size > 1000) runs.delete(runs.keys().next().value);
      }
      if (event.type === EVENT.RUN_CREATED) run.createdAt = event.createdAt;
      else if (event.type === EVENT.RUN_STARTED && !run.endedAt) run.status = RUN.RUNNING;
      else if (RUN_ENDS.has(event.type)) {
        run.status = outcome(event);
        run.endedAt = event.createdAt;
      }
      if (backlog) return;
      if (!pending) {
        pending = true;
        requestAnimationFrame(() => {
          pending = false;
          render();
        });
      }
    },
  };
}

export function sessionsPanel() {
  const panel = byId("panel-sessions");
  let selected = null;

  async function loadTranscript() {
    if (!selected) return;
    const id = selected;
    const { items } = await api(`/api/v1/sessions/${seg(id)}/transcript`, { query: { limit: 100 } });
    const entries = (items || []).map((entry) =>
      h(
        "li",
        { class: `entry role-${entry.role}${entry.isError ? " is-error" : ""}` },
        h("div", { class: "entry-head" }, badge(entry.role), " ", when(entry.createdAt), entry.runId ? [" run ", shortId(entry.runId)] : null),
        h("pre", {}, entry.content || ""),
      ),
    );
    panel
      .querySelector(".transcript")
      .replaceChildren(h("h3", {}, `Transcript of ${id}`), entries.length ? h("ol", { class: "entries" }, entries) : h("p", { class: "hint" }, "Empty transcript."));
  }

  const list = loader(panel, async () => {
    const page = await api("/api/v1/sessions", { query: { limit: 50 } });
    message(panel, "");
    const items = (page.items || []).map((session) => {
      const li = h(
        "li",
        { "data-session-id": session.id, class: session.id === selected ? "selected" : null, tabindex: 0 },
        h("strong", {}, session.id),
        " ",
        h("span", { class: "muted" }, `${session.provider || ""}/${session.model || ""}`),
        " ",
        when(session.updatedAt),
      );
      const pick = () => {
        selected = session.id;
        for (const other of panel.querySelectorAll(".list li")) other.classList.toggle("selected", other === li);
        transcript.now();
      };
      li.addEventListener("click", pick);
      li.addEventListener("keydown", (e) => e.key === "Enter" && pick());
      return li;
    });
    panel.querySelector(".list").replaceChildren(...items);
  }, 800);
  const transcript = loader(panel, loadTranscript, 300);

  return {
    refresh: () => Promise.all([list.now(), transcript.now()]),
    onEvent(event, backlog) {
      if (backlog || !event.type.startsWith("run.")) return;
      if (event.type === EVENT.RUN_CREATED || RUN_ENDS.has(event.type)) list.soon();
      if (event.sessionId && event.sessionId === selected) transcript.soon();
    },
  };
}

export function eventsPanel() {
  const panel = byId("panel-events");
  const tail = [];
  const form = panel.querySelector("form.filters");
  form.addEventListener("input", () => render());
  form.addEventListener("submit", (e) => e.preventDefault());
  let pending = false;

  function render() {
    const type = form.elements.type.value.trim();
    const session = form.elements.session.value.trim();
    const run = form.elements.run.value.trim();
    const rows = [];
    for (let i = tail.length - 1; i >= 0 && rows.length < SHOWN_TAIL; i--) {
      const e = tail[i];
      if (type && !e.type.includes(type)) continue;
      if (session && e.sessionId !== session) continue;
      if (run && e.runId !== run) continue;
      rows.push(
        h(
          "tr",
          { "data-event-id": e.id, "data-type": e.type, "data-run-id": e.runId },
          h("td", {}, e.id),
          h("td", {}, when(e.createdAt)),
          h("td", {}, h("code", {}, e.type)),
          h("td", {}, e.sessionId || ""),
          h("td", {}, e.runId ? shortId(e.runId) : ""),
          h("td", {}, e.actor || ""),
        ),
      );
    }
    fillTable(panel, rows);
  }

  return {
    refresh: render,
    reset() {
      tail.length = 0;
      render();
    },
    onEvent(event, backlog) {
      tail.push(event);
      if (tail.length > MAX_TAIL) tail.splice(0, tail.length - MAX_TAIL);
      if (backlog || pending) return;
      pending = true;
      requestAnimationFrame(() => {
        pending = false;
        render();
      });
    },
  };
}

export function schedulesPanel() {
  const panel = byId("panel-schedules");
  let selected = null;

  const logs = loader(panel, async () => {
    if (!selected) return;
    const id = selected;
    // The route answers the `logs` list itself (its HTTP rule's response_body).
    const entries = await api(`/api/v1/schedules/${seg(id)}/logs`, { query: { limit: 20 } });
    const rows = (entries || []).map((log) =>
      h(
        "tr",
        {},
        h("td", {}, when(log.startedAt)),
        h("td", {}, badge(log.status)),
        h("td", {}, log.runId ? shortId(log.runId) : ""),
        h("td", {}, log.slotAt ? "slot" : "manual"),
        h("td", {}, log.error || ""),
      ),
    );
    panel
      .querySelector(".logs")
      .replaceChildren(
        h("h3", {}, `Logs of ${id}`),
        rows.length
          ? h("table", {}, h("thead", {}, h("tr", {}, ["Started", "Status", "Run", "Kind", "Error"].map((t) => h("th", {}, t)))), h("tbody", {}, rows))
          : h("p", { class: "hint" }, "No runs yet."),
      );
  });

  const list = loader(panel, async () => {
    const items = await pages("/api/v1/schedules", "items", { limit: 100 }, 2);
    message(panel, "");
    const rows = items.map((task) => {
      const button = h("button", { type: "button", class: "logs-button" }, "Logs");
      button.addEventListener("click", () => {
        selected = task.id;
        logs.now();
      });
      return h(
        "tr",
        { "data-schedule-id": task.id },
        h("td", {}, task.id),
        h("td", {}, task.sessionId),
        h("td", {}, task.cron ? h("code", {}, task.cron) : `${task.everyMinutes} min`),
        h("td", {}, badge(task.enabled ? (task.running ? "running" : "enabled") : "disabled")),
        h("td", {}, when(task.nextRunAt)),
        h("td", {}, button),
      );
    });
    fillTable(panel, rows);
  });

  return {
    refresh: () => Promise.all([list.now(), logs.now()]),
    onEvent(event, backlog) {
      if (backlog || !event.type.startsWith("schedule.")) return;
      list.soon();
      logs.soon();
    },
  };
}

export function workflowsPanel() {
  const panel = byId("panel-workflows");
  const workflows = new Map();
  let selected = null;

  const run = loader(panel, async () => {
    if (!selected) return;
    const id = selected;
    const box = panel.querySelector(".dag");
    let answer;
    try {
      answer = await api(`/api/v1/workflows/run/${seg(id)}`);
    } catch (exc) {
      if (exc.code !== "NOT_FOUND" || !workflows.has(id)) throw exc;
      const definition = workflows.get(id).definition;
      box.replaceChildren(h("h3", {}, `Workflow ${id}`), h("p", { class: "hint" }, "Never ran."), dag(definition, new Map()));
      return;
    }
    const states = new Map((answer.run.steps || []).map((step) => [step.stepId, step]));
    const p = answer.progress || answer.run.progress || {};
    box.replaceChildren(
      h("h3", {}, `Workflow ${id}`),
      h(
        "p",
        { class: "run-line" },
        "Latest run ",
        shortId(answer.run.id),
        " ",
        badge(answer.run.status),
        ` ${p.completedSteps || 0}/${p.totalSteps || 0} steps done · started `,
        when(answer.run.startedAt || answer.run.createdAt),
      ),
      dag(answer.workflow.definition, states),
    );
  });

  const list = loader(panel, async () => {
    const page = await api("/api/v1/workflows", { query: { limit: 20 } });
    message(panel, "");
    workflows.clear();
    const items = (page.items || []).map((wf) => {
      workflows.set(wf.id, wf);
      const li = h(
        "li",
        { "data-workflow-id": wf.id, class: wf.id === selected ? "selected" : null, tabindex: 0 },
        shortId(wf.id),
        ` ${(wf.definition.steps || []).length} steps · created `,
        when(wf.createdAt),
      );
      const pick = () => {
        selected = wf.id;
        for (const other of panel.querySelectorAll(".list li")) other.classList.toggle("selected", other === li);
        run.now();
      };
      li.addEventListener("click", pick);
      li.addEventListener("keydown", (e) => e.key === "Enter" && pick());
      return li;
    });
    panel.querySelector(".list").replaceChildren(...items);
    if (!selected && items.length) items[0].click();
  });

  return {
    refresh: () => Promise.all([list.now(), run.now()]),
    onEvent(event, backlog) {
      if (backlog || !event.type.startsWith("workflow.")) return;
      if (event.type === EVENT.WORKFLOW_CREATED) list.soon();
      else run.soon();
    },
  };
}

export function dlqPanel() {
  const panel = byId("panel-dlq");
  const form = panel.querySelector("form.audit");
  const note = form.elements.note;
  let action = null;

  function ask(kind, item) {
    action = { kind, id: item.id };
    form.querySelector(".audit-title").textContent = `${kind === "discard" ? "Discard" : "Requeue"} dead letter ${item.id}`;
    // Both decisions take an `auditNote`, recorded on the item and in their a2a.dlq.* event beside the actor.
    note.closest("label").hidden = false;
    note.required = true;
    note.value = "";
    form.querySelector(".audit-hint").textContent =
      kind === "discard"
        ? "The note is recorded in the a2a.dlq.discarded event. Discarding is final."
        : "The message goes back on the bus (attempts start again). The note is recorded in the a2a.dlq.requeued event.";
    form.hidden = false;
    note.focus();
  }

  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    if (!action) return;
    const { kind, id } = action;
    const body = { auditNote: note.value.trim() };
    try {
      const answer = await api(`/api/v1/a2a/dlq/${seg(id)}/${kind}`, { method: "POST", body });
      message(panel, `${kind === "discard" ? "Discarded" : "Requeued"} ${id} (updated: ${answer.updated})`, false);
      form.hidden = true;
      action = null;
    } catch (exc) {
      message(panel, `${kind} ${id} refused: ${exc}`);
    }
    list.now();
  });
  form.querySelector(".audit-cancel").addEventListener("click", () => {
    form.hidden = true;
    action = null;
  });

  const list = loader(panel, async () => {
    const items = await pages("/api/v1/a2a/dlq", "items", { status: DLQ_PENDING, limit: 200 }, 2);
    const rows = items.map((item) => {
      const p = item.payload || {};
      const requeue = h("button", { type: "button", class: "requeue", "data-dlq-id": item.id }, "Requeue");
      const discard = h("button", { type: "button", class: "discard", "data-dlq-id": item.id }, "Discard");
      requeue.addEventListener("click", () => ask("requeue", item));
      discard.addEventListener("click", () => ask("discard", item));
      return h(
        "tr",
        { "data-dlq-id": item.id },
        h("td", {}, shortId(p.messageId || item.id)),
        h("td", {}, `${p.fromSessionId || "?"} → ${p.toSessionId || "?"}`),
        h("td", {}, `${p.attempts ?? "?"}/${p.maxAttempts ?? "?"}`),
        h("td", { class: "reason" }, item.reason || ""),
        h("td", {}, when(item.updatedAt || item.createdAt)),
        h("td", {}, requeue, " ", discard),
      );
    });
    fillTable(panel, rows);
  });

  return {
    refresh: list.now,
    onEvent(event, backlog) {
      if (!backlog && event.type.startsWith("a2a.")) list.soon();
    },
  };
}

export function policyPanel() {
  const panel = byId("panel-policy");
  const FIELDS = [
    ["maxConcurrentRuns", "Max concurrent runs"],
    ["defaultRunTimeoutMs", "Run timeout (ms)"],
    ["defaultScheduleTimeoutMs", "Schedule timeout (ms)"],
    ["retryBudgetPerRun", "Retries per run"],
    ["costBudgetDailyUsd", "Daily cost budget (USD)"],
  ];
  const load = loader(panel, async () => {
    const since = new Date(Date.now() - REJECTION_WINDOW_MS).toISOString();
    const [policy, rejections] = await Promise.all([
      api("/api/v1/policy"),
      pages("/api/v1/policy/rejections", "items", { createdAfter: since, limit: 500 }, 4),
    ]);
    message(panel, "");
    const dl = panel.querySelector("dl.policy");
    if (!policy) {
      dl.replaceChildren(h("dt", {}, "Policy"), h("dd", {}, "none set (server defaults)"));
    } else {
      dl.replaceChildren(
        ...FIELDS.flatMap(([key, label]) => [h("dt", {}, label), h("dd", {}, policy[key] ?? "—")]),
        h("dt", {}, "Updated"),
        h("dd", {}, when(policy.updatedAt)),
      );
    }
    const rows = rejections
      .slice(-20)
      .reverse()
      .map((r) =>
        h(
          "tr",
          { "data-rejection-id": r.id },
          h("td", {}, when(r.createdAt)),
          h("td", {}, r.sessionId),
          h("td", {}, h("code", {}, r.reason)),
          h("td", {}, `${r.activeRuns || 0} / ${r.maxConcurrentRuns || 0}`),
        ),
      );
    fillTable(panel, rows);
  }, 500);
  return {
    refresh: load.now,
    onEvent(event, backlog) {
      if (!backlog && event.type.startsWith("policy.")) load.soon();
    },
  };
}
