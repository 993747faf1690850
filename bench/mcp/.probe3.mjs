import { spawn } from 'node:child_process';
import http from 'node:http';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
const dir = mkdtempSync(join(tmpdir(), 'probe-'));
const port = 18000 + Math.floor(Math.random()*1000);
const extra = process.env.PRELOAD ? {LD_PRELOAD: process.env.PRELOAD} : {};
const p = spawn(process.argv[2], ['serve','--http',`127.0.0.1:${port}`], {env:{...process.env, ...extra, HOME:dir, ENGRAM_DB: join(dir,'e.db'), ENGRAM_LOG_LEVEL:'warn'}, stdio:'ignore'});
await new Promise(r=>setTimeout(r,500));
const agent = new http.Agent({keepAlive:true, maxSockets:1});
function post(body, sid) {
  return new Promise((res, rej) => {
    const req = http.request({host:'127.0.0.1', port, path:'/mcp', method:'POST', agent, headers:{'content-type':'application/json', accept:'application/json, text/event-stream', ...(sid?{'mcp-session-id':sid}:{}), 'mcp-protocol-version':'2025-11-25'}}, (r) => { let d=''; r.on('data',c=>d+=c); r.on('end',()=>res({h:r.headers, d})); });
    req.on('error', rej); req.end(JSON.stringify(body));
  });
}
async function time(label, fn, n=300) {
  await fn(0);
  const t0 = performance.now(); const c0 = process.cpuUsage();
  for (let i=0;i<n;i++) await fn(i);
  const c = process.cpuUsage(c0);
  console.log(label.padEnd(28), 'ms/call', ((performance.now()-t0)/n).toFixed(3), ' client cpu ms/call', ((c.user+c.system)/1000/n).toFixed(3));
}
const init = await post({jsonrpc:'2.0', id:0, method:'initialize', params:{protocolVersion:'2025-11-25', capabilities:{}, clientInfo:{name:'x',version:'1'}}});
const sid = init.h['mcp-session-id'];
await post({jsonrpc:'2.0', method:'notifications/initialized'}, sid);
const url = new URL(`http://127.0.0.1:${port}/mcp`);
const client = new Client({name:'p',version:'1'},{capabilities:{}});
await client.connect(new StreamableHTTPClientTransport(url));
await client.listTools();
const q = {name:'query_memory', arguments:{query:'x y'}};
for (let k=0;k<2;k++) {
await time('node:http ping', (i) => post({jsonrpc:'2.0', id: i+1, method:'ping'}, sid));
await time('fetch ping', async (i) => { const r = await fetch(url, {method:'POST', headers:{'content-type':'application/json', accept:'application/json, text/event-stream', 'mcp-session-id': sid, 'mcp-protocol-version':'2025-11-25'}, body: JSON.stringify({jsonrpc:'2.0', id: 1000+i, method:'ping'})}); await r.text(); });
await time('sdk ping', () => client.ping());
await time('sdk query_memory', () => client.callTool(q));
}
p.kill('SIGTERM');
process.exit(0);
