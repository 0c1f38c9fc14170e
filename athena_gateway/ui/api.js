// Calls to Athena's public REST API (/api/v1), with the operator's token when one is set. The page uses
// nothing else, so it works against any replica and is refused exactly what the API refuses.

const TOKEN_KEY = "athena.token";
// athena_client/contract.py AUTHORIZATION_HEADER: `Authorization: Bearer <token>` carries API tokens and JWTs.
const AUTHORIZATION_HEADER = "authorization";
const AUTH_STATUSES = new Set([401, 403]);

/** An error envelope ({ok:false, error:{code, message, retryable, traceId}}) or a network failure (status 0). */
export class ApiError extends Error {
  constructor(status, code, message, traceId) {
    super(message);
    this.status = status;
    this.code = code;
    this.traceId = traceId || "";
  }

  get isAuth() {
    return AUTH_STATUSES.has(this.status);
  }

  toString() {
    const where = this.status ? `${this.status} ` : "";
    const trace = this.traceId ? ` (trace ${this.traceId})` : "";
    return `${where}${this.code}: ${this.message}${trace}`;
  }
}

const authListeners = new Set();
const tokenListeners = new Set();

/** `fn(error)` runs on every 401/403 answer, so the page can show it whatever panel asked. */
export function onAuthError(fn) {
  authListeners.add(fn);
}

/** `fn()` runs when the operator sets or forgets the token (streams reconnect with it). */
export function onTokenChange(fn) {
  tokenListeners.add(fn);
}

export function reportAuth(error) {
  for (const fn of authListeners) fn(error);
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY) || "";
}

/** Kept in sessionStorage: gone when the tab closes, never sent anywhere but this origin's API. */
export function setToken(value) {
  const trimmed = (value || "").trim();
  if (trimmed) sessionStorage.setItem(TOKEN_KEY, trimmed);
  else sessionStorage.removeItem(TOKEN_KEY);
  for (const fn of tokenListeners) fn();
}

export function authHeaders() {
  const value = token();
  return value ? { [AUTHORIZATION_HEADER]: `Bearer ${value}` } : {};
}

/** The error an answer carries: its envelope's, or one made from the status when the body is not one. */
export async function errorOf(response) {
  let envelope = null;
  try {
    envelope = await response.json();
  } catch {
    envelope = null;
  }
  const err = (envelope && envelope.error) || {};
  const error = new ApiError(
    response.status,
    err.code || `HTTP_${response.status}`,
    err.message || response.statusText || "request failed",
    err.traceId || response.headers.get("x-trace-id"),
  );
  if (error.isAuth) reportAuth(error);
  return error;
}

/** `data` of a successful envelope; ApiError otherwise. Empty query values are left out. */
export async function api(path, { method = "GET", body, query } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [key, value] of Object.entries(query || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, String(value));
  }
  const headers = { accept: "application/json", ...authHeaders() };
  const init = { method, headers };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (exc) {
    throw new ApiError(0, "UNAVAILABLE", `The server did not answer: ${exc.message}`);
  }
  if (!response.ok) throw await errorOf(response);
  const envelope = await response.json();
  if (!envelope || envelope.ok !== true) throw new ApiError(response.status, "INTERNAL_ERROR", "Not an Athena answer.");
  return envelope.data;
}

/** Segment of a path, escaped (ids come from the server, but a path is never built from raw text). */
export function seg(value) {
  return encodeURIComponent(String(value));
}
