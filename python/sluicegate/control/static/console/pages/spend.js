// Spend over a time range, grouped by workspace, user, key or model, as a chart with values and a
// table; CSV export from the API's rows.
import { downloadCsv, field, get, h, loadNames, nameOf, scopeBase, select, startOfDay, table, usd } from "../api.js";

const RANGES = [["today", "Today (UTC)"], ["7d", "Last 7 days"], ["30d", "Last 30 days"], ["custom", "Custom"]];
const GROUPS = [["workspace", "Workspace"], ["user", "User"], ["key", "Key"], ["model", "Model"]];
const COLUMN = { workspace: "workspace_id", user: "user_id", key: "key_id", model: "model" };
const SVG = "http://www.w3.org/2000/svg";

function svg(name, attrs, text) {
  const el = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  if (text !== undefined) el.textContent = text;
  return el;
}

// Horizontal bars, one per group, with the value printed at the end and a labelled value axis.
function chart(items) {
  const width = 900, rowH = 26, left = 220, plot = 560;
  const max = Math.max(1, ...items.map((i) => i.value));
  const height = 40 + rowH * Math.max(1, items.length);
  const root = svg("svg", { class: "chart", id: "spend-chart", viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img", "aria-label": "Spend by group" });
  for (let t = 0; t <= 4; t++) {
    const x = left + (plot * t) / 4;
    root.append(svg("line", { x1: x, x2: x, y1: 4, y2: height - 24, stroke: "#e5e7eb" }), svg("text", { x, y: height - 8, class: "axis", "text-anchor": "middle" }, usd(Math.round((max * t) / 4))));
  }
  items.forEach((item, n) => {
    const y = 8 + n * rowH, w = Math.max(2, Math.round((plot * item.value) / max));
    root.append(svg("text", { x: left - 8, y: y + 14, "text-anchor": "end" }, item.label.length > 32 ? item.label.slice(0, 31) + "…" : item.label));
    root.append(svg("rect", { x: left, y, width: w, height: rowH - 8, fill: "#1d4ed8", "data-label": item.label, "data-value": item.value }));
    root.append(svg("text", { x: left + w + 6, y: y + 14, class: "axis" }, usd(item.value)));
  });
  if (!items.length) root.append(svg("text", { x: 10, y: 24, class: "axis" }, "No spend in this range."));
  return root;
}

export function range(kind, from, to) {
  const now = new Date();
  if (kind === "custom" && from) return [new Date(from + "T00:00:00Z"), to ? new Date(new Date(to + "T00:00:00Z").getTime() + 86400000) : null];
  const days = { today: 0, "7d": 6, "30d": 29 }[kind] ?? 0;
  return [new Date(startOfDay(now).getTime() - days * 86400000), null];
}

export async function render(view, ctx) {
  await loadNames(ctx);
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const kind = params.get("range") || "7d";
  const group = params.get("group") || "workspace";
  const from = params.get("from") || "", to = params.get("to") || "";
  const form = h("form", { id: "spend-form", class: "row card" },
    field("Range", select("range", RANGES, kind, { id: "spend-range" })),
    field("From (UTC day)", h("input", { type: "date", name: "from", value: from, id: "spend-from" })),
    field("To (UTC day, included)", h("input", { type: "date", name: "to", value: to, id: "spend-to" })),
    field("Group by", select("group", GROUPS, group, { id: "spend-group" })),
    h("button", { type: "submit" }, "Show"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams(new FormData(form));
    location.hash = "#/spend?" + q.toString();
  });
  form.querySelectorAll("select").forEach((s) => s.addEventListener("change", () => form.requestSubmit()));
  const [since, until] = range(kind, from, to);
  const q = new URLSearchParams({ group_by: group, since: since.toISOString() });
  if (until) q.set("until", until.toISOString());
  const answer = await get(`${scopeBase(ctx)}/spend?${q}`);
  const rows = [...answer.data].sort((a, b) => b.cost_nusd - a.cost_nusd);
  const label = (r) => (group === "model" ? r.model || "(none)" : nameOf(ctx, r[COLUMN[group]]) || "(none)");
  const csv = h("button", { type: "button", id: "export-csv", class: "secondary" }, "Export CSV");
  csv.addEventListener("click", () => {
    const head = [group, `${group}_id`, "calls", "input_tokens", "output_tokens", "cost_nusd", "cost_usd"];
    downloadCsv(`spend-${group}-${since.toISOString().slice(0, 10)}.csv`, [head, ...rows.map((r) =>
      [label(r), group === "model" ? r.model || "" : r[COLUMN[group]] || "", r.calls, r.input_tokens, r.output_tokens, r.cost_nusd, (r.cost_nusd / 1e9).toFixed(9)])]);
  });
  view.append(h("h1", {}, "Spend"), form,
    h("div", { class: "card" },
      h("h2", {}, `Total ${usd(answer.total_cost_nusd)} since ${since.toISOString().slice(0, 10)}${until ? " until " + until.toISOString().slice(0, 10) : ""}`),
      chart(rows.map((r) => ({ label: label(r), value: r.cost_nusd }))),
      h("div", { class: "row" }, csv),
      table([group, "calls", "input tokens", "output tokens", "cost ($)"], rows.map((r) =>
        h("tr", { dataset: { group: r[COLUMN[group]] || "", cost: r.cost_nusd } }, h("td", {}, label(r)), h("td", { class: "num" }, r.calls),
          h("td", { class: "num" }, r.input_tokens), h("td", { class: "num" }, r.output_tokens), h("td", { class: "num" }, usd(r.cost_nusd)))), { id: "spend-table", dataset: { total: answer.total_cost_nusd } })));
}
