// The audit log: who did what, filterable by actor, action and target.
import { all, errorText, field, get, h, loadNames, nameOf, when } from "../api.js";

// The whole chain's verdict (one chain holds every organization's rows; the answer holds none).
function chainStatus(v) {
  const box = h("div", { class: "card", id: "chain", role: "status", dataset: { ok: v.error ? "unknown" : String(v.ok) } });
  if (v.error) box.append(h("span", { class: "warn" }, `Chain status unavailable: ${v.error}`));
  else if (v.ok) box.append(h("span", { class: "chain-ok" }, "Chain intact"), ` · ${v.rows} row(s) in the whole log checked, as "sluicegate audit verify" checks them`);
  else box.append(h("span", { class: "chain-bad" }, `Chain broken at row ${v.first_bad_seq}`), `: ${v.reason}`);
  return box;
}

export async function render(view, ctx) {
  view.append(h("h1", {}, "Audit log"));
  if (ctx.who.workspace_id || !ctx.orgId) {
    view.append(h("p", { class: "muted" }, "The audit log is read with an organization or operator token."));
    return;
  }
  await loadNames(ctx);
  const rows = [];
  let after = 0;
  for (let i = 0; i < 20; i++) {  // oldest first from the API, in pages of 1000
    const page = await get(`/orgs/${ctx.orgId}/audit?after_seq=${after}&limit=1000`);
    rows.push(...page.data);
    if (page.data.length < 1000) break;
    after = page.data[page.data.length - 1].seq;
  }
  rows.reverse();
  const tokens = await all(`/orgs/${ctx.orgId}/admin-tokens`).catch(() => []);
  const verdict = await get(`/orgs/${ctx.orgId}/audit/verify`).catch((err) => ({ error: errorText(err) }));
  const tokenName = new Map(tokens.map((t) => [t.id, t.name]));
  const who = (actor) => { const [kind, id] = actor.split("/"); return kind === "admin_token" && tokenName.has(id) ? `admin token ${tokenName.get(id)}` : actor; };
  const changed = (diff) => {
    const before = (diff && diff.before) || {}, after = (diff && diff.after) || {};
    if (!diff || typeof diff !== "object" || (!("before" in diff) && !("after" in diff))) return JSON.stringify(diff).slice(0, 80);
    const names = [...new Set([...Object.keys(before || {}), ...Object.keys(after || {})])]
      .filter((k) => JSON.stringify((before || {})[k]) !== JSON.stringify((after || {})[k]) && !["id", "org_id", "created_at", "updated_at"].includes(k));
    return names.join(", ") || "(no field changed)";
  };
  const change = (diff) => h("details", {}, h("summary", {}, changed(diff)), h("pre", {}, JSON.stringify(diff, null, 2)));
  const target = (t) => t.replace(/\b(?:org|ws|user|key|tok)_[0-9a-f]+/g, (id) => (ctx.names.has(id) ? nameOf(ctx, id) : tokenName.get(id) || id));
  const actor = h("input", { name: "actor", id: "audit-actor" });
  const action = h("input", { name: "action", id: "audit-action", list: "audit-actions" });
  const text = h("input", { name: "target", id: "audit-target" });
  const body = h("tbody");
  const count = h("p", { id: "audit-count", role: "status" });
  const draw = () => {
    const [a, b, c] = [actor.value, action.value, text.value].map((v) => v.trim().toLowerCase());
    const shown = rows.filter((r) => (!a || r.actor.toLowerCase().includes(a)) && (!b || r.action.toLowerCase().includes(b)) && (!c || target(r.target).toLowerCase().includes(c)));
    body.replaceChildren(...shown.map((r) => h("tr", { dataset: { seq: r.seq, action: r.action } }, h("td", { class: "num" }, r.seq), h("td", {}, when(r.at)), h("td", {}, who(r.actor)),
      h("td", {}, r.action), h("td", {}, target(r.target)), h("td", {}, r.client), h("td", { class: "wide" }, change(r.diff)))));
    count.textContent = `${shown.length} of ${rows.length} change(s)`;
  };
  const form = h("form", { id: "audit-form", class: "row card" }, field("Actor", actor), field("Action", action), field("Target", text),
    h("datalist", { id: "audit-actions" }, [...new Set(rows.map((r) => r.action))].map((x) => h("option", { value: x }))), h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (ev) => { ev.preventDefault(); draw(); });
  for (const i of [actor, action, text]) i.addEventListener("input", draw);
  const t = h("table", { id: "audit" }, h("thead", {}, h("tr", {}, ["seq", "when", "actor", "action", "target", "client", "change"].map((x) => h("th", { scope: "col" }, x)))), body);
  view.append(chainStatus(verdict), form, count, h("div", { class: "card" }, t));
  draw();
}
