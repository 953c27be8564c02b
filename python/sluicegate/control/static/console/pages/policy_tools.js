// Tool access rules in the policy editor: the `tools` part of a policy (allow and deny lists of
// `server/tool` patterns for the MCP gateway, their locks, mode and rollout, and whether they
// apply to the tools of model traffic too), and a key's effective tool lists, level by level.
// Every control carries its API location in data-loc ("tools.deny"), so the admin API's field
// errors (422, and a lock's 409) land beside it. policies.js calls `toolSection` once.
import { field, h, nameOf, select, table } from "../api.js";

const MODES = [["enforce", "enforce"], ["monitor", "monitor"]];
const BY = [["key", "keys"], ["request", "requests"]];
const MODEL_CALLS = [["off", "MCP only"], ["remove", "remove the call"], ["block", "refuse the answer (403)"]];

const list = (text) => text.split(/[\s,]+/).filter(Boolean);

export function toolSection(tools, ctx) {
  const t = tools || {};
  const allow = h("input", { name: "tools_allow", value: t.allow ? t.allow.join(", ") : "", size: 40, placeholder: "docs/*, search/* (empty: no allow list)", dataset: { loc: "tools.allow" } });
  const deny = h("input", { name: "tools_deny", value: (t.deny || []).join(", "), size: 40, placeholder: "*/delete_*, delete_*", dataset: { loc: "tools.deny" } });
  const allowLocked = h("input", { name: "tools_allow_locked", type: "checkbox", checked: t.allow_locked, dataset: { loc: "tools.allow_locked" } });
  const denyLocked = h("input", { name: "tools_deny_locked", type: "checkbox", checked: t.deny_locked, dataset: { loc: "tools.deny_locked" } });
  const mode = select("tools_mode", MODES, t.mode || "enforce", { dataset: { loc: "tools.mode" } });
  const rollout = h("input", { name: "tools_rollout_percent", type: "number", min: 0, max: 100, step: "any", value: t.rollout_percent ?? 100, size: 5, dataset: { loc: "tools.rollout_percent" } });
  const by = select("tools_rollout_by", BY, t.rollout_by || "key", { dataset: { loc: "tools.rollout_by" } });
  const modelCalls = select("tools_model_calls", MODEL_CALLS, t.model_calls || "off", { dataset: { loc: "tools.model_calls" } });
  const fieldset = h("fieldset", { id: "tools-editor" }, h("legend", {}, "Tool access"),
    h("p", { class: "muted" }, "Patterns name server/tool for the MCP gateway; a pattern without a / (delete_*) names a tool of model traffic."),
    h("div", { class: "row" }, field("Allowed tools (patterns)", allow), field("Locked", allowLocked, { class: "check" })),
    h("div", { class: "row" }, field("Denied tools (patterns)", deny), field("Locked", denyLocked, { class: "check" })),
    h("div", { class: "row" }, field("Mode", mode), field("Rollout (%)", rollout), field("Rollout by", by),
      field("Tools in model traffic", modelCalls)));
  function read() {
    const out = {
      allow: allow.value.trim() ? list(allow.value) : null,
      allow_locked: allowLocked.checked,
      deny: list(deny.value),
      deny_locked: denyLocked.checked,
      mode: mode.value,
      rollout_percent: Number(rollout.value),
      rollout_by: by.value,
      model_calls: modelCalls.value,
    };
    return out.allow === null && !out.deny.length ? null : out;
  }
  return { fieldset, read, effective: (eff) => effectiveTools(ctx, eff) };
}

function effectiveTools(ctx, eff) {
  const origin = (level, id) => (level === "operator" ? "operator (configuration)" : `${level} ${nameOf(ctx, id)}`);
  const lock = (on) => (on ? " (locked)" : "");
  const levels = (eff.tools && eff.tools.levels) || [];
  return h("div", { class: "card", id: "effective-tools" }, h("h2", {}, "Effective tool access of this key"),
    table(["from", "allow", "deny", "mode", "model traffic"], levels.map((l) =>
      h("tr", { dataset: { level: l.level } }, h("td", {}, origin(l.level, l.id)),
        h("td", {}, l.allow === null ? "any" : (l.allow.join(", ") || "nothing") + lock(l.allow_locked)),
        h("td", {}, l.deny.join(", ") + lock(l.deny_locked && l.deny.length)),
        h("td", {}, l.mode === "enforce" && l.rollout_percent < 100 ? `enforce for ${l.rollout_percent}% of ${l.rollout_by}s` : l.mode),
        h("td", {}, (MODEL_CALLS.find(([v]) => v === (l.model_calls || "off")) || ["", ""])[1]))), { id: "effective-tools-table" }));
}
