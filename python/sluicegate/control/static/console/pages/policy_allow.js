// Allowed terms in the policy editor: the `allow_terms` part of a policy (terms never acted on as
// the types they name: a firm named after its founder as PERSON, a help desk's address as EMAIL),
// and a key's effective terms, level by level, with the types a lock above refuses them. Each row
// carries its API location in data-loc ("allow_terms.0"), so the admin API's field errors (422,
// and a lock's 409) land beside it. policies.js calls `allowSection` once.
import { field, h, nameOf, table } from "../api.js";

const lines = (text) => text.split("\n").map((t) => t.trim()).filter(Boolean);

function allowRow(a = {}) {
  const row = h("div", { class: "row allow-row" });
  row.append(
    field("Entity types", h("input", { name: "allow_entities", value: (a.entities || []).join(", "), required: true, list: "entity-types", size: 20, placeholder: "PERSON", dataset: { loc: "entities" } })),
    field("Terms (one a line)", h("textarea", { name: "allow_terms", rows: 3, cols: 34, required: true, placeholder: "Carl Zeiss", dataset: { loc: "terms" } }, (a.terms || []).join("\n"))),
    h("button", { type: "button", class: "danger", "aria-label": "Remove allowed terms", onclick: () => row.remove() }, "Remove"));
  return row;
}

export function allowSection(allowTerms, ctx) {
  const fieldset = h("fieldset", { id: "allow-editor" }, h("legend", {}, "Allowed terms"),
    h("p", { class: "muted" }, "Never redacted as these types: a finding whose whole text is a term (any case, any spacing). Below a lock on a type, none may be added."),
    (allowTerms || []).map(allowRow));
  if (ctx.canWrite) {
    fieldset.append(h("button", { type: "button", class: "secondary", id: "add-allow", onclick: (ev) => ev.target.before(allowRow()) }, "Add allowed terms"));
  }
  function rows() {
    return [...fieldset.querySelectorAll(".allow-row")];
  }
  function number() {
    rows().forEach((row, i) => {
      row.dataset.loc = `allow_terms.${i}`;
      row.querySelector("[name=allow_entities]").dataset.loc = `allow_terms.${i}.entities`;
      row.querySelector("[name=allow_terms]").dataset.loc = `allow_terms.${i}.terms`;
    });
  }
  function read() {
    return rows().map((row) => ({
      entities: row.querySelector("[name=allow_entities]").value.split(/[\s,]+/).filter(Boolean),
      terms: lines(row.querySelector("[name=allow_terms]").value),
    }));
  }
  return { fieldset, number, read, effective: (eff) => effectiveAllow(ctx, eff) };
}

function effectiveAllow(ctx, eff) {
  const origin = (level, id) => (level === "operator" ? "operator (configuration)" : `${level} ${nameOf(ctx, id)}`);
  const refused = (a) => (a.refused || []).map((r) => `${r.entity} (locked by ${origin(r.locked_by.level, r.locked_by.id)})`).join(", ");
  return h("div", { class: "card", id: "effective-allow" }, h("h2", {}, "Allowed terms of this key"),
    table(["types", "terms", "from", "not applied to"], (eff.allow_terms || []).map((a) =>
      h("tr", { dataset: { level: a.origin } }, h("td", {}, a.entities.join(", ")), h("td", {}, a.terms.join("; ")),
        h("td", {}, origin(a.origin, a.origin_id)), h("td", {}, refused(a))))));
}
