// The operator's routes: each routed model's deployments with their circuit breaker (closed, open,
// half-open), recent failures, calls in flight and time to first byte, as this gateway process sees
// them (`GET /admin/v1/routes`); refreshed on demand.
import { get, h, table } from "../api.js";

const STATES = { closed: "closed (serving)", open: "open (cooling down)", half_open: "half-open (probing)" };

export async function render(view) {
  const { routes } = await get("/routes");
  const again = async () => { view.replaceChildren(); await render(view); };
  view.append(h("h1", {}, "Routes"),
    h("p", { class: "muted" }, "A routed model's deployments, as the gateway process that answered sees them: a deployment failing repeatedly is cooled down (its breaker open), then probed back in."),
    h("button", { type: "button", class: "secondary", id: "refresh-routes", onclick: again }, "Refresh"));
  if (!routes.length) {
    view.append(h("p", { id: "no-routes" }, "No routes are configured ([routing.routes] in the configuration)."));
    return;
  }
  view.append(h("div", { class: "card" }, table(["route", "deployment", "provider", "model", "weight", "breaker", "failures", "in flight", "time to first byte"],
    routes.map((d) => h("tr", { dataset: { deployment: d.deployment, breaker: d.breaker } },
      h("td", {}, d.route), h("td", {}, d.deployment), h("td", {}, d.provider), h("td", {}, d.model),
      h("td", { class: "num" }, String(d.weight)), h("td", { class: `breaker-${d.breaker}` }, STATES[d.breaker] || d.breaker),
      h("td", { class: "num" }, String(d.failures)), h("td", { class: "num" }, String(d.in_flight)),
      h("td", { class: "num" }, d.ttfb_s === null ? "" : `${Math.round(d.ttfb_s * 1000)} ms`))), { id: "routes" })));
}
