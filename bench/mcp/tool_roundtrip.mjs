// Round trip of a trivial tool over stdio, as the official SDK client measures it, side by
// side with the SDK's own floor (DESIGN.md §10: target ≤ 2× the floor).
//
//   node tool_roundtrip.mjs ENGRAM_BINARY    (or ENGRAM_BINARY=... node tool_roundtrip.mjs)
//   BENCH_CALLS=2000 (counted calls per server), BENCH_WARMUP_CALLS=200 (not counted)
//   BENCH_TOOL=query_memory (the engram tool timed against the floor), BENCH_ALSO=get_metrics
//   (further engram tools reported beside it, comma separated; empty for none)
//
// The trivial tool is query_memory on an empty store: the cheapest real tool (a read that
// finds nothing). get_metrics costs more (it counts the store's rows), and health_check
// writes to the store.
//
// One Node process, one official SDK Client + StdioClientTransport per server, both servers
// connected for the whole run. The floor is the SDK reference server, server-everything, and
// its `echo` tool (an SDK McpServer over the SDK StdioServerTransport). Calls alternate
// between the servers one at a time (engram, echo, engram, echo, …), each awaited, so a busy
// moment of the shared machine hits both alike. Both sessions call tools/list once after
// connecting, as a real client does (the client then validates results against the listed
// output schemas, a cost it pays for engram's schema-bearing tools and not for echo).
// Results are reported, never asserted.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

const ENGRAM = process.argv[2] ?? process.env.ENGRAM_BINARY;
if (!ENGRAM) {
  console.error('usage: node tool_roundtrip.mjs ENGRAM_BINARY');
  process.exit(2);
}
const CALLS = Number(process.env.BENCH_CALLS ?? 2000);
const WARMUP = Number(process.env.BENCH_WARMUP_CALLS ?? 200);
const TOOL = process.env.BENCH_TOOL ?? 'query_memory';
const ALSO = (process.env.BENCH_ALSO ?? 'get_metrics').split(',').map((s) => s.trim()).filter(Boolean);
const EVERYTHING = join(
  dirname(createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/package.json')),
  'dist', 'index.js');

// Arguments of the cheap engram tools (on an empty store).
const ARGS = {
  get_metrics: {},
  query_memory: { query: 'fix the flaky retry timeout test' },
  health_check: {},
};

const dir = mkdtempSync(join(tmpdir(), 'engram-bench-rt-'));
const env = { ...process.env };
for (const k of Object.keys(env)) if (k.startsWith('ENGRAM_')) delete env[k];
Object.assign(env, {
  HOME: dir,
  XDG_CONFIG_HOME: join(dir, 'config'),
  XDG_DATA_HOME: join(dir, 'data'),
  ENGRAM_DB: join(dir, 'engram.db'),
  ENGRAM_LOG_LEVEL: 'warn',
});

async function connect(name, command, args, serverEnv) {
  const client = new Client({ name: 'engram-bench', version: '1.0.0' }, { capabilities: {} });
  const transport = new StdioClientTransport({ command, args, env: serverEnv, stderr: 'ignore' });
  await client.connect(transport);
  await client.listTools();
  return { name, client };
}

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  return { n: s.length, min: s[0], p50: q(0.5), p95: q(0.95), p99: q(0.99), mean: s.reduce((a, b) => a + b, 0) / s.length };
}

async function timedCall(client, name, args) {
  const t0 = process.hrtime.bigint();
  const r = await client.callTool({ name, arguments: args });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (r.isError) throw new Error(`${name} failed: ${JSON.stringify(r.content)}`);
  return ms;
}

const engram = await connect('engram', ENGRAM, ['serve'], env);
const floor = await connect('server-everything', process.execPath, [EVERYTHING, 'stdio'], process.env);
try {
  // Each series: [label, client, tool, args]; all run in turn within every iteration.
  const series = [
    [`engram ${TOOL}`, engram.client, TOOL, ARGS[TOOL] ?? {}],
    ['SDK floor: server-everything echo', floor.client, 'echo', { message: 'hello' }],
    ...ALSO.filter((t) => t !== TOOL).map((t) => [`engram ${t}`, engram.client, t, ARGS[t] ?? {}]),
  ];
  const samples = series.map(() => []);
  const t0 = Date.now();
  for (let i = 0; i < WARMUP + CALLS; i++) {
    for (let s = 0; s < series.length; s++) {
      const [, client, name, args] = series[s];
      const ms = await timedCall(client, name, args);
      if (i >= WARMUP) samples[s].push(ms);
    }
  }
  const wall = (Date.now() - t0) / 1000;
  const f = (x) => x.toFixed(3).padStart(7);
  console.log(`tool call round trip over stdio, official SDK client (ms per call), ${CALLS} calls each after ${WARMUP} warm-up, alternating (${wall.toFixed(1)} s)`);
  console.log(`  ${'series'.padEnd(36)}    min     p50     p95     p99    mean`);
  const results = {};
  series.forEach(([label], i) => {
    const st = stats(samples[i]);
    results[label] = st;
    console.log(`  ${label.padEnd(36)}${f(st.min)} ${f(st.p50)} ${f(st.p95)} ${f(st.p99)} ${f(st.mean)}`);
  });
  const e = results[series[0][0]];
  const b = results[series[1][0]];
  const r50 = e.p50 / b.p50;
  const r95 = e.p95 / b.p95;
  console.log(`  ratio engram ${TOOL} / SDK floor: p50 ${r50.toFixed(2)}x, p95 ${r95.toFixed(2)}x` +
    ` (target <= 2x: ${r50 <= 2 ? 'met' : `MISSED by ${((r50 - 2) * 100 / 2).toFixed(0)}%`} at p50)`);
  for (const [label] of series.slice(2)) {
    console.log(`  ratio ${label} / SDK floor: p50 ${(results[label].p50 / b.p50).toFixed(2)}x, p95 ${(results[label].p95 / b.p95).toFixed(2)}x`);
  }
  if (process.env.BENCH_JSON) console.log(JSON.stringify({ tool_roundtrip: results }));
} finally {
  await engram.client.close();
  await floor.client.close();
  rmSync(dir, { recursive: true, force: true });
}
