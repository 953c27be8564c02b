// Organizations, workspaces, users and keys: lists with names, create, edit (name, description,
// tags), delete, and keys shown once at creation or rotation, revoked or rotated.
import { all, api, errorText, field, h, select, showFieldErrors, table, when } from "../api.js";

const tagsOf = (text) => text.split(/[\s,]+/).filter(Boolean);

function createForm(id, label, fields, submit) {
  const error = h("p", { class: "form-error bad" });
  const form = h("form", { id, class: "inline" }, fields, h("button", { type: "submit" }, label), error);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await submit(new FormData(form));
    } catch (err) {
      showFieldErrors(form, err);
    }
  });
  return form;
}

// The edit row of an entity (PATCH name, description, tags) and its delete button, whose
// confirmation names what goes with the entity (`goes`: a function answering that sentence).
function editControls(ctx, path, row, what, done, goes = null) {
  if (!ctx.canWrite) return [];
  const edit = h("button", { type: "button", class: "secondary", "aria-label": `Edit ${what} ${row.name}` }, "Edit");
  const del = goes ? h("button", { type: "button", class: "danger", "aria-label": `Delete ${what} ${row.name}` }, "Delete") : null;
  edit.addEventListener("click", () => {
    const form = createForm(null, "Save", [
      field("Name", h("input", { name: "name", value: row.name, required: true, dataset: { loc: "name" } })),
      field("Description", h("input", { name: "description", value: row.description || "", dataset: { loc: "description" } })),
      field("Tags", h("input", { name: "tags", value: (row.tags || []).join(", "), dataset: { loc: "tags" } })),
    ], async (data) => {
      await api("PATCH", path, { name: data.get("name"), description: data.get("description"), tags: tagsOf(data.get("tags")) });
      await done();
    });
    edit.closest("td").append(form);
    form.querySelector("input").focus();
  });
  if (!del) return [edit];
  del.addEventListener("click", async () => {
    try {
      if (!confirm(`Delete ${what} ${row.name}? ${await goes()}`)) return;
      await api("DELETE", path);
      await done(true);
    } catch (err) { del.after(h("span", { class: "bad" }, errorText(err))); }
  });
  return [edit, " ", del];
}

function snippets(key) {
  const base = location.origin;
  const openai = `from openai import OpenAI\n\nclient = OpenAI(base_url="${base}/v1", api_key="${key}")\nclient.chat.completions.create(model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])`;
  const anthropic = `from anthropic import Anthropic\n\nclient = Anthropic(base_url="${base}", api_key="${key}")\nclient.messages.create(model="anthropic/claude-3-5-haiku-latest", max_tokens=100, messages=[{"role": "user", "content": "hi"}])`;
  return [h("h3", {}, "OpenAI SDK (Python)"), h("pre", { id: "snippet-openai" }, openai), h("h3", {}, "Anthropic SDK (Python)"), h("pre", { id: "snippet-anthropic" }, anthropic)];
}

export function shownOnce(key, row, extra = "") {
  const out = h("output", { id: "new-key", class: "shown-once", dataset: { keyId: row.id } }, key);
  const copy = h("button", { type: "button", id: "copy-key" }, "Copy key");
  copy.addEventListener("click", async () => {
    try { await navigator.clipboard.writeText(key); copy.textContent = "Copied"; } catch { copy.textContent = "Select and copy the key by hand"; }
  });
  return h("div", { class: "card shown-once", id: "key-once", role: "status" },
    h("h2", {}, `Key ${row.name}: shown once`),
    h("p", {}, "Copy it now: it is not shown again. ", extra),
    h("p", {}, h("code", {}, out), " ", copy),
    snippets(key));
}

export async function render(view, ctx) {
  await ctx.reload();  // the lists as they are now (another admin, or a script, may have changed them)
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const wsId = params.get("ws") || (ctx.workspaces[0] && ctx.workspaces[0].id);
  const refresh = async (deleted) => {
    if (deleted === true && location.hash !== "#/entities") { location.hash = "#/entities"; return; }  // what was shown may be gone
    view.replaceChildren();
    await render(view, ctx);
  };
  view.append(h("h1", {}, "Organization"));
  const org = ctx.orgs.find((o) => o.id === ctx.orgId);
  if (!ctx.who.workspace_id) {
    const orgCard = h("div", { class: "card" }, h("h2", {}, "Organizations"));
    orgCard.append(table(["name", "description", "tags", "created", ""], ctx.orgs.map((o) =>
      h("tr", { dataset: { org: o.id } }, h("td", {}, o.name), h("td", {}, o.description || ""), h("td", {}, (o.tags || []).join(", ")), h("td", {}, when(o.created_at)),
        h("td", {}, editControls(ctx, `/orgs/${o.id}`, o, "organization", refresh,
          ctx.who.org_id ? null : async () => "Only an organization without workspaces can be deleted; its admin tokens, secrets and policy go with it."))))));
    if (ctx.canWrite && !ctx.who.org_id) {
      orgCard.append(createForm("create-org", "Create organization", [field("Organization name", h("input", { name: "name", required: true, dataset: { loc: "name" } }))],
        async (data) => { const o = await api("POST", "/orgs", { name: data.get("name") }); sessionStorage.setItem("sluicegate-org", o.id); await refresh(); }));
    }
    view.append(orgCard);
  }
  const wsCard = h("div", { class: "card" }, h("h2", {}, `Workspaces${org ? " of " + org.name : ""}`));
  wsCard.append(table(["name", "description", "tags", "created", ""], ctx.workspaces.map((w) =>
    h("tr", { dataset: { workspace: w.id } }, h("td", {}, h("a", { href: `#/entities?ws=${w.id}` }, w.name)), h("td", {}, w.description || ""), h("td", {}, (w.tags || []).join(", ")), h("td", {}, when(w.created_at)),
      h("td", {}, editControls(ctx, `/workspaces/${w.id}`, w, "workspace", refresh, ctx.who.workspace_id ? null : async () => {
        const [u, k] = await Promise.all([all(`/workspaces/${w.id}/users`), all(`/workspaces/${w.id}/keys`)]);
        return `Its ${u.length} user(s) and ${k.length} key(s) go with it (the keys stop working at once), and so do its workspace admin tokens, provider secrets and policies. Its events and spend records are kept.`;
      })))), { id: "workspaces" }));
  if (ctx.canWrite && !ctx.who.workspace_id && ctx.orgId) {
    wsCard.append(createForm("create-workspace", "Create workspace", [
      field("Workspace name", h("input", { name: "name", required: true, dataset: { loc: "name" } })),
    ], async (data) => {
      const w = await api("POST", `/orgs/${ctx.orgId}/workspaces`, { name: data.get("name") });
      await ctx.reload();
      location.hash = `#/entities?ws=${w.id}`;
    }));
  }
  view.append(wsCard);
  if (!wsId) return;
  const ws = ctx.workspaces.find((w) => w.id === wsId);
  const [users, keys] = await Promise.all([all(`/workspaces/${wsId}/users`), all(`/workspaces/${wsId}/keys`)]);
  const userName = new Map(users.map((u) => [u.id, u.name]));
  const shown = h("div", { id: "shown" });
  const again = async () => { view.replaceChildren(); await render(view, ctx); };

  const usersCard = h("div", { class: "card" }, h("h2", {}, `Users of ${ws ? ws.name : wsId}`));
  usersCard.append(table(["name", "description", "tags", "created", ""], users.map((u) =>
    h("tr", { dataset: { user: u.id } }, h("td", {}, u.name), h("td", {}, u.description || ""), h("td", {}, (u.tags || []).join(", ")), h("td", {}, when(u.created_at)),
      h("td", {}, editControls(ctx, `/users/${u.id}`, u, "user", again, async () => {
        const owned = keys.filter((k) => k.user_id === u.id && !k.revoked_at).length;
        return `Its ${owned} active key(s) are revoked at once (and kept, naming no user), and its policy goes with it.`;
      })))), { id: "users" }));
  if (ctx.canWrite) {
    usersCard.append(createForm("create-user", "Create user", [field("User name", h("input", { name: "name", required: true, dataset: { loc: "name" } }))],
      async (data) => { await api("POST", `/workspaces/${wsId}/users`, { name: data.get("name") }); await again(); }));
  }

  const keysCard = h("div", { class: "card" }, h("h2", {}, `Keys of ${ws ? ws.name : wsId}`));
  const keyRow = (k) => {
    const actions = [];
    const expired = k.expires_at && Date.parse(k.expires_at) <= Date.now();
    if (ctx.canWrite && !k.revoked_at && !expired) {
      const revoke = h("button", { type: "button", class: "danger", "aria-label": `Revoke key ${k.name}` }, "Revoke");
      revoke.addEventListener("click", async () => {
        if (!confirm(`Revoke key ${k.name}? Calls with it stop at once.`)) return;
        await api("POST", `/keys/${k.id}/revoke`); await again();
      });
      const overlap = h("input", { name: "overlap_s", type: "number", min: 0, max: 2592000, value: 86400, size: 8, dataset: { loc: "overlap_s" } });
      const rotate = createForm(`rotate-${k.id}`, "Rotate", [field(`Overlap of ${k.name}'s old value (s)`, overlap)], async () => {
        const made = await api("POST", `/keys/${k.id}/rotate`, { overlap_s: Number(overlap.value) });
        await again();
        const until = `The old key (${k.prefix || k.name}…) keeps working until ${when(made.old_key_expires_at)} UTC, then stops.`;
        const box = shownOnce(made.key, made, until);
        box.dataset.replaces = made.replaces;
        box.dataset.oldKeyExpiresAt = made.old_key_expires_at;
        view.querySelector("#shown").replaceChildren(box);
        view.querySelector("#copy-key").focus();
      });
      actions.push(revoke, rotate);
    }
    actions.push(editControls(ctx, `/keys/${k.id}`, k, "key", again, async () => "It stops working at once, and its own policy goes with it. Its events and spend records are kept."));
    return h("tr", { dataset: { key: k.id } }, h("td", {}, k.name), h("td", {}, k.description || ""), h("td", {}, (k.tags || []).join(", ")), h("td", {}, h("code", {}, k.prefix || "")), h("td", {}, userName.get(k.user_id) || ""),
      h("td", {}, when(k.created_at)), h("td", {}, when(k.last_used_at)), h("td", {}, k.revoked_at ? `revoked ${when(k.revoked_at)}` : expired ? `expired ${when(k.expires_at)}` : k.expires_at ? `expires ${when(k.expires_at)}` : "active"),
      h("td", {}, h("a", { href: `#/policies?level=key&id=${k.id}` }, "policy")), h("td", {}, actions));
  };
  keysCard.append(table(["name", "description", "tags", "prefix", "user", "created", "last used", "state", "", ""], keys.map(keyRow), { id: "keys" }));
  if (ctx.canWrite) {
    keysCard.append(createForm("create-key", "Create key", [
      field("Key name", h("input", { name: "name", required: true, dataset: { loc: "name" } })),
      field("User", select("user_id", [["", "(no user)"], ...users.map((u) => [u.id, u.name])], "", { dataset: { loc: "user_id" } })),
      field("Expires at (UTC, optional)", h("input", { name: "expires_at", type: "datetime-local", dataset: { loc: "expires_at" } })),
    ], async (data) => {
      const body = { name: data.get("name") };
      if (data.get("user_id")) body.user_id = data.get("user_id");
      if (data.get("expires_at")) body.expires_at = data.get("expires_at") + ":00Z";
      const made = await api("POST", `/workspaces/${wsId}/keys`, body);
      await again();
      view.querySelector("#shown").replaceChildren(shownOnce(made.key, made));
      view.querySelector("#copy-key").focus();
    }));
  }
  view.append(shown, h("div", { class: "grid" }, usersCard), keysCard);
}
