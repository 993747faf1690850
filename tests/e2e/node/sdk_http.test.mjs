// engram over Streamable HTTP, driven by the official MCP TypeScript SDK client
// (StreamableHTTPClientTransport): `engram serve --http 127.0.0.1:PORT` on a free port with a
// fresh store, the same core flow as over stdio, session termination, and API keys.
//
//   ENGRAM_BINARY=build/src/cli/engram /usr/bin/node --test tests/e2e/node/sdk_http.test.mjs
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

import {
  checkBeginnerTools, checkCancellationKeepsServing, checkGetEpisode, checkGrownToolList, checkQueryFinds,
  checkRecallPrompt, checkResources, checkToolErrors, makeSandbox, newClient, runCli, runLifecycle,
  startHttpServer, text, watchListChanged,
} from './common.mjs';

async function connectHttp(url, headers = undefined) {
  const client = newClient();
  const transport = new StreamableHTTPClientTransport(url, headers ? { requestInit: { headers } } : undefined);
  await client.connect(transport);
  return { client, transport };
}

async function closeHttp(conn) {
  if (!conn) return;
  try {
    await conn.transport.terminateSession();
  } finally {
    await conn.client.close();
  }
}

describe('engram serve --http with the SDK client', () => {
  const sandbox = makeSandbox('http');
  const state = {};
  let server;
  let conn;
  let listChanged;

  before(async () => {
    server = await startHttpServer(sandbox);
    conn = await connectHttp(server.url);
    listChanged = watchListChanged(conn.client);
  });
  after(async () => {
    try {
      await closeHttp(conn);
    } finally {
      const status = await server?.stop();
      sandbox.cleanup();
      assert.deepEqual(status, { code: 0, signal: null }, `engram exits cleanly on SIGTERM:\n${server?.output()}`);
    }
  });

  test('initialize: a session id, server info and capabilities', () => {
    assert.ok(conn.transport.sessionId, 'Mcp-Session-Id was issued');
    assert.equal(conn.client.getServerVersion().name, 'engram');
    assert.equal(conn.client.getServerCapabilities().tools.listChanged, true);
  });

  test('tools/list shows the beginner set', async () => {
    await checkBeginnerTools(conn.client);
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

  test('sessions are separate: a second client starts at the beginner tier and sees the store', async () => {
    const other = await connectHttp(server.url);
    try {
      assert.notEqual(other.transport.sessionId, conn.transport.sessionId);
      await checkBeginnerTools(other.client);
      await checkGetEpisode(other.client, state);
    } finally {
      await closeHttp(other);
    }
  });

  test('a terminated session is gone (404)', async () => {
    const other = await connectHttp(server.url);
    const id = other.transport.sessionId;
    await other.transport.terminateSession();
    await other.client.close();
    const res = await fetch(server.url, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        Accept: 'application/json, text/event-stream',
        'Mcp-Session-Id': id,
        'MCP-Protocol-Version': '2025-11-25',
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping' }),
    });
    assert.equal(res.status, 404);
  });
});

// API keys: `engram keys create --json` prints a key; once a key exists, the HTTP server
// answers 401 to requests without it and serves requests with Authorization: Bearer or X-API-Key.
describe('engram serve --http with API keys', () => {
  const sandbox = makeSandbox('http-keys');
  let server;
  let key;
  let skipReason;

  before(async () => {
    const help = runCli(sandbox, ['--help']);
    assert.equal(help.status, 0, `engram --help: ${help.stderr}`);
    if (!/^\s+keys\s/m.test(help.stdout)) {
      skipReason = 'this engram build has no `keys` subcommand (not in `engram --help`), so no API key can be created';
      return;
    }
    const created = runCli(sandbox, ['keys', 'create', '--json']);
    assert.equal(created.status, 0, `engram keys create --json: ${created.stderr}`);
    const out = JSON.parse(created.stdout);
    key = out.key ?? out.api_key ?? out.secret ?? out.token;
    assert.ok(typeof key === 'string' && key.length >= 16, `a key in ${created.stdout}`);
    server = await startHttpServer(sandbox);
  });
  after(async () => {
    await server?.stop();
    sandbox.cleanup();
  });

  test('without a key the connection fails with 401', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const client = newClient();
    await assert.rejects(client.connect(new StreamableHTTPClientTransport(server.url)), (e) => {
      assert.equal(e.code, 401, String(e));
      return true;
    });
  });

  test('a wrong key fails with 401', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const client = newClient();
    const transport = new StreamableHTTPClientTransport(server.url, {
      requestInit: { headers: { Authorization: `Bearer ${key}x` } },
    });
    await assert.rejects(client.connect(transport), (e) => {
      assert.equal(e.code, 401, String(e));
      return true;
    });
  });

  test('Authorization: Bearer KEY is served', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const conn = await connectHttp(server.url, { Authorization: `Bearer ${key}` });
    try {
      await checkBeginnerTools(conn.client);
      const r = await conn.client.callTool({
        name: 'create_episode',
        arguments: { task_description: 'keyed e2e episode', domain: 'keys' },
      });
      assert.equal(r.isError, false, text(r));
    } finally {
      await closeHttp(conn);
    }
  });

  test('X-API-Key: KEY is served', async (t) => {
    if (skipReason) return t.skip(skipReason);
    const conn = await connectHttp(server.url, { 'X-API-Key': key });
    try {
      assert.deepEqual(await conn.client.ping(), {});
    } finally {
      await closeHttp(conn);
    }
  });
});
