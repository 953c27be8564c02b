// Triage of policy events: filters, grouping by key, workspace and type, and a link to each LangSmith run.
import { field, get, h, loadNames, nameOf, scopeBase, select, table } from "../api.js";
import { eventRow } from "./overview.js";

const RANGES = [["1d", "Last 24 hours"], ["7d", "Last 7 days"], ["30d", "Last 30 days"], ["all", "All"]];
const GROUPS = [["", "No grouping"], ["key_id", "Key"], ["workspace_id", "Workspace"], ["entity", "Type"]];
const POLICIES = ["redaction", "spend", "limits", "tools", "models", "loops"];
// Where the call came in (the events' `route`): the MCP front door's tool calls, or a model API.
const ROUTES = [["", "Any"], ["mcp", "MCP tool calls"], ["openai_chat", "OpenAI chat"], ["openai_responses", "OpenAI Responses"],
  ["anthropic_messages", "Anthropic Messages"], ["openai_embeddings", "OpenAI embeddings"]];

export async function render(view, ctx) {
  await loadNames(ctx);
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const get_ = (n) => params.get(n) || "";
  const span = get_("range") || "7d";
  const wsOptions = [["", "Any"], ...ctx.workspaces.map((w) => [w.id, w.name])];
  const keyOptions = [["", "Any"], ...ctx.keys.map((k) => [k.id, `${k.name} (${nameOf(ctx, k.workspace_id)})`])];
  const form = h("form", { id: "events-form", class: "row card" },
    field("Time", select("range", RANGES, span)),
    field("Policy", select("policy", [["", "Any"], ...POLICIES.map((p) => [p, p])], get_("policy"))),
    field("Source", select("route", ROUTES, get_("route"))),
    field("Action", h("input", { name: "action", value: get_("action"), size: 10, list: "event-actions" })),
    field("Type", h("input", { name: "entity", value: get_("entity"), size: 12 })),
    field("Workspace", select("workspace", wsOptions, get_("workspace"))),
    field("Key", select("key", keyOptions, get_("key"))),
    field("Trace id", h("input", { name: "trace_id", value: get_("trace_id"), size: 14 })),
    field("Group by", select("group", GROUPS, get_("group"))),
    h("datalist", { id: "event-actions" }, ["redact", "block", "monitor", "pseudonymize", "refuse", "clamp", "threshold", "would_refuse", "upstream_429", "hide", "would_hide"].map((a) => h("option", { value: a }))),
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v) q.set(k, v);
    location.hash = "#/events?" + q.toString();
  });
  const q = new URLSearchParams({ limit: "200" });
  for (const name of ["policy", "route", "action", "entity", "workspace", "key", "trace_id"]) if (get_(name)) q.set(name, get_(name));
  const days = { "1d": 1, "7d": 7, "30d": 30 }[span];
  if (days) q.set("since", new Date(Date.now() - days * 86400000).toISOString());
  const first = await get(`${scopeBase(ctx)}/events?${q}`);
  const rows = first.data;
  view.append(h("h1", {}, "Events"), form);
  const group = get_("group");
  const head = ["when", "policy", "action", "type", "count", "source", "workspace", "key", "trace"];
  if (group) {
    const groups = new Map();
    for (const e of rows) {
      const k = e[group] || "";
      if (!groups.has(k)) groups.set(k, []);
      groups.get(k).push(e);
    }
    const summary = [...groups.entries()].sort((a, b) => b[1].length - a[1].length);
    view.append(h("div", { class: "card" }, h("h2", {}, `${rows.length} event(s) in ${summary.length} group(s)`),
      table([GROUPS.find((g) => g[0] === group)[1], "events", "values found", "actions"], summary.map(([k, list]) =>
        h("tr", { dataset: { groupKey: k } }, h("td", {}, group === "entity" ? k : nameOf(ctx, k) || "(none)"), h("td", { class: "num" }, list.length),
          h("td", { class: "num" }, list.reduce((s, e) => s + e.count, 0)), h("td", {}, [...new Set(list.map((e) => e.action))].join(", ")))), { id: "event-groups" })));
  }
  const list = table(head, rows.map((e) => eventRow(ctx, e)), { id: "events" });
  const title = h("h2", {}, `${rows.length} event(s), newest first${first.has_more ? " (more below)" : ""}`);
  const card = h("div", { class: "card" }, title, list);
  let cursor = first.has_more ? first.next_cursor : null;
  if (cursor) {
    // The next page of the same query (the API's cursor), appended below.
    const more = h("button", { type: "button", id: "events-more", class: "secondary" }, "Load more");
    more.addEventListener("click", async () => {
      more.disabled = true;
      const next = new URLSearchParams(q);
      next.set("cursor", cursor);
      const page = await get(`${scopeBase(ctx)}/events?${next}`);
      rows.push(...page.data);
      list.querySelector("tbody").append(...page.data.map((e) => eventRow(ctx, e)));
      cursor = page.has_more ? page.next_cursor : null;
      title.textContent = `${rows.length} event(s), newest first${cursor ? " (more below)" : ""}`;
      if (cursor) more.disabled = false; else more.remove();
    });
    card.append(h("div", { class: "row" }, more));
  }
  view.append(card);
}
