// The mesh UI: plain DOM and SVG, no framework and no build step, so the controller ships it as it is.
// Every value shown comes from the token-protected API and is set as text, never parsed as HTML.

const TOKEN_KEY = 'vmesh.adminToken';
const REFRESH_MS = 5000;
const SVG = 'http://www.w3.org/2000/svg';
const COLUMN = 280;
const ROW = 96;
const PAD = 70;

const $ = (id) => document.getElementById(id);

/** The token arrives in the fragment (never sent to a server, unlike a query), moves to this tab's storage, and leaves the address bar. */
function takeToken() {
  const m = /(?:^|&)token=([^&]+)/.exec(location.hash.slice(1));
  if (m) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(m[1]));
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

class Unauthenticated extends Error {}

async function api(path) {
  const res = await fetch(path, { headers: { authorization: `Bearer ${sessionStorage.getItem(TOKEN_KEY) ?? ''}` }, cache: 'no-store' });
  if (res.status === 401) throw new Unauthenticated('the token was refused');
  const body = await res.json();
  if (!res.ok) throw new Error(`${path}: ${body?.error?.message ?? res.status}`);
  return body;
}

function el(tag, attrs = {}, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text ?? '';
  if (cls) td.className = cls;
  return td;
}

/** Columns by longest path from the callers, so traffic reads left to right; a cycle stops growing after n rounds. */
function layers(nodes, edges) {
  const rank = new Map(nodes.map((n) => [n.id, 0]));
  for (let round = 0; round < nodes.length; round++) {
    let moved = false;
    for (const e of edges) {
      const want = (rank.get(e.source) ?? 0) + 1;
      if (e.source !== e.target && (rank.get(e.target) ?? 0) < want) {
        rank.set(e.target, want);
        moved = true;
      }
    }
    if (!moved) break;
  }
  const columns = [];
  for (const n of nodes) {
    const r = rank.get(n.id) ?? 0;
    columns[r] ??= [];
    columns[r].push(n);
  }
  const at = new Map();
  let tallest = 1;
  for (const [x, col = []] of columns.entries()) {
    col.sort((a, b) => a.id.localeCompare(b.id));
    for (const [y, n] of col.entries()) at.set(n.id, { x: PAD + x * COLUMN, y: PAD - 20 + y * ROW });
    tallest = Math.max(tallest, col.length);
  }
  return { at, width: columns.length * COLUMN + PAD, height: tallest * ROW + PAD };
}

function rate(v) {
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function drawNode(svg, n, p) {
  const g = el('g', { class: `node ${n.kind}`, 'data-id': n.id, 'data-kind': n.kind, transform: `translate(${p.x},${p.y})` });
  if (n.kind === 'service') g.append(el('rect', { x: -16, y: -16, width: 32, height: 32, rx: 4, transform: 'rotate(45)' }));
  else g.append(el('circle', { r: 18 }));
  g.append(el('title', {}, n.id));
  g.append(el('text', { y: 34 }, n.name));
  if (n.namespace) g.append(el('text', { y: 47, class: 'ns' }, n.namespace));
  svg.append(g);
}

function drawEdge(svg, e, a, b) {
  const severity = e.errorRate >= 0.05 ? 'error' : e.errorRate > 0 ? 'warn' : 'ok';
  const g = el('g', {
    class: `edge ${severity}`,
    'data-id': e.id,
    'data-source': e.source,
    'data-target': e.target,
    'data-protocol': e.protocol,
    'data-mtls': String(e.mtls),
  });
  const x1 = a.x + 22;
  const x2 = b.x - 26;
  const mid = (x1 + x2) / 2;
  g.append(el('path', { d: `M${x1},${a.y} C${mid},${a.y} ${mid},${b.y} ${x2},${b.y}`, 'marker-end': 'url(#arrow)' }));
  const ly = (a.y + b.y) / 2;
  const unit = e.protocol === 'tcp' ? 'conn/s' : 'req/s';
  const label = el('text', { x: mid, y: ly - 14, class: 'rate' }, `${rate(e.rps)} ${unit}`);
  g.append(label);
  if (e.protocol !== 'tcp') {
    const p99 = e.p99Ms === null ? 'p99 –' : `p99 ${e.p99Ms < 10 ? e.p99Ms.toFixed(1) : Math.round(e.p99Ms)} ms`;
    g.append(el('text', { x: mid, y: ly - 2, class: 'sub' }, `${(e.errorRate * 100).toFixed(1)}% err · ${p99}`));
  }
  g.append(el('title', {}, `${e.source} → ${e.target} (${e.protocol}${e.mtls ? ', mTLS' : ''}): ${e.requests} total, ${e.errors} errors`));
  svg.append(g);
  if (e.mtls) drawLock(g, mid - label.getComputedTextLength() / 2 - 9, ly - 18);
}

/** A padlock drawn in SVG (an emoji would depend on the viewer's fonts), left of the rate label. */
function drawLock(g, x, y) {
  const lock = el('g', { class: 'lock', transform: `translate(${x},${y})` });
  lock.append(el('path', { d: 'M-2.5,0 v-2.5 a2.5,2.5 0 0 1 5,0 v2.5' }));
  lock.append(el('rect', { x: -4, y: 0, width: 8, height: 6, rx: 1 }));
  lock.append(el('title', {}, 'mutual TLS'));
  g.append(lock);
}

function renderGraph(graph) {
  const svg = $('graph');
  svg.replaceChildren();
  const defs = el('defs');
  const marker = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: 'auto' });
  marker.append(el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#7d8797' }));
  defs.append(marker);
  svg.append(defs);
  if (graph.nodes.length === 0) {
    svg.setAttribute('width', 480);
    svg.setAttribute('height', 60);
    svg.append(el('text', { x: 20, y: 35, class: 'empty' }, 'No traffic reported yet.'));
    return;
  }
  const { at, width, height } = layers(graph.nodes, graph.edges);
  svg.setAttribute('width', width);
  svg.setAttribute('height', height);
  svg.setAttribute('data-generated-at', graph.generatedAt);
  // Edges first, so nodes sit on top of their ends.
  for (const e of graph.edges) {
    const a = at.get(e.source);
    const b = at.get(e.target);
    if (a && b) drawEdge(svg, e, a, b);
  }
  for (const n of graph.nodes) drawNode(svg, n, at.get(n.id));
}

/** One word per host for its xDS streams: SYNCED only when every type is. */
function xdsState(row) {
  if (!row) return 'no stream';
  if (!row.connected) return 'disconnected';
  const states = [...new Set(Object.values(row.types ?? {}).map((t) => t.state))];
  return states.length === 0 ? 'connected' : states.length === 1 ? states[0] : states.sort().join(', ');
}

function renderHosts(hosts, xds) {
  const body = $('hosts').tBodies[0];
  body.replaceChildren();
  const byNode = new Map(xds.map((r) => [r.node, r]));
  for (const h of hosts) {
    const row = body.insertRow();
    row.dataset.host = h.name;
    row.dataset.state = h.state;
    cell(row, h.name);
    cell(row, h.state, `state-${h.state}`);
    cell(row, h.lastSeen ? new Date(h.lastSeen).toLocaleTimeString() : '–');
    cell(row, xdsState(byNode.get(h.name)));
    cell(row, (h.facts?.addresses ?? []).join(', '));
  }
  if (hosts.length === 0) cell(body.insertRow(), 'No hosts have joined.', 'empty').colSpan = 5;
}

function renderConfig(items) {
  const body = $('config').tBodies[0];
  body.replaceChildren();
  for (const r of items) {
    const row = body.insertRow();
    row.dataset.kind = r.kind;
    cell(row, r.kind);
    cell(row, r.namespace);
    cell(row, r.name);
    cell(row, r.apiVersion);
  }
  if (items.length === 0) cell(body.insertRow(), 'No config resources.', 'empty').colSpan = 4;
}

function setStatus(text, error = false) {
  const s = $('status');
  s.textContent = text;
  s.classList.toggle('error', error);
}

let timer;
let busy = false;

async function refresh() {
  if (busy) return;
  busy = true;
  try {
    const [graph, hosts, xds, config] = await Promise.all([api('/v1/graph'), api('/v1/hosts'), api('/v1/xds/status'), api('/v1/config')]);
    renderGraph(graph);
    renderHosts(hosts, xds);
    renderConfig(config);
    document.body.dataset.loaded = 'true';
    setStatus(`updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    if (e instanceof Unauthenticated) showLogin(e.message);
    else setStatus(`refresh failed: ${e.message}`, true);
  } finally {
    busy = false;
  }
}

function showLogin(reason) {
  clearInterval(timer);
  sessionStorage.removeItem(TOKEN_KEY);
  $('main').hidden = true;
  $('logout').hidden = true;
  $('login').hidden = false;
  setStatus(reason ?? 'an admin token is needed', reason !== undefined);
}

function start() {
  $('login').hidden = true;
  $('main').hidden = false;
  $('logout').hidden = false;
  void refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

$('login').addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('token-input').value.trim());
  $('token-input').value = '';
  start();
});
$('logout').addEventListener('click', () => showLogin());

if (takeToken()) start();
else showLogin();
