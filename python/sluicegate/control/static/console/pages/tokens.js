// The organization's admin tokens: name, scope, role, expiry and last use; an admin creates one
// (shown once) or revokes one. Token values are never listed: only their hashes are stored.
import { all, api, errorText, field, h, nameOf, select, showFieldErrors, table, when } from "../api.js";

export async function render(view, ctx) {
  view.append(h("h1", {}, "Admin tokens"));
  if (ctx.who.workspace_id || !ctx.orgId) {
    view.append(h("p", { class: "muted" }, "Admin tokens are managed with an organization or operator token."));
    return;
  }
  for (const w of ctx.workspaces) ctx.names.set(w.id, w.name);
  const tokens = await all(`/orgs/${ctx.orgId}/admin-tokens`);
  const again = async () => { view.replaceChildren(); await render(view, ctx); };
  const now = Date.now();
  const state = (t) => (t.revoked_at ? `revoked ${when(t.revoked_at)}` : t.expires_at && Date.parse(t.expires_at) <= now ? `expired ${when(t.expires_at)}` : "active");
  const row = (t) => {
    let revoke = "";
    if (ctx.canWrite && !t.revoked_at && t.id !== ctx.who.token_id) {
      revoke = h("button", { type: "button", class: "danger", "aria-label": `Revoke admin token ${t.name}` }, "Revoke");
      revoke.addEventListener("click", async () => {
        if (!confirm(`Revoke admin token ${t.name}? Whoever holds it is signed out at once.`)) return;
        try { await api("POST", `/orgs/${ctx.orgId}/admin-tokens/${t.id}/revoke`); await again(); } catch (err) { revoke.after(h("span", { class: "bad" }, errorText(err))); }
      });
    }
    return h("tr", { dataset: { token: t.id, role: t.role } }, h("td", {}, t.name), h("td", {}, t.workspace_id ? `workspace ${nameOf(ctx, t.workspace_id)}` : "organization"),
      h("td", {}, t.role), h("td", {}, when(t.created_at)), h("td", {}, t.expires_at ? when(t.expires_at) : "never"), h("td", {}, when(t.last_used_at) || "never"),
      h("td", {}, state(t)), h("td", {}, t.id === ctx.who.token_id ? "(this token)" : revoke));
  };
  const shown = h("div", { id: "token-shown" });
  const card = h("div", { class: "card" }, h("h2", {}, `${tokens.length} admin token(s)`),
    table(["name", "scope", "role", "created", "expires", "last used", "state", ""], tokens.map(row), { id: "admin-tokens" }));
  view.append(shown, card);
  if (!ctx.canWrite) return;
  const error = h("p", { class: "form-error bad" });
  const form = h("form", { id: "create-token", class: "card" }, h("h2", {}, "Create an admin token"),
    h("div", { class: "row" },
      field("Token name", h("input", { name: "name", required: true, dataset: { loc: "name" } })),
      field("Role", select("role", [["admin", "admin (reads and changes)"], ["viewer", "viewer (reads only)"]], "admin", { dataset: { loc: "role" } })),
      field("Scope", select("workspace_id", [["", "the whole organization"], ...ctx.workspaces.map((w) => [w.id, `workspace ${w.name}`])], "", { dataset: { loc: "workspace_id" } })),
      field("Expires at (UTC, optional)", h("input", { name: "expires_at", type: "datetime-local", dataset: { loc: "expires_at" } })),
      h("button", { type: "submit" }, "Create token")), error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const body = { name: data.get("name"), role: data.get("role") };
    if (data.get("workspace_id")) body.workspace_id = data.get("workspace_id");
    if (data.get("expires_at")) body.expires_at = data.get("expires_at") + ":00Z";
    try {
      const made = await api("POST", `/orgs/${ctx.orgId}/admin-tokens`, body);
      await again();
      const out = h("output", { id: "new-token", class: "shown-once", dataset: { tokenId: made.id } }, made.token);
      view.querySelector("#token-shown").replaceChildren(h("div", { class: "card shown-once", id: "token-once", role: "status" },
        h("h2", {}, `Admin token ${made.name} (${made.role}): shown once`),
        h("p", {}, "Copy it now: only its hash is stored, and it is not shown again."), h("p", {}, h("code", {}, out))));
    } catch (err) {
      showFieldErrors(form, err);
    }
  });
  view.append(form);
}
