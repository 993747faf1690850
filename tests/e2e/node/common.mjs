// Shared helpers for the end-to-end tests that drive the engram binary with the official
// MCP TypeScript SDK client (sdk_stdio.test.mjs, sdk_http.test.mjs). Run by the system
// Node (20+); ENGRAM_BINARY names the binary under test.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

export const ENGRAM = process.env.ENGRAM_BINARY;
if (!ENGRAM) {
  throw new Error('set ENGRAM_BINARY to the engram binary under test (CTest does: $<TARGET_FILE:engram>)');
}

export const BEGINNER_TOOLS = ['add_episode_step', 'complete_episode', 'create_episode', 'query_memory'];

// A private directory per server: the store, and XDG/HOME so no user config or key file is read.
export function makeSandbox(prefix) {
  const dir = mkdtempSync(join(tmpdir(), `engram-e2e-${prefix}-`));
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('ENGRAM_')) delete env[k];
  Object.assign(env, {
    HOME: dir,
    XDG_CONFIG_HOME: join(dir, 'config'),
    XDG_DATA_HOME: join(dir, 'data'),
    ENGRAM_DB: join(dir, 'engram.db'),
    ENGRAM_LOG_LEVEL: 'warn',
  });
  // ENGRAM_E2E_TURSO_SERVER (scripts/turso-test-server): the store is a Turso database on a
  // tursodb of this sandbox's own, killed with this process at the latest.
  const turso = process.env.ENGRAM_E2E_TURSO_SERVER;
  if (turso) {
    const started = spawnSync(turso, ['start', join(dir, 'turso'), String(process.pid)], { encoding: 'utf8', timeout: 60000 });
    if (started.status !== 0) throw new Error(`cannot start tursodb with ${turso}: ${started.stderr || started.error}`);
    env.ENGRAM_STORE = started.stdout.trim();
  }
  const cleanup = () => {
    if (turso) spawnSync(turso, ['stop', join(dir, 'turso')], { timeout: 30000 });
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, env, cleanup };
}

export function newClient(capabilities = {}) {
  const client = new Client({ name: 'engram-e2e', version: '1.0.0' }, { capabilities });
  client.errors = [];
  client.onerror = (e) => client.errors.push(e);
  return client;
}

// A port that was free a moment ago on 127.0.0.1.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

function canConnect(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    sock.once('connect', () => { sock.destroy(); resolve(true); });
    sock.once('error', () => resolve(false));
  });
}

// Starts `engram serve --http 127.0.0.1:PORT ...extraArgs` and waits until it accepts connections.
export async function startHttpServer(sandbox, extraArgs = []) {
  const port = await freePort();
  const proc = spawn(ENGRAM, ['serve', '--http', `127.0.0.1:${port}`, ...extraArgs], {
    env: sandbox.env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (d) => { output += d; });
  proc.stderr.on('data', (d) => { output += d; });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      throw new Error(`engram serve --http exited early (${proc.exitCode ?? proc.signalCode}):\n${output}`);
    }
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`engram serve --http did not listen on 127.0.0.1:${port} within 15 s:\n${output}`);
    }
    await sleep(50);
  }
  return {
    port,
    url: new URL(`http://127.0.0.1:${port}/mcp`),
    output: () => output,
    stop: () => stopProcess(proc, exited),
  };
}

// SIGTERM to `proc`, then its exit status (`exited` resolves to {code, signal}); SIGKILL
// after 10 s.
export async function stopProcess(proc, exited) {
  if (proc.exitCode !== null || proc.signalCode !== null) return exited;
  proc.kill('SIGTERM');
  const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
  const status = await exited;
  clearTimeout(timer);
  return status;
}

// Runs the engram CLI synchronously in `sandbox`.
export function runCli(sandbox, args) {
  return spawnSync(ENGRAM, args, { env: sandbox.env, encoding: 'utf8', timeout: 30000 });
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function text(result) {
  return (result.content ?? []).filter((c) => c.type === 'text').map((c) => c.text).join('\n');
}

// Waits for `predicate()` to hold, polling; fails with `what` after `ms`.
export async function waitFor(predicate, what, ms = 5000) {
  const deadline = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > deadline) assert.fail(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}

// Counts notifications/tools/list_changed on `client`.
export function watchListChanged(client) {
  const seen = { count: 0 };
  client.setNotificationHandler(ToolListChangedNotificationSchema, () => { seen.count += 1; });
  return seen;
}

// ---- The core flow both transports run -------------------------------------------------
// Each step takes the client and a shared state object, asserts, and records what later
// steps need (the episode id). Steps run in order within one session.

export const TASK = 'Fix the flaky retry timeout test in the payments client quokkafrost';

export async function checkBeginnerTools(client) {
  const { tools } = await client.listTools();
  assert.deepEqual(tools.map((t) => t.name).sort(), BEGINNER_TOOLS);
  for (const t of tools) {
    assert.ok(t.description, `${t.name} has a description`);
    assert.equal(t.inputSchema.type, 'object', `${t.name} has an object inputSchema`);
    assert.ok(t.outputSchema, `${t.name} has an outputSchema`);
    assert.ok(t.annotations, `${t.name} has annotations`);
  }
}

export async function runLifecycle(client, state, listChanged) {
  const created = await client.callTool({
    name: 'create_episode',
    arguments: {
      task_description: TASK,
      domain: 'payments',
      task_type: 'debugging',
      language: 'typescript',
      complexity: 'moderate',
      tags: ['e2e', 'flaky'],
    },
  });
  assert.equal(created.isError, false, text(created));
  const id = created.structuredContent.episode_id;
  assert.match(id, /^[0-9a-f-]{36}$/);
  assert.equal(JSON.parse(text(created)).episode_id, id, 'the text block carries the structured result');
  state.id = id;

  const steps = [
    { tool: 'bash', action: 'ran npm test -- retry', result: { status: 'error', message: '1 failing: retry timeout after 5000 ms' } },
    { tool: 'edit_file', action: 'raised the retry backoff cap and awaited the timer', result: { status: 'success' }, latency_ms: 1200 },
    { tool: 'bash', action: 'ran npm test -- retry again', result: { status: 'success', output: '42 passing' } },
  ];
  for (let i = 0; i < steps.length; i++) {
    const r = await client.callTool({ name: 'add_episode_step', arguments: { episode_id: id, ...steps[i] } });
    assert.equal(r.isError, false, text(r));
    assert.equal(r.structuredContent.episode_id, id);
    assert.equal(r.structuredContent.step_number, i + 1);
  }
  // Three successful calls reach the advanced tier: notifications/tools/list_changed.
  if (listChanged) await waitFor(() => listChanged.count >= 1, 'notifications/tools/list_changed');

  const done = await client.callTool({
    name: 'complete_episode',
    arguments: {
      episode_id: id,
      outcome: 'success',
      verdict: 'the retry test passes reliably',
      artifacts: ['src/retry.ts'],
      verification: { tests_passed: 42, tests_failed: 0, build_ok: true },
    },
  });
  assert.equal(done.isError, false, text(done));
  assert.equal(done.structuredContent.episode_id, id);
  assert.ok(done.structuredContent.reward.total > 0, 'a verified success earns a reward');
  for (const k of ['successes', 'improvements', 'insights']) {
    assert.ok(Array.isArray(done.structuredContent.reflection[k]), `reflection.${k} is a list`);
  }
}

export async function checkGrownToolList(client) {
  const names = (await client.listTools()).tools.map((t) => t.name);
  for (const n of BEGINNER_TOOLS) assert.ok(names.includes(n), `${n} still listed`);
  assert.ok(names.includes('get_episode'), `advanced tools listed after growth: ${names}`);
  assert.ok(names.length > BEGINNER_TOOLS.length);
}

export async function checkQueryFinds(client, state) {
  const r = await client.callTool({
    name: 'query_memory',
    arguments: { query: 'flaky retry timeout test payments', domain: 'payments', limit: 5 },
  });
  assert.equal(r.isError, false, text(r));
  const hit = r.structuredContent.episodes.find((e) => e.episode_id === state.id);
  assert.ok(hit, `query_memory finds the episode: ${JSON.stringify(r.structuredContent)}`);
  assert.equal(hit.outcome, 'success');
  assert.equal(hit.domain, 'payments');
  assert.ok(hit.score > 0 && hit.score <= 1);
}

export async function checkGetEpisode(client, state) {
  const r = await client.callTool({ name: 'get_episode', arguments: { episode_id: state.id } });
  assert.equal(r.isError, false, text(r));
  const e = r.structuredContent.episode;
  assert.equal(e.episode_id, state.id);
  assert.equal(e.task_description, TASK);
  assert.equal(e.steps.length, 3);
  assert.equal(e.steps[0].result.status, 'error');
  assert.equal(e.outcome.type, 'success');
  assert.ok(e.reward.total > 0);
}

export async function checkToolErrors(client) {
  // Arguments that fail the schema: a result with isError whose text names the field.
  const missing = await client.callTool({ name: 'create_episode', arguments: { task_description: 'no domain given' } });
  assert.equal(missing.isError, true);
  assert.match(text(missing), /domain/);
  const badEnum = await client.callTool({
    name: 'complete_episode',
    arguments: { episode_id: '00000000-0000-4000-8000-000000000000', outcome: 'maybe' },
  });
  assert.equal(badEnum.isError, true);
  assert.match(text(badEnum), /outcome/);
  // A tool that ran and failed: isError naming the cause.
  const unknownEpisode = await client.callTool({
    name: 'get_episode',
    arguments: { episode_id: '00000000-0000-4000-8000-000000000000' },
  });
  assert.equal(unknownEpisode.isError, true);
  assert.match(text(unknownEpisode), /no episode/);
  // An unknown tool is a JSON-RPC error, -32602.
  await assert.rejects(client.callTool({ name: 'no_such_tool', arguments: {} }), (e) => {
    assert.equal(e.code, -32602, String(e));
    assert.match(e.message, /no_such_tool/);
    return true;
  });
}

export async function checkResources(client, state) {
  const uri = `engram://episodes/${state.id}`;
  const { resources } = await client.listResources();
  const entry = resources.find((r) => r.uri === uri);
  assert.ok(entry, `resources/list has ${uri}: ${JSON.stringify(resources)}`);
  assert.equal(entry.mimeType, 'application/json');
  assert.ok(entry.name);
  const { resourceTemplates } = await client.listResourceTemplates();
  assert.ok(resourceTemplates.some((t) => t.uriTemplate === 'engram://episodes/{episode_id}'));
  const read = await client.readResource({ uri });
  assert.equal(read.contents.length, 1);
  assert.equal(read.contents[0].uri, uri);
  assert.equal(JSON.parse(read.contents[0].text).episode_id, state.id);
  await assert.rejects(client.readResource({ uri: 'engram://episodes/00000000-0000-4000-8000-000000000000' }),
    (e) => { assert.equal(e.code, -32002, String(e)); return true; });
}

export async function checkRecallPrompt(client, state) {
  const { prompts } = await client.listPrompts();
  const recall = prompts.find((p) => p.name === 'recall');
  assert.ok(recall, 'prompts/list has recall');
  assert.ok(recall.arguments.some((a) => a.name === 'task' && a.required));
  const got = await client.getPrompt({ name: 'recall', arguments: { task: 'flaky retry timeout test', domain: 'payments' } });
  assert.equal(got.messages[0].role, 'user');
  assert.equal(got.messages[0].content.type, 'text');
  assert.ok(got.messages[0].content.text.includes(state.id), 'the recalled episode is in the prompt');
  await assert.rejects(client.getPrompt({ name: 'recall', arguments: {} }), (e) => {
    assert.equal(e.code, -32602, String(e));
    return true;
  });
  const completion = await client.complete({
    ref: { type: 'ref/prompt', name: 'recall' },
    argument: { name: 'domain', value: 'pay' },
  });
  assert.ok(completion.completion.values.includes('payments'), JSON.stringify(completion));
}

// A cancelled request gets no answer, and the session keeps serving.
export async function checkCancellationKeepsServing(client) {
  const controller = new AbortController();
  const pending = client.callTool(
    { name: 'query_memory', arguments: { query: 'anything about retries and timeouts' } },
    undefined,
    { signal: controller.signal },
  );
  controller.abort('e2e: cancelled on purpose');
  await assert.rejects(pending);
  assert.deepEqual(await client.ping(), {});
  const after = await client.callTool({ name: 'query_memory', arguments: { query: 'retry timeout' } });
  assert.equal(after.isError, false, text(after));
}
