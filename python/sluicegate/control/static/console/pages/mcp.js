// A workspace's MCP servers (what agents reach at /mcp/{name} with their gateway key): list,
// register or replace (URL, description, the headers the gateway adds and OAuth client credentials:
// secrets write-only, their names shown), remove; and a server's tools as the gateway sees them (listed by the gateway itself with
// the server's credentials), each with the workspace's access, price and rate limits. The tool
// lists that apply are edited in each policy's "Tool access".
import { api, errorText, field, get, h, select, showFieldErrors, table, when } from "../api.js";

// "Name: value" lines as a headers object; a line without a colon is a field error of its own.
function headersOf(text) {
  const out = {};
  for (const line of text.split("\n").map((l) => l.trim()).filter(Boolean)) {
    const at = line.indexOf(":");
    if (at < 1) throw new Error(`a header line is "Name: value": ${line.slice(0, 40)}`);
    out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

// "tool: price" pairs, comma-separated, as the tool prices object.
function toolPricesOf(text) {
  const out = {};
  for (const pair of text.split(",").map((p) => p.trim()).filter(Boolean)) {
    const at = pair.indexOf(":");
    if (at < 1) throw new Error(`a tool price is "tool: 0.01": ${pair.slice(0, 40)}`);
    out[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return out;
}

function limitText(x) {
  const per = x.window_s ? ` per ${x.window_s} s` : " at once";
  return `${x.limit} ${x.kind}${per} (${x.level}${x.mode === "monitor" ? ", monitor" : ""})`;
}

// The tools of `name`, fetched through the gateway (GET …/mcp-servers/{name}/tools): a card.
async function toolsCard(path, name) {
  const card = h("div", { class: "card", id: "mcp-tools", dataset: { server: name } }, h("h2", {}, `Tools of ${name}, as the gateway lists them`));
  let listed;
  try {
    listed = await get(`${path}/${encodeURIComponent(name)}/tools`);
  } catch (err) {
    card.append(h("p", { class: "bad", id: "mcp-tools-error" }, errorText(err)));
    return card;
  }
  const access = (t) => h("span", { class: t.access === "denied" ? "bad" : t.access === "monitored" ? "warn" : "" },
    t.access === "monitored" ? "allowed (a monitoring rule would deny it)" : t.access);
  card.append(h("p", { class: "muted" }, `${listed.data.length} tool(s) at ${listed.url}; access by the workspace's tool lists (a user's or key's own lists can narrow it).`),
    table(["tool", "description", "access", "why", "price per call", "rate limits"], listed.data.map((t) =>
      h("tr", { dataset: { tool: t.name, access: t.access } }, h("td", {}, h("code", {}, t.name)), h("td", {}, t.description || ""),
        h("td", {}, access(t)), h("td", {}, t.reason || ""), h("td", {}, t.price_usd ? `$${t.price_usd}` : "free"),
        h("td", {}, t.limits.map(limitText).join("; ")))), { id: "mcp-tool-list" }));
  return card;
}

function credentialsText(s) {
  const parts = [...(s.header_names || [])];
  if (s.oauth) parts.push(`OAuth client ${s.oauth.client_id}${s.oauth.scope ? ` (scope ${s.oauth.scope})` : ""}`);
  return parts.join(", ");
}

function priceText(s) {
  const tools = Object.entries(s.tool_price_usd || {}).map(([t, p]) => `${t} $${p}`);
  const base = s.price_usd ? `$${s.price_usd}` : "free";
  return tools.length ? `${base}; ${tools.join(", ")}` : base;
}

export async function render(view, ctx) {
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const spaces = ctx.workspaces.map((w) => [w.id, `Workspace ${w.name}`]);
  const id = params.get("workspace") || (spaces[0] || [""])[0];
  const pick = select("workspace", spaces, id, { id: "mcp-workspace" });
  pick.addEventListener("change", () => { location.hash = `#/mcp?workspace=${pick.value}`; });
  view.append(h("h1", {}, "MCP servers"), h("div", { class: "row" }, field("Workspace", pick)));
  if (!id) return;
  const path = `/workspaces/${id}/mcp-servers`;
  const rows = (await get(path)).data;
  const again = async () => { view.replaceChildren(); await render(view, ctx); };
  const shown = params.get("tools");
  view.append(h("div", { class: "card" }, h("h2", {}, "Servers (header values are never shown)"),
    table(["name", "agents connect to", "upstream URL", "credentials", "price per call", "description", "updated", ""], rows.map((s) => {
      const tools = h("button", { type: "button", class: "secondary", "aria-label": `Show the tools of ${s.name}` }, "Tools");
      tools.addEventListener("click", () => { location.hash = `#/mcp?workspace=${id}&tools=${encodeURIComponent(s.name)}`; });
      const del = ctx.canWrite ? h("button", { type: "button", class: "danger", "aria-label": `Remove the MCP server ${s.name}` }, "Remove") : "";
      if (del) del.addEventListener("click", async () => {
        if (!confirm(`Remove the MCP server ${s.name}? Agents connected to /mcp/${s.name} lose it.`)) return;
        try { await api("DELETE", `${path}/${encodeURIComponent(s.name)}`); await again(); } catch (err) { del.after(h("span", { class: "bad" }, errorText(err))); }
      });
      return h("tr", { dataset: { server: s.name } }, h("td", {}, s.name), h("td", {}, h("code", {}, `/mcp/${s.name}`)), h("td", {}, s.url),
        h("td", {}, credentialsText(s)), h("td", {}, priceText(s)), h("td", {}, s.description || ""), h("td", {}, when(s.updated_at)), h("td", {}, h("span", { class: "row" }, tools, del)));
    }), { id: "mcp-servers" })));
  if (shown) view.append(await toolsCard(path, shown));
  if (!ctx.canWrite) return;
  const headers = h("textarea", { name: "headers", rows: 3, cols: 48, placeholder: "Authorization: Bearer …", autocomplete: "off", spellcheck: false, dataset: { loc: "headers" } });
  const clientSecret = h("input", { name: "client_secret", type: "password", size: 24, autocomplete: "off", dataset: { loc: "oauth.client_secret" } });
  const form = h("form", { id: "set-mcp-server", class: "card" }, h("h2", {}, "Register or replace a server"),
    h("div", { class: "row" },
      field("Name", h("input", { name: "name", required: true, pattern: "[a-z0-9][a-z0-9_\\-]{0,63}", size: 16, dataset: { loc: "name" } })),
      field("Upstream URL (Streamable HTTP)", h("input", { name: "url", type: "url", required: true, size: 36, dataset: { loc: "url" } })),
      field("Description", h("input", { name: "description", size: 24, dataset: { loc: "description" } }))),
    h("div", { class: "row" },
      field("Price per tool call (USD, on the caller's caps)", h("input", { name: "price_usd", inputmode: "decimal", size: 10, placeholder: "free", dataset: { loc: "price_usd" } })),
      field("Tool prices (tool: USD, comma-separated)", h("input", { name: "tool_price_usd", size: 30, placeholder: "deep_search: 0.05", dataset: { loc: "tool_price_usd" } }))),
    h("div", { class: "row" }, field("Headers the gateway adds (one \"Name: value\" per line; replaced as a whole, never shown again)", headers)),
    h("h3", {}, "OAuth client credentials (optional: the gateway fetches a bearer token)"),
    h("div", { class: "row" },
      field("Token URL", h("input", { name: "token_url", type: "url", size: 32, dataset: { loc: "oauth.token_url" } })),
      field("Client id", h("input", { name: "client_id", size: 16, autocomplete: "off", dataset: { loc: "oauth.client_id" } })),
      field("Scope", h("input", { name: "scope", size: 12, dataset: { loc: "oauth.scope" } })),
      field("Client secret (never shown again)", clientSecret)),
    h("p", { class: "form-error bad" }),
    h("button", { type: "submit" }, "Save server"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    let body;
    try {
      body = { url: data.get("url"), headers: headersOf(String(data.get("headers") || "")),
        tool_price_usd: toolPricesOf(String(data.get("tool_price_usd") || "")) };
      if (String(data.get("price_usd") || "").trim()) body.price_usd = String(data.get("price_usd")).trim();
      const tokenUrl = String(data.get("token_url") || "").trim();
      if (tokenUrl) {
        body.oauth = { token_url: tokenUrl, client_id: String(data.get("client_id") || "").trim(), client_secret: String(data.get("client_secret") || "") };
        if (String(data.get("scope") || "").trim()) body.oauth.scope = String(data.get("scope")).trim();
      }
    } catch (err) {
      form.querySelector(".form-error").textContent = err.message;
      return;
    }
    if (data.get("description")) body.description = data.get("description");
    try {
      await api("PUT", `${path}/${encodeURIComponent(data.get("name"))}`, body);
      await again();
    } catch (err) {
      headers.value = "";  // a value typed once is not kept in the page
      clientSecret.value = "";
      showFieldErrors(form, err);
    }
  });
  view.append(form);
}
