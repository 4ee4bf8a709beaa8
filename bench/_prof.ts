import autocannon from 'autocannon'
import { startServer, authHeaders } from './support.js'
const engine = (process.env.ENGINE ?? 'postgres') as 'postgres' | 'pglite'
const server = await startServer({ engine, nodeArgs: ['--cpu-prof', `--cpu-prof-dir=/tmp/iso/prof-${process.env.TAG ?? 'x'}`] })
const body = JSON.stringify({ botId: 'bench_bot', model: 'claude-3-5-sonnet-20241022', provider: 'anthropic', inputTokens: 1200, outputTokens: 300, cacheReadTokens: 800, latencyMs: 900, requestType: 'message', success: true, metadata: { chatId: 1234 } })
const path = process.env.ROUTE ?? '/api/usage'
const r = await autocannon({ url: server.url + path, method: path === '/healthz' ? 'GET' : 'POST', headers: authHeaders, body: path === '/healthz' ? undefined : body, connections: 64, duration: Number(process.env.DUR ?? 8) })
console.log(path, 'rps', r.requests.average, 'p99', r.latency.p99, 'non2xx', r.non2xx)
await server.dispose()
