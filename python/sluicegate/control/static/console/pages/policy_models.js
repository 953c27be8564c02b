// Model access rules in the policy editor: the `models` part of a policy (allow and deny lists of
// model patterns, aliases, output ceilings, rules on request fields, mode and rollout) as one
// fieldset of the policy form, and the key's effective model rules with where each comes from.
// Every control carries its API location in data-loc ("models.ceilings.0"), so the admin API's
// field errors (422, and a lock's 409) land beside it.
import { field, h, nameOf, select, table } from "../api.js";

const MODES = [["enforce", "enforce"], ["monitor", "monitor"]];
const BY = [["key", "keys"], ["request", "requests"]];
const CEILING_ACTIONS = [["clamp", "clamp (lower it)"], ["refuse", "refuse (400)"]];
const OPS = ["lte", "gte", "eq", "ne", "in", "not_in", "absent"].map((o) => [o, o]);

const list = (text) => text.split(/[\s,]+/).filter(Boolean);
const shown = (v) => (v === null || v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v));

function remove(what, row) {
  return h("button", { type: "button", class: "danger", "aria-label": `Remove ${what}`, onclick: () => row.remove() }, "Remove");
}

function aliasRow(name = "", target = "") {
  const row = h("div", { class: "row model-alias-row" });
  row.append(
    field("Alias", h("input", { name: "alias_name", value: name, required: true, size: 14, placeholder: "fast" })),
    field("Stands for the model", h("input", { name: "alias_target", value: target, required: true, size: 24, placeholder: "gpt-4o-mini" })),
    remove("alias", row));
  return row;
}

function ceilingRow(c = {}) {
  const row = h("div", { class: "row model-ceiling-row" });
  row.append(
    field("Max output tokens", h("input", { name: "max_output_tokens", type: "number", min: 1, value: c.max_output_tokens || "", required: true, size: 8 })),
    field("Above it", select("ceiling_action", CEILING_ACTIONS, c.action || "clamp")),
    field("For models", h("input", { name: "ceiling_models", value: (c.models || ["*"]).join(", "), size: 18 })),
    field("Locked", h("input", { name: "ceiling_locked", type: "checkbox", checked: c.locked }), { class: "check" }),
    remove("ceiling", row));
  return row;
}

function paramRow(p = {}) {
  const row = h("div", { class: "row model-param-row" });
  row.append(
    field("Request field", h("input", { name: "param_field", value: p.field || "", required: true, size: 14, placeholder: "temperature" })),
    field("Must be", select("param_op", OPS, p.op || "lte")),
    field("Value (JSON)", h("input", { name: "param_value", value: shown(p.value), size: 16, placeholder: "1" })),
    remove("field rule", row));
  return row;
}

function parseValue(op, text) {
  if (op === "absent") return undefined;
  const t = text.trim();
  try { return JSON.parse(t); } catch { /* not JSON: text, or a list of texts */ }
  return op === "in" || op === "not_in" ? list(t) : t;
}

// The fieldset for a policy's `models` (null: none). Its `read()` gives the `models` to PUT (null
// when nothing is set); `number()` writes the data-loc of every control before a save.
export function modelsEditor(ctx, models) {
  const m = models || {};
  const box = h("fieldset", { id: "models-editor" }, h("legend", {}, "Model access"));
  const allow = h("input", { name: "allow", value: m.allow ? m.allow.join(", ") : "", size: 40, placeholder: "gpt-4o*, claude-* (empty: no allow list)", dataset: { loc: "models.allow" } });
  const deny = h("input", { name: "deny", value: (m.deny || []).join(", "), size: 40, placeholder: "*-preview", dataset: { loc: "models.deny" } });
  const allowLocked = h("input", { name: "allow_locked", type: "checkbox", checked: m.allow_locked, dataset: { loc: "models.allow_locked" } });
  const denyLocked = h("input", { name: "deny_locked", type: "checkbox", checked: m.deny_locked, dataset: { loc: "models.deny_locked" } });
  const mode = select("models_mode", MODES, m.mode || "enforce", { dataset: { loc: "models.mode" } });
  const rollout = h("input", { name: "rollout_percent", type: "number", min: 0, max: 100, step: "any", value: m.rollout_percent ?? 100, size: 5, dataset: { loc: "models.rollout_percent" } });
  const by = select("rollout_by", BY, m.rollout_by || "key", { dataset: { loc: "models.rollout_by" } });
  const aliases = h("div", { id: "model-aliases", dataset: { loc: "models.aliases" } }, Object.entries(m.aliases || {}).map(([n, t]) => aliasRow(n, t)));
  const ceilings = h("div", { id: "model-ceilings", dataset: { loc: "models.ceilings" } }, (m.ceilings || []).map(ceilingRow));
  const params = h("div", { id: "model-params", dataset: { loc: "models.params" } }, (m.params || []).map(paramRow));
  box.append(
    h("div", { class: "row" }, field("Allowed models (patterns)", allow), field("Locked", allowLocked, { class: "check" })),
    h("div", { class: "row" }, field("Denied models (patterns)", deny), field("Locked", denyLocked, { class: "check" })),
    h("div", { class: "row" }, field("Mode", mode), field("Rollout (%)", rollout), field("Rollout by", by)),
    h("h3", {}, "Aliases"), aliases,
    h("h3", {}, "Output ceilings"), ceilings,
    h("h3", {}, "Request field rules"), params);
  if (ctx.canWrite) {
    aliases.after(h("button", { type: "button", class: "secondary", id: "add-alias", onclick: () => aliases.append(aliasRow()) }, "Add alias"));
    ceilings.after(h("button", { type: "button", class: "secondary", id: "add-ceiling", onclick: () => ceilings.append(ceilingRow()) }, "Add ceiling"));
    params.after(h("button", { type: "button", class: "secondary", id: "add-param", onclick: () => params.append(paramRow()) }, "Add field rule"));
  }
  const val = (row, name) => row.querySelector(`[name=${name}]`);
  box.number = () => {
    aliases.querySelectorAll(".model-alias-row").forEach((row) => {
      const name = val(row, "alias_name").value.trim();
      row.dataset.loc = `models.aliases.${name}`;
      row.querySelectorAll("[name]").forEach((c) => { c.dataset.loc = `models.aliases.${name}`; });
    });
    for (const [kind, holder, cls] of [["ceilings", ceilings, ".model-ceiling-row"], ["params", params, ".model-param-row"]]) {
      holder.querySelectorAll(cls).forEach((row, i) => {
        row.dataset.loc = `models.${kind}.${i}`;
        row.querySelectorAll("[name]").forEach((c) => { c.dataset.loc = `models.${kind}.${i}.${c.name.replace(/^(ceiling|param)_/, "")}`; });
      });
    }
  };
  box.read = () => {
    const out = {
      allow: allow.value.trim() ? list(allow.value) : null,
      allow_locked: allowLocked.checked,
      deny: list(deny.value),
      deny_locked: denyLocked.checked,
      aliases: Object.fromEntries([...aliases.querySelectorAll(".model-alias-row")].map((row) => [val(row, "alias_name").value.trim(), val(row, "alias_target").value.trim()])),
      ceilings: [...ceilings.querySelectorAll(".model-ceiling-row")].map((row) => ({
        max_output_tokens: Number(val(row, "max_output_tokens").value), action: val(row, "ceiling_action").value,
        models: list(val(row, "ceiling_models").value), locked: val(row, "ceiling_locked").checked })),
      params: [...params.querySelectorAll(".model-param-row")].map((row) => {
        const op = val(row, "param_op").value;
        const rule = { field: val(row, "param_field").value.trim(), op };
        const value = parseValue(op, val(row, "param_value").value);
        if (value !== undefined) rule.value = value;
        return rule;
      }),
      mode: mode.value,
      rollout_percent: Number(rollout.value),
      rollout_by: by.value,
    };
    const empty = out.allow === null && !out.deny.length && !Object.keys(out.aliases).length && !out.ceilings.length && !out.params.length;
    return empty ? null : out;
  };
  return box;
}

// The key's effective model rules: every level's, from the operator's down (each applies), the
// aliases in force, and the ceilings a lower level replaced.
export function modelsEffective(ctx, models) {
  const origin = (level, id) => (level === "operator" ? "operator (configuration)" : `${level} ${nameOf(ctx, id)}`);
  const lock = (on) => (on ? " (locked)" : "");
  const ceiling = (c) => `${c.max_output_tokens} for ${c.models.join(", ")}, ${c.action}${lock(c.locked)}`;
  const rule = (p) => (p.op === "absent" ? `${p.field} absent` : `${p.field} ${p.op} ${JSON.stringify(p.value)}`);
  return h("div", { id: "effective-models" },
    h("h3", {}, "Model access"),
    table(["from", "allow", "deny", "output ceilings", "field rules", "mode"], models.levels.map((l) =>
      h("tr", { dataset: { level: l.level } }, h("td", {}, origin(l.level, l.id)),
        h("td", {}, l.allow === null ? "any" : (l.allow.join(", ") || "nothing") + lock(l.allow_locked)),
        h("td", {}, l.deny.join(", ") + lock(l.deny_locked && l.deny.length)),
        h("td", {}, l.ceilings.map(ceiling).join("; ")), h("td", {}, l.params.map(rule).join("; ")),
        h("td", {}, l.mode === "enforce" && l.rollout_percent < 100 ? `enforce for ${l.rollout_percent}% of ${l.rollout_by}s` : l.mode)))),
    h("h3", {}, "Model aliases"),
    table(["alias", "stands for", "from"], models.aliases.map((a) =>
      h("tr", { dataset: { alias: a.name } }, h("td", {}, a.name), h("td", {}, a.target), h("td", {}, origin(a.origin, a.origin_id))))),
    models.replaced_ceilings.length ? h("p", { class: "muted" }, "Replaced below (not in force): " +
      models.replaced_ceilings.map((c) => `${ceiling(c)} from ${origin(c.origin, c.origin_id)}`).join("; ")) : null);
}
