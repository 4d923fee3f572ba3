// chainlab's shared page helpers (docs/EXPLORER.md), loaded before explorer.js by the node's explorer and before
// dashboard.js by the testnet dashboard. Everything goes into the page as text (textContent, attribute values),
// never as HTML: whatever a node or a peer says shows as the characters it is.
"use strict";

// -- elements ------------------------------------------------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, String(value));
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function link(href, text, cls) { return el("a", {href: href, class: cls}, text); }
function short(hash) { return typeof hash === "string" && hash.length > 20 ? hash.slice(0, 16) + "\u2026" : String(hash); }
// A link to an explorer page; `base` is another node's explorer (the dashboard links into each node's).
function hashLink(kind, hash, base = "") {
  return link(`${base}#/${kind}/${encodeURIComponent(hash)}`, short(hash), "hash");
}
// A memo travels as hex; shown as the UTF-8 text it holds (as text, whatever it says), or as hex when it is not text.
function memoText(hex) {
  if (!hex) return "";
  if (!/^([0-9a-f]{2})+$/i.test(hex)) return String(hex);
  const bytes = new Uint8Array(hex.match(/../g).map(pair => parseInt(pair, 16)));
  try { return new TextDecoder("utf-8", {fatal: true}).decode(bytes); } catch (error) { return `0x${hex}`; }
}

function badge(text) { return el("span", {class: `badge ${String(text).replace(/[^a-z-]/g, "")}`}, text); }

function age(ms) {
  if (!ms) return "-";  // genesis: timestamp 0
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

async function api(path) {
  const reply = await fetch(path, {headers: {Accept: "application/json"}, credentials: "omit"});
  let body = null;
  try { body = await reply.json(); } catch (error) { body = null; }
  if (!reply.ok) {
    const err = body && body.error ? body.error : {code: `http-${reply.status}`, message: reply.statusText};
    const error = new Error(`${err.code}: ${err.message}`);
    error.code = err.code;
    error.status = reply.status;
    throw error;
  }
  return body;
}

function fields(pairs) {
  const list = el("dl", {class: "fields"});
  for (const [name, value] of pairs) list.append(el("dt", {}, name), el("dd", {}, value));
  return list;
}

function table(headers, rows, numeric) {
  const head = el("tr", {}, ...headers.map((h, i) => el("th", {class: numeric && numeric.includes(i) ? "num" : null}, h)));
  const body = rows.map(cells => el("tr", {}, ...cells.map((c, i) =>
    el("td", {class: numeric && numeric.includes(i) ? "num" : null}, c))));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...body));
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return node;
}

function engineSummary(consensus, engine) {
  if (!engine) return "";
  if (consensus === "pow") {
    // The partition handler's reason names the share already ("reachable share 0.667"): say it once.
    const said = typeof engine.reason === "string" && engine.reason.includes("share");
    const share = !said && typeof engine.reachable_share === "number" ? `, reaches ${(engine.reachable_share * 100).toFixed(0)}% of the hash power` : "";
    return `mining ${engine.mining ? "on" : "off"} (${engine.reason || "?"})${share}`;
  }
  const parts = [];
  for (const key of ["role", "term", "leader", "primary", "view"]) {
    if (engine[key] !== undefined && engine[key] !== null) parts.push(`${key} ${engine[key]}`);
  }
  return parts.join(", ");
}

