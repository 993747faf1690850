// The memory dashboard (web/dashboard, served at / by `engram serve --http`) in headless
// Chromium: Debian's `chromium`, driven by playwright-core (never a downloaded browser).
// A store gets known episodes over MCP (the SDK client); then the page must load with them,
// find one by search, open it with its steps and reflection, and show patterns, health and
// metrics. With an API key configured the page must ask for the key and work once given it.
// Screenshots go to $ENGRAM_ARTIFACTS_DIR (CTest: <build>/artifacts).
//
//   ENGRAM_BINARY=build/engram ENGRAM_ARTIFACTS_DIR=build/artifacts \
//     node --test tests/e2e/node/dashboard.test.mjs
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { chromium } from 'playwright-core';

import { ENGRAM, TASK, makeSandbox, newClient, runCli, sleep, stopProcess, text } from './common.mjs';

const CHROMIUM = process.env.CHROMIUM_BINARY || '/usr/bin/chromium';
const ARTIFACTS = process.env.ENGRAM_ARTIFACTS_DIR || join(tmpdir(), 'engram-artifacts');
// GOTCHAS.md: headless Chromium as root needs --no-sandbox; the rest keeps it off the network.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-background-networking',
  '--disable-component-update', '--no-first-run'];

// `engram serve --http 127.0.0.1:0`; the port is read from what it prints on stderr.
async function startServer(sandbox) {
  const proc = spawn(ENGRAM, ['serve', '--http', '127.0.0.1:0'], { env: sandbox.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no port printed within 15 s:\n${output}`)), 15000);
    const onData = (d) => {
      output += d;
      const m = /http:\/\/127\.0\.0\.1:(\d+)\/mcp/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`engram serve exited early (${code}):\n${output}`));
    });
  });
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    output: () => output,
    stop: () => stopProcess(proc, exited),
  };
}

async function connect(server, key) {
  const client = newClient();
  const headers = key ? { 'X-API-Key': key } : undefined;
  const transport = new StreamableHTTPClientTransport(new URL(`${server.base}/mcp`),
    headers ? { requestInit: { headers } } : undefined);
  await client.connect(transport);
  return {
    client,
    async call(name, args) {
      const r = await client.callTool({ name, arguments: args });
      assert.equal(r.isError, false, `${name}: ${text(r)}`);
      return r.structuredContent;
    },
    async close() {
      await transport.terminateSession();
      await client.close();
    },
  };
}

// Records one episode: create, steps, complete (success with verification unless `failure`).
async function recordEpisode(mcp, { task, domain, steps, failure }) {
  const { episode_id: id } = await mcp.call('create_episode', { task_description: task, domain, task_type: 'debugging', language: 'typescript' });
  for (const s of steps) await mcp.call('add_episode_step', { episode_id: id, ...s });
  const done = await mcp.call('complete_episode', failure
    ? { episode_id: id, outcome: 'failure', reason: failure }
    : { episode_id: id, outcome: 'success', verdict: 'tests pass', verification: { tests_passed: 42, tests_failed: 0, build_ok: true } });
  return { id, task, domain, steps, reflection: done.reflection, reward: done.reward.total };
}

const STEPS = [
  { tool: 'bash', action: 'ran npm test -- retry', result: { status: 'error', message: '1 failing: retry timeout after 5000 ms' } },
  { tool: 'edit_file', action: 'raised the retry backoff cap and awaited the timer', result: { status: 'success' } },
  { tool: 'bash', action: 'ran npm test -- retry again', result: { status: 'success', output: '42 passing' } },
];

// A GET with any headers (fetch may not set Host).
function rawGet(port, path, headers = {}) {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
  });
}

async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (e) => page.problems.push(`page error: ${e.message}`));
  page.on('console', (m) => { if (m.type() === 'error') page.problems.push(`console error: ${m.text()}`); });
  return page;
}

async function screenshot(page, name, t) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const path = join(ARTIFACTS, name);
  await page.screenshot({ path, fullPage: true });
  t.diagnostic(`screenshot: ${path}`);
}

describe('the dashboard in headless Chromium', () => {
  const sandbox = makeSandbox('dashboard');
  let server;
  let browser;
  let mcp;
  let page;
  const known = [];

  before(async () => {
    server = await startServer(sandbox);
    mcp = await connect(server);
    known.push(await recordEpisode(mcp, { task: TASK, domain: 'payments', steps: STEPS }));
    known.push(await recordEpisode(mcp, {
      task: 'Make the checkout retry test stable again', domain: 'payments', steps: STEPS,
    }));
    known.push(await recordEpisode(mcp, {
      task: 'Upgrade the logging library in the billing service', domain: 'billing',
      steps: [{ tool: 'bash', action: 'ran npm install', result: { status: 'error', message: 'peer dependency conflict' } }],
      failure: 'peer dependency conflict with the tracing package',
    }));
    // Patterns are learned off the request path: wait until some exist.
    const deadline = Date.now() + 20000;
    for (;;) {
      const summary = await mcp.call('analyze_patterns', {});
      if (summary.types.some((t) => t.count > 0)) break;
      assert.ok(Date.now() < deadline, `no pattern learned within 20 s: ${JSON.stringify(summary)}`);
      await sleep(200);
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    page = await newPage(browser);
  });
  after(async () => {
    try {
      await browser?.close();
      await mcp?.close();
    } finally {
      const status = await server?.stop();
      sandbox.cleanup();
      assert.deepEqual(status, { code: 0, signal: null }, `engram exits cleanly:\n${server?.output()}`);
    }
  });

  test('the files are served with their types, an ETag and no-cache; unknown paths are 404', async () => {
    const index = await rawGet(server.port, '/');
    assert.equal(index.status, 200);
    assert.match(index.headers['content-type'], /^text\/html/);
    assert.match(index.body, /<script src="\/assets\/app.js"/);
    assert.doesNotMatch(index.body, /https?:\/\/(?!www\.w3\.org)/, 'nothing is loaded from another site');
    assert.equal(index.headers['cache-control'], 'no-cache');
    assert.match(index.headers['content-security-policy'], /default-src 'none'/);
    const again = await rawGet(server.port, '/', { 'If-None-Match': index.headers.etag });
    assert.equal(again.status, 304);
    assert.match((await rawGet(server.port, '/assets/app.js')).headers['content-type'], /^text\/javascript/);
    assert.match((await rawGet(server.port, '/assets/style.css')).headers['content-type'], /^text\/css/);
    assert.equal((await rawGet(server.port, '/assets/nope.js')).status, 404);
    assert.equal((await rawGet(server.port, '/nope')).status, 404);
    // DNS rebinding: the same checks as /mcp.
    assert.equal((await rawGet(server.port, '/', { Host: 'evil.example:80' })).status, 403);
  });

  test('the page loads with the recent episodes, newest first', async () => {
    await page.goto(`${server.base}/`);
    await page.waitForSelector('body[data-state="ready"]', { timeout: 15000 });
    const rows = page.locator('#episodes tbody tr');
    assert.equal(await rows.count(), known.length);
    assert.equal(await rows.first().getAttribute('data-episode-id'), known[2].id);
    const table = await page.locator('#episodes').innerText();
    assert.match(table, /quokkafrost/);
    assert.match(table, /failure/);
    assert.ok(table.includes(known[0].reward.toFixed(2)), `the reward ${known[0].reward} is shown:\n${table}`);
  });

  test('a search finds the known episode', async () => {
    await page.fill('#search-input', 'flaky retry timeout quokkafrost');
    await page.click('#search-form button');
    const hit = page.locator(`#search-results tr[data-episode-id="${known[0].id}"]`);
    await hit.waitFor({ timeout: 10000 });
    assert.match(await hit.innerText(), /quokkafrost/);
    assert.match(await hit.innerText(), /success/);
  });

  test('an episode opens with its steps and reflection', async () => {
    await page.click(`#search-results tr[data-episode-id="${known[0].id}"]`);
    await page.waitForSelector(`#episode[data-episode-id="${known[0].id}"]`, { timeout: 10000 });
    const steps = page.locator('#episode table.steps tbody tr');
    assert.equal(await steps.count(), STEPS.length);
    assert.match(await steps.nth(0).innerText(), /ran npm test -- retry/);
    assert.match(await steps.nth(0).innerText(), /retry timeout after 5000 ms/);
    const reflection = await page.locator('#episode .reflection').innerText();
    const items = [...known[0].reflection.successes, ...known[0].reflection.improvements, ...known[0].reflection.insights];
    assert.ok(items.length > 0, 'complete_episode wrote a reflection');
    for (const item of items) assert.ok(reflection.includes(item.slice(0, 60)), `reflection shows "${item}":\n${reflection}`);
  });

  test('patterns show with success rate and occurrences', async () => {
    const { types } = await mcp.call('analyze_patterns', { top: 10 });
    const expected = types.flatMap((t) => t.top);
    const rows = page.locator('#patterns tbody tr');
    assert.ok(await rows.count() >= 1);
    const table = await page.locator('#patterns').innerText();
    const first = expected[0];
    assert.ok(table.includes(`${Math.round(first.success_rate * 100)}%`), table);
    assert.ok(table.includes(first.description.slice(0, 40)), `"${first.description}" in\n${table}`);
  });

  test('health and metrics, with the latency chart or "no data"', async (t) => {
    assert.equal(await page.locator('#health-badge').innerText(), 'healthy');
    const metrics = await page.locator('#metrics').innerText();
    assert.match(metrics, /EPISODES\s+3/i);
    assert.match(metrics, /LATENCY P95/i);
    assert.match(await page.locator('#checks').innerText(), /storage/);
    const { latency_history: history } = await mcp.call('get_metrics', {});
    if (Array.isArray(history) && history.length > 0) {
      assert.equal(await page.locator('#latency-chart svg polyline.p50').count(), 1);
      assert.equal(await page.locator('#latency-chart svg polyline.p95').count(), 1);
    } else {
      t.diagnostic('get_metrics has no latency_history: the chart must say "no data"');
      assert.equal(await page.locator('#latency-chart').innerText(), 'no data');
    }
    await screenshot(page, 'dashboard.png', t);
    assert.deepEqual(page.problems, []);
  });
});

describe('the dashboard with API keys', () => {
  const sandbox = makeSandbox('dashboard-keys');
  let server;
  let browser;
  let key;
  let episode;

  before(async () => {
    const created = runCli(sandbox, ['keys', 'create', '--json']);
    assert.equal(created.status, 0, `engram keys create --json: ${created.stderr}`);
    key = JSON.parse(created.stdout).key;
    assert.ok(typeof key === 'string' && key.length >= 16, created.stdout);
    server = await startServer(sandbox);
    const mcp = await connect(server, key);
    try {
      episode = await recordEpisode(mcp, { task: 'Rotate the signing keys of the keyed service', domain: 'security', steps: STEPS });
    } finally {
      await mcp.close();
    }
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  });
  after(async () => {
    try {
      await browser?.close();
    } finally {
      await server?.stop();
      sandbox.cleanup();
    }
  });

  test('the files need no key, /mcp does', async () => {
    assert.equal((await rawGet(server.port, '/')).status, 200);
    const res = await fetch(`${server.base}/mcp`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    assert.equal(res.status, 401);
  });

  test('the page asks for a key, refuses a wrong one, and works with the right one', async (t) => {
    const page = await newPage(browser);
    await page.goto(`${server.base}/`);
    await page.waitForSelector('body[data-state="auth"]', { timeout: 15000 });
    assert.equal(await page.locator('#auth').isVisible(), true);
    assert.equal(await page.locator('#main').isVisible(), false);
    await screenshot(page, 'dashboard-auth.png', t);

    await page.fill('#auth-key', 'engram_not_a_real_key_0000000000');
    await page.click('#auth-form button');
    await page.locator('#auth-error').waitFor({ state: 'visible', timeout: 10000 });
    assert.match(await page.locator('#auth-error').innerText(), /did not accept/);

    await page.fill('#auth-key', key);
    await page.click('#auth-form button');
    await page.waitForSelector('body[data-state="ready"]', { timeout: 15000 });
    assert.equal(await page.locator('#auth').isVisible(), false);
    assert.equal(await page.locator(`#episodes tr[data-episode-id="${episode.id}"]`).count(), 1);
    // The key is kept for the tab: a reload does not ask again.
    await page.reload();
    await page.waitForSelector('body[data-state="ready"]', { timeout: 15000 });
    await page.click(`#episodes tr[data-episode-id="${episode.id}"]`);
    await page.waitForSelector(`#episode[data-episode-id="${episode.id}"]`, { timeout: 10000 });
    await screenshot(page, 'dashboard-keys.png', t);
    // The 401s the page met on purpose are the only problems.
    assert.deepEqual(page.problems.filter((p) => !/status of 401/.test(p)), []);
  });
});
