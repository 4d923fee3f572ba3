// chainlab explorer (docs/EXPLORER.md): a read-only page over the node's own JSON RPC, same origin, no build step.
// Everything the node says is put into the page as text (textContent, attribute values), never as HTML: a memo or a
// peer name holding markup or a script shows as the characters it is. The admin token is never asked for or sent.
"use strict";

const page = document.getElementById("page");
const statusBar = document.getElementById("status");
const live = document.getElementById("live");
let lastStatus = null;

// The small helpers (el, table, api, svg, ...) are in common.js, shared with the testnet dashboard.

function show(...nodes) { page.replaceChildren(...nodes.filter(n => n !== null && n !== undefined && n !== false)); }
function failure(error) { show(el("p", {class: "error"}, String(error.message || error))); }

// -- the status bar -----------------------------------------------------------------------------------------------

async function refreshStatus() {
  const s = await api("/v1/status");
  lastStatus = s;
  statusBar.replaceChildren(
    el("span", {}, "chain ", el("b", {}, s.chain_id)),
    el("span", {}, "engine ", el("b", {}, s.consensus)),
    el("span", {id: "status-height"}, "height ", el("b", {}, s.height)),
    el("span", {id: "status-final"}, "final ", el("b", {}, s.final_height)),
    el("span", {}, "peers ", el("b", {}, s.peers)),
    el("span", {}, "mempool ", el("b", {}, s.mempool_size)),
    el("span", {id: "status-engine", class: "muted"}, engineSummary(s.consensus, s.engine)),
  );
  return s;
}

// -- pages --------------------------------------------------------------------------------------------------------

async function home() {
  const s = await refreshStatus();
  const from = Math.max(0, s.height - 19);
  const reply = await api(`/v1/blocks?from=${from}&limit=20`);
  const rows = reply.blocks.slice().reverse().map(b => [
    link(`#/block/${b.height}`, b.height), hashLink("block", b.hash), hashLink("account", b.proposer), b.tx_count,
    el("span", {title: new Date(b.timestamp_ms).toISOString()}, age(b.timestamp_ms)),
    badge(b.final ? "final" : "not final"),
  ]);
  show(el("h1", {}, "Recent blocks"),
       table(["height", "hash", "proposer", "txs", "age", "final"], rows, [3]));
  page.querySelector("tbody").id = "recent-blocks";
}

function txRows(txs) {
  return txs.map(t => [hashLink("tx", t.hash), hashLink("account", t.from), hashLink("account", t.to), t.amount,
                       t.fee, t.nonce, el("pre", {class: "memo"}, memoText(t.memo))]);
}

// The seal as the engine reads it (GET /v1/blocks/{ref} `seal_decoded`), then its hex.
function sealView(b) {
  const d = b.seal_decoded || {};
  const parts = [];
  if (d.error) parts.push(el("span", {class: "error"}, `unreadable: ${d.error}`));
  if (d.nonce !== undefined) parts.push(`proof of work: nonce ${d.nonce}, target ${d.target}`);
  if (d.signer) parts.push("signed by ", hashLink("account", d.signer));
  if (d.term !== undefined) parts.push(`Raft term ${d.term}, sealed by the leader `, hashLink("account", d.leader));
  if (d.members) parts.push(`; configuration: ${d.members.length} member(s)`);
  return el("span", {id: "block-seal"}, ...parts, el("br"), el("span", {class: "hash muted"}, b.seal || "(no seal)"));
}

async function block(ref) {
  const b = await api(`/v1/blocks/${encodeURIComponent(ref)}?txs=full`);
  const s = lastStatus || await refreshStatus();
  const confirmations = b.on_best_chain ? s.height - b.height + 1 : 0;
  show(el("h1", {}, `Block ${b.height}`),
       fields([
         ["hash", el("span", {class: "hash"}, b.hash)],
         ["status", el("span", {id: "block-status"}, badge(b.final ? "final" : (b.on_best_chain ? "included" : "valid-fork")),
                       b.on_best_chain ? ` ${confirmations} confirmation(s)` : " not on the best chain")],
         ["parent", b.height > 0 ? hashLink("block", b.parent) : "none (genesis)"],
         ["time", new Date(b.timestamp_ms).toISOString() + ` (${age(b.timestamp_ms)})`],
         ["proposer", hashLink("account", b.proposer)],
         ["transactions", b.tx_count], ["size", `${b.size} bytes`],
         ["tx root", el("span", {class: "hash"}, b.tx_root)], ["state root", el("span", {class: "hash"}, b.state_root)],
         ["seal", sealView(b)],
       ]),
       el("h2", {}, "Transactions"),
       b.txs.length ? table(["hash", "from", "to", "amount", "fee", "nonce", "memo"], txRows(b.txs), [3, 4, 5])
                    : el("p", {class: "muted"}, "none"));
}

async function transaction(hash) {
  const t = await api(`/v1/transactions/${encodeURIComponent(hash)}`);
  const s = await refreshStatus();
  const where = [];
  if (t.height !== null) {
    where.push(["block", link(`#/block/${t.block}`, `${t.height} (${short(t.block)})`)], ["index", t.index],
               ["confirmations", s.height - t.height + 1]);
  }
  const body = t.tx ? [
    ["from", hashLink("account", t.tx.from)], ["to", hashLink("account", t.tx.to)], ["amount", t.tx.amount],
    ["fee", t.tx.fee], ["nonce", t.tx.nonce], ["memo", el("pre", {class: "memo", id: "tx-memo"}, memoText(t.tx.memo))],
    ["size", `${t.tx.size} bytes`],
  ] : [];
  show(el("h1", {}, "Transaction"),
       fields([["hash", el("span", {class: "hash"}, t.hash)], ["status", el("span", {id: "tx-status"}, badge(t.status))],
               ...where, ...body]),
       t.status === "unknown" ? el("p", {class: "muted"}, "This node does not know the transaction (yet, or any more).") : null);
}

const ACCOUNT_TXS_PER_PAGE = 25;

// An account's transactions, newest first, from the node's address index (GET /v1/accounts/{address}/txs); `before`
// is the cursor of an older page (the `next` of the page above it), or null for the newest.
function accountTxs(address, page) {
  const rows = page.txs.map(t => [
    link(`#/block/${t.height}`, t.height), hashLink("tx", t.hash), badge(t.direction),
    hashLink("account", t.counterparty), t.amount, t.fee,
    t.final ? badge("final") : el("span", {}, badge("included"), ` ${t.confirmations} conf.`),
  ]);
  const nav = el("p", {class: "pager"},
    page.next ? link(`#/account/${encodeURIComponent(address)}/older/${encodeURIComponent(page.next)}`, "older \u2192", "older") : null,
    page.next ? " " : null,
    link(`#/account/${encodeURIComponent(address)}`, "newest", "newest"));
  const pending = page.pending.length
    ? [el("h2", {}, "Pending"),
       table(["tx", "direction", "to", "amount", "fee", "nonce"],
             page.pending.map(t => [hashLink("tx", t.hash), badge(t.direction), hashLink("account", t.counterparty),
                                    t.amount, t.fee, t.nonce]), [3, 4, 5])]
    : [];
  const listing = rows.length
    ? table(["height", "tx", "direction", "counterparty", "amount", "fee", "status"], rows, [4, 5])
    : el("p", {class: "muted", id: "account-no-txs"}, "no transaction on the best chain");
  if (rows.length) listing.querySelector("tbody").id = "account-txs";
  return [...pending, el("h2", {}, "Transactions"), listing, nav];
}

async function account(address, before) {
  const path = encodeURIComponent(address);
  const query = `limit=${ACCOUNT_TXS_PER_PAGE}` + (before ? `&before=${encodeURIComponent(before)}` : "");
  const [latest, final, page] = await Promise.all([
    api(`/v1/accounts/${path}`), api(`/v1/accounts/${path}?at=final`), api(`/v1/accounts/${path}/txs?${query}`)]);
  show(el("h1", {}, "Account"),
       fields([["address", el("span", {class: "hash", id: "account-address"}, latest.address)]]),
       table(["read at", "balance", "nonce", "height"], [
         ["latest", latest.balance, latest.nonce, link(`#/block/${latest.height}`, latest.height)],
         ["final", final.balance, final.nonce, link(`#/block/${final.height}`, final.height)],
       ], [1, 2]),
       el("p", {class: "muted"}, `next nonce to use: ${latest.pending_nonce}`),
       ...accountTxs(latest.address, page));
}

async function mempool() {
  const m = await api("/v1/mempool?limit=200");
  show(el("h1", {}, `Mempool: ${m.size} transaction(s), ${m.bytes} bytes`),
       m.txs.length ? table(["hash", "sender", "nonce", "fee", "size"],
                            m.txs.map(t => [hashLink("tx", t.hash), hashLink("account", t.sender), t.nonce, t.fee, t.size]),
                            [2, 3, 4])
                    : el("p", {class: "muted"}, "empty"));
}

async function peers() {
  const p = await api("/v1/peers");
  show(el("h1", {}, `Peers: ${p.peers.length} connected`),
       table(["node id", "url", "direction", "rtt ms", "best height", "score"],
             p.peers.map(x => [short(x.node_id), x.url, x.direction, x.rtt_ms, x.best_height, x.score]), [3, 4, 5]),
       el("h2", {}, "Configured peers"),
       table(["url", "state", "failures", "last error"],
             p.configured.map(x => [x.url, x.state, x.failures, x.last_error || ""]), [2]));
}

async function tips() {
  const t = await api("/v1/tips");
  show(el("h1", {}, "Branch tips"),
       table(["height", "hash", "status", "off the active chain", "work"],
             t.tips.map(x => [x.height, hashLink("block", x.hash), badge(x.status), x.branch_length, x.work]), [0, 3]));
}

// The block tree: the active chain's last heights in one column, each side branch the node keeps in a column of
// its own joined to its fork point, the finality line across, orphan and invalid tips marked; the reorg log below.
const TREE_HEIGHTS = 30;
const TREE_BRANCHES = 8;

async function branchBlocks(tip, bottom) {
  const blocks = [];
  let hash = tip.hash;
  for (let i = 0; i < Math.max(1, Math.min(tip.branch_length, TREE_HEIGHTS)); i++) {
    let b = null;
    try { b = await api(`/v1/blocks/${hash}`); } catch (error) { break; }
    blocks.push(b);
    if (b.height <= bottom || b.height === 0) break;
    hash = b.parent;
  }
  return blocks;
}

async function tree() {
  const [s, t, r] = await Promise.all([refreshStatus(), api("/v1/tips"), api("/v1/reorgs")]);
  const bottom = Math.max(0, s.height - TREE_HEIGHTS + 1);
  const active = (await api(`/v1/blocks?from=${bottom}&limit=${s.height - bottom + 1}`)).blocks;
  const sideTips = t.tips.filter(x => x.status !== "active" && x.height >= bottom).slice(0, TREE_BRANCHES);
  const branches = [];
  for (const tip of sideTips) branches.push({tip, blocks: await branchBlocks(tip, bottom)});
  const top = Math.max(s.height, ...sideTips.map(x => x.height));
  const row = 24, colActive = 60, colWidth = 110;
  const y = h => 24 + (top - h) * row;
  const width = colActive + (branches.length + 1) * colWidth + 160;  // room for "final at N" past the labels
  const picture = svg("svg", {id: "block-tree", width, height: y(bottom) + 30, role: "img"});
  const finalY = y(s.final_height) + row / 2;
  picture.append(svg("line", {class: "final-line", x1: 0, x2: width, y1: finalY, y2: finalY}),
                 svg("text", {class: "final-label", x: width - 4, y: finalY - 4, "text-anchor": "end"},
                     `final at ${s.final_height}`));
  const dot = (x, b, cls) => {
    const node = svg("a", {href: `#/block/${b.hash}`, class: `tree-block ${cls}`, "data-hash": b.hash,
                           "data-height": b.height},
                     svg("circle", {cx: x, cy: y(b.height), r: 7}),
                     svg("text", {x: x + 12, y: y(b.height) + 4}, `${b.height} ${b.hash.slice(0, 8)}`));
    picture.append(node);
  };
  for (let i = 1; i < active.length; i++) {
    picture.append(svg("line", {class: "edge", x1: colActive, x2: colActive, y1: y(active[i].height), y2: y(active[i - 1].height)}));
  }
  for (const b of active) dot(colActive, b, b.final ? "active final" : "active");
  branches.forEach(({tip, blocks}, index) => {
    const x = colActive + (index + 1) * colWidth;
    const lowest = blocks[blocks.length - 1];
    if (lowest && tip.status !== "orphan" && lowest.height - 1 >= bottom) {
      picture.append(svg("line", {class: "edge fork", x1: colActive, y1: y(lowest.height - 1), x2: x, y2: y(lowest.height)}));
    }
    for (let i = 1; i < blocks.length; i++) {
      picture.append(svg("line", {class: "edge", x1: x, x2: x, y1: y(blocks[i].height), y2: y(blocks[i - 1].height)}));
    }
    for (const b of blocks) dot(x, b, `side ${tip.status}`);
  });
  const legend = el("p", {class: "muted"},
    `Active chain (filled: final) on the left, ${branches.length} side branch(es) to the right; the dashed line is ` +
    "the finality line. Colours: valid fork amber, never connected grey, orphan and invalid red.");
  const reorgRows = r.reorgs.map(x => [new Date(x.time_ms).toISOString(), x.depth,
                                       el("span", {}, `${x.old_height} `, hashLink("block", x.old_tip)),
                                       el("span", {}, `${x.new_height} `, hashLink("block", x.new_tip)), x.fork_height]);
  show(el("h1", {}, "Block tree"), el("div", {class: "tree"}, picture), legend,
       el("h2", {}, "Reorg log"),
       reorgRows.length ? table(["time", "depth", "old tip", "new tip", "fork at"], reorgRows, [1, 4])
                        : el("p", {class: "muted", id: "no-reorgs"}, "no reorg since the node started"));
  const body = page.querySelector("table tbody");
  if (body) body.id = "reorg-log";
}

async function search(query) {
  const q = query.trim();
  // A refusal stays on screen: the page it replaces (recent blocks) would otherwise be redrawn over it on the next
  // block.
  const refuse = text => {
    show(el("p", {class: "error", id: "search-result"}, text));
    document.body.dataset.page = "search";
  };
  if (/^\d+$/.test(q)) { location.hash = `#/block/${q}`; return; }
  if (/^cl[0-9a-f]{48}$/i.test(q)) { location.hash = `#/account/${q}`; return; }
  if (/^[0-9a-f]{64}$/i.test(q)) {
    try { await api(`/v1/blocks/${q}`); location.hash = `#/block/${q}`; return; } catch (error) { /* not a block */ }
    const t = await api(`/v1/transactions/${q}`);
    if (t.status !== "unknown") { location.hash = `#/tx/${q}`; return; }
    refuse(`no block or transaction ${q} on this node`);
    return;
  }
  refuse(`"${q}" is not a height, a 64-digit block or transaction hash, or an address (cl...)`);
}

// -- routing and live updates ---------------------------------------------------------------------------------------

const routes = [
  [/^#?\/?$/, () => home()],
  [/^#\/block\/([^/]+)$/, m => block(decodeURIComponent(m[1]))],
  [/^#\/tx\/([0-9a-fA-F]{64})$/, m => transaction(m[1])],
  [/^#\/account\/([^/]+)$/, m => account(decodeURIComponent(m[1]), null)],
  [/^#\/account\/([^/]+)\/older\/([0-9a-f]{24})$/, m => account(decodeURIComponent(m[1]), m[2])],
  [/^#\/mempool$/, () => mempool()],
  [/^#\/peers$/, () => peers()],
  [/^#\/tips$/, () => tips()],
  [/^#\/tree$/, () => tree()],
];

async function route() {
  const hash = location.hash || "#/";
  for (const [pattern, render] of routes) {
    const match = hash.match(pattern);
    if (match) {
      let failed = false;
      try { await render(match); } catch (error) { failure(error); failed = true; }
      // A page that failed is not redrawn on each new block (it would ask again for what was refused).
      document.body.dataset.page = failed ? "error" : hash.split("/")[1] || "home";
      return;
    }
  }
  show(el("p", {class: "error"}, `no page ${hash}`));
}

let refreshTimer = null;
function scheduleRefresh() {
  if (refreshTimer !== null) return;
  refreshTimer = setTimeout(async () => {
    refreshTimer = null;
    const current = document.body.dataset.page;
    try {
      if (["home", "tx", "block", "tree", "account"].includes(current)) await route();
      else await refreshStatus();
    } catch (error) { /* the next event retries */ }
  }, 300);
}

function connectEvents() {
  if (!window.EventSource) { live.textContent = "live updates: not supported by this browser"; return; }
  const source = new EventSource("/v1/events");
  // A browser keeps six connections per server: a stream left open by a page gone (or kept in the back-forward
  // cache) would hold one of them, and the seventh reload would wait for a free connection.
  window.addEventListener("pagehide", () => source.close());
  source.onopen = () => { live.textContent = "live updates: connected"; };
  source.onerror = () => { live.textContent = "live updates: reconnecting"; };
  source.onmessage = message => {
    let event = null;
    try { event = JSON.parse(message.data); } catch (error) { return; }
    if (event && ["block", "final", "reorg", "dropped"].includes(event.type)) scheduleRefresh();
  };
}

document.getElementById("search").addEventListener("submit", event => {
  event.preventDefault();
  search(document.getElementById("search-input").value).catch(failure);
});
window.addEventListener("hashchange", route);
refreshStatus().catch(() => {});
route();
connectEvents();
