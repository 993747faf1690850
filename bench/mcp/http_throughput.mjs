// HTTP throughput of `engram serve --http` with 8 concurrent official SDK clients
// (StreamableHTTPClientTransport): a cheap read tool, then a write-heavy episode lifecycle.
//
//   node http_throughput.mjs ENGRAM_BINARY   (or ENGRAM_BINARY=... node http_throughput.mjs)
//   BENCH_CLIENTS=8, BENCH_SECONDS=8 (counted seconds per phase), BENCH_WARMUP_SECONDS=1
//
// Each client is its own MCP session (initialize, tools/list, then calls back to back, one
// at a time); the 8 run concurrently in this one Node process. Phases, each bounded in time
// (the whole run stays under 30 s):
//   read   query_memory on the (still empty) store → calls/s and latency per call
//   write  create_episode + add_episode_step + complete_episode per iteration, at the
//          default durability (full: fsync per commit) → episodes/s and latency per episode
// CPU time of the engram process and of this client process over each counted window is
// printed too: on a 2-core machine the client side can be what limits the figure.
// Results are reported, never asserted.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const ENGRAM = process.argv[2] ?? process.env.ENGRAM_BINARY;
if (!ENGRAM) {
  console.error('usage: node http_throughput.mjs ENGRAM_BINARY');
  process.exit(2);
}
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 8);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
const CLK_TCK = 100;  // USER_HZ on Linux

const dir = mkdtempSync(join(tmpdir(), 'engram-bench-http-'));
const env = { ...process.env };
for (const k of Object.keys(env)) if (k.startsWith('ENGRAM_')) delete env[k];
Object.assign(env, {
  HOME: dir,
  XDG_CONFIG_HOME: join(dir, 'config'),
  XDG_DATA_HOME: join(dir, 'data'),
  ENGRAM_DB: join(dir, 'engram.db'),
  ENGRAM_LOG_LEVEL: 'warn',
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function freePort() {
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

async function startServer() {
  const port = await freePort();
  const proc = spawn(ENGRAM, ['serve', '--http', `127.0.0.1:${port}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const deadline = Date.now() + 15000;
  while (!(await canConnect(port))) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`engram exited early:\n${stderr}`);
    if (Date.now() > deadline) { proc.kill('SIGKILL'); throw new Error(`engram did not listen:\n${stderr}`); }
    await sleep(20);
  }
  return {
    url: new URL(`http://127.0.0.1:${port}/mcp`),
    pid: proc.pid,
    stderr: () => stderr,
    async stop() {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
      const status = await exited;
      clearTimeout(timer);
      return status;
    },
  };
}

// CPU seconds (user + system) the process has used so far.
function serverCpu(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;  // utime, stime (fields 14, 15)
}
function clientCpu() {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  return { n: s.length, p50: q(0.5), p95: q(0.95), p99: q(0.99) };
}

function check(r, what) {
  if (r.isError) throw new Error(`${what} failed: ${JSON.stringify(r.content)}`);
  return r;
}

let seq = 0;
const OPS = {
  read: async (client) => {
    check(await client.callTool({ name: 'query_memory', arguments: { query: 'fix the flaky retry timeout test' } }),
      'query_memory');
  },
  write: async (client) => {
    const n = seq++;
    const created = check(await client.callTool({
      name: 'create_episode',
      arguments: {
        task_description: `bench episode ${n}: fix the flaky retry timeout test in the payments client`,
        domain: 'payments',
        task_type: 'debugging',
        language: 'typescript',
      },
    }), 'create_episode');
    const id = created.structuredContent.episode_id;
    check(await client.callTool({
      name: 'add_episode_step',
      arguments: { episode_id: id, tool: 'bash', action: 'ran npm test -- retry', result: { status: 'success' } },
    }), 'add_episode_step');
    check(await client.callTool({
      name: 'complete_episode',
      arguments: { episode_id: id, outcome: 'success', verdict: 'the retry test passes' },
    }), 'complete_episode');
  },
};

// Runs `op` back to back on every client for warm-up + counted seconds; latencies and counts
// are kept only for operations that start and end inside the counted window.
async function phase(server, clients, op) {
  const now = () => performance.now();
  const countFrom = now() + WARMUP_SECONDS * 1000;
  const stopAt = countFrom + SECONDS * 1000;
  const latencies = [];
  let errors = 0;
  let firstError = null;
  let cpu0 = null;
  const loops = clients.map(async (client) => {
    while (now() < stopAt) {
      const t0 = now();
      try {
        await op(client);
      } catch (e) {
        errors++;
        firstError ??= e;
        continue;
      }
      const t1 = now();
      if (t0 >= countFrom && t1 <= stopAt) latencies.push(t1 - t0);
    }
  });
  await sleep(WARMUP_SECONDS * 1000);
  cpu0 = { server: serverCpu(server.pid), client: clientCpu(), t: now() };
  await sleep(Math.max(0, stopAt - now()));
  const cpu1 = { server: serverCpu(server.pid), client: clientCpu(), t: now() };
  await Promise.all(loops);
  const window = (cpu1.t - cpu0.t) / 1000;
  return {
    ops: latencies.length,
    per_second: latencies.length / SECONDS,
    latency_ms: stats(latencies),
    errors,
    firstError: firstError ? String(firstError) : null,
    server_cpu_share: (cpu1.server - cpu0.server) / window,  // cores
    client_cpu_share: (cpu1.client - cpu0.client) / window,
  };
}

const server = await startServer();
const clients = [];
try {
  for (let i = 0; i < CLIENTS; i++) {
    const client = new Client({ name: `engram-bench-${i}`, version: '1.0.0' }, { capabilities: {} });
    const transport = new StreamableHTTPClientTransport(server.url);
    await client.connect(transport);
    await client.listTools();
    clients.push({ client, transport });
  }
  const c = clients.map((x) => x.client);
  const read = await phase(server, c, OPS.read);
  const write = await phase(server, c, OPS.write);

  const f = (x) => x.toFixed(2).padStart(7);
  const cpu = (r) => `cpu: engram ${r.server_cpu_share.toFixed(2)} cores, client ${r.client_cpu_share.toFixed(2)} cores`;
  console.log(`HTTP throughput, ${CLIENTS} concurrent SDK clients (StreamableHTTPClientTransport), ${SECONDS} s counted per phase after ${WARMUP_SECONDS} s warm-up`);
  console.log(`  ${'phase'.padEnd(44)}    rate      p50     p95     p99   errors`);
  console.log(`  ${'read: query_memory (empty store)'.padEnd(44)}${read.per_second.toFixed(0).padStart(6)} calls/s ${f(read.latency_ms.p50)} ${f(read.latency_ms.p95)} ${f(read.latency_ms.p99)}  ${read.errors}   (${cpu(read)})`);
  console.log(`  ${'write: create+add_step+complete, fsync'.padEnd(44)}${write.per_second.toFixed(0).padStart(6)} eps/s   ${f(write.latency_ms.p50)} ${f(write.latency_ms.p95)} ${f(write.latency_ms.p99)}  ${write.errors}   (${cpu(write)}; ${(write.per_second * 3).toFixed(0)} calls/s)`);
  console.log('  latency in ms per call (read) and per episode of 3 calls (write)');
  for (const [name, r] of [['read', read], ['write', write]]) {
    if (r.firstError) console.log(`  first ${name} error: ${r.firstError}`);
  }
  if (process.env.BENCH_JSON) console.log(JSON.stringify({ http_throughput: { read, write } }));
} finally {
  for (const { client, transport } of clients) {
    try { await transport.terminateSession(); } catch { /* reported by the server's exit status if it matters */ }
    await client.close();
  }
  const status = await server.stop();
  if (status.code !== 0) console.log(`  engram exited with ${JSON.stringify(status)}:\n${server.stderr()}`);
  rmSync(dir, { recursive: true, force: true });
}
