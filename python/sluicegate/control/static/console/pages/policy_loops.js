// Runaway-loop rules of a policy (at most one per kind: repeat, rate), and the ones in force for a
// key with where each comes from. policies.js puts `loopSection(...).editor` in its form, sends
// `read()` as the policy's `loops`, and shows `effective(eff)` under a key's effective policy.
import { field, h, nameOf, select, table } from "../api.js";

const DETECT = [["repeat", "repeat: the same request again"], ["rate", "rate: a jump over the key's baseline"]];
const ACTIONS = ["block", "throttle", "monitor"].map((a) => [a, a]);
const MODES = [["enforce", "enforce"], ["monitor", "monitor"]];
const ON_ERROR = [["", "section default (fail open)"], ["fail_open", "fail open"], ["fail_closed", "fail closed"]];
const NUMBERS = [
  // name, label, default, which kinds show it
  ["max_repeats", "More than (requests)", 5, "repeat"],
  ["window_s", "Within / window (s)", 60, "both"],
  ["factor", "Factor over baseline", 10, "rate"],
  ["min_requests", "At least (requests)", 60, "rate"],
  ["baseline_s", "Baseline over (s)", 3600, "rate"],
  ["cooldown_s", "Block for (s)", 600, "both"],
  ["throttle_interval_s", "Throttle: one per (s)", 30, "both"],
  ["rollout_percent", "Rollout (%)", 100, "both"],
];

function loopRow(r = {}) {
  const row = h("div", { class: "row loop-row" });
  const detect = select("detect", DETECT, r.detect || "repeat", { dataset: { loc: "detect" } });
  const numbers = NUMBERS.map(([name, label, dflt, kind]) => field(label,
    h("input", { name, type: "number", min: name === "rollout_percent" ? 0 : 1, step: name === "factor" || name === "rollout_percent" ? "any" : 1,
      value: r[name] ?? dflt, size: 6, dataset: { loc: name, kind } })));
  const show = () => numbers.forEach((label) => {
    const kind = label.querySelector("input").dataset.kind;
    label.style.display = kind !== "both" && kind !== detect.value ? "none" : "";
  });
  detect.addEventListener("change", show);
  row.append(field("Detect", detect), ...numbers,
    field("Action", select("action", ACTIONS, r.action || "block", { dataset: { loc: "action" } })),
    field("Mode", select("mode", MODES, r.mode || "enforce", { dataset: { loc: "mode" } })),
    field("Redis down", select("on_store_error", ON_ERROR, r.on_store_error || "", { dataset: { loc: "on_store_error" } })),
    field("Locked", h("input", { name: "locked", type: "checkbox", checked: r.locked, dataset: { loc: "locked" } }), { class: "check" }),
    h("button", { type: "button", class: "danger", "aria-label": "Remove loop rule", onclick: () => row.remove() }, "Remove"));
  show();
  return row;
}

function readRow(row, i) {
  row.dataset.loc = `loops.${i}`;
  row.querySelectorAll("[name]").forEach((c) => { c.dataset.loc = `loops.${i}.${c.name}`; });
  const val = (name) => row.querySelector(`[name=${name}]`);
  const rule = { detect: val("detect").value, action: val("action").value, mode: val("mode").value, locked: val("locked").checked };
  for (const [name, , , kind] of NUMBERS) {
    if (kind === "both" || kind === rule.detect) rule[name] = Number(val(name).value);
  }
  if (val("on_store_error").value) rule.on_store_error = val("on_store_error").value;
  return rule;
}

function describe(r) {
  const what = r.detect === "repeat"
    ? `more than ${r.max_repeats} identical requests in ${r.window_s} s`
    : `over ${r.factor}x the baseline (${r.baseline_s} s) and at least ${r.min_requests} in ${r.window_s} s`;
  const action = r.action === "block" ? `block ${r.cooldown_s} s` : r.action === "throttle" ? `throttle: one per ${r.throttle_interval_s} s` : "monitor";
  return [what, action];
}

export function loopSection(rules, ctx) {
  const editor = h("fieldset", { id: "loops-editor" }, h("legend", {}, "Runaway loops"),
    h("p", { class: "muted" }, "The nearest level's rule of each kind applies; a locked rule is a floor for the levels below."),
    rules.map(loopRow));
  if (ctx.canWrite) {
    editor.append(h("button", { type: "button", class: "secondary", id: "add-loop", onclick: (ev) => ev.target.before(loopRow()) }, "Add loop rule"));
  }
  const read = () => [...editor.querySelectorAll(".loop-row")].map(readRow);
  const effective = (eff) => {
    const origin = (level, id) => (level === "operator" ? "operator (configuration)" : `${level} ${nameOf(ctx, id)}`);
    return h("div", { id: "effective-loops" }, h("h3", {}, "Runaway-loop rules"),
      table(["kind", "detects", "action", "mode", "from", "locked"], (eff.loops || []).map((r) => {
        const [what, action] = describe(r);
        const raised = r.raised_from ? ` (raised from ${origin(r.raised_from.level, r.raised_from.id)}'s laxer rule)` : "";
        return h("tr", { dataset: { detect: r.detect } }, h("td", {}, r.detect), h("td", {}, what), h("td", {}, action),
          h("td", {}, `${r.mode}${r.rollout ? ` (rollout ${r.rollout.percent}%: this key is ${r.rollout.applies ? "in" : "out"})` : ""}`),
          h("td", { class: "origin" }, origin(r.origin, r.origin_id) + raised), h("td", {}, r.locked ? "locked" : ""));
      })));
  };
  return { editor, read, effective };
}
