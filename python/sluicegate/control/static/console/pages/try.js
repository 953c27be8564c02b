// Paste a text, see what a key's redaction rules would find (types, positions, actions) and send.
import { api, field, h, loadNames, nameOf, select, showFieldErrors, table } from "../api.js";

export async function render(view, ctx) {
  await loadNames(ctx);
  const params = new URLSearchParams(location.hash.split("?")[1] || "");
  const keys = ctx.keys.filter((k) => !k.revoked_at);
  const chosen = params.get("key") || (keys[0] && keys[0].id) || "";
  const pick = select("key", keys.map((k) => [k.id, `${k.name} (${nameOf(ctx, k.workspace_id)})`]), chosen, { id: "try-key", dataset: { loc: "key" } });
  const text = h("textarea", { id: "try-text", name: "text", maxlength: 65536, dataset: { loc: "text" }, placeholder: "Paste a prompt: nothing of it is stored or logged." });
  const result = h("div", { id: "try-result" });
  const form = h("form", { id: "try-form", class: "card" },
    h("p", { class: "muted" }, "The text is sent to the admin API once, run through the key's rules as the gateway runs them, and kept nowhere."),
    h("div", { class: "row" }, field("Key", pick)), field("Text", text, { class: "wide" }),
    h("div", { class: "row" }, h("button", { type: "submit", id: "try-run" }, "Find")), h("p", { class: "form-error bad", role: "alert" }));
  form.querySelector("label.wide").style.display = "flex";
  text.addEventListener("keydown", (ev) => { if (ev.key === "Enter" && (ev.ctrlKey || ev.metaKey)) form.requestSubmit(); });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      const answer = await api("POST", `/keys/${pick.value}/redaction/try`, { text: text.value });
      form.querySelector(".form-error").textContent = "";
      const chars = Array.from(text.value);  // positions count code points
      const below = answer.below_threshold || [];
      const allowed = answer.allowed || [];
      const marked = h("p", { id: "try-marked" });
      let last = 0;
      for (const f of answer.findings) {
        marked.append(chars.slice(last, f.start).join(""), h("mark", { class: f.action, title: `${f.entity}: ${f.action}` }, chars.slice(f.start, f.end).join("")));
        last = f.end;
      }
      marked.append(chars.slice(last).join(""));
      result.replaceChildren(
        answer.enabled ? "" : h("p", { class: "warn" }, "Redaction is off in this gateway's configuration."),
        h("h2", {}, `${answer.findings.length} finding(s)`),
        table(["type", "start", "end", "action"], answer.findings.map((f) =>
          h("tr", { dataset: { entity: f.entity, start: f.start, end: f.end, action: f.action } }, h("td", {}, f.entity), h("td", { class: "num" }, f.start), h("td", { class: "num" }, f.end), h("td", {}, f.action))), { id: "try-findings" }),
        below.length ? h("h3", {}, `${below.length} below the confidence threshold (counted, not acted on)`) : "",
        below.length ? table(["type", "start", "end"], below.map((f) =>
          h("tr", { dataset: { entity: f.entity, start: f.start, end: f.end } }, h("td", {}, f.entity), h("td", { class: "num" }, f.start), h("td", { class: "num" }, f.end))), { id: "try-below" }) : "",
        allowed.length ? h("h3", {}, `${allowed.length} let through by allowed terms`) : "",
        allowed.length ? table(["type", "start", "end", "text"], allowed.map((f) =>
          h("tr", { dataset: { entity: f.entity, start: f.start, end: f.end } }, h("td", {}, f.entity), h("td", { class: "num" }, f.start), h("td", { class: "num" }, f.end),
            h("td", {}, chars.slice(f.start, f.end).join("")))), { id: "try-allowed" }) : "",
        h("h3", {}, "Where"), marked, h("h3", {}, "What would be sent"), h("pre", { id: "try-sent" }, answer.text));
    } catch (err) {
      showFieldErrors(form, err);
    }
  });
  view.append(h("h1", {}, "Try redaction"), form, result);
}
