// Cold start to the `initialize` answer over stdio (DESIGN.md §10: target ≤ 30 ms).
//
//   node cold_start.mjs ENGRAM_BINARY        (or ENGRAM_BINARY=... node cold_start.mjs)
//   BENCH_RUNS=50 (counted runs per case), BENCH_WARMUP=3 (runs per case not counted)
//
// Each run spawns a fresh process, writes one `initialize` request to its stdin at once,
// and times from just before spawn() to the arrival of the complete response line on its
// stdout. Cases, interleaved run by run so that drift of the shared machine hits all alike:
//   driver floor   `cat`, which echoes the request line back: what spawning a process and a
//                  pipe round trip cost this Node driver, included in every other figure
//   engram new     engram on a store that does not exist yet (creating + migrating it)
//   engram warm    engram on a store created beforehand (the everyday case)
//   sdk reference  the official SDK's server-everything (`node dist/index.js stdio`)
// Results are reported, never asserted.
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

const ENGRAM = process.argv[2] ?? process.env.ENGRAM_BINARY;
if (!ENGRAM) {
  console.error('usage: node cold_start.mjs ENGRAM_BINARY');
  process.exit(2);
}
const RUNS = Number(process.env.BENCH_RUNS ?? 50);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 3);
const PROTOCOL = '2025-11-25';  // the SDK 1.32.2 client's LATEST_PROTOCOL_VERSION
const EVERYTHING = join(
  dirname(createRequire(import.meta.url).resolve('@modelcontextprotocol/server-everything/package.json')),
  'dist', 'index.js');

const REQUEST = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: PROTOCOL, capabilities: {}, clientInfo: { name: 'engram-bench', version: '1.0.0' } },
}) + '\n';

const root = mkdtempSync(join(tmpdir(), 'engram-bench-cold-'));
function sandboxEnv(dir) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('ENGRAM_')) delete env[k];
  return Object.assign(env, {
    HOME: dir,
    XDG_CONFIG_HOME: join(dir, 'config'),
    XDG_DATA_HOME: join(dir, 'data'),
    ENGRAM_DB: join(dir, 'engram.db'),
    ENGRAM_LOG_LEVEL: 'warn',
  });
}

// One spawn: ms from spawn() to the full initialize response line (checked to be one).
function once(command, args, env, expectEcho = false) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let elapsed = null;
    const timer = setTimeout(() => child.kill('SIGKILL'), 10000);
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d) => {
      if (elapsed !== null) return;
      out += d;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      elapsed = Number(process.hrtime.bigint() - t0) / 1e6;
      const msg = JSON.parse(out.slice(0, nl));
      if (!expectEcho && !(msg.id === 1 && msg.result && msg.result.protocolVersion)) {
        reject(new Error(`${command}: unexpected first line ${out.slice(0, nl)}`));
      }
      child.stdin.end();  // EOF: the server is expected to exit
    });
    child.stderr.on('data', (d) => { err += d; });
    child.stdin.on('error', () => {});
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (elapsed === null) reject(new Error(`${command} exited (${code ?? signal}) before answering:\n${err}`));
      else resolve(elapsed);
    });
    child.stdin.write(REQUEST);
  });
}

let fresh = 0;
const warmDir = join(root, 'warm');
const cases = [
  { name: 'driver floor (cat echo)', run: () => once('cat', [], process.env, true) },
  {
    name: 'engram serve, new store',
    run: () => once(ENGRAM, ['serve'], sandboxEnv(join(root, `new-${fresh++}`))),
  },
  { name: 'engram serve, existing store', run: () => once(ENGRAM, ['serve'], sandboxEnv(warmDir)) },
  { name: 'SDK server-everything (node)', run: () => once(process.execPath, [EVERYTHING, 'stdio'], process.env) },
];

function stats(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.max(0, Math.ceil(p * s.length) - 1))];
  return { n: s.length, min: s[0], p50: q(0.5), p95: q(0.95), max: s[s.length - 1] };
}

try {
  // The warm case's store: created (and migrated) once, untimed.
  const created = spawnSync(ENGRAM, ['serve'], { env: sandboxEnv(warmDir), input: REQUEST, timeout: 10000 });
  if (created.status !== 0) throw new Error(`creating the warm store failed: ${created.stderr}`);

  const samples = cases.map(() => []);
  for (let i = 0; i < WARMUP + RUNS; i++) {
    for (let c = 0; c < cases.length; c++) {
      const ms = await cases[c].run();
      if (i >= WARMUP) samples[c].push(ms);
    }
  }
  const f = (x) => x.toFixed(2).padStart(7);
  console.log(`cold start to the initialize answer over stdio, ${RUNS} runs each (ms; spawn() to the response line)`);
  console.log(`  ${'case'.padEnd(30)}    min     p50     p95     max`);
  const results = {};
  cases.forEach((c, i) => {
    const s = stats(samples[i]);
    results[c.name] = s;
    console.log(`  ${c.name.padEnd(30)}${f(s.min)} ${f(s.p50)} ${f(s.p95)} ${f(s.max)}`);
  });
  const warm = results['engram serve, existing store'];
  const fresh_ = results['engram serve, new store'];
  const verdict = (s) => (s.p50 <= 30 ? 'met' : `MISSED by ${(s.p50 - 30).toFixed(1)} ms`);
  console.log(`  target p50 <= 30 ms: existing store ${verdict(warm)}; new store ${verdict(fresh_)}`);
  if (process.env.BENCH_JSON) console.log(JSON.stringify({ cold_start: results }));
} finally {
  rmSync(root, { recursive: true, force: true });
}
