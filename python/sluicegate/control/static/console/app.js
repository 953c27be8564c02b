// The console's shell: sign-in, the scope the token sees, and hash routing to one module per page.
import { all, dropToken, errorText, field, get, getToken, h, inSession, setSession, setToken, ssoLogout, ssoSession } from "./api.js";

const PAGES = {
  overview: () => import("./pages/overview.js"),
  entities: () => import("./pages/entities.js"),
  secrets: () => import("./pages/secrets.js"),
  mcp: () => import("./pages/mcp.js"),
  routes: () => import("./pages/routes.js"),
  policies: () => import("./pages/policies.js"),
  try: () => import("./pages/try.js"),
  spend: () => import("./pages/spend.js"),
  events: () => import("./pages/events.js"),
  audit: () => import("./pages/audit.js"),
  tokens: () => import("./pages/tokens.js"),
};

const main = document.getElementById("main");
const errorBox = document.getElementById("error");
let ctx = null;
let routing = 0;  // the latest navigation: an older one still loading never draws over it
let sso = false;  // the gateway offers single sign-on (its session endpoint exists)

function signInPage(message) {
  routing++;
  document.getElementById("nav").hidden = true;
  document.getElementById("who").replaceChildren();
  const input = h("input", { id: "token", name: "token", type: "password", autocomplete: "off", required: true, placeholder: "sga-…" });
  const form = h("form", { id: "login", class: "card signin" },
    h("h1", {}, "Sign in"),
    sso ? h("p", {}, h("a", { id: "sso-login", class: "button", href: "/admin/ui/sso/login" }, "Sign in with single sign-on")) : null,
    h("p", { class: "muted" }, (sso ? "Or paste an admin token. " : "Paste an admin token. ") + "It is kept in this tab's session storage only, and sent to the admin API as a bearer token."),
    field("Admin token", input),
    h("p", { class: "form-error bad" }, message || ""),
    h("button", { type: "submit" }, "Sign in"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setToken(input.value.trim());
    try {
      await start();
    } catch (err) {
      dropToken();
      form.querySelector(".form-error").textContent = errorText(err);
    }
  });
  main.replaceChildren(form);
  document.body.dataset.page = "signin";
  document.body.dataset.ready = "true";
  input.focus();
}

async function loadScope(me) {
  const who = { ...(await get("/whoami")), ...(me ? { subject: me.subject, email: me.email } : {}) };
  const role = who.role || "admin";
  let orgs = [];
  let workspaces = [];
  let orgId = who.org_id;
  if (who.workspace_id) {
    const ws = await get(`/workspaces/${who.workspace_id}`);
    workspaces = [ws];
    orgId = ws.org_id;
  } else {
    orgs = await all("/orgs");
    const chosen = sessionStorage.getItem("sluicegate-org");
    if (!orgId) orgId = orgs.some((o) => o.id === chosen) ? chosen : orgs.length ? orgs[0].id : null;
    workspaces = orgId ? await all(`/orgs/${orgId}/workspaces`) : [];
  }
  return { who, role, canWrite: role !== "viewer", orgs, orgId, workspaces, names: new Map() };
}

function header() {
  document.getElementById("nav").hidden = false;
  const scope = ctx.who.workspace_id ? `workspace ${ctx.workspaces[0].name}` : ctx.who.org_id ? `organization ${(ctx.orgs.find((o) => o.id === ctx.orgId) || {}).name || ctx.orgId}` : "operator";
  const parts = [h("span", { id: "scope" }, `scope: ${scope} · role: ${ctx.role}`)];
  if (ctx.who.subject) parts.push(h("span", { id: "subject" }, `signed in as ${ctx.who.email || ctx.who.subject}`));
  if (!ctx.who.org_id && ctx.orgs.length) {
    const pick = h("select", { id: "org-pick", name: "org" }, ctx.orgs.map((o) => h("option", { value: o.id, selected: o.id === ctx.orgId }, o.name)));
    pick.addEventListener("change", () => { sessionStorage.setItem("sluicegate-org", pick.value); start(); });
    parts.push(field("Organization", pick, { class: "check" }));
  }
  parts.push(h("button", { id: "signout", class: "secondary", type: "button", onclick: signOut }, "Sign out"));
  document.getElementById("who").replaceChildren(...parts);
}

async function signOut() {
  if (inSession()) {
    const status = await ssoLogout().catch(() => 0);
    if (status !== 204) { errorBox.textContent = "Signing out failed; try again."; return; }
  }
  dropToken();
  sessionStorage.removeItem("sluicegate-org");
  ctx = null;
  location.hash = "";
  signInPage("Signed out.");
}

async function route() {
  if (!ctx) return;
  const seq = ++routing;
  const name = (location.hash.replace(/^#\/?/, "").split(/[/?]/)[0] || "overview");
  const load = PAGES[name] || PAGES.overview;
  for (const a of document.querySelectorAll("#nav a")) {
    if (a.getAttribute("href") === "#/" + name) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  document.body.dataset.ready = "false";
  document.body.dataset.page = name;
  errorBox.textContent = "";
  try {
    const page = await load();
    const view = h("div", { id: "page-" + name });
    if (!ctx.orgId && name !== "entities") {
      view.append(h("h1", {}, "No organization yet"), h("p", {}, "Create one on the ", h("a", { href: "#/entities" }, "Organization"), " page."));
    } else {
      await page.render(view, ctx);
    }
    if (seq !== routing) return;
    main.replaceChildren(view);
    document.body.dataset.ready = "true";
  } catch (err) {
    if (seq !== routing) return;
    errorBox.textContent = errorText(err);
    document.body.dataset.ready = "error";
    if (err.status === 401) { setSession(null); signInPage(getToken() ? "The admin token is not valid (any more)." : "The session has ended: sign in again."); }
  }
}

async function start(me) {
  ctx = await loadScope(me);
  ctx.reload = async () => { ctx = Object.assign(ctx, await loadScope(me)); header(); };
  header();
  if (!location.hash || location.hash === "#") location.hash = "#/overview";
  else await route();
}

async function boot() {
  // The single sign-on session endpoint answers 200 (signed in by the cookie), 401 (single sign-on
  // is offered, not signed in) or 404 (the gateway has no single sign-on).
  const session = await ssoSession().catch(() => ({ status: 0, me: null }));
  sso = session.status === 200 || session.status === 401;
  if (getToken()) return start();
  if (session.me) {
    setSession(session.me.csrf_token);
    return start(session.me);
  }
  signInPage();
}

window.addEventListener("hashchange", route);
boot().catch((err) => {
  if (err.status === 401) { dropToken(); setSession(null); signInPage("The admin token is not valid (any more)."); }
  else { errorBox.textContent = errorText(err); document.body.dataset.ready = "error"; }
});
