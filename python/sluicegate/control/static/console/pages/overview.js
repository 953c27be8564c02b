// Spend today and this month against every cap, the caps closest to their limit, latest refusals and redactions.
import { get, h, loadNames, nameOf, scopeBase, startOfDay, startOfMonth, table, usd, when } from "../api.js";

const REFUSALS = new Set(["refuse", "block", "clamp", "store_unavailable"]);

export function capRow(ctx, c) {
  const used = (c.spent_nusd || 0) + (c.reserved_nusd || 0);
  const pct = c.limit_nusd ? (100 * used) / c.limit_nusd : 0;
  const fill = h("div", { class: "fill" + (pct >= 80 ? " hot" : "") });
  fill.style.width = Math.min(100, pct).toFixed(1) + "%";
  return h("tr", { dataset: { cap: `${c.level}:${c.id}:${c.window}`, percent: pct.toFixed(1) } },
    h("td", {}, `${c.level} ${nameOf(ctx, c.id)}`),
    h("td", {}, c.window), h("td", {}, c.mode),
    h("td", { class: "num" }, usd(c.spent_nusd)), h("td", { class: "num" }, usd(c.reserved_nusd)), h("td", { class: "num" }, usd(c.limit_nusd)),
    h("td", {}, h("div", { class: "track", role: "img", "aria-label": `${pct.toFixed(1)}% used` }, fill), `${pct.toFixed(1)}%`));
}

// Where an event's call came in: its route, and for a tool call the server and tool.
export function sourceOf(e) {
  const d = e.detail || {};
  if (e.route === "mcp") return d.server ? `mcp ${d.server}${d.tool ? "/" + d.tool : ""}` : "mcp";
  return e.route || "";
}

export function eventRow(ctx, e) {
  const link = e.run_url ? h("a", { href: e.run_url, target: "_blank", rel: "noopener", dataset: { run: e.run_id || "" } }, "run") : "";
  return h("tr", { dataset: { event: e.id, action: e.action, policy: e.policy, route: e.route || "" } },
    h("td", {}, when(e.at)), h("td", {}, e.policy), h("td", {}, e.action), h("td", {}, e.entity), h("td", { class: "num" }, e.count), h("td", {}, sourceOf(e)),
    h("td", {}, nameOf(ctx, e.workspace_id)), h("td", {}, nameOf(ctx, e.key_id)), h("td", {}, link));
}

export async function render(view, ctx) {
  const base = scopeBase(ctx);
  await loadNames(ctx);
  const today = startOfDay().toISOString();
  const month = startOfMonth().toISOString();
  const [day, mon, events] = await Promise.all([
    get(`${base}/spend?since=${encodeURIComponent(today)}`),
    get(`${base}/spend?since=${encodeURIComponent(month)}`),
    get(`${base}/events?limit=200`),
  ]);
  const caps = [...mon.caps].sort((a, b) => {
    const r = (c) => (c.limit_nusd ? ((c.spent_nusd || 0) + (c.reserved_nusd || 0)) / c.limit_nusd : 0);
    return r(b) - r(a);
  });
  const rows = events.data;
  const refusals = rows.filter((e) => (e.policy === "spend" || e.policy === "limits") && REFUSALS.has(e.action) || e.action === "block").slice(0, 10);
  const redactions = rows.filter((e) => e.policy === "redaction").slice(0, 10);
  const head = ["when", "policy", "action", "type", "count", "source", "workspace", "key", "trace"];
  view.append(
    h("h1", {}, "Overview"),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("h2", {}, "Spend today (UTC)"), h("p", { id: "spend-today", class: "big", dataset: { nusd: day.total_cost_nusd } }, usd(day.total_cost_nusd))),
      h("div", { class: "card" }, h("h2", {}, "Spend this month (UTC)"), h("p", { id: "spend-month", dataset: { nusd: mon.total_cost_nusd } }, usd(mon.total_cost_nusd)))),
    h("div", { class: "card" }, h("h2", {}, "Caps, closest to their limit first"),
      caps.length ? table(["cap", "window", "mode", "spent ($)", "in flight ($)", "limit ($)", "used"], caps.map((c) => capRow(ctx, c)), { id: "caps" }) : h("p", { class: "muted" }, "No caps are set.")),
    h("div", { class: "card" }, h("h2", {}, "Latest refusals"), table(head, refusals.map((e) => eventRow(ctx, e)), { id: "refusals" })),
    h("div", { class: "card" }, h("h2", {}, "Latest redactions"), table(head, redactions.map((e) => eventRow(ctx, e)), { id: "redactions" })));
}
