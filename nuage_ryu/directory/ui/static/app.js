// nuage-ryu web console: the directory as operators see it, on the REST API only.
// Every view is a function of the hash route; every call goes to /api/v1 with the
// token of the session. Nothing here is trusted by the server: the token's rights
// (admin, or one enterprise) are the console's rights.

const API = "/api/v1";
const PAGE = 50; // rows per page in long lists
const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");

// ---------------------------------------------------------------- DOM helpers
// h("a", {href: "#/x"}, "text", child...) — text always goes in as text, never as HTML.
function h(tag, attrs = {}, ...children) {
  const svg = ["svg", "g", "circle", "line", "path", "text", "title", "marker", "defs"].includes(tag);
  const el = svg ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.setAttribute("class", v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function toast(text) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.hidden = true; }, 3000);
}

function show(...nodes) { main.replaceChildren(...nodes); }
function setCrumbs(...items) {
  crumbs.replaceChildren(...items.flatMap((it, i) => [i ? " / " : "", it.href ? h("a", {href: it.href}, it.text) : it.text]));
}
const short = (id) => (id || "").slice(0, 8);

// ---------------------------------------------------------------- the API
class ApiError extends Error {
  constructor(status, code, message, warnings) { super(message); this.status = status; this.code = code; this.warnings = warnings; }
}

async function api(method, path, body) {
  const token = sessionStorage.getItem("nuage-token");
  const res = await fetch(API + path, {
    method,
    headers: {"Authorization": `Bearer ${token}`, ...(body ? {"Content-Type": "application/json"} : {})},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  const data = text ? JSON.parse(text) : null;
  if (!res.ok) {
    if (res.status === 401) { sessionStorage.removeItem("nuage-token"); location.hash = "#/login"; }
    const e = (data && data.error) || {};
    throw new ApiError(res.status, e.code || "error", e.message || res.statusText);
  }
  return data;
}

// A list endpoint, whole: follows the server's pages when it pages (limit + page_token).
async function list(path) {
  const items = await api("GET", path);
  if (Array.isArray(items)) return items;
  let out = items.items || [];
  let next = items.next_page_token;
  while (next) {
    const sep = path.includes("?") ? "&" : "?";
    const page = await api("GET", `${path}${sep}page_token=${encodeURIComponent(next)}`);
    out = out.concat(page.items || []);
    next = page.next_page_token;
  }
  return out;
}

function errorBox(err) { return h("div", {class: "error", role: "alert"}, `${err.status || ""} ${err.message}`); }

// ---------------------------------------------------------------- endpoints as text
function endpointLabel(ep, names) {
  if (!ep || ep.type === "any") return "any";
  if (ep.type === "cidr") return ep.cidr;
  const prefix = {policygroup: "pg", zone: "zone", subnet: "subnet"}[ep.type] || ep.type;
  return `${prefix}:${names[ep.id] || short(ep.id)}`;
}
function serviceLabel(acl) {
  let s = acl.protocol || "any";
  if (acl.dst_ports) s += ` ${acl.dst_ports}`;
  if (acl.icmp_type !== undefined && acl.icmp_type !== null) s += ` type ${acl.icmp_type}`;
  if (acl.icmp_code !== undefined && acl.icmp_code !== null) s += ` code ${acl.icmp_code}`;
  return s;
}
const fmt = (n) => (n === undefined || n === null ? "–" : Number(n).toLocaleString("en-US"));

// ---------------------------------------------------------------- a paginated, searchable table
function pagedTable(columns, rows, {search = (r) => "", empty = "none"} = {}) {
  const box = h("div");
  let page = 0;
  let filtered = rows;
  const input = h("input", {type: "search", placeholder: "search…", "aria-label": "search", class: "search"});
  const info = h("span", {class: "muted"});
  const prev = h("button", {type: "button", class: "prev"}, "‹ prev");
  const next = h("button", {type: "button", class: "next"}, "next ›");
  const body = h("tbody");
  function render() {
    const pages = Math.max(1, Math.ceil(filtered.length / PAGE));
    page = Math.min(page, pages - 1);
    body.replaceChildren(...(filtered.length ? filtered.slice(page * PAGE, (page + 1) * PAGE).map((r) =>
      h("tr", {}, ...columns.map((c) => h("td", {class: c.num ? "num" : undefined}, c.cell(r)))))
      : [h("tr", {}, h("td", {colspan: columns.length, class: "muted"}, empty))]));
    info.textContent = `${filtered.length} of ${rows.length} · page ${page + 1}/${pages}`;
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }
  input.addEventListener("input", () => {
    const q = input.value.trim().toLowerCase();
    filtered = q ? rows.filter((r) => search(r).toLowerCase().includes(q)) : rows;
    page = 0;
    render();
  });
  prev.addEventListener("click", () => { page -= 1; render(); });
  next.addEventListener("click", () => { page += 1; render(); });
  box.append(h("div", {class: "pager"}, input, prev, next, info),
    h("table", {}, h("thead", {}, h("tr", {}, ...columns.map((c) => h("th", {}, c.title)))), body));
  render();
  return box;
}

// ---------------------------------------------------------------- views
async function viewLogin() {
  setCrumbs({text: "log in"});
  const token = h("input", {type: "password", name: "token", id: "token", autocomplete: "off", size: 50});
  const err = h("div");
  const form = h("form", {class: "card", id: "login"},
    h("h1", {}, "Log in"),
    h("p", {class: "muted"}, "Paste an API token: the admin token (state_dir/api-token) or an enterprise token."),
    h("label", {}, "Token", token), " ", h("button", {type: "submit", class: "primary"}, "Log in"), err);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    sessionStorage.setItem("nuage-token", token.value.trim());
    try {
      await api("GET", "/enterprises");
      location.hash = "#/";
    } catch (e) {
      sessionStorage.removeItem("nuage-token");
      err.replaceChildren(errorBox(e));
    }
  });
  show(form);
  token.focus();
}

async function viewEnterprises() {
  setCrumbs({text: "enterprises"});
  const ents = await list("/enterprises");
  show(h("h1", {}, "Enterprises"), pagedTable([
    {title: "name", cell: (e) => h("a", {href: `#/enterprise/${e.id}`}, e.name)},
    {title: "description", cell: (e) => e.description || ""},
    {title: "id", cell: (e) => short(e.id)},
  ], ents, {search: (e) => e.name, empty: "no enterprise visible to this token"}));
}

async function viewEnterprise(id) {
  const [ent, domains] = await Promise.all([api("GET", `/enterprises/${id}`), list(`/enterprises/${id}/domains`)]);
  setCrumbs({text: "enterprises", href: "#/"}, {text: ent.name});
  show(h("h1", {}, `Enterprise ${ent.name}`), h("h2", {}, "Domains"), pagedTable([
    {title: "name", cell: (d) => h("a", {href: `#/domain/${d.id}`}, d.name)},
    {title: "VNI", cell: (d) => d.vni, num: true},
    {title: "default action", cell: (d) => h("span", {class: d.default_action}, d.default_action)},
    {title: "id", cell: (d) => short(d.id)},
  ], domains, {search: (d) => d.name}));
}

// Everything a domain page needs, in parallel.
async function loadDomain(id) {
  const domain = await api("GET", `/domains/${id}`);
  const [ent, zones, groups, acls] = await Promise.all([
    api("GET", `/enterprises/${domain.enterprise}`), list(`/domains/${id}/zones`),
    list(`/domains/${id}/policygroups`), list(`/domains/${id}/acls`)]);
  const subnetsByZone = await Promise.all(zones.map((z) => list(`/zones/${z.id}/subnets`)));
  const subnets = subnetsByZone.flat();
  const names = {};
  for (const o of [...zones, ...groups, ...subnets]) names[o.id] = o.name;
  acls.sort((a, b) => a.priority - b.priority);
  return {domain, ent, zones, groups, acls, subnets, subnetsByZone, names};
}

async function viewDomain(id) {
  const d = await loadDomain(id);
  setCrumbs({text: "enterprises", href: "#/"}, {text: d.ent.name, href: `#/enterprise/${d.ent.id}`}, {text: d.domain.name});
  const zonesCard = h("div", {class: "card"}, h("h2", {}, "Zones and subnets"),
    ...d.zones.map((z, i) => h("div", {}, h("strong", {}, z.name), " ",
      ...d.subnetsByZone[i].map((s) => h("span", {}, " · ", h("a", {href: `#/subnet/${s.id}`}, `${s.name} ${s.cidr}`))))));
  const groupsCard = h("div", {class: "card"}, h("h2", {}, "Policy groups"),
    h("ul", {}, ...d.groups.map((g) => h("li", {}, h("a", {href: `#/policygroup/${g.id}`}, g.name)))),
    policyGroupForm(d));
  const ruleRow = (a) => h("tr", {},
    h("td", {class: "num"}, a.priority),
    h("td", {}, h("a", {href: `#/acl/${a.id}`}, a.name || short(a.id))),
    h("td", {}, endpointLabel(a.source, d.names)),
    h("td", {}, endpointLabel(a.destination, d.names)),
    h("td", {}, serviceLabel(a)),
    h("td", {}, h("span", {class: a.action}, a.action)),
    h("td", {}, a.stateful ? "yes" : "no"),
    h("td", {class: "num"}, fmt(a.counters && a.counters.packets)));
  const heads = ["prio", "name", "source", "destination", "service", "action", "stateful", "packets"];
  const rulesTable = h("table", {id: "rules"},
    h("thead", {}, h("tr", {}, ...heads.map((t) => h("th", {}, t)))),
    h("tbody", {}, ...d.acls.map(ruleRow)));
  const defaultNote = h("p", {class: "muted"}, "Evaluated by priority, lowest first; no match: default action ",
    h("span", {class: d.domain.default_action, id: "default-action"}, d.domain.default_action), ".");
  const rules = h("div", {class: "card"}, h("h2", {}, "Rules"), defaultNote, rulesTable, ruleForm(d));
  show(h("h1", {}, `Domain ${d.domain.name}`), h("h2", {}, "Policy map"), policyMap(d),
    h("div", {class: "row"}, zonesCard, groupsCard), rules);
}

// Policy groups as nodes on a circle, other endpoints (any, cidr, zone, subnet) as grey nodes,
// one edge per rule: green allow, red deny, dashed stateless, thickness from its packet counter.
function policyMap(d) {
  const W = 760, H = 420, R = 160, cx = W / 2, cy = H / 2;
  const nodes = new Map();
  for (const g of d.groups) nodes.set(`pg:${g.id}`, {label: g.name, pseudo: false});
  for (const a of d.acls) {
    for (const ep of [a.source, a.destination]) {
      const key = ep.type === "policygroup" ? `pg:${ep.id}` : endpointLabel(ep, d.names);
      if (!nodes.has(key)) nodes.set(key, {label: endpointLabel(ep, d.names), pseudo: true});
    }
  }
  const keys = [...nodes.keys()];
  keys.forEach((k, i) => {
    const angle = (2 * Math.PI * i) / Math.max(keys.length, 1) - Math.PI / 2;
    Object.assign(nodes.get(k), {x: cx + R * Math.cos(angle), y: cy + R * Math.sin(angle)});
  });
  const maxPackets = Math.max(1, ...d.acls.map((a) => (a.counters && a.counters.packets) || 0));
  const keyOf = (ep) => (ep.type === "policygroup" ? `pg:${ep.id}` : endpointLabel(ep, d.names));
  const edges = d.acls.map((a, i) => {
    const s = nodes.get(keyOf(a.source)), t = nodes.get(keyOf(a.destination));
    const packets = (a.counters && a.counters.packets) || 0;
    const width = 1.5 + 6 * Math.log1p(packets) / Math.log1p(maxPackets);
    const bend = 30 + 12 * (i % 4); // parallel rules between the same pair stay apart
    const mx = (s.x + t.x) / 2 + bend * Math.sign(t.y - s.y || 1), my = (s.y + t.y) / 2 - bend * Math.sign(t.x - s.x || 1);
    const path = s === t ? `M ${s.x} ${s.y - 18} c 50 -60 -50 -60 0 0` : `M ${s.x} ${s.y} Q ${mx} ${my} ${t.x} ${t.y}`;
    return h("g", {class: "rule", "data-acl": a.id},
      h("path", {d: path, class: `edge ${a.action}${a.stateful ? "" : " stateless"}`, "stroke-width": width.toFixed(1),
        "marker-end": `url(#arrow-${a.action})`},
        h("title", {}, `${a.priority} ${a.name || ""}: ${serviceLabel(a)} ${a.action}${a.stateful ? " (stateful)" : ""} · ${fmt(packets)} packets`)),
      // The label sits on the curve itself (its point at t = 1/2), not on the control point.
      h("text", {x: s === t ? s.x + 8 : 0.25 * s.x + 0.5 * mx + 0.25 * t.x,
        y: s === t ? s.y - 55 : 0.25 * s.y + 0.5 * my + 0.25 * t.y}, `${a.priority}`));
  });
  const markers = h("defs", {}, ...["allow", "deny"].map((act) => h("marker", {id: `arrow-${act}`, viewBox: "0 0 10 10", refX: 28, refY: 5,
    markerWidth: 10, markerHeight: 10, markerUnits: "userSpaceOnUse", orient: "auto-start-reverse"}, h("path", {d: "M 0 0 L 10 5 L 0 10 z", class: act === "allow" ? "allow" : "deny",
    fill: act === "allow" ? "#1a7f37" : "#c62828"}))));
  return h("svg", {class: "map", id: "policy-map", width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `policy map of ${d.domain.name}`}, markers, ...edges,
    ...keys.map((k) => { const n = nodes.get(k); return h("g", {class: `node${n.pseudo ? " pseudo" : ""}`, "data-node": n.label},
      h("circle", {cx: n.x, cy: n.y, r: 18}), h("text", {x: n.x + 22, y: n.y + 4}, n.label)); }),
    h("text", {x: 10, y: H - 10, class: "muted"}, `default: ${d.domain.default_action} · ${d.acls.length} rules`));
}

function endpointInput(name, d) {
  const options = [h("option", {value: "any"}, "any"),
    ...d.groups.map((g) => h("option", {value: `policygroup:${g.id}`}, `pg:${g.name}`)),
    ...d.zones.map((z) => h("option", {value: `zone:${z.id}`}, `zone:${z.name}`)),
    ...d.subnets.map((s) => h("option", {value: `subnet:${s.id}`}, `subnet:${s.name}`)),
    h("option", {value: "cidr"}, "cidr…")];
  const sel = h("select", {name}, ...options);
  const cidr = h("input", {name: `${name}_cidr`, placeholder: "10.0.0.0/24", size: 14});
  return {el: h("label", {}, name, h("span", {}, sel, cidr)), value() {
    if (sel.value === "any") return {type: "any"};
    if (sel.value === "cidr") return {type: "cidr", cidr: cidr.value.trim()};
    const [type, id] = sel.value.split(":");
    return {type, id};
  }};
}

// Create a rule: the API validates (and answers shadow warnings); the console shows both.
function ruleForm(d) {
  const src = endpointInput("source", d), dst = endpointInput("destination", d);
  const f = {
    priority: h("input", {name: "priority", type: "number", min: 1, max: 65535, size: 6, required: true}),
    name: h("input", {name: "name", size: 12}),
    protocol: h("select", {name: "protocol"}, ...["tcp", "udp", "icmp", "any"].map((p) => h("option", {value: p}, p))),
    dst_ports: h("input", {name: "dst_ports", placeholder: "80 or 8000-8080", size: 10}),
    action: h("select", {name: "action"}, h("option", {value: "allow"}, "allow"), h("option", {value: "deny"}, "deny")),
    stateful: h("input", {name: "stateful", type: "checkbox", checked: true}),
  };
  const out = h("div");
  const form = h("form", {class: "inline", id: "new-rule"}, h("label", {}, "priority", f.priority), h("label", {}, "name", f.name),
    src.el, dst.el, h("label", {}, "protocol", f.protocol), h("label", {}, "ports", f.dst_ports),
    h("label", {}, "action", f.action), h("label", {}, "stateful", f.stateful), h("button", {type: "submit", class: "primary"}, "Add rule"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = {priority: Number(f.priority.value), source: src.value(), destination: dst.value(),
      protocol: f.protocol.value, action: f.action.value, stateful: f.stateful.checked};
    if (f.name.value.trim()) body.name = f.name.value.trim();
    if (f.dst_ports.value.trim()) body.dst_ports = f.dst_ports.value.trim();
    try {
      const created = await api("POST", `/domains/${d.domain.id}/acls`, body);
      toast(`rule ${created.priority} created${created.warnings && created.warnings.length ? " — " + created.warnings.join("; ") : ""}`);
      await viewDomain(d.domain.id);
    } catch (e) { out.replaceChildren(errorBox(e)); }
  });
  return h("div", {}, h("h2", {}, "New rule"), form, out);
}

function policyGroupForm(d) {
  const name = h("input", {name: "pg_name", size: 12, required: true});
  const out = h("div");
  const form = h("form", {class: "inline", id: "new-policygroup"}, h("label", {}, "new group", name),
    h("button", {type: "submit"}, "Add"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await api("POST", `/domains/${d.domain.id}/policygroups`, {name: name.value.trim()});
      toast(`policy group ${name.value.trim()} created`);
      await viewDomain(d.domain.id);
    } catch (e) { out.replaceChildren(errorBox(e)); }
  });
  return h("div", {}, form, out);
}

async function viewAcl(id) {
  const acl = await api("GET", `/acls/${id}`);
  const d = await loadDomain(acl.domain);
  setCrumbs({text: "enterprises", href: "#/"}, {text: d.ent.name, href: `#/enterprise/${d.ent.id}`},
    {text: d.domain.name, href: `#/domain/${d.domain.id}`}, {text: `rule ${acl.priority}`});
  const byHost = Object.entries((acl.counters && acl.counters.by_host) || {});
  const err = h("div");
  const del = h("button", {type: "button", class: "danger", id: "delete-rule"}, "Delete rule");
  del.addEventListener("click", async () => {
    if (!confirm(`Delete rule ${acl.priority}?`)) return;
    try { await api("DELETE", `/acls/${id}`); toast("rule deleted"); location.hash = `#/domain/${d.domain.id}`; }
    catch (e) { err.replaceChildren(errorBox(e)); }
  });
  const action = h("select", {name: "action"}, ...["allow", "deny"].map((a) => h("option", {value: a, selected: a === acl.action}, a)));
  const stateful = h("input", {type: "checkbox", name: "stateful", checked: acl.stateful});
  const ports = h("input", {name: "dst_ports", value: acl.dst_ports || "", size: 10});
  const edit = h("form", {class: "inline", id: "edit-rule"}, h("label", {}, "action", action), h("label", {}, "stateful", stateful),
    h("label", {}, "ports", ports), h("button", {type: "submit", class: "primary"}, "Save"));
  edit.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = {action: action.value, stateful: stateful.checked, dst_ports: ports.value.trim() || null};
    try { const r = await api("PUT", `/acls/${id}`, body); toast(`saved${r.warnings && r.warnings.length ? " — " + r.warnings.join("; ") : ""}`); await viewAcl(id); }
    catch (e) { err.replaceChildren(errorBox(e)); }
  });
  show(h("h1", {}, `Rule ${acl.priority} ${acl.name || ""}`),
    h("div", {class: "card"}, h("p", {}, `${endpointLabel(acl.source, d.names)} → ${endpointLabel(acl.destination, d.names)} · ${serviceLabel(acl)} · `,
      h("span", {class: acl.action}, acl.action), acl.stateful ? " · stateful" : " · stateless"), edit, del, err),
    h("h2", {}, "Counters by host"),
    h("table", {id: "counters"}, h("thead", {}, h("tr", {}, h("th", {}, "host"), h("th", {}, "packets"), h("th", {}, "bytes"))),
      h("tbody", {}, ...byHost.map(([host, c]) => h("tr", {}, h("td", {}, host), h("td", {class: "num"}, fmt(c.packets)), h("td", {class: "num"}, fmt(c.bytes)))),
        h("tr", {}, h("th", {}, "total"), h("th", {class: "num"}, fmt(acl.counters && acl.counters.packets)), h("th", {class: "num"}, fmt(acl.counters && acl.counters.bytes))))));
}

async function viewSubnet(id) {
  const subnet = await api("GET", `/subnets/${id}`);
  const zone = await api("GET", `/zones/${subnet.zone}`);
  const domain = await api("GET", `/domains/${zone.domain}`);
  const [vports, groups] = await Promise.all([list(`/subnets/${id}/vports`), list(`/domains/${domain.id}/policygroups`)]);
  const names = Object.fromEntries(groups.map((g) => [g.id, g.name]));
  setCrumbs({text: "enterprises", href: "#/"}, {text: domain.name, href: `#/domain/${domain.id}`}, {text: `${zone.name}/${subnet.name}`});
  show(h("h1", {}, `Subnet ${subnet.name} ${subnet.cidr}`), h("p", {class: "muted"}, `gateway ${subnet.gateway}`),
    pagedTable([
      {title: "name", cell: (v) => h("a", {href: `#/vport/${v.id}`}, v.name)},
      {title: "ip", cell: (v) => v.ip}, {title: "mac", cell: (v) => v.mac},
      {title: "status", cell: (v) => h("span", {class: v.status}, v.status)},
      {title: "host", cell: (v) => v.host || ""}, {title: "type", cell: (v) => v.type},
      {title: "policy groups", cell: (v) => (v.policygroups || []).map((g) => names[g] || short(g)).join(", ")},
    ], vports, {search: (v) => `${v.name} ${v.ip} ${v.host} ${v.status}`, empty: "no vports"}));
}

async function viewVport(id) {
  const vport = await api("GET", `/vports/${id}`);
  const groups = await list(`/domains/${vport.domain}/policygroups`);
  setCrumbs({text: "enterprises", href: "#/"}, {text: "subnet", href: `#/subnet/${vport.subnet}`}, {text: vport.name});
  const boxes = groups.map((g) => h("label", {}, h("input", {type: "checkbox", name: "pg", value: g.id,
    checked: (vport.policygroups || []).includes(g.id)}), g.name));
  const err = h("div");
  const form = h("form", {class: "inline", id: "membership"}, ...boxes, h("button", {type: "submit", class: "primary"}, "Save membership"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const chosen = boxes.map((b) => b.querySelector("input")).filter((i) => i.checked).map((i) => i.value);
    try { await api("PUT", `/vports/${id}`, {policygroups: chosen}); toast("membership saved"); await viewVport(id); }
    catch (e) { err.replaceChildren(errorBox(e)); }
  });
  show(h("h1", {}, `VPort ${vport.name}`),
    h("table", {}, h("tbody", {}, ...["ip", "mac", "gateway", "status", "host", "type"].map((k) =>
      h("tr", {}, h("th", {}, k), h("td", {}, String(vport[k] ?? ""))))) ),
    h("h2", {}, "Policy groups"), form, err,
    h("p", {}, h("a", {href: `#/trace/${vport.id}`, id: "trace-from-here"}, "Trace a packet from this vport")));
}

async function viewPolicyGroup(id) {
  const pg = await api("GET", `/policygroups/${id}`);
  const members = await list(`/policygroups/${id}/vports`);
  setCrumbs({text: "enterprises", href: "#/"}, {text: "domain", href: `#/domain/${pg.domain}`}, {text: `pg:${pg.name}`});
  const err = h("div");
  const del = h("button", {type: "button", class: "danger", id: "delete-policygroup"}, "Delete group");
  del.addEventListener("click", async () => {
    if (!confirm(`Delete policy group ${pg.name}?`)) return;
    try { await api("DELETE", `/policygroups/${id}`); toast("policy group deleted"); location.hash = `#/domain/${pg.domain}`; }
    catch (e) { err.replaceChildren(errorBox(e)); }
  });
  show(h("h1", {}, `Policy group ${pg.name}`), del, err, h("h2", {}, "Members"), pagedTable([
    {title: "name", cell: (v) => h("a", {href: `#/vport/${v.id}`}, v.name)}, {title: "ip", cell: (v) => v.ip},
    {title: "host", cell: (v) => v.host || ""}, {title: "status", cell: (v) => h("span", {class: v.status}, v.status)},
  ], members, {search: (v) => `${v.name} ${v.ip}`, empty: "no members"}));
}

async function viewHosts() {
  setCrumbs({text: "hosts"});
  const hosts = await list("/hosts");
  show(h("h1", {}, "Hosts"), pagedTable([
    {title: "name", cell: (x) => x.name}, {title: "tunnel ip", cell: (x) => x.tunnel_ip || ""},
    {title: "connected", cell: (x) => h("span", {class: x.connected ? "up" : "down"}, x.connected ? "yes" : "no")},
    {title: "last seen", cell: (x) => (x.last_seen ? new Date(x.last_seen).toISOString().replace("T", " ").slice(0, 19) : "–")},
    {title: "agent version", cell: (x) => x.agent_version || "–"},
    {title: "vports", num: true, cell: (x) => fmt(x.vport_count)},
    {title: "datapath id", cell: (x) => x.datapath_id || ""},
  ], hosts, {search: (x) => `${x.name} ${x.agent_version || ""}`, empty: "no host registered"}));
}

// ---------------------------------------------------------------- explain a packet (POST /trace)
const TRACE_TABLES = (hop) => hop.tables.map((t) => `${t.name}(${t.table})`).join(" → ");

function traceResult(a) {
  const rule = a.rule;
  const decided = rule
    ? h("span", {id: "trace-rule"}, h("a", {href: `#/acl/${rule.id}`}, `rule ${rule.name || short(rule.id)}`),
      ` priority ${rule.priority}: ${endpointLabel(rule.source, {[rule.source.id]: rule.source.name})} → `,
      `${endpointLabel(rule.destination, {[rule.destination.id]: rule.destination.name})} ${serviceLabel(rule)} `,
      h("span", {class: rule.action}, rule.action), rule.stateful ? ", stateful" : ", stateless")
    : h("span", {id: "trace-rule"}, `the domain's default action (${a.domain.default_action}): no rule matches`);
  const detail = a.datapath_detail || {};
  const dp = a.datapath === "unavailable" ? `unavailable: ${detail.reason || ""}`
    : `${a.datapath} (ofproto/trace on ${detail.host}${detail.seconds !== undefined ? `, ${detail.seconds} s` : ""})`;
  const dpClass = {agree: "allow", disagree: "deny", unavailable: "warn"}[a.datapath];
  const end = (e) => (e.name ? `${e.name} (${e.ip}, ${e.host || "no host"})` : e.ip);
  const svc = a.packet.dst_port !== undefined ? `${a.packet.protocol} ${a.packet.src_port} → ${a.packet.dst_port}`
    : a.packet.icmp_type !== undefined ? `icmp type ${a.packet.icmp_type} code ${a.packet.icmp_code}` : a.packet.protocol;
  const rows = [
    ["packet", `${end(a.from)} → ${end(a.to)}`],
    ["service", `${svc} in ${a.domain.enterprise}/${a.domain.name}`],
    ["verdict", h("span", {class: a.verdict, id: "trace-verdict"}, a.verdict)],
    ["decided by", decided],
    ["default action", h("span", {id: "trace-default"}, a.default_action ? "yes" : "no")],
    ...a.path.hops.map((hop, i) => [i ? "" : "path",
      h("span", {class: "hop"}, `${hop.host || "–"} ${hop.role}: ${TRACE_TABLES(hop)} `,
        h("span", {class: "muted"}, hop.observed ? "[ofproto/trace]" : "[pipeline]"))]),
    ["datapath", h("span", {class: dpClass, id: "trace-datapath"}, dp)],
    ...(detail.differences || []).map((d) => ["", h("span", {class: "deny"}, `– ${d}`)]),
    ...(a.notes || []).map((n) => ["note", h("span", {class: "muted"}, n)]),
  ];
  return h("table", {class: "kv", id: "trace-result", "data-verdict": a.verdict, "data-datapath": a.datapath},
    h("tbody", {}, ...rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))));
}

async function viewTrace(from = "") {
  setCrumbs({text: "trace"});
  const f = {
    from: h("input", {name: "from", id: "trace-from", size: 22, required: true, placeholder: "vport or IP"}),
    to: h("input", {name: "to", id: "trace-to", size: 22, required: true, placeholder: "vport or IP"}),
    protocol: h("select", {name: "protocol", id: "trace-protocol"},
      ...["tcp", "udp", "icmp", "any"].map((p) => h("option", {value: p}, p))),
    port: h("input", {name: "port", id: "trace-port", type: "number", min: 1, max: 65535, size: 6, placeholder: "8080"}),
  };
  f.from.value = from;  // from a vport's page: its id (the API takes ids as well as names)
  const out = h("div", {id: "trace-out"});
  const form = h("form", {class: "inline", id: "trace-form"}, h("label", {}, "from", f.from), h("label", {}, "to", f.to),
    h("label", {}, "protocol", f.protocol), h("label", {}, "port", f.port),
    h("button", {type: "submit", class: "primary"}, "Trace"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const body = {from: f.from.value.trim(), to: f.to.value.trim(), protocol: f.protocol.value};
    if (f.port.value.trim() && ["tcp", "udp"].includes(f.protocol.value)) body.port = Number(f.port.value);
    out.replaceChildren(h("p", {class: "muted"}, "tracing…"));
    try { out.replaceChildren(traceResult(await api("POST", "/trace", body))); }
    catch (e) { out.replaceChildren(errorBox(e)); }
  });
  show(h("h1", {}, "Explain a packet"),
    h("p", {class: "muted"}, "Which rule decides a packet from a vport (name, path, id prefix, or an address of its domain) ",
      "to another, the path it takes, and whether the flows on the source's host agree (ofproto/trace there)."),
    form, out);
}

// ---------------------------------------------------------------- router
const ROUTES = [
  [/^#\/login$/, viewLogin], [/^#\/?$/, viewEnterprises], [/^#\/hosts$/, viewHosts], [/^#\/trace$/, viewTrace], [/^#\/trace\/([\w-]+)$/, viewTrace],
  [/^#\/enterprise\/([\w-]+)$/, viewEnterprise], [/^#\/domain\/([\w-]+)$/, viewDomain],
  [/^#\/subnet\/([\w-]+)$/, viewSubnet], [/^#\/vport\/([\w-]+)$/, viewVport],
  [/^#\/acl\/([\w-]+)$/, viewAcl], [/^#\/policygroup\/([\w-]+)$/, viewPolicyGroup],
];

async function route() {
  const hash = location.hash || "#/";
  const loggedIn = !!sessionStorage.getItem("nuage-token");
  document.getElementById("logout").hidden = !loggedIn;
  document.getElementById("who").textContent = loggedIn ? "" : "not logged in";
  if (!loggedIn && hash !== "#/login") { location.hash = "#/login"; return; }
  for (const [re, view] of ROUTES) {
    const m = hash.match(re);
    if (m) {
      try { await view(...m.slice(1)); } catch (e) { show(errorBox(e)); }
      document.body.dataset.view = view.name; // lets tests (and people) see which view rendered
      return;
    }
  }
  show(h("p", {}, "no such page"));
}

document.getElementById("logout").addEventListener("click", () => { sessionStorage.removeItem("nuage-token"); location.hash = "#/login"; });
window.addEventListener("hashchange", route);
route();
