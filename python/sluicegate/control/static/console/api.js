// The admin API client and the small DOM helpers every page uses. The admin token lives in
// sessionStorage only: never in a URL, a cookie or the page. Signed in with single sign-on, the
// page holds no token: the browser sends the HttpOnly session cookie, and every change carries the
// session's CSRF token (kept in this module's memory only).
const TOKEN = "sluicegate-admin-token";

export const getToken = () => sessionStorage.getItem(TOKEN);
export const setToken = (token) => sessionStorage.setItem(TOKEN, token);
export const dropToken = () => sessionStorage.removeItem(TOKEN);

let csrf = null;  // the single sign-on session's CSRF token, when signed in by the cookie
export const setSession = (token) => { csrf = token; };
export const inSession = () => csrf !== null && !getToken();

// The single sign-on session: {status: 200, me} signed in; 401 SSO is configured but there is no
// session; 404 the gateway has no single sign-on.
export async function ssoSession() {
  const r = await fetch("/admin/ui/sso/session", { cache: "no-store", credentials: "same-origin" });
  return { status: r.status, me: r.ok ? await r.json() : null };
}

export async function ssoLogout() {
  const r = await fetch("/admin/ui/sso/logout", { method: "POST", credentials: "same-origin", headers: { "x-csrf-token": csrf || "" } });
  csrf = null;
  return r.status;
}

export class ApiError extends Error {
  constructor(status, error) {
    super(`${status} ${error.code}: ${error.message}`);
    this.status = status;
    this.code = error.code;
    this.fields = error.fields || [];
  }
}

export async function api(method, path, body) {
  const token = getToken();
  const headers = {};
  if (token) headers.authorization = "Bearer " + token;
  else if (csrf !== null && method !== "GET") headers["x-csrf-token"] = csrf;
  const init = { method, headers, cache: "no-store", credentials: "same-origin" };
  if (body !== undefined) {
    headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch("/admin/v1" + path, init);
  if (r.status === 204) return null;
  const data = await r.json().catch(() => ({ error: { code: "bad_answer", message: "not JSON" } }));
  if (!r.ok) throw new ApiError(r.status, data.error || { code: "error", message: String(r.status) });
  return data;
}

export const get = (path) => api("GET", path);

// Every row of a list, whether the endpoint pages (`has_more`, `next_cursor`) or not.
export async function all(path, query = {}) {
  const rows = [];
  let cursor = null;
  for (let i = 0; i < 50; i++) {
    const q = new URLSearchParams(query);
    if (cursor) q.set("cursor", cursor);
    const qs = q.toString();
    const page = await get(path + (qs ? "?" + qs : ""));
    rows.push(...page.data);
    if (!page.has_more || !page.next_cursor) break;
    cursor = page.next_cursor;
  }
  return rows;
}

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "value") el.value = v;
    else if (k === "checked") el.checked = Boolean(v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
  return el;
}

// A labelled control: the label wraps it, so it has an accessible name.
export const field = (text, control, extra = {}) => h("label", extra, text, control);

export function select(name, options, value, attrs = {}) {
  return h("select", { name, ...attrs }, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
}

export const usd = (n) => (n === null || n === undefined ? "–" : "$" + (n / 1e9).toFixed(Math.abs(n) >= 1e7 || n === 0 ? 2 : 6));
export const when = (iso) => (iso ? iso.slice(0, 19).replace("T", " ") : "");

const NUMERIC = new Set(["calls", "count", "events", "values found", "input tokens", "output tokens", "start", "end", "seq"]);

export function table(headers, rows, attrs = {}) {
  return h("table", attrs,
    h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col", class: NUMERIC.has(x) || x.endsWith(" ($)") ? "num" : null }, x)))),
    h("tbody", {}, rows));
}

export function errorText(err) {
  return err instanceof ApiError ? err.message : String(err);
}

// Show an API error's fields next to the controls whose `data-loc` names them (or a prefix of them).
let errors = 0;

export function showFieldErrors(form, err) {
  form.querySelectorAll(".field-error").forEach((n) => n.remove());
  form.querySelectorAll("[aria-invalid]").forEach((n) => { n.removeAttribute("aria-invalid"); n.removeAttribute("aria-describedby"); });
  const general = form.querySelector(".form-error");
  if (general) general.textContent = err ? errorText(err) : "";
  for (const f of (err && err.fields) || []) {
    let loc = String(f.loc);
    let target = null;
    while (loc && !target) {
      target = form.querySelector(`[data-loc="${CSS.escape(loc)}"]`);
      loc = loc.includes(".") ? loc.slice(0, loc.lastIndexOf(".")) : "";
    }
    const note = h("span", { class: "field-error", role: "alert", id: `error-${++errors}`, dataset: { errorFor: f.loc } }, f.msg);
    if (target && target.matches("input, select, textarea")) {
      // Beside the control (after its label), and named by it for assistive technology.
      target.setAttribute("aria-invalid", "true");
      target.setAttribute("aria-describedby", note.id);
      (target.closest("label") || target).after(note);
    } else {
      (target || general || form).append(note);
    }
  }
}

// Names, not ids: every org, workspace, user and key the token sees, by id.
export async function loadNames(ctx) {
  const names = new Map();
  for (const o of ctx.orgs) names.set(o.id, o.name);
  const users = [];
  const keys = [];
  await Promise.all(ctx.workspaces.map(async (w) => {
    names.set(w.id, w.name);
    const [u, k] = await Promise.all([all(`/workspaces/${w.id}/users`), all(`/workspaces/${w.id}/keys`)]);
    users.push(...u);
    keys.push(...k);
  }));
  for (const u of users) names.set(u.id, u.name);
  for (const k of keys) names.set(k.id, k.name);
  ctx.names = names;
  ctx.users = users;
  ctx.keys = keys;
  return names;
}

export const nameOf = (ctx, id) => (id ? (ctx.names && ctx.names.get(id)) || id : "");

// Where spend and events are read: the org, or the one workspace a workspace token sees.
export const scopeBase = (ctx) => (ctx.who.workspace_id ? `/workspaces/${ctx.who.workspace_id}` : `/orgs/${ctx.orgId}`);

export function isoDay(d) { return d.toISOString().slice(0, 10); }
export function startOfDay(d = new Date()) { return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate())); }
export function startOfMonth(d = new Date()) { return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1)); }

export function downloadCsv(filename, rows) {
  const quote = (v) => {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(s) || /^[=+\-@]/.test(s) ? '"' + s.replaceAll('"', '""') + '"' : s;
  };
  const text = rows.map((r) => r.map(quote).join(",")).join("\r\n") + "\r\n";
  const a = h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: filename });
  document.body.append(a);
  a.click();
  a.remove();
  return text;
}
