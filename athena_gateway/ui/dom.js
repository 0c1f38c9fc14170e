// Building the page from data without ever parsing data as HTML: text goes in through textContent only.

/** An element: `attrs` are set as attributes (`class`, `data-*`, ...) except `on*` functions (listeners); children are
 * nodes or strings (as text nodes). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** The panel's message line: an error (class "error") or a note; hidden when `text` is empty. */
export function message(panel, text, isError = true) {
  const msg = panel.querySelector(".msg");
  msg.textContent = text || "";
  msg.hidden = !text;
  msg.classList.toggle("error", Boolean(text) && isError);
}

/** Replaces a table body's rows and shows the panel's "empty" line when there are none. */
export function fillTable(panel, rows) {
  panel.querySelector("tbody").replaceChildren(...rows);
  const empty = panel.querySelector(".empty");
  if (empty) empty.hidden = rows.length > 0;
}

/** A short id for display; the whole id stays in the title. */
export function shortId(id) {
  const text = String(id || "");
  return h("span", { class: "id", title: text }, text.length > 12 ? `${text.slice(0, 8)}…` : text);
}

export function ago(ms) {
  const s = Math.round(ms / 1000);
  const future = s < 0;
  const a = Math.abs(s);
  const text =
    a < 60 ? `${a}s` : a < 3600 ? `${Math.floor(a / 60)}m` : a < 86400 ? `${Math.floor(a / 3600)}h` : `${Math.floor(a / 86400)}d`;
  return future ? `in ${text}` : `${text} ago`;
}

/** An instant shown relative ("12s ago", kept current by `refreshTimes`) and absolute (UTC). */
export function when(iso) {
  if (!iso) return h("span", { class: "muted" }, "—");
  const at = Date.parse(iso);
  if (Number.isNaN(at)) return h("span", {}, iso);
  const absolute = new Date(at).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  return h(
    "time",
    { datetime: iso, title: iso, "data-at": String(at) },
    h("span", { class: "rel" }, ago(Date.now() - at)),
    " ",
    h("span", { class: "abs" }, absolute),
  );
}

export function refreshTimes() {
  const now = Date.now();
  for (const el of document.querySelectorAll("time[data-at] .rel")) {
    el.textContent = ago(now - Number(el.parentElement.dataset.at));
  }
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60000)} m ${Math.round((ms % 60000) / 1000)} s`;
}

/** A status word as a coloured badge (colours by class in app.css). */
export function badge(status) {
  return h("span", { class: `badge status-${String(status || "unknown")}` }, String(status || "unknown"));
}
