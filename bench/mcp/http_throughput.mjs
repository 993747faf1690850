// HTTP throughput of `engram serve --http` with 8 concurrent official SDK clients
// (StreamableHTTPClientTransport): a cheap read tool, then a write-heavy episode lifecycle.
//
//   node http_throughput.mjs ENGRAM_BINARY   (or ENGRAM_BINARY=... node http_throughput.mjs)
//   BENCH_CLIENTS=8, BENCH_SECONDS=8 (counted seconds per phase), BENCH_WARMUP_SECONDS=1,
//   BENCH_CLIENT_THREADS=1 (Node worker threads the clients are spread over)
//
// Each client is its own MCP session (initialize, tools/list, then calls back to back, one
// at a time); the clients run concurrently in a worker thread of this one Node process (or
// spread over several: an SDK client request costs the client about 2 ms of CPU, so on a
// 2-core machine the client side, not engram, sets the rate; a second client thread did
// not raise it here). Phases, each bounded in time (the whole run stays under 30 s):
//   read   query_memory on the (still empty) store → calls/s and latency per call
//   write  create_episode + add_episode_step + complete_episode per iteration, at the
//          default durability (full: fsync per commit) → episodes/s and latency per episode
// CPU time of the engram process and of the client process over each counted window is
// printed too, and engram's CPU per operation: on a 2-core machine the client side can be
// what limits the rate. Results are reported, never asserted.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function check(r, what) {
  if (r.isError) throw new Error(`${what} failed: ${JSON.stringify(r.content)}`);
  return r;
}

const OPS = {
  read: async (client) => {
    check(await client.callTool({ name: 'query_memory', arguments: { query: 'fix the flaky retry timeout test' } }),
      'query_memory');
  },
  write: async (client, n) => {
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

// ---- worker thread: some of the clients --------------------------------------------------
// Connects its clients, says so, then runs each phase of the schedule (absolute Date.now()
// times) and posts back the latencies of operations that started and ended inside the
// counted window.
if (!isMainThread) {
  const { url, clients: count, index } = workerData;
  const clients = [];
  for (let i = 0; i < count; i++) {
    const client = new Client({ name: `engram-bench-${index}-${i}`, version: '1.0.0' }, { capabilities: {} });
    const transport = new StreamableHTTPClientTransport(new URL(url));
    await client.connect(transport);
    await client.listTools();
    clients.push({ client, transport });
  }
  parentPort.postMessage({ type: 'ready' });
  parentPort.on('message', async (msg) => {
    if (msg.type === 'phase') {
      const { op, startAt, countFrom, stopAt } = msg;
      const latencies = [];
      let errors = 0;
      let firstError = null;
      let n = 0;
      await sleep(Math.max(0, startAt - Date.now()));
      await Promise.all(clients.map(async ({ client }) => {
        while (Date.now() < stopAt) {
          const t0 = Date.now();
          const p0 = performance.now();
          try {
            await OPS[op](client, `${index}-${n++}`);
          } catch (e) {
            errors++;
            firstError ??= String(e);
            continue;
          }
          const ms = performance.now() - p0;
          if (t0 >= countFrom && Date.now() <= stopAt) latencies.push(ms);
        }
      }));
      parentPort.postMessage({ type: 'done', latencies, errors, firstError });
    } else if (msg.type === 'close') {
      for (const { client, transport } of clients) {
        try { await transport.terminateSession(); } catch { /* the server may be gone */ }
        await client.close();
      }
      parentPort.postMessage({ type: 'closed' });
    }
  });
} else {
  await main();
}

async function main() {
  const ENGRAM = process.argv[2] ?? process.env.ENGRAM_BINARY;
  if (!ENGRAM) {
    console.error('usage: node http_throughput.mjs ENGRAM_BINARY');
    process.exit(2);
  }
  const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 8);
  const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
  const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 1);
  const THREADS = Math.max(1, Math.min(CLIENTS, Number(process.env.BENCH_CLIENT_THREADS ?? 1)));
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
  // CPU seconds (user + system) a process has used so far.
  function serverCpu(pid) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;  // utime, stime (fields 14, 15)
  }
  function clientCpu() {  // the whole process: every worker thread
    const u = process.cpuUsage();
    return (u.user + u.system) / 1e6;
  }
  function stats(xs) {
    const s = [...xs].sort((a, b) => a - b);
    const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
    return { n: s.length, p50: q(0.5), p95: q(0.95), p99: q(0.99) };
  }

  const port = await freePort();
  const proc = spawn(ENGRAM, ['serve', '--http', `127.0.0.1:${port}`], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr.on('data', (d) => { stderr += d; });
  const exited = new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const workers = [];
  // Messages of one type from every worker.
  const fromAll = (type) => Promise.all(workers.map((w) => new Promise((resolve, reject) => {
    const onMessage = (m) => { if (m.type === type) { w.off('message', onMessage); resolve(m); } };
    w.on('message', onMessage);
    w.once('error', reject);
  })));
  try {
    const deadline = Date.now() + 15000;
    while (!(await canConnect(port))) {
      if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`engram exited early:\n${stderr}`);
      if (Date.now() > deadline) throw new Error(`engram did not listen within 15 s:\n${stderr}`);
      await sleep(20);
    }
    const url = `http://127.0.0.1:${port}/mcp`;
    for (let t = 0; t < THREADS; t++) {
      const clients = Math.floor(CLIENTS / THREADS) + (t < CLIENTS % THREADS ? 1 : 0);
      workers.push(new Worker(new URL(import.meta.url), { workerData: { url, clients, index: t } }));
    }
    await fromAll('ready');

    async function phase(op) {
      const startAt = Date.now() + 50;
      const countFrom = startAt + WARMUP_SECONDS * 1000;
      const stopAt = countFrom + SECONDS * 1000;
      const done = fromAll('done');
      for (const w of workers) w.postMessage({ type: 'phase', op, startAt, countFrom, stopAt });
      await sleep(countFrom - Date.now());
      const c0 = { server: serverCpu(proc.pid), client: clientCpu(), t: performance.now() };
      await sleep(Math.max(0, stopAt - Date.now()));
      const c1 = { server: serverCpu(proc.pid), client: clientCpu(), t: performance.now() };
      const parts = await done;
      const latencies = parts.flatMap((p) => p.latencies);
      const window = (c1.t - c0.t) / 1000;
      const serverCpuSeconds = c1.server - c0.server;
      return {
        ops: latencies.length,
        per_second: latencies.length / SECONDS,
        latency_ms: stats(latencies),
        errors: parts.reduce((a, p) => a + p.errors, 0),
        firstError: parts.map((p) => p.firstError).find(Boolean) ?? null,
        server_cpu_cores: serverCpuSeconds / window,
        client_cpu_cores: (c1.client - c0.client) / window,
        server_cpu_ms_per_op: (serverCpuSeconds * 1000) / Math.max(1, latencies.length),
      };
    }
    const read = await phase('read');
    const write = await phase('write');

    const f = (x) => x.toFixed(2).padStart(7);
    const cpu = (r, unit) => `engram ${r.server_cpu_cores.toFixed(2)} cores = ${r.server_cpu_ms_per_op.toFixed(2)} ms/${unit}, clients ${r.client_cpu_cores.toFixed(2)} cores`;
    console.log(`HTTP throughput, ${CLIENTS} concurrent SDK clients (StreamableHTTPClientTransport) on ${THREADS} client thread(s), ${SECONDS} s counted per phase after ${WARMUP_SECONDS} s warm-up`);
    console.log(`  ${'phase'.padEnd(42)}      rate        p50     p95     p99  errors`);
    console.log(`  ${'read: query_memory (empty store)'.padEnd(42)}${read.per_second.toFixed(0).padStart(6)} calls/s   ${f(read.latency_ms.p50)} ${f(read.latency_ms.p95)} ${f(read.latency_ms.p99)}  ${read.errors}`);
    console.log(`  ${'write: create+add_step+complete, fsync'.padEnd(42)}${write.per_second.toFixed(0).padStart(6)} episodes/s${f(write.latency_ms.p50)} ${f(write.latency_ms.p95)} ${f(write.latency_ms.p99)}  ${write.errors}   (${(write.per_second * 3).toFixed(0)} calls/s)`);
    console.log('  latency in ms per call (read) and per episode of 3 calls (write)');
    console.log(`  cpu, read:  ${cpu(read, 'call')}`);
    console.log(`  cpu, write: ${cpu(write, 'episode')}`);
    for (const [name, r] of [['read', read], ['write', write]]) {
      if (r.firstError) console.log(`  first ${name} error: ${r.firstError}`);
    }
    if (process.env.BENCH_JSON) console.log(JSON.stringify({ http_throughput: { read, write } }));
  } finally {
    if (workers.length) {
      const closed = fromAll('closed');
      for (const w of workers) w.postMessage({ type: 'close' });
      await Promise.race([closed, sleep(5000)]);
      await Promise.all(workers.map((w) => w.terminate()));
    }
    proc.kill('SIGTERM');
    const timer = setTimeout(() => proc.kill('SIGKILL'), 10000);
    const status = await exited;
    clearTimeout(timer);
    if (status.code !== 0) console.log(`  engram exited with ${JSON.stringify(status)}:\n${stderr}`);
    rmSync(dir, { recursive: true, force: true });
  }
}
