import { randomBytes } from 'node:crypto'
import { sql } from 'drizzle-orm'
import t from 'tap'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase, ENGINE, TEST_DATABASE_URL } from '../helpers/db.js'
import { freePort } from '../helpers/instances.js'

/** The same URL with an application_name, so the replica pool's connections can be told apart. */
function tagged(url: string, name: string): string {
  const u = new URL(url)
  u.searchParams.set('application_name', name)
  return u.toString()
}

if (ENGINE !== 'postgres' || TEST_DATABASE_URL === null) {
  t.pass('skipped', { skip: 'a read replica is a second Postgres connection (run with DATABASE_URL)' })
} else {
  const primaryUrl = TEST_DATABASE_URL
  const database = await createTestDatabase(t)
  const event = { botId: 'bot_replica', provider: 'acme', model: 'acme-large', inputTokens: 10, outputTokens: 5, estimatedCost: 0.5 }

  t.test('analytics read through DATABASE_READ_URL; ingest and keys stay on the primary', async (t) => {
    // The "replica" is the same database through a pool of its own (a real second connection).
    const name = `replica_${randomBytes(4).toString('hex')}`
    const { app } = await buildTestApp(t, database, { DATABASE_URL: primaryUrl, DATABASE_READ_URL: tagged(primaryUrl, name) })
    const created = await app.inject({ method: 'POST', url: '/api/usage', headers: bearer(ADMIN_KEY), payload: event })
    t.equal(created.statusCode, 201)
    const replicaConnections = async () =>
      (await database.rows<{ n: number }>(sql`SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = ${name}`))[0].n
    t.equal(await replicaConnections(), 0, 'ingest did not touch the replica')

    const summary = await app.inject({ method: 'GET', url: '/api/usage/summary?botId=bot_replica', headers: bearer(ADMIN_KEY) })
    t.equal(summary.statusCode, 200, 'the summary answers')
    t.match(summary.json(), { totals: { calls: 1 } }, 'the replica sees the event')
    t.ok((await replicaConnections()) > 0, 'the summary was read through the replica pool')
  })

  t.test('a replica that is down fails analytics with 503 and nothing else', async (t) => {
    const deadUrl = new URL(primaryUrl)
    deadUrl.hostname = '127.0.0.1'
    deadUrl.port = String(await freePort())
    const { app } = await buildTestApp(t, database, { DATABASE_URL: primaryUrl, DATABASE_READ_URL: deadUrl.toString() })
    const created = await app.inject({ method: 'POST', url: '/api/usage', headers: bearer(ADMIN_KEY), payload: { ...event, id: 'while-replica-down' } })
    t.equal(created.statusCode, 201, 'ingest works')
    const keys = await app.inject({ method: 'GET', url: '/api/keys', headers: bearer(ADMIN_KEY) })
    t.equal(keys.statusCode, 200, 'key management works')
    const ready = await app.inject({ method: 'GET', url: '/readyz' })
    t.equal(ready.statusCode, 200, 'the instance stays ready: the primary answers')
    const summary = await app.inject({ method: 'GET', url: '/api/usage/summary', headers: bearer(ADMIN_KEY) })
    t.equal(summary.statusCode, 503, 'analytics answer 503')
    t.equal(summary.json().code, 'DATABASE_UNAVAILABLE')
  })
}
