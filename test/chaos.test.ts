// Chaos under load: the real client (with a spool) keeps tracking while the service is killed
// with SIGKILL and restarted, and on PostgreSQL while the database server crashes and restarts.
// Then the ledger: every tracked event is stored exactly once, and the client counts each as sent.
// The embedded run kills the service on a temp data dir; the PostgreSQL run uses a private
// cluster (never the shared server) and is selected the same way as every other test
// (DATABASE_URL set), which it otherwise ignores.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import t, { type Test } from 'tap'
import { UsageClient, type UsageClientError } from '../src/client/index.js'
import { ADMIN_KEY } from './helpers/app.js'
import { persistentStorageEnv, TEST_DATABASE_URL } from './helpers/db.js'
import { postgresBinDir, startPrivatePostgres } from './helpers/private-postgres.js'
import { startService, type ServiceProcess } from './helpers/service-process.js'
import { waitFor } from './helpers/wait.js'

// Two starts of the service and the load between them: 20-40 s on an idle 2-core machine, but a
// busy shared one can stretch each start of the embedded engine past 20 s.
t.setTimeout(240_000)

const BOT = 'bot_chaos'
const admin = { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' }

interface Load {
  readonly tracked: string[]
  stop(): void
}

/** Tracks a few events every 10 ms until stopped, recording every id handed to the client. */
function keepTracking(client: UsageClient): Load {
  const tracked: string[] = []
  let n = 0
  const timer = setInterval(() => {
    for (let i = 0; i < 4; i++) {
      const id = `chaos-${++n}`
      tracked.push(id)
      client.track({ id, model: 'claude-sonnet-4-6', provider: 'anthropic', inputTokens: n, outputTokens: 1, metadata: { n } })
    }
  }, 10)
  return { tracked, stop: () => clearInterval(timer) }
}

async function botKey(base: string): Promise<string> {
  const res = await fetch(`${base}/api/keys`, { method: 'POST', headers: admin, body: JSON.stringify({ name: BOT, scopes: ['ingest'], botId: BOT }) })
  return ((await res.json()) as { key: string }).key
}

/** The ledger as the service holds it: every stored id of the bot, from the raw-event export. */
async function storedIds(base: string): Promise<string[]> {
  const day = (offset: number) => new Date(Date.now() + offset * 86_400_000).toISOString().slice(0, 10)
  const res = await fetch(`${base}/api/usage/export?format=jsonl&botId=${BOT}&startDate=${day(-1)}&endDate=${day(1)}`, { headers: admin })
  const text = await res.text()
  if (res.status !== 200) throw new Error(`export answered ${res.status}: ${text}`)
  return text
    .split('\n')
    .filter(Boolean)
    .map((line) => (JSON.parse(line) as { id: string }).id)
}

/** The count the aggregates (rollups) report, which must agree with the raw events. */
async function aggregatedCount(base: string): Promise<number> {
  const res = await fetch(`${base}/api/usage?botId=${BOT}`, { headers: admin })
  const body = (await res.json()) as { stats: { _count: { id: number } }[] }
  return body.stats.reduce((sum, row) => sum + row._count.id, 0)
}

async function chaos(t: Test, env: Record<string, string>, restartDatabase?: () => Promise<void>): Promise<void> {
  let service: ServiceProcess = startService(env)
  t.teardown(() => service.stop('SIGKILL'))
  const base = await service.url
  const port = new URL(base).port
  const errors: UsageClientError[] = []
  const spoolDir = mkdtempSync(path.join(tmpdir(), 'chaos-spool-'))
  t.teardown(() => rmSync(spoolDir, { recursive: true, force: true }))
  const client = new UsageClient({
    baseUrl: base,
    apiKey: await botKey(base),
    botId: BOT,
    spoolDir,
    batchSize: 25,
    flushIntervalMs: 10,
    timeoutMs: 2000,
    retry: { maxRetries: 2, baseDelayMs: 20, maxDelayMs: 200 },
    onError: (error) => errors.push(error),
  })
  t.teardown(() => client.close({ deadlineMs: 500 }))
  const load = keepTracking(client)
  const sentAtLeast = (count: number, what: string) => waitFor(() => client.stats().sent >= count, what, 60_000)

  await sentAtLeast(100, 'the first deliveries')
  // kill -9 mid-load: batches in flight lose their answer (some after their commit).
  t.equal(await service.stop('SIGKILL'), 'SIGKILL')
  const trackedWhileDown = load.tracked.length
  await waitFor(() => load.tracked.length >= trackedWhileDown + 100, 'tracking while the service is down')
  service = startService({ ...env, PORT: port })
  await service.url
  const afterRestart = client.stats().sent
  await sentAtLeast(afterRestart + 100, 'deliveries after the service restarted')

  if (restartDatabase) {
    const before = client.stats().sent
    await restartDatabase()
    await sentAtLeast(before + 100, 'deliveries after the database restarted')
  }

  load.stop()
  const total = load.tracked.length
  await waitFor(() => client.stats().sent === total, `all ${total} tracked events delivered (spool replayed)`, 60_000)
  const ids = await storedIds(base)
  t.equal(ids.length, total, 'stored once each: no event lost, none stored twice')
  t.equal(new Set(ids).size, ids.length, 'no duplicate ids')
  t.same([...ids].sort(), [...load.tracked].sort(), 'exactly the tracked events')
  t.equal(await aggregatedCount(base), total, 'the aggregates count every event once')
  t.match(client.stats(), { failed: 0, dropped: 0, queued: 0 })
  t.notOk(
    errors.some((error) => error.code !== 'USAGE_CLIENT_NETWORK' && error.code !== 'USAGE_CLIENT_HTTP_RETRYABLE' && error.code !== 'USAGE_CLIENT_TIMEOUT'),
    `only transient errors reported: ${[...new Set(errors.map((error) => error.code))].join(', ')}`,
  )
  t.comment(`tracked ${total}, spooled ${client.stats().spooled}, retried ${client.stats().retried}`)
  await client.close()
  t.equal(await service.stop('SIGTERM'), 0)
}

if (!TEST_DATABASE_URL) {
  t.test('embedded engine: kill -9 of the service under load loses and doubles nothing', async (t) => {
    await chaos(t, persistentStorageEnv(t, 'chaos'))
  })
} else if (postgresBinDir() === null) {
  t.test('PostgreSQL chaos', { skip: 'a private cluster needs root (runuser) and server binaries under /usr/lib/postgresql' }, () => undefined)
} else {
  t.test('PostgreSQL: kill -9 of the service and a crash of the database under load lose and double nothing', async (t) => {
    const postgres = await startPrivatePostgres(t)
    await chaos(t, { DATABASE_URL: postgres.url, DATABASE_SCHEMA: 'public' }, () => postgres.restart('immediate'))
  })
}
