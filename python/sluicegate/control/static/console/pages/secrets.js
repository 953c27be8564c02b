// Provider secrets at the organization (defaults) and per workspace: set, replace, delete; a value is never shown again.
import { api, errorText, field, get, h, select, showFieldErrors, table, when } from "../api.js";

export async function render(view, ctx) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const scopes = [];
  if (!ctx.who.workspace_id && ctx.orgId) scopes.push([`org:${ctx.orgId}`, "Organization default"]);
  for (const w of ctx.workspaces) scopes.push([`workspace:${w.id}`, `Workspace ${w.name}`]);
  const current = params.get("scope") || (scopes[scopes.length > 1 ? 1 : 0] || [""])[0];
  const [level, id] = current.split(":");
  const path = level === "org" ? `/orgs/${id}/secrets` : `/workspaces/${id}/secrets`;
  const pick = select("scope", scopes, current, { id: "secret-scope" });
  pick.addEventListener("change", () => { location.hash = `#/secrets?scope=${pick.value}`; });
  view.append(h("h1", {}, "Provider secrets"), h("div", { class: "row" }, field("Scope", pick)));
  if (!id) return;
  const rows = (await get(path)).data;
  const again = async () => { view.replaceChildren(); await render(view, ctx); };
  const printed = rows.some((s) => s.fingerprint);  // a fingerprint column only when the API gives one
  view.append(h("div", { class: "card" }, h("h2", {}, "Secrets set here (values are never shown)"),
    table(["provider", "set at", "set by", "base_url", "project", ...(printed ? ["fingerprint"] : []), ""], rows.map((s) => {
      const del = ctx.canWrite ? h("button", { type: "button", class: "danger", "aria-label": `Delete the ${s.provider} secret` }, "Delete") : "";
      if (del) del.addEventListener("click", async () => {
        if (!confirm(`Delete the ${s.provider} secret?`)) return;
        try { await api("DELETE", `${path}/${s.provider}`); await again(); } catch (err) { del.after(h("span", { class: "bad" }, errorText(err))); }
      });
      return h("tr", { dataset: { secret: s.provider } }, h("td", {}, s.provider), h("td", {}, when(s.updated_at)), h("td", {}, s.set_by || ""), h("td", {}, s.base_url || ""),
        h("td", {}, s.project || ""), printed ? h("td", {}, h("code", {}, s.fingerprint || "")) : null, h("td", {}, del));
    }), { id: "secrets" })));
  if (!ctx.canWrite) return;
  const form = h("form", { id: "set-secret", class: "card" }, h("h2", {}, "Set or replace a secret"),
    h("div", { class: "row" },
      field("Provider", h("input", { name: "provider", required: true, pattern: "[a-z][a-z0-9_\\-]{0,63}", list: "providers", dataset: { loc: "provider" } })),
      field("Secret value", h("input", { name: "value", type: "password", required: true, autocomplete: "off", dataset: { loc: "value" } })),
      field("Base URL (optional)", h("input", { name: "base_url", type: "url", dataset: { loc: "base_url" } })),
      field("Project (optional)", h("input", { name: "project", dataset: { loc: "project" } })),
      h("button", { type: "submit" }, "Save secret")),
    h("datalist", { id: "providers" }, ["openai", "anthropic", "azure", "bedrock", "gemini", "mistral"].map((p) => h("option", { value: p }))),
    h("p", { class: "form-error bad" }));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const body = { value: data.get("value") };
    if (data.get("base_url")) body.base_url = data.get("base_url");
    if (data.get("project")) body.project = data.get("project");
    try {
      await api("PUT", `${path}/${encodeURIComponent(data.get("provider"))}`, body);
      await again();
    } catch (err) {
      form.querySelector("[name=value]").value = "";
      showFieldErrors(form, err);
    }
  });
  view.append(form);
}
