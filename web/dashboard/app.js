// engram's memory dashboard. The page is a plain MCP client of the server that served it:
// JSON-RPC over Streamable HTTP to /mcp (initialize, resources/list and resources/read,
// tools/call of read-only tools), with the same API key any client needs. It is read-only
// by construction: it calls no tool that writes.
//
// Everything shown was recorded by agents, so it goes into the page as text
// (textContent, createTextNode), never as markup.
'use strict';

const PROTOCOL_VERSION = '2025-11-25';
const KEY_STORAGE = 'engram.dashboard.apiKey';
const RECENT_EPISODES = 20;
const TOP_PATTERNS_PER_TYPE = 10;
const REFRESH_MS = 60000;
const MAX_RATE_LIMIT_RETRIES = 5;
const SVG_NS = 'http://www.w3.org/2000/svg';

// The server wants an API key (HTTP 401).
class AuthRequired extends Error {}

// ---- MCP over Streamable HTTP ---------------------------------------------------------

// The JSON-RPC message answering `id` in a text/event-stream body.
function findSseReply(body, id) {
  for (const event of body.split(/\r?\n\r?\n/)) {
    const data = event.split(/\r?\n/).filter((l) => l.startsWith('data:')).map((l) => l.slice(5).trimStart());
    if (data.length === 0) continue;
    const message = JSON.parse(data.join('\n'));
    if (message.id === id && ('result' in message || 'error' in message)) return message;
  }
  throw new Error('the server ended the event stream without answering');
}

async function errorMessage(res) {
  try {
    const body = await res.json();
    if (body && body.error && body.error.message) return body.error.message;
  } catch (e) {
    // Not JSON: the status says enough.
  }
  return `HTTP ${res.status}`;
}

class McpClient {
  constructor() {
    this.key = sessionStorage.getItem(KEY_STORAGE) || '';
    this.sessionId = null;
    this.protocolVersion = null;
    this.nextId = 1;
    this.connecting = null;
  }

  setKey(key) {
    this.key = key;
    if (key) {
      sessionStorage.setItem(KEY_STORAGE, key);
    } else {
      sessionStorage.removeItem(KEY_STORAGE);
    }
    this.sessionId = null;
  }

  headers() {
    // JSON only: the answer to every call then comes as one JSON body (the server sends
    // what it would stream, e.g. list_changed, to the session's GET stream instead).
    const h = { 'Content-Type': 'application/json', Accept: 'application/json' };
    if (this.sessionId) h['Mcp-Session-Id'] = this.sessionId;
    if (this.protocolVersion) h['MCP-Protocol-Version'] = this.protocolVersion;
    if (this.key) h['X-API-Key'] = this.key;
    return h;
  }

  async post(message) {
    for (let attempt = 1; ; attempt++) {
      const res = await fetch('/mcp', {
        method: 'POST', headers: this.headers(), body: JSON.stringify(message), cache: 'no-store', credentials: 'omit',
      });
      if (res.status === 401) throw new AuthRequired(await errorMessage(res));
      // Over the server's rate limit (server.rate_limit): wait as told and retry, a few times.
      if (res.status === 429 && attempt <= MAX_RATE_LIMIT_RETRIES) {
        const seconds = Math.min(Number(res.headers.get('Retry-After')) || 1, 10);
        await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
        continue;
      }
      return res;
    }
  }

  async reply(res, id) {
    if (!res.ok) throw new Error(await errorMessage(res));
    const type = res.headers.get('Content-Type') || '';
    const message = type.includes('text/event-stream') ? findSseReply(await res.text(), id) : await res.json();
    if (message.error) throw new Error(message.error.message || `error ${message.error.code}`);
    return message.result;
  }

  connect() {
    if (!this.connecting) this.connecting = this.initialize().finally(() => { this.connecting = null; });
    return this.connecting;
  }

  async initialize() {
    this.sessionId = null;
    this.protocolVersion = null;
    const id = this.nextId++;
    const res = await this.post({
      jsonrpc: '2.0', id, method: 'initialize',
      params: { protocolVersion: PROTOCOL_VERSION, capabilities: {}, clientInfo: { name: 'engram-dashboard', version: '1' } },
    });
    const result = await this.reply(res, id);
    this.sessionId = res.headers.get('Mcp-Session-Id');
    this.protocolVersion = result.protocolVersion;
    const done = await this.post({ jsonrpc: '2.0', method: 'notifications/initialized' });
    if (!done.ok) throw new Error(await errorMessage(done));
  }

  async request(method, params = {}) {
    if (!this.sessionId) await this.connect();
    const send = () => {
      const id = this.nextId++;
      return this.post({ jsonrpc: '2.0', id, method, params }).then((res) => ({ res, id }));
    };
    let { res, id } = await send();
    if (res.status === 404) {
      // The session expired or the server restarted: start a new one, once.
      await this.connect();
      ({ res, id } = await send());
    }
    return this.reply(res, id);
  }

  // The structured result of a tool; a tool error (isError) becomes an exception.
  async callTool(name, args = {}) {
    const result = await this.request('tools/call', { name, arguments: args });
    const text = (result.content || []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
    if (result.isError) throw new Error(`${name}: ${text}`);
    return result.structuredContent || JSON.parse(text);
  }

  // Ends the session when the page goes away (the server would expire it anyway).
  close() {
    if (!this.sessionId) return;
    fetch('/mcp', { method: 'DELETE', headers: this.headers(), keepalive: true, credentials: 'omit' }).catch(() => {});
    this.sessionId = null;
  }
}

// ---- DOM helpers -------------------------------------------------------------------------

const $ = (id) => document.getElementById(id);

// An element with attributes and children; strings become text nodes.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'className') {
      node.className = v;
    } else if (k.startsWith('on')) {
      node.addEventListener(k.slice(2), v);
    } else {
      node.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null) continue;
    node.append(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
  return node;
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  for (const c of children) node.append(typeof c === 'string' ? document.createTextNode(c) : c);
  return node;
}

function fmtReward(r) {
  return typeof r === 'number' ? r.toFixed(2) : '—';
}

function fmtPercent(x) {
  return typeof x === 'number' ? `${Math.round(x * 100)}%` : '—';
}

function fmtMs(x) {
  if (typeof x !== 'number') return '—';
  return x < 10 ? `${x.toFixed(1)} ms` : `${Math.round(x)} ms`;
}

function fmtTime(rfc3339) {
  if (!rfc3339) return '—';
  const d = new Date(rfc3339);
  if (Number.isNaN(d.getTime())) return rfc3339;
  const pad = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function outcomeBadge(outcome) {
  const kind = outcome || 'in_progress';
  return el('span', { className: `outcome ${kind}` }, kind.replace('_', ' '));
}

function clip(text, max) {
  if (typeof text !== 'string') return '';
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

// A row that opens an episode when clicked or on Enter.
function episodeLink(node, episodeId) {
  node.classList.add('clickable');
  node.setAttribute('tabindex', '0');
  node.dataset.episodeId = episodeId;
  node.addEventListener('click', () => openEpisode(episodeId));
  node.addEventListener('keydown', (e) => { if (e.key === 'Enter') openEpisode(episodeId); });
  return node;
}

function showError(message) {
  const status = $('status');
  status.textContent = message;
  status.hidden = !message;
}

// ---- Panels ----------------------------------------------------------------------------

const mcp = new McpClient();

async function loadEpisodes() {
  const list = await mcp.request('resources/list');
  const uris = list.resources.map((r) => r.uri).filter((u) => u.startsWith('engram://episodes/')).slice(0, RECENT_EPISODES);
  // An episode deleted between the list and its read is left out.
  const reads = await Promise.allSettled(uris.map(async (uri) => {
    const read = await mcp.request('resources/read', { uri });
    return JSON.parse(read.contents[0].text);
  }));
  const auth = reads.find((r) => r.status === 'rejected' && r.reason instanceof AuthRequired);
  if (auth) throw auth.reason;
  const episodes = reads.filter((r) => r.status === 'fulfilled').map((r) => r.value);
  const body = $('episodes').tBodies[0];
  body.replaceChildren(...episodes.map((e) => episodeLink(el('tr', {},
    el('td', { className: 'task', title: e.task_description }, clip(e.task_description, 90)),
    el('td', {}, e.context && e.context.domain),
    el('td', {}, outcomeBadge(e.outcome && e.outcome.type)),
    el('td', { className: 'num' }, fmtReward(e.reward && e.reward.total)),
    el('td', { className: 'when' }, fmtTime(e.start_time))), e.episode_id)));
  $('episodes-empty').hidden = episodes.length > 0;
}

function stepRow(s) {
  const status = s.result ? s.result.status : '';
  const detail = s.result ? (s.result.message || s.result.output || '') : '';
  return el('tr', {},
    el('td', { className: 'num' }, s.step_number),
    el('td', { className: 'mono' }, s.tool),
    el('td', {}, s.action),
    el('td', {}, status ? el('span', { className: `status ${status}` }, status) : ''),
    el('td', { className: 'detail' }, clip(detail, 240)));
}

function reflectionBlock(reflection) {
  if (!reflection) return el('p', { className: 'muted' }, 'No reflection: the episode is not complete.');
  const part = (title, items) => el('div', { className: 'reflection-part' },
    el('h4', {}, title),
    items && items.length ? el('ul', {}, items.map((i) => el('li', {}, i))) : el('p', { className: 'muted' }, 'none'));
  return el('div', { className: 'reflection' },
    part('Successes', reflection.successes),
    part('Improvements', reflection.improvements),
    part('Insights', reflection.insights));
}

async function openEpisode(episodeId) {
  const panel = $('episode-panel');
  const box = $('episode');
  panel.hidden = false;
  box.replaceChildren(el('p', { className: 'muted' }, 'Loading…'));
  try {
    const { episode: e } = await mcp.callTool('get_episode', { episode_id: episodeId });
    const ctx = e.context || {};
    const outcome = e.outcome || {};
    const facts = [
      ['Domain', ctx.domain], ['Type', e.task_type], ['Language', ctx.language], ['Framework', ctx.framework],
      ['Started', fmtTime(e.start_time)], ['Ended', e.end_time ? fmtTime(e.end_time) : 'in progress'],
      ['Reward', fmtReward(e.reward && e.reward.total)],
    ].filter(([, v]) => v);
    box.replaceChildren(
      el('h3', { className: 'episode-task' }, e.task_description),
      el('p', { className: 'mono muted' }, e.episode_id),
      el('p', {}, outcomeBadge(outcome.type), ' ', outcome.verdict || outcome.reason || ''),
      el('dl', { className: 'facts' }, facts.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
      el('h4', {}, `Steps (${e.steps.length})`),
      e.steps.length
        ? el('table', { className: 'list steps' },
          el('thead', {}, el('tr', {}, el('th', { className: 'num' }, '#'), el('th', {}, 'Tool'), el('th', {}, 'Action'),
            el('th', {}, 'Result'), el('th', {}, 'Detail'))),
          el('tbody', {}, e.steps.map(stepRow)))
        : el('p', { className: 'muted' }, 'No steps recorded.'),
      el('h4', {}, 'Reflection'),
      reflectionBlock(e.reflection));
    box.dataset.episodeId = e.episode_id;
    panel.scrollIntoView({ block: 'nearest' });
  } catch (err) {
    if (err instanceof AuthRequired) return needKey(err.message);
    box.replaceChildren(el('p', { className: 'alert' }, err.message));
  }
}

function patternRows(patterns) {
  return patterns.map((p) => el('tr', {},
    el('td', {}, el('span', { className: 'ptype' }, (p.type || '').replace('_', ' '))),
    el('td', { title: p.description }, clip(p.description, 110)),
    el('td', {}, p.domain || ''),
    el('td', { className: 'num' }, fmtPercent(p.success_rate)),
    el('td', { className: 'num' }, p.occurrences)));
}

async function loadPatterns() {
  const summary = await mcp.callTool('analyze_patterns', { top: TOP_PATTERNS_PER_TYPE });
  const patterns = summary.types.flatMap((t) => t.top.map((p) => ({ ...p, type: p.type || t.type })));
  patterns.sort((a, b) => (b.success_rate - a.success_rate) || (b.occurrences - a.occurrences));
  $('patterns').tBodies[0].replaceChildren(...patternRows(patterns));
  $('patterns-empty').hidden = patterns.length > 0;
}

async function search(query) {
  const out = $('search-results');
  out.replaceChildren(el('p', { className: 'muted' }, 'Searching…'));
  try {
    const r = await mcp.callTool('query_memory', { query, limit: 10 });
    const parts = [];
    if (r.notice) parts.push(el('p', { className: 'muted' }, r.notice));
    if (r.episodes.length === 0 && r.patterns.length === 0) {
      parts.push(el('p', { className: 'muted' }, 'Nothing in memory matches.'));
    }
    if (r.episodes.length) {
      parts.push(el('table', { className: 'list' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Episode'), el('th', {}, 'Domain'), el('th', {}, 'Outcome'),
          el('th', { className: 'num' }, 'Reward'), el('th', { className: 'num' }, 'Match'))),
        el('tbody', {}, r.episodes.map((e) => episodeLink(el('tr', {},
          el('td', { className: 'task' }, clip(e.task_description, 110)),
          el('td', {}, e.domain),
          el('td', {}, outcomeBadge(e.outcome)),
          el('td', { className: 'num' }, fmtReward(e.reward)),
          el('td', { className: 'num' }, fmtPercent(e.score))), e.episode_id)))));
    }
    if (r.patterns.length) {
      parts.push(el('h4', {}, 'Matching patterns'));
      parts.push(el('table', { className: 'list' }, el('tbody', {}, patternRows(r.patterns))));
    }
    out.replaceChildren(...parts);
  } catch (err) {
    if (err instanceof AuthRequired) return needKey(err.message);
    out.replaceChildren(el('p', { className: 'alert' }, err.message));
  }
}

// p50 and p95 per minute over the last hour, from get_metrics' latency_history
// ([{minute, calls, p50_ms, p95_ms}], oldest first).
function latencyChart(history) {
  const points = (Array.isArray(history) ? history : [])
    .map((h) => ({ t: new Date(h.minute).getTime(), calls: h.calls, p50: h.p50_ms, p95: h.p95_ms }))
    .filter((p) => Number.isFinite(p.t) && typeof p.p50 === 'number' && typeof p.p95 === 'number');
  if (points.length === 0) return el('p', { className: 'muted nodata' }, 'no data');
  const W = 560; const H = 170; const left = 48; const right = 10; const top = 12; const bottom = 24;
  const end = Math.max(Date.now(), points[points.length - 1].t);
  const start = end - 3600 * 1000;
  const ymax = Math.max(1, ...points.map((p) => p.p95)) * 1.15;
  const x = (t) => left + ((Math.max(t, start) - start) / (end - start)) * (W - left - right);
  const y = (v) => top + (1 - v / ymax) * (H - top - bottom);
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': 'Tool call latency, p50 and p95' });
  for (const f of [0, 0.5, 1]) {
    const v = ymax * f;
    chart.append(svg('line', { x1: left, x2: W - right, y1: y(v), y2: y(v), class: 'grid' }));
    chart.append(svg('text', { x: left - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, fmtMs(v)));
  }
  chart.append(svg('text', { x: left, y: H - 6, class: 'axis' }, '60 min ago'));
  chart.append(svg('text', { x: W - right, y: H - 6, class: 'axis', 'text-anchor': 'end' }, 'now'));
  for (const [key, cls] of [['p95', 'p95'], ['p50', 'p50']]) {
    chart.append(svg('polyline', { points: points.map((p) => `${x(p.t).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' '), class: `line ${cls}` }));
    for (const p of points) {
      chart.append(svg('circle', { cx: x(p.t).toFixed(1), cy: y(p[key]).toFixed(1), r: 2.5, class: `dot ${cls}` },
        svg('title', {}, `${fmtTime(new Date(p.t).toISOString())}: ${p.calls} calls, p50 ${fmtMs(p.p50)}, p95 ${fmtMs(p.p95)}`)));
    }
  }
  const legend = el('div', { className: 'legend' },
    el('span', { className: 'key p50' }, 'p50'), el('span', { className: 'key p95' }, 'p95'),
    el('span', { className: 'muted' }, `${points.reduce((n, p) => n + (p.calls || 0), 0)} calls`));
  return el('div', {}, chart, legend);
}

async function loadMetrics() {
  const [m, health] = await Promise.all([mcp.callTool('get_metrics'), mcp.callTool('health_check')]);
  const stats = [
    ['Episodes', m.episodes], ['Completed', m.completed_episodes], ['Steps', m.steps], ['Patterns', m.patterns],
    ['Tool calls', m.tool_calls], ['Tool errors', m.tool_errors],
    ['Latency p50', fmtMs(m.latency_ms && m.latency_ms.p50)], ['Latency p95', fmtMs(m.latency_ms && m.latency_ms.p95)],
  ].filter(([, v]) => v !== undefined);
  $('metrics').replaceChildren(...stats.map(([k, v]) => el('div', { className: 'stat' }, el('dt', {}, k), el('dd', {}, String(v)))));
  $('latency-chart').replaceChildren(latencyChart(m.latency_history));
  $('checks').replaceChildren(...health.checks.map((c) => el('li', { className: c.healthy ? 'ok' : 'bad' },
    el('strong', {}, c.name), ' ', c.detail)));
  const badge = $('health-badge');
  badge.dataset.state = health.healthy ? 'healthy' : 'unhealthy';
  badge.textContent = health.healthy ? 'healthy' : 'unhealthy';
}

// ---- Start, refresh, API key -------------------------------------------------------------

function needKey(message) {
  $('main').hidden = true;
  $('auth').hidden = false;
  const error = $('auth-error');
  // A key that was sent and refused is dropped; without one the server just asked for it.
  error.hidden = !mcp.key;
  error.textContent = mcp.key ? `The server did not accept this key: ${message}` : '';
  mcp.setKey('');
  document.body.dataset.state = 'auth';
  $('health-badge').textContent = 'key needed';
  $('auth-key').focus();
}

async function refresh() {
  const results = await Promise.allSettled([loadEpisodes(), loadPatterns(), loadMetrics()]);
  const failures = results.filter((r) => r.status === 'rejected').map((r) => r.reason);
  const auth = failures.find((f) => f instanceof AuthRequired);
  if (auth) {
    needKey(auth.message);
    return false;
  }
  showError(failures.length ? `Some panels could not load: ${failures.map((f) => f.message).join('; ')}` : '');
  return true;
}

async function start() {
  try {
    await mcp.connect();
  } catch (err) {
    if (err instanceof AuthRequired) return needKey(err.message);
    showError(`Cannot reach engram: ${err.message}`);
    return;
  }
  $('auth').hidden = true;
  $('main').hidden = false;
  if (await refresh()) document.body.dataset.state = 'ready';
}

document.addEventListener('DOMContentLoaded', () => {
  $('auth-form').addEventListener('submit', (e) => {
    e.preventDefault();
    mcp.setKey($('auth-key').value.trim());
    $('auth-key').value = '';
    $('auth-error').hidden = true;
    start();
  });
  $('search-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const query = $('search-input').value.trim();
    if (query) search(query);
  });
  $('episode-close').addEventListener('click', () => { $('episode-panel').hidden = true; });
  setInterval(() => {
    if (!document.hidden && document.body.dataset.state === 'ready') refresh();
  }, REFRESH_MS);
  window.addEventListener('pagehide', () => mcp.close());
  start();
});
