// The rate limits of a policy: an editor section for the policy form (kind, limit, window, mode,
// rollout, what a call does with Redis down, a substitute model instead of the 429, locked; the API's field errors land at the field), and a key's effective limits with
// where each comes from. policies.js calls `limitSection` once and uses what it returns.
import { field, h, nameOf, select, table } from "../api.js";

const KINDS = [["requests", "requests per window"], ["tokens", "tokens per window"], ["concurrent", "requests in flight"]];
const MODES = [["enforce", "enforce"], ["monitor", "monitor"]];
const ROLLOUT_BY = [["key", "keys"], ["request", "requests"]];
const STORE_ERROR = [["", "gateway default"], ["fail_closed", "refuse (fail closed)"], ["fail_open", "serve (fail open)"]];

function limitRow(l = {}) {
  const row = h("div", { class: "row limit-row" });
  const kind = select("kind", KINDS, l.kind || "requests", { dataset: { loc: "kind" } });
  const window = h("input", { name: "window_s", type: "number", min: 1, max: 86400, value: l.window_s || 60, size: 6, dataset: { loc: "window_s" } });
  const windowField = field("Window (s)", window);
  const showWindow = () => { windowField.hidden = kind.value === "concurrent"; };
  kind.addEventListener("change", showWindow);
  showWindow();
  row.append(
    field("Kind", kind),
    field("Limit", h("input", { name: "limit", type: "number", min: 1, value: l.limit || "", required: true, size: 8, dataset: { loc: "limit" } })),
    windowField,
    field("Mode", select("mode", MODES, l.mode || "enforce", { dataset: { loc: "mode" } })),
    field("Rollout (%)", h("input", { name: "rollout_percent", type: "number", min: 0, max: 100, step: "any", value: l.rollout_percent ?? 100, size: 5, dataset: { loc: "rollout_percent" } })),
    field("Rollout by", select("rollout_by", ROLLOUT_BY, l.rollout_by || "key", { dataset: { loc: "rollout_by" } })),
    field("Redis down", select("on_redis_error", STORE_ERROR, l.on_redis_error || "", { dataset: { loc: "on_redis_error" } })),
    field("When full, substitute", h("input", { name: "substitute_model", value: l.substitute_model || "", size: 16, placeholder: "refuse (429)", dataset: { loc: "substitute_model" } })),
    field("On MCP tool calls", h("input", { name: "tools", value: (l.tools || []).join(", "), size: 16, placeholder: "model calls", dataset: { loc: "tools" } })),
    field("Locked", h("input", { name: "locked", type: "checkbox", checked: l.locked, dataset: { loc: "locked" } }), { class: "check" }),
    h("button", { type: "button", class: "danger", "aria-label": "Remove limit", onclick: () => row.remove() }, "Remove"));
  return row;
}

function describe(l) {
  const on = l.tools ? ` of the tools ${l.tools.join(", ")}` : "";
  if (l.kind === "concurrent") return `${l.limit} in flight${on}`;
  return `${l.limit} ${l.kind} / ${l.window_s} s${on}`;
}

// For a partial rollout by key, whether this key is in the share (as the gateway decides it).
function inShare(l) {
  if (!l.rollout || l.rollout.applies === null || l.rollout.applies === undefined) return "";
  return l.rollout.applies ? " (this key is in it)" : " (this key is monitored)";
}

function effectiveLimits(ctx, eff) {
  const origin = (level, id) => (level === "operator" ? "operator (configuration)" : `${level} ${nameOf(ctx, id)}`);
  const rows = (eff.limits || []).map((l) => h("tr", {},
    h("td", {}, `${l.level} ${nameOf(ctx, l.entity_id)}`), h("td", {}, describe(l) + (l.substitute_model ? `, then ${l.substitute_model}` : "")), h("td", {}, l.mode),
    h("td", { class: "num" }, `${l.rollout_percent}% of ${l.rollout_by}s` + inShare(l)),
    h("td", {}, origin(l.origin, l.origin_id) + (l.raised_from ? ` (raised from ${describe({ ...l, limit: l.raised_from.limit })}, ${l.raised_from.mode})` : "")),
    h("td", {}, l.locked ? "locked" : "")));
  return h("div", { class: "card", id: "effective-limits" }, h("h2", {}, "Effective rate limits of this key"),
    table(["on", "limit", "mode", "rollout", "from", "locked"], rows, { id: "effective-limits-table" }));
}

// The section: `fieldset` goes into the policy form; `read()` numbers the rows (so field errors such
// as `limits.0.limit` find their control) and returns the policy's `limits`; `effective(eff)` is the
// table of a key's effective limits.
export function limitSection(limits, ctx) {
  const fieldset = h("fieldset", { id: "limits-editor" }, h("legend", {}, "Rate limits"), (limits || []).map(limitRow));
  if (ctx.canWrite) {
    fieldset.append(h("button", { type: "button", class: "secondary", id: "add-limit", onclick: (ev) => ev.target.before(limitRow()) }, "Add limit"));
  }
  function read() {
    return [...fieldset.querySelectorAll(".limit-row")].map((row, i) => {
      row.dataset.loc = `limits.${i}`;
      row.querySelectorAll("[name]").forEach((c) => { c.dataset.loc = `limits.${i}.${c.name}`; });
      const val = (name) => row.querySelector(`[name=${name}]`);
      const limit = { kind: val("kind").value, limit: Number(val("limit").value), mode: val("mode").value,
        rollout_percent: Number(val("rollout_percent").value), rollout_by: val("rollout_by").value, locked: val("locked").checked };
      if (limit.kind !== "concurrent") limit.window_s = Number(val("window_s").value);
      if (val("on_redis_error").value) limit.on_redis_error = val("on_redis_error").value;
      const sub = val("substitute_model").value.trim();
      if (sub) limit.substitute_model = sub;
      const tools = val("tools").value.split(/[\s,]+/).filter(Boolean);
      if (tools.length) limit.tools = tools;
      return limit;
    });
  }
  return { fieldset, read, effective: (eff) => effectiveLimits(ctx, eff) };
}
