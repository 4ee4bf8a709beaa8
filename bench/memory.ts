/**
 * Resident memory of `npm start` on the embedded engine: the server (a child process, as `npm
 * start` runs it) on a fresh data dir, then after `--events` events and the dashboard's reads,
 * then restarted on that same (warm) data dir, at ready and after the same reads and an export.
 * RSS (VmRSS) and its peak (VmHWM) are read from /proc.
 *
 *   npm run bench:memory
 *   npx tsx bench/memory.ts --events 50000 --env EMBEDDED_SHARED_BUFFERS_MB=128   # compare a setting
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { parseArgs } from 'node:util'
import { Pool } from 'undici'
import { authHeaders, fmt, startServer, type Server } from './support.js'

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '100000' },
    env: { type: 'string', multiple: true, default: [] },
  },
})
const EVENTS = Number(args.events)
// Load shedding reacts to the machine; this measures memory, not latency.
const serverEnv = {
  MAX_EVENT_LOOP_DELAY_MS: '0',
  ...Object.fromEntries((args.env ?? []).map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)])),
}
const DAY = 86_400_000

async function seed(server: Server): Promise<void> {
  const pool = new Pool(server.url, { connections: 2 })
  const now = Date.now()
  for (let from = 0; from < EVENTS; from += 1000) {
    const events = Array.from({ length: Math.min(1000, EVENTS - from) }, (_, k) => {
      const i = from + k
      return {
        id: `m-${i}`,
        botId: `bot_${i % 10}`,
        model: i % 2 ? 'gpt-4o' : 'claude-3-5-sonnet-20241022',
        provider: i % 2 ? 'openai' : 'anthropic',
        inputTokens: 1000 + (i % 500),
        outputTokens: 200 + (i % 300),
        latencyMs: 300 + (i % 2000),
        metadata: { chatId: 100_000 + (i % 5000), userId: `user_${i % 997}` },
        createdAt: new Date(now - 60_000 - Math.floor(((EVENTS - i) / EVENTS) * 89 * DAY)).toISOString(),
      }
    })
    for (;;) {
      const res = await pool.request({ path: '/api/usage/batch', method: 'POST', headers: authHeaders, body: JSON.stringify({ events }) })
      await res.body.dump()
      if (res.statusCode === 200) break
      if (res.statusCode !== 503) throw new Error(`seeding failed: ${res.statusCode}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  await pool.close()
}

/** What the dashboard asks for on load (last 30 days), and a 90-day export. */
async function reads(server: Server, withExport: boolean): Promise<void> {
  const end = new Date().toISOString().slice(0, 10)
  const start30 = new Date(Date.now() - 29 * DAY).toISOString().slice(0, 10)
  const start90 = new Date(Date.now() - 89 * DAY).toISOString().slice(0, 10)
  const range = `startDate=${start30}&endDate=${end}`
  const paths = [
    `/api/usage/summary?${range}`,
    `/api/usage/timeseries?interval=day&${range}`,
    `/api/usage/timeseries?interval=day&groupBy=model&${range}`,
    `/api/usage/breakdown?groupBy=model&${range}`,
    `/api/usage/errors?${range}`,
    `/api/usage/events?limit=50`,
    '/api/usage?limit=20',
  ]
  if (withExport) paths.push(`/api/usage/export?format=jsonl&startDate=${start90}&endDate=${end}`)
  for (const p of paths) {
    for (let attempt = 1; ; attempt++) {
      const res = await fetch(`${server.url}${p}`, { headers: authHeaders })
      await res.arrayBuffer()
      if (res.status === 200) break
      if (res.status !== 503 || attempt === 10) throw new Error(`${p} answered ${res.status}`)
      await new Promise((r) => setTimeout(r, 1000))
    }
  }
}

const rows: [string, number, number][] = []
const note = (label: string, s: Server) => rows.push([label, s.rssMb(), s.peakRssMb()])

const dataDir = mkdtempSync(path.join(tmpdir(), 'bench-memory-'))
try {
  const fresh = await startServer({ engine: 'pglite', dataDir, env: serverEnv })
  note('fresh data dir, at ready', fresh)
  await reads(fresh, false)
  note('fresh data dir, after the dashboard reads', fresh)
  process.stderr.write(`... seeding ${fmt(EVENTS)} events\n`)
  await seed(fresh)
  await reads(fresh, true)
  note(`after ${fmt(EVENTS)} events, the dashboard reads and a 90-day export`, fresh)
  await fresh.stop()

  const warm = await startServer({ engine: 'pglite', dataDir, env: serverEnv })
  note(`warm data dir (${fmt(EVENTS)} events), at ready`, warm)
  await reads(warm, false)
  note('warm data dir, after the dashboard reads', warm)
  await reads(warm, true)
  note('warm data dir, after a 90-day export too', warm)
  await warm.stop()
} finally {
  rmSync(dataDir, { recursive: true, force: true })
}

process.stdout.write(`\nMemory of npm start (embedded engine), ${new Date().toISOString()}${args.env?.length ? `, ${args.env.join(' ')}` : ''}\n\n`)
process.stdout.write('| moment | RSS | peak RSS |\n| --- | --- | --- |\n')
for (const [label, rss, peak] of rows) process.stdout.write(`| ${label} | ${rss} MB | ${peak} MB |\n`)
