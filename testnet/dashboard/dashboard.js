// chainlab testnet dashboard (docs/DASHBOARD.md): every node of one testnet on one page, from GET /api/state once a
// second. Read-only; everything shown goes into the page as text (common.js), never as HTML: a node name or a
// nemesis detail holding markup shows as the characters it is.
"use strict";

const REFRESH_MS = 1000;
const liveLine = document.getElementById("live");
const problem = document.getElementById("problem");
let lastState = null;
let failures = 0;

function put(id, ...nodes) { document.getElementById(id).replaceChildren(...nodes); }
function cellOf(value) { return value === undefined || value === null ? "-" : value; }

// -- nodes ------------------------------------------------------------------------------------------------------

function nodesTable(state) {
  const rows = state.nodes.map(n => {
    const explorer = n.explorer && n.state !== "stopped" && n.state !== "killed"
      ? link(n.explorer, "explorer") : "-";
    const head = n.head ? hashLink("block", n.head, n.explorer || "") : "-";
    return [n.name, n.state, cellOf(n.height), head, cellOf(n.final_height), cellOf(n.peers), cellOf(n.mempool),
            cellOf(n.engine), explorer, n.error || ""];
  });
  const engineHeader = state.testnet.consensus === "pow" ? "mining" : "role";
  const t = table(["node", "state", "height", "head", "final", "peers", "mempool", engineHeader, "", ""], rows,
                  [2, 4, 5, 6]);
  t.id = "node-table";
  t.querySelectorAll("tbody tr").forEach((tr, i) => {
    const n = state.nodes[i];
    tr.dataset.node = n.name;
    if (n.error) tr.className = "unreachable";
    else if (n.state !== "running" && !String(n.state).startsWith("syncing")) tr.className = "not-running";
  });
  return t;
}

// -- partition and netem ----------------------------------------------------------------------------------------

function partitionView(state) {
  const p = state.partition;
  const down = new Set(state.nodes.filter(n => n.state === "stopped" || n.state === "killed").map(n => n.name));
  const groups = el("div", {class: "groups"}, ...p.groups.map(g =>
    el("div", {class: "group", "data-members": g.join(",")},
       ...g.map(name => el("span", {class: down.has(name) ? "name down" : "name"}, name)))));
  const running = state.nodes.filter(n => n.state === "running" || String(n.state).startsWith("syncing")).length;
  const summary = running === 0
    ? el("p", {id: "partition-summary", class: "muted"}, "no node running")
    : p.partitioned
      ? el("p", {id: "partition-summary", class: "error"}, `partitioned into ${p.groups.length} groups`)
      : el("p", {id: "partition-summary"}, "one network: every node can reach every other");
  const wrap = el("div", {class: p.partitioned ? "partitioned" : null, "data-partitioned": String(p.partitioned),
                          "data-groups": String(p.groups.length)}, summary, groups);
  const blocked = Object.entries(p.blocked);
  if (blocked.length) {
    wrap.append(el("h3", {}, "who blocks whom"),
                table(["node", "blocks"], blocked.map(([name, others]) => [name, others.join(", ")])));
  }
  const netem = Object.entries(p.netem);
  wrap.append(netem.length
    ? table(["node", "delay ms", "jitter ms", "loss", "duplicate"], netem.map(([name, s]) =>
        [name, cellOf(s.delay_ms), cellOf(s.jitter_ms), cellOf(s.loss), cellOf(s.duplicate)]), [1, 2, 3, 4])
    : el("p", {class: "muted", id: "netem-none"}, "no netem: links without added delay or loss"));
  return wrap;
}

// -- load and check ---------------------------------------------------------------------------------------------

function loadView(load) {
  if (!load) return el("p", {class: "muted"}, "no load recorded (history.jsonl): `chainlab testnet load` or make run's light load");
  const ms = v => v === null || v === undefined ? "-" : `${Math.round(v)} ms`;
  return fields([
    ["sent", load.submitted], ["accepted", load.accepted], ["rejected", load.rejected], ["unknown", load.unknown],
    ["included", load.included], ["final", load.final],
    ["accepted now", `${load.accepted_tps.toFixed(1)} tx/s (last 10 s)`],
    ["to inclusion", `p50 ${ms(load.latency.included.p50_ms)}, p95 ${ms(load.latency.included.p95_ms)}`],
    ["to finality", `p50 ${ms(load.latency.final.p50_ms)}, p95 ${ms(load.latency.final.p95_ms)}`],
  ]);
}

function checkView(check) {
  if (!check) return el("p", {class: "muted", id: "check-none"}, "no check yet: run `chainlab testnet check`");
  return el("div", {},
    el("p", {}, el("span", {class: check.ok ? "verdict-ok" : "verdict-fail", id: "check-verdict"},
                   check.ok ? "all checks passed" : "FAILED"), " ", el("span", {class: "muted"}, check.time || "")),
    table(["", "check", "detail"], check.checks.map(c => [c.ok ? "ok" : "FAIL", c.name, c.detail])));
}

// -- events -----------------------------------------------------------------------------------------------------

function detailText(detail) {
  const parts = [];
  for (const [key, value] of Object.entries(detail || {})) {
    parts.push(`${key}=${typeof value === "string" ? value : JSON.stringify(value)}`);
  }
  return parts.join(" ");
}

function eventsView(events) {
  if (!events.length) return el("p", {class: "muted"}, "no nemesis action yet");
  const t = table(["time", "action", "nodes", "detail"],
                  events.map(e => [String(e.time || "").replace("T", " ").replace(/\.\d+Z$/, "Z"), e.action,
                                   (e.nodes || []).join(", "), detailText(e.detail)]));
  t.id = "event-table";
  return t;
}

// -- the union block tree ---------------------------------------------------------------------------------------

function treeView(tree, nodes) {
  if (!tree.columns.length) return el("p", {class: "muted"}, "no block fetched yet");
  const row = 22, colWidth = 190, left = 24;
  const y = h => 20 + (tree.top - h) * row;
  const x = c => left + c * colWidth;
  const picture = svg("svg", {id: "union-tree", height: y(tree.bottom) + 24, role: "img"});
  let right = left + tree.columns.length * colWidth;
  const where = new Map();
  tree.columns.forEach((column, c) => column.blocks.forEach(b => where.set(b.hash, {x: x(c), y: y(b.height)})));
  const explorerOf = new Map(nodes.map(n => [n.name, n.explorer]));
  const anyExplorer = nodes.map(n => n.explorer).find(Boolean) || "";
  tree.columns.forEach((column, c) => {
    const blocks = column.blocks;
    for (let i = 1; i < blocks.length; i++) {
      picture.append(svg("line", {class: "edge", x1: x(c), x2: x(c), y1: y(blocks[i].height), y2: y(blocks[i - 1].height)}));
    }
    const lowest = blocks[blocks.length - 1];
    const from = column.fork_from && where.get(column.fork_from);
    if (from) picture.append(svg("line", {class: "edge fork", x1: from.x, y1: from.y, x2: x(c), y2: y(lowest.height)}));
  });
  tree.columns.forEach((column, c) => {
    const kind = c === 0 && column.status === "active" ? "main" : `side ${column.status}`;
    if (column.status === "abandoned" && column.blocks.length) {
      const top = column.blocks[0];
      picture.append(svg("text", {class: "abandoned-label", x: x(c) - 6, y: y(top.height) - 10}, "abandoned"));
    }
    for (const b of column.blocks) {
      const heads = tree.heads[b.hash] || [];
      const finals = tree.finals[b.hash] || [];
      const base = (heads.length && explorerOf.get(heads[0])) || anyExplorer;
      const g = svg("a", {href: `${base}#/block/${b.hash}`, class: `tree-block ${kind}${finals.length ? " final" : ""}`,
                          "data-hash": b.hash, "data-height": b.height},
                    svg("circle", {cx: x(c), cy: y(b.height), r: 6}),
                    svg("text", {x: x(c) + 11, y: y(b.height) + 4}, `${b.height} ${b.hash.slice(0, 8)}`));
      picture.append(g);
      let offset = x(c) + 11 + 8 * 12;
      if (heads.length) {
        const label = svg("text", {class: "heads", x: offset, y: y(b.height) + 4, "data-heads": heads.join(",")},
                          `\u25c0 ${heads.join(" ")}`);
        picture.append(label);
        offset += 14 + 8 * heads.join(" ").length;
      }
      if (finals.length) {
        picture.append(svg("text", {class: "finals", x: offset, y: y(b.height) + 4, "data-finals": finals.join(",")},
                           `final ${finals.join(" ")}`));
        offset += 8 * (6 + finals.join(" ").length);
      }
      right = Math.max(right, offset + 8);
    }
  });
  picture.setAttribute("width", right);
  picture.setAttribute("data-columns", tree.columns.map(c => c.status).join(","));
  const wrap = el("div", {}, picture);
  if (tree.hidden_branches) wrap.append(el("p", {class: "muted"}, `${tree.hidden_branches} more branch(es) not drawn`));
  return wrap;
}

// -- the loop ---------------------------------------------------------------------------------------------------

function render(state) {
  const t = state.testnet;
  document.getElementById("testnet").textContent =
    `${t.dir} \u00b7 chain ${t.chain_id} \u00b7 ${t.consensus} \u00b7 ${t.topology} \u00b7 ${t.nodes} nodes`;
  put("nodes", nodesTable(state));
  put("partition", partitionView(state));
  put("load", loadView(state.load));
  put("tree", treeView(state.tree, state.nodes));
  put("events", eventsView(state.events));
  put("check", checkView(state.check));
}

async function refresh() {
  try {
    const state = await api("/api/state");
    failures = 0;
    if (state.error) {
      problem.hidden = false;
      problem.textContent = `${state.error.code}: ${state.error.message}`;
    } else {
      problem.hidden = true;
      render(state);
      lastState = state;
    }
    liveLine.textContent = `updated ${new Date(state.time_ms).toISOString().slice(11, 19)}Z (state built in ` +
      `${state.dashboard ? state.dashboard.build_ms : "?"} ms)`;
  } catch (error) {
    failures += 1;
    liveLine.textContent = `the dashboard server does not answer (${failures}): ${error.message || error}` +
      (lastState ? "; showing the last state" : "");
  }
  setTimeout(refresh, document.hidden ? 5 * REFRESH_MS : REFRESH_MS);
}

refresh();
