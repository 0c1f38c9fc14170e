// The two drawings, as inline SVG built node by node (labels through textContent): the fleet's bar
// chart and a workflow run's DAG. Colours come from classes in app.css.

const NS = "http://www.w3.org/2000/svg";

function s(tag, attrs, text) {
  const el = document.createElementNS(NS, tag);
  for (const [key, value] of Object.entries(attrs || {})) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = String(text);
  return el;
}

/** Horizontal bars, one per [label, count, class], scaled to the largest count. */
export function barChart(bars) {
  const rowH = 22;
  const labelW = 80;
  const barW = 220;
  const width = labelW + barW + 50;
  const svg = s("svg", { viewBox: `0 0 ${width} ${bars.length * rowH + 4}`, role: "img", class: "chart" });
  svg.append(s("title", {}, bars.map(([label, count]) => `${label} ${count}`).join(", ")));
  const max = Math.max(1, ...bars.map(([, count]) => count));
  bars.forEach(([label, count, cls], i) => {
    const y = i * rowH + 2;
    svg.append(s("text", { x: labelW - 6, y: y + 14, "text-anchor": "end", class: "chart-label" }, label));
    svg.append(s("rect", { x: labelW, y: y + 2, width: Math.max(1, (barW * count) / max), height: rowH - 6, class: `bar ${cls}` }));
    svg.append(s("text", { x: labelW + (barW * count) / max + 6, y: y + 14, class: "chart-value" }, count));
  });
  return svg;
}

/** Each step's column: the length of the longest dependency chain leading to it (steps in a cycle, which
 * the server refuses anyway, stay in column 0). */
function columns(stepIds, edges) {
  const column = new Map(stepIds.map((id) => [id, 0]));
  const incoming = new Map(stepIds.map((id) => [id, 0]));
  for (const e of edges) if (incoming.has(e.to)) incoming.set(e.to, incoming.get(e.to) + 1);
  const ready = stepIds.filter((id) => incoming.get(id) === 0);
  while (ready.length) {
    const id = ready.shift();
    for (const e of edges) {
      if (e.from !== id || !column.has(e.to)) continue;
      column.set(e.to, Math.max(column.get(e.to), column.get(id) + 1));
      incoming.set(e.to, incoming.get(e.to) - 1);
      if (incoming.get(e.to) === 0) ready.push(e.to);
    }
  }
  return column;
}

/** The DAG of `definition` ({steps, dependencies}) with each box coloured by its state in `states`
 * (stepId -> WorkflowStepState; absent: not run). */
export function dag(definition, states) {
  const steps = (definition && definition.steps) || [];
  const edges = (definition && definition.dependencies) || [];
  const ids = steps.map((step) => step.id);
  const column = columns(ids, edges);
  const boxW = 150;
  const boxH = 46;
  const gapX = 50;
  const gapY = 18;
  const rowsUsed = new Map();
  const at = new Map();
  for (const id of ids) {
    const c = column.get(id);
    const r = rowsUsed.get(c) || 0;
    rowsUsed.set(c, r + 1);
    at.set(id, { x: 8 + c * (boxW + gapX), y: 8 + r * (boxH + gapY) });
  }
  const width = 16 + (Math.max(0, ...column.values()) + 1) * (boxW + gapX) - gapX;
  const height = 16 + Math.max(1, ...rowsUsed.values()) * (boxH + gapY) - gapY;
  const svg = s("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img", class: "dag-svg" });
  const defs = s("defs");
  const marker = s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto" });
  marker.append(s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow-head" }));
  defs.append(marker);
  svg.append(defs);
  for (const e of edges) {
    const a = at.get(e.from);
    const b = at.get(e.to);
    if (!a || !b) continue;
    svg.append(
      s("line", { x1: a.x + boxW, y1: a.y + boxH / 2, x2: b.x, y2: b.y + boxH / 2, class: "edge", "marker-end": "url(#arrow)" }),
    );
  }
  for (const id of ids) {
    const { x, y } = at.get(id);
    const state = states.get(id);
    const status = state ? state.status : "not-run";
    const g = s("g", { class: `step status-${status}`, "data-step": id, "data-status": status });
    g.append(s("title", {}, `${id}: ${status}${state && state.error ? ` (${state.error})` : ""}`));
    g.append(s("rect", { x, y, width: boxW, height: boxH, rx: 6 }));
    g.append(s("text", { x: x + 8, y: y + 18, class: "step-id" }, id.length > 20 ? `${id.slice(0, 19)}…` : id));
    const attempt = state && state.attempt ? ` · try ${state.attempt}` : "";
    g.append(s("text", { x: x + 8, y: y + 36, class: "step-status" }, `${status}${attempt}`));
    svg.append(g);
  }
  return svg;
}
