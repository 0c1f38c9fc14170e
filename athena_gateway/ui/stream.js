// The live event stream (GET /api/v1/events/stream) read with fetch(), not EventSource: EventSource cannot
// send the Authorization header the API may require. Frames are parsed as the SSE format defines them
// (`id:`, `event:`, `data:` lines, comments, blank-line terminated); on any break the stream reconnects
// with `Last-Event-ID`, so no event is missed or repeated.

import { authHeaders, errorOf, onTokenChange } from "./api.js";
import { ErrorCode } from "./vocab.js";

const STREAM_PATH = "/api/v1/events/stream";

/**
 * Follows the stream until the page closes. `after`: the event id to resume after (null: only new events).
 * `onEvent(event)` gets each event; `onState(state, detail)` gets "connecting" | "live" | "error";
 * `onExpired()` runs when retention overtook the resume point (the page reloads its lists then).
 */
export function followEvents({ after, onEvent, onState, onExpired }) {
  let lastId = after || null;
  let retryMs = 2000;
  let wake = null;
  onTokenChange(() => wake && wake());

  const pause = (ms) =>
    new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wake = null;
        resolve();
      }
      wake = done;
    });

  async function once() {
    const headers = { accept: "text/event-stream", ...authHeaders() };
    if (lastId) headers["last-event-id"] = lastId;
    onState("connecting");
    const response = await fetch(STREAM_PATH, { headers, cache: "no-store" });
    if (!response.ok) {
      const error = await errorOf(response);
      if (error.code === ErrorCode.EVENT_CURSOR_EXPIRED) {
        lastId = null;
        onExpired();
      }
      throw error;
    }
    onState("live");
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          handle(frame);
        }
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  function handle(frame) {
    let id = null;
    let type = "message";
    const data = [];
    for (const line of frame.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "id") id = value;
      else if (field === "event") type = value;
      else if (field === "data") data.push(value);
      else if (field === "retry" && /^\d+$/.test(value)) retryMs = Number(value);
    }
    if (!data.length) return;
    const envelope = JSON.parse(data.join("\n"));
    if (type === "error" || envelope.ok !== true) {
      const err = envelope.error || {};
      if (err.code === ErrorCode.EVENT_CURSOR_EXPIRED) {
        lastId = null;
        onExpired();
      }
      throw Object.assign(new Error(err.message || "stream error"), { code: err.code || "INTERNAL_ERROR" });
    }
    if (id) lastId = id;
    onEvent(envelope.data);
  }

  (async () => {
    for (;;) {
      try {
        await once();
        onState("error", "the stream ended; reconnecting");
      } catch (exc) {
        onState("error", String(exc));
      }
      await pause(retryMs);
    }
  })();
}
