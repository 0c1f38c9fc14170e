// The dashboard's entry point: the token form, the auth banner, the panels, the event backlog and the
// live stream that keeps them current.

import { api, onAuthError, onTokenChange, setToken, token } from "./api.js";
import { refreshTimes } from "./dom.js";
import {
  activePanel,
  dlqPanel,
  eventsPanel,
  fleetPanel,
  policyPanel,
  recentPanel,
  schedulesPanel,
  sessionsPanel,
  workflowsPanel,
} from "./panels.js";
import { followEvents } from "./stream.js";

const BACKLOG_WINDOW_MS = 3600 * 1000; // the event tail starts with the last hour
const BACKLOG_PAGES = 10;
const RELOAD_EVERY_MS = 15000; // lists are reloaded now and then for what no event announces

const panels = [
  fleetPanel(),
  activePanel(),
  recentPanel(),
  sessionsPanel(),
  eventsPanel(),
  schedulesPanel(),
  workflowsPanel(),
  dlqPanel(),
  policyPanel(),
];

function setupAuth() {
  const banner = document.getElementById("auth-banner");
  const form = document.getElementById("token-form");
  const input = document.getElementById("token-input");
  input.value = token();
  // A refusal stays on screen until the credentials change: the operator must see why the page is empty.
  onAuthError((error) => {
    banner.textContent = `${error} — the API refused this page's credentials. ${
      error.status === 401 ? "Enter an API token above." : "The token's role does not allow this."
    }`;
    banner.dataset.status = String(error.status);
    banner.hidden = false;
  });
  onTokenChange(() => {
    banner.hidden = true;
    banner.textContent = "";
    reloadAll();
  });
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    setToken(input.value);
  });
  document.getElementById("token-clear").addEventListener("click", () => {
    input.value = "";
    setToken("");
  });
}

function reloadAll() {
  for (const panel of panels) Promise.resolve(panel.refresh()).catch(() => {});
}

function dispatch(event, backlog) {
  for (const panel of panels) panel.onEvent(event, backlog);
}

/** The last hour of events (oldest first, through the list route), replayed into the panels; returns the
 * last id, where the live stream resumes so nothing falls between the two. */
async function backlog() {
  const since = new Date(Date.now() - BACKLOG_WINDOW_MS).toISOString();
  let cursor;
  let last = null;
  for (let i = 0; i < BACKLOG_PAGES; i++) {
    const page = await api("/api/v1/events", { query: { createdAfter: since, limit: 500, cursor } });
    for (const event of page.events || []) {
      dispatch(event, true);
      last = event.id;
    }
    cursor = page.nextCursor;
    if (!cursor) break;
  }
  return last;
}

function setStreamState(state, detail) {
  const pill = document.getElementById("stream-state");
  pill.dataset.state = state;
  pill.textContent = `stream: ${state}`;
  pill.title = detail || "";
}

/** Resolves at the next change of the token. */
function tokenChanged() {
  return new Promise((resolve) => onTokenChange(resolve));
}

async function main() {
  setupAuth();
  reloadAll();
  let after = null;
  // The backlog first, then the stream from its last event. Refused (401/403): wait for a token, so the
  // tail and the recent runs fill once the operator gives one.
  for (;;) {
    try {
      after = await backlog();
      break;
    } catch (exc) {
      setStreamState("error", String(exc));
      if (!exc.isAuth) break; // the server is unreachable: the stream retries on its own
      await tokenChanged();
    }
  }
  followEvents({
    after,
    onEvent: (event) => dispatch(event, false),
    onState: setStreamState,
    onExpired: () => {
      for (const panel of panels) if (panel.reset) panel.reset();
      reloadAll();
    },
  });
  setInterval(refreshTimes, 5000);
  setInterval(reloadAll, RELOAD_EVERY_MS);
}

main();
