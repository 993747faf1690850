// engram over stdio, driven by the official MCP TypeScript SDK client (StdioClientTransport):
// `engram serve` with a fresh store, the beginner tool set, a full episode lifecycle, the
// tool list growing with use, errors, cancellation, resources and the recall prompt.
//
//   ENGRAM_BINARY=build/src/cli/engram /usr/bin/node --test tests/e2e/node/sdk_stdio.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';

import {
  ENGRAM, checkBeginnerTools, checkCancellationKeepsServing, checkGetEpisode, checkGrownToolList,
  checkQueryFinds, checkRecallPrompt, checkResources, checkToolErrors, makeSandbox, newClient,
  runLifecycle, sleep, text, waitFor, watchListChanged,
} from './common.mjs';

async function connectStdio(sandbox, args = [], capabilities = {}) {
  const client = newClient(capabilities);
  const transport = new StdioClientTransport({ command: ENGRAM, args: ['serve', ...args], env: sandbox.env, stderr: 'pipe' });
  let stderr = '';
  transport.stderr?.on('data', (d) => { stderr += d; });
  await client.connect(transport);
  return { client, transport, stderr: () => stderr };
}

describe('engram serve (stdio) with the SDK client', () => {
  const sandbox = makeSandbox('stdio');
  const state = {};
  let conn;
  let listChanged;

  before(async () => {
    conn = await connectStdio(sandbox);
    listChanged = watchListChanged(conn.client);
  });
  after(async () => {
    await conn?.client.close();
    sandbox.cleanup();
  });

  test('initialize: server info, capabilities, instructions', () => {
    const info = conn.client.getServerVersion();
    assert.equal(info.name, 'engram');
    const caps = conn.client.getServerCapabilities();
    assert.equal(caps.tools.listChanged, true);
    assert.ok(caps.resources && caps.prompts && caps.logging);
    assert.match(conn.client.getInstructions() ?? '', /query_memory/);
  });

  test('tools/list shows the beginner set', async () => {
    await checkBeginnerTools(conn.client);
    assert.equal(listChanged.count, 0);
  });

  test('an advanced tool can be called before it is listed', async () => {
    const r = await conn.client.callTool({
      name: 'get_episode',
      arguments: { episode_id: '00000000-0000-4000-8000-000000000000' },
    });
    assert.equal(r.isError, true, 'get_episode ran (the episode does not exist)');
    assert.match(text(r), /no episode/);
  });

  test('lifecycle: create, 3 steps (one an error), complete with verification; the list grows', async () => {
    await runLifecycle(conn.client, state, listChanged);
  });

  test('tools/list grew after list_changed', async () => {
    await checkGrownToolList(conn.client);
  });

  test('query_memory finds the episode', async () => {
    await checkQueryFinds(conn.client, state);
  });

  test('get_episode returns it', async () => {
    await checkGetEpisode(conn.client, state);
  });

  test('errors: invalid arguments → isError naming the field; unknown tool → -32602', async () => {
    await checkToolErrors(conn.client);
  });

  test('resources: list, templates, read engram://episodes/{id}', async () => {
    await checkResources(conn.client, state);
  });

  test('prompts: recall, with domain completion', async () => {
    await checkRecallPrompt(conn.client, state);
  });

  test('cancellation: the session keeps serving after a cancelled request', async () => {
    await checkCancellationKeepsServing(conn.client);
  });

  test('a second process on the same store sees the episode', async () => {
    const other = await connectStdio(sandbox);
    try {
      // A new session starts at the beginner tier again.
      await checkBeginnerTools(other.client);
      await checkGetEpisode(other.client, state);
    } finally {
      await other.client.close();
    }
  });

  test('progress: no engram tool reports progress (query_memory only honours cancellation)', (t) => {
    t.diagnostic('progress plumbing is exercised with the conformance fixtures below');
  });
});

// No engram tool runs long enough to be cancelled mid-call or reports progress, so the
// session's cancellation and progress plumbing is checked through the conformance
// fixtures (test-only tools that pause and report progress).
describe('engram serve --conformance-fixtures (stdio): progress, logging, cancellation', () => {
  const sandbox = makeSandbox('stdio-fixtures');
  let conn;

  before(async () => { conn = await connectStdio(sandbox, ['--conformance-fixtures']); });
  after(async () => {
    await conn?.client.close();
    sandbox.cleanup();
  });

  test('progress notifications reach onprogress, increasing', async () => {
    const seen = [];
    const r = await conn.client.callTool({ name: 'test_tool_with_progress', arguments: {} }, undefined, {
      onprogress: (p) => seen.push(p),
    });
    assert.equal(r.isError, false, text(r));
    assert.deepEqual(seen.map((p) => p.progress), [0, 50, 100]);
    assert.ok(seen.every((p) => p.total === 100));
  });

  test('logging/setLevel filters notifications/message', async () => {
    const logs = [];
    conn.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
    await conn.client.setLoggingLevel('warning');
    await conn.client.callTool({ name: 'test_tool_with_logging', arguments: {} });
    await sleep(100);
    assert.equal(logs.length, 0, 'info messages are below warning');
    await conn.client.setLoggingLevel('debug');
    await conn.client.callTool({ name: 'test_tool_with_logging', arguments: {} });
    await sleep(100);
    assert.deepEqual(logs.map((l) => l.data), ['Tool execution started', 'Tool processing data', 'Tool execution completed']);
    assert.ok(logs.every((l) => l.level === 'info'));
  });

  test('a call cancelled mid-way gets no response and the session keeps serving', async () => {
    conn.client.errors.length = 0;
    const logs = [];
    conn.client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
    await conn.client.setLoggingLevel('info');
    const controller = new AbortController();
    const pending = conn.client.callTool({ name: 'test_tool_with_logging', arguments: {} }, undefined, {
      signal: controller.signal,
    });
    // Its first log says the call is running; it then pauses ~100 ms before answering.
    await waitFor(() => logs.length >= 1, 'the fixture call to start');
    controller.abort('e2e: cancelled mid-call');
    await assert.rejects(pending);
    await sleep(300);
    const late = conn.client.errors.filter((e) => /unknown message ID/.test(String(e)));
    assert.deepEqual(late.map(String), [], 'the cancelled call was not answered');
    const r = await conn.client.callTool({ name: 'test_simple_text', arguments: {} });
    assert.equal(text(r), 'This is a simple text response for testing.');
  });
});
