// The policy of an org, workspace, user or key as a form (PUT replaces it whole), and a key's
// effective policy with where each rule comes from.
import { api, field, get, h, loadNames, nameOf, select, showFieldErrors, table, usd } from "../api.js";
import { modelsEditor, modelsEffective } from "./policy_models.js";
import { limitSection } from "./policy_limits.js";
import { toolSection } from "./policy_tools.js";
import { loopSection } from "./policy_loops.js";
import { allowSection } from "./policy_allow.js";

const WINDOWS = ["total", "hour", "day", "week", "month"].map((w) => [w, w]);
const MODES = [["enforce", "enforce"], ["monitor", "monitor"]];
const INSUFFICIENT = [["refuse", "refuse"], ["clamp", "clamp"], ["substitute", "substitute a model"]];
const ACTIONS = ["redact", "block", "monitor", "pseudonymize"].map((a) => [a, a]);
const DIRECTIONS = ["both", "request", "response"].map((d) => [d, d]);
const ENTITIES = ["EMAIL", "PHONE", "US_SSN", "CREDIT_CARD", "IBAN", "IP_ADDRESS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "GITHUB_TOKEN",
  "SLACK_TOKEN", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "STRIPE_KEY", "GOOGLE_API_KEY", "PRIVATE_KEY", "JWT",
  "DE_TAX_ID", "FR_NIR", "ES_DNI", "ES_NIE", "IT_FISCAL_CODE", "NL_BSN", "PL_PESEL", "SE_PERSONNUMMER", "BE_NATIONAL_NUMBER",
  "FI_HETU", "AT_SVNR", "PERSON", "ADDRESS", "DATE_OF_BIRTH"];

function removeButton(what, row) {
  return h("button", { type: "button", class: "danger", "aria-label": `Remove ${what}`, onclick: () => row.remove() }, "Remove");
}

// A staged rollout: the share of keys an enforcing cap or rule acts for (the rest are monitored).
function rolloutField(x) {
  return field("Rollout (% of keys)", h("input", { name: "rollout_percent", type: "number", min: 0, max: 100, step: "any", size: 5,
    value: x.rollout_percent ?? 100, dataset: { loc: "rollout_percent" } }));
}

function rolloutNote(x) {
  if (!x.rollout) return "";
  const share = `rolled out to ${x.rollout.percent}%`;
  return x.rollout.applies === null ? ` (${share})` : ` (${share}; ${x.rollout.applies ? "this key is in it" : "this key is monitored"})`;
}

function capRow(c = {}) {
  const row = h("div", { class: "row cap-row" });
  row.append(
    field("Window", select("window", WINDOWS, c.window || "month", { dataset: { loc: "window" } })),
    field("Limit (USD)", h("input", { name: "limit_usd", value: c.limit_usd || "", required: true, inputmode: "decimal", size: 10, dataset: { loc: "limit_usd" } })),
    field("Mode", select("mode", MODES, c.mode || "enforce", { dataset: { loc: "mode" } })),
    field("When the rest is too small", select("on_insufficient", INSUFFICIENT, c.on_insufficient || "refuse", { dataset: { loc: "on_insufficient" } })),
    field("Substitute model", h("input", { name: "substitute_model", value: c.substitute_model || "", size: 16, placeholder: "when substituting", dataset: { loc: "substitute_model" } })),
    field("Substitute from (%)", h("input", { name: "substitute_at_percent", type: "number", min: 1, max: 99, value: c.substitute_at_percent ?? "", size: 4, placeholder: "when full", dataset: { loc: "substitute_at_percent" } })),
    field("Alert thresholds (%)", h("input", { name: "thresholds", value: (c.thresholds || []).join(", "), size: 10, placeholder: "50, 80, 100", dataset: { loc: "thresholds" } })),
    rolloutField(c),
    field("Locked", h("input", { name: "locked", type: "checkbox", checked: c.locked, dataset: { loc: "locked" } }), { class: "check" }),
    removeButton("cap", row));
  return row;
}

function ruleRow(r = {}) {
  const row = h("div", { class: "row rule-row" });
  row.append(
    field("Entity types", h("input", { name: "entities", value: (r.entities || []).join(", "), required: true, list: "entity-types", size: 24, dataset: { loc: "entities" } })),
    field("Action", select("action", ACTIONS, r.action || "redact", { dataset: { loc: "action" } })),
    field("Direction", select("direction", DIRECTIONS, r.direction || "both", { dataset: { loc: "direction" } })),
    // findings below this confidence (0-100) are only counted; empty: each type's default
    field("Min confidence", h("input", { name: "min_confidence", type: "number", min: 0, max: 100, step: 1, size: 4,
      value: r.min_confidence ?? "", placeholder: "default", dataset: { loc: "min_confidence" } })),
    field("Per type", h("input", { name: "min_confidence_by_type", size: 16, placeholder: "PERSON=70",
      value: Object.entries(r.min_confidence_by_type || {}).map(([k, v]) => `${k}=${v}`).join(", "), dataset: { loc: "min_confidence_by_type" } })),
    rolloutField(r),
    field("Locked", h("input", { name: "locked", type: "checkbox", checked: r.locked, dataset: { loc: "locked" } }), { class: "check" }),
    removeButton("rule", row));
  return row;
}

function patternRow(p = {}) {
  const row = h("div", { class: "row pattern-row" });
  row.append(
    field("Entity name", h("input", { name: "entity", value: p.entity || "", required: true, pattern: "[A-Z][A-Z0-9_]*", dataset: { loc: "entity" } })),
    field("Pattern (regular expression)", h("input", { name: "pattern", value: p.pattern || "", required: true, size: 30, dataset: { loc: "pattern" } })),
    removeButton("pattern", row));
  return row;
}

// Rows carry their index in data-loc ("caps.0"), so the API's field errors land beside them.
function numberRows(form) {
  for (const [kind, cls] of [["caps", ".cap-row"], ["redaction", ".rule-row"], ["custom_patterns", ".pattern-row"]]) {
    form.querySelectorAll(cls).forEach((row, i) => {
      row.dataset.loc = `${kind}.${i}`;
      row.querySelectorAll("[name]").forEach((c) => { c.dataset.loc = `${kind}.${i}.${c.name}`; });
    });
  }
}

function readPolicy(form) {
  const val = (row, name) => row.querySelector(`[name=${name}]`);
  const caps = [...form.querySelectorAll(".cap-row")].map((row) => {
    const cap = { window: val(row, "window").value, limit_usd: val(row, "limit_usd").value.trim(), mode: val(row, "mode").value,
      on_insufficient: val(row, "on_insufficient").value, locked: val(row, "locked").checked,
      rollout_percent: Number(val(row, "rollout_percent").value || 100) };
    const sub = val(row, "substitute_model").value.trim();
    if (sub) cap.substitute_model = sub;
    const from = val(row, "substitute_at_percent").value;
    if (from) cap.substitute_at_percent = Number(from);
    const t = val(row, "thresholds").value.split(/[\s,]+/).filter(Boolean).map(Number);
    if (t.length) cap.thresholds = t;
    return cap;
  });
  const redaction = [...form.querySelectorAll(".rule-row")].map((row) => {
    const rule = { entities: val(row, "entities").value.split(/[\s,]+/).filter(Boolean), action: val(row, "action").value,
      direction: val(row, "direction").value, locked: val(row, "locked").checked,
      rollout_percent: Number(val(row, "rollout_percent").value || 100) };
    const min = val(row, "min_confidence").value;
    if (min !== "") rule.min_confidence = Number(min);
    // `PERSON=70, ADDRESS=40`; a malformed pair goes to the API as it is, which names the field
    const pairs = val(row, "min_confidence_by_type").value.split(",").map((p) => p.trim()).filter(Boolean);
    if (pairs.length) rule.min_confidence_by_type = Object.fromEntries(pairs.map((p) => {
      const [k, v] = p.split("=").map((x) => (x || "").trim());
      return [k, v === "" || v === undefined ? null : Number(v)];
    }));
    return rule;
  });
  const custom_patterns = [...form.querySelectorAll(".pattern-row")].map((row) => ({ entity: val(row, "entity").value.trim(), pattern: val(row, "pattern").value }));
  return { caps, redaction, custom_patterns };
}

function targets(ctx) {
  const out = [];
  if (!ctx.who.workspace_id && ctx.orgId) out.push(["org", ctx.orgId, `Organization ${nameOf(ctx, ctx.orgId)}`]);
  for (const w of ctx.workspaces) out.push(["workspace", w.id, `Workspace ${w.name}`]);
  for (const u of ctx.users) out.push(["user", u.id, `User ${u.name} (${nameOf(ctx, u.workspace_id)})`]);
  for (const k of ctx.keys) if (!k.revoked_at) out.push(["key", k.id, `Key ${k.name} (${nameOf(ctx, k.workspace_id)})`]);
  return out;
}

const PATHS = { org: "orgs", workspace: "workspaces", user: "users", key: "keys" };

function effectiveView(ctx, eff) {
  const origin = (level, id) => (level === "operator" ? "operator (configuration)" : `${level} ${nameOf(ctx, id)}`);
  return h("div", { class: "card", id: "effective" }, h("h2", {}, "Effective policy of this key"),
    h("p", { class: "muted" }, eff.redaction_enabled ? `Redaction on; types without a rule: ${eff.default_action || "redact"}.` : "Redaction is off in this gateway's configuration."),
    h("h3", {}, "Caps"),
    table(["level", "window", "limit ($)", "mode", "when short", "from", "locked"], eff.caps.map((c) =>
      h("tr", {}, h("td", {}, `${c.level} ${nameOf(ctx, c.entity_id)}`), h("td", {}, c.window), h("td", { class: "num" }, usd(c.limit_nusd)), h("td", {}, c.mode + rolloutNote(c)),
        h("td", {}, c.on_insufficient + (c.substitute_model ? ` → ${c.substitute_model}` : "") + (c.substitute_at_percent ? ` from ${c.substitute_at_percent}%` : "")), h("td", {}, c.origin + (c.clamped_from ? " (lowered by a lock)" : "")), h("td", {}, c.locked ? "locked" : "")))),
    h("h3", {}, "Redaction rules"),
    table(["types", "action", "direction", "min confidence", "from", "locked"], eff.redaction.map((r) =>
      h("tr", {}, h("td", {}, r.entities.join(", ")), h("td", {}, r.action + rolloutNote(r)), h("td", {}, r.direction),
        h("td", { class: "num" }, r.min_confidence ?? "default"),
        h("td", {}, origin(r.origin, r.origin_id) + (r.raised_from ? ` (raised from ${r.raised_from.action})` : "")), h("td", {}, r.locked ? "locked" : "")))),
    h("h3", {}, "Custom patterns"),
    table(["type", "pattern", "from"], eff.custom_patterns.map((p) => h("tr", {}, h("td", {}, p.entity), h("td", {}, h("code", {}, p.pattern)), h("td", {}, origin(p.origin, p.origin_id))))),
    modelsEffective(ctx, eff.models));
}

export async function render(view, ctx) {
  await loadNames(ctx);
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const all = targets(ctx);
  const level = params.get("level") || (all[0] || [])[0];
  const id = params.get("id") || (all.find((t) => t[0] === level) || [])[1];
  const pick = select("target", all.map(([l, i, label]) => [`${l}:${i}`, label]), `${level}:${id}`, { id: "policy-target" });
  pick.addEventListener("change", () => { const [l, i] = pick.value.split(":"); location.hash = `#/policies?level=${l}&id=${i}`; });
  view.append(h("h1", {}, "Policies"), h("div", { class: "row" }, field("Policy of", pick)));
  if (!id) return;
  const path = `/${PATHS[level]}/${id}/policy`;
  const policy = await get(path);
  const caps = h("fieldset", { id: "caps-editor" }, h("legend", {}, "Spend caps"), policy.caps.map(capRow));
  const rules = h("fieldset", { id: "rules-editor" }, h("legend", {}, "Redaction rules"), policy.redaction.map(ruleRow));
  const patterns = h("fieldset", { id: "patterns-editor" }, h("legend", {}, "Custom patterns"), policy.custom_patterns.map(patternRow));
  const models = modelsEditor(ctx, policy.models);  // policy_models.js: model access rules
  const limits = limitSection(policy.limits, ctx);  // policy_limits.js: rate limits
  const loops = loopSection(policy.loops || [], ctx);  // policy_loops.js: runaway-loop rules
  const tools = toolSection(policy.tools, ctx);  // policy_tools.js: tool access (MCP and model traffic)
  const allow = allowSection(policy.allow_terms, ctx);  // policy_allow.js: allowed terms
  const status = h("p", { class: "form-error bad", role: "alert" });
  const saved = h("p", { id: "policy-saved", role: "status" });
  const form = h("form", { id: "policy-form", class: "card editor" }, h("h2", {}, `${level} policy: ${nameOf(ctx, id)}`), caps, limits.fieldset, rules, patterns, allow.fieldset, models, tools.fieldset, loops.editor,
    h("datalist", { id: "entity-types" }, ENTITIES.map((e) => h("option", { value: e }))), status, saved);
  if (ctx.canWrite) {
    caps.append(h("button", { type: "button", class: "secondary", id: "add-cap", onclick: (ev) => ev.target.before(capRow()) }, "Add cap"));
    rules.append(h("button", { type: "button", class: "secondary", id: "add-rule", onclick: (ev) => ev.target.before(ruleRow()) }, "Add rule"));
    patterns.append(h("button", { type: "button", class: "secondary", id: "add-pattern", onclick: (ev) => ev.target.before(patternRow()) }, "Add pattern"));
    form.append(h("div", { class: "row" }, h("button", { type: "submit", id: "save-policy" }, "Save policy"),
      h("button", { type: "button", class: "danger", id: "clear-policy", onclick: async () => {
        if (!confirm(`Remove the ${level} policy of ${nameOf(ctx, id)}? Its caps, rules and patterns go; the policies above it still apply.`)) return;
        try { await api("DELETE", path); view.replaceChildren(); await render(view, ctx); } catch (err) { showFieldErrors(form, err); }
      } }, "Remove policy")));
  } else {
    form.querySelectorAll("input, select, textarea").forEach((c) => { c.disabled = true; });
    form.querySelectorAll("button").forEach((b) => b.remove());
  }
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    numberRows(form);
    models.number();
    allow.number();
    saved.textContent = "";
    try {
      await api("PUT", path, { ...readPolicy(form), allow_terms: allow.read(), models: models.read(), limits: limits.read(), loops: loops.read(), tools: tools.read() });
      showFieldErrors(form, null);
      status.textContent = "";
      saved.textContent = "Saved.";
      if (level === "key") await showEffective();
    } catch (err) {
      showFieldErrors(form, err);
    }
  });
  view.append(form);
  const effective = h("div");
  view.append(effective);
  async function showEffective() {
    const eff = await get(`/keys/${id}/effective-policy`);
    effective.replaceChildren(effectiveView(ctx, eff), allow.effective(eff), limits.effective(eff), tools.effective(eff), loops.effective(eff), h("p", {}, h("a", { href: `#/try?key=${id}` }, "Try this key's redaction on a text")));
  }
  if (level === "key") await showEffective();
}
