import { sql } from 'drizzle-orm'
import t from 'tap'
import { DEFAULT_READ_RANDOM_PAGE_COST } from '../../src/db/connect.js'
import { createTestDatabase, ENGINE } from '../helpers/db.js'

/**
 * On Postgres the read pool runs every statement as a named prepared statement (one per text):
 * answers are those of an unprepared run, a connection never holds more than its bound of
 * statements, and a schema change under a prepared statement is survived, not surfaced.
 */

const skip = ENGINE !== 'postgres' && 'the embedded engine has one connection and no read pool'
const LIMIT = 3

t.test('reads answer as unprepared statements do, with timestamps as text', { skip }, async (t) => {
  const database = await createTestDatabase(t, { readPoolSize: 1, preparedReadsPerConnection: LIMIT })
  const query = sql`SELECT ${'2026-01-02T03:04:05.678Z'}::timestamptz AS at, ${'12.3400'}::numeric AS cost, 7::bigint AS n, NULL::text AS missing`
  const unprepared = await database.rows(query)
  t.same(unprepared, [{ at: '2026-01-02 03:04:05.678+00', cost: '12.3400', n: '7', missing: null }])
  for (let i = 0; i < 8; i++) t.same(await database.reads.rows(query), unprepared, `run ${i + 1} of the prepared statement`)
  t.same(await database.reads.rows(sql`SHOW plan_cache_mode`), [{ plan_cache_mode: 'force_custom_plan' }], 'each run is planned for its values')
})

t.test('read sessions price random page reads for cached data, unless told to keep the server setting', { skip }, async (t) => {
  const fast = await createTestDatabase(t, { readPoolSize: 1, migrate: false })
  const [serverSetting] = await fast.rows<{ random_page_cost: string }>(sql`SHOW random_page_cost`)
  t.not(serverSetting.random_page_cost, String(DEFAULT_READ_RANDOM_PAGE_COST), "the primary pool keeps the server's setting")
  t.same(await fast.reads.rows(sql`SHOW random_page_cost`), [{ random_page_cost: String(DEFAULT_READ_RANDOM_PAGE_COST) }])
  const server = await createTestDatabase(t, { readPoolSize: 1, migrate: false, readRandomPageCost: null })
  t.same(await server.reads.rows(sql`SHOW random_page_cost`), [serverSetting])
  const chosen = await createTestDatabase(t, { readPoolSize: 1, migrate: false, readRandomPageCost: 2.5 })
  t.same(await chosen.reads.rows(sql`SHOW random_page_cost`), [{ random_page_cost: '2.5' }])
})

t.test('a read that fails leaves the next reads working', { skip }, async (t) => {
  const database = await createTestDatabase(t, { readPoolSize: 1 })
  const divide = (d: number) => database.reads.rows<{ q: number }>(sql`SELECT 1 / ${d}::int AS q`)
  t.same(await divide(1), [{ q: 1 }])
  await t.rejects(divide(0), { code: '22012' }, 'division by zero reaches the caller with its SQLSTATE')
  t.same(await divide(1), [{ q: 1 }], 'the same statement answers afterwards')
})

t.test(`a read connection keeps at most ${LIMIT} statements prepared, then is replaced`, { skip }, async (t) => {
  const database = await createTestDatabase(t, { readPoolSize: 1, preparedReadsPerConnection: LIMIT })
  // Every text below is distinct, so each one prepares a statement of its own.
  const probe = (i: number) =>
    database.reads.rows<{ pid: number; prepared: string }>(
      sql.raw(`SELECT pg_backend_pid() AS pid, (SELECT count(*) FROM pg_prepared_statements) AS prepared, ${i} AS i`),
    )
  const seen: { pid: number; prepared: number }[] = []
  for (let i = 0; i < 3 * LIMIT; i++) {
    const [row] = await probe(i)
    seen.push({ pid: row.pid, prepared: Number(row.prepared) })
  }
  // pg_prepared_statements lists the running statement too: 1..LIMIT on each connection.
  t.same(
    seen.map((s) => s.prepared),
    [1, 2, 3, 1, 2, 3, 1, 2, 3],
    'each connection prepares up to the bound',
  )
  const pids = [...new Set(seen.map((s) => s.pid))]
  t.equal(pids.length, 3, 'the connection is replaced after each bound')
  // The same text again on a fresh connection: still answered.
  t.equal((await probe(0)).length, 1)
})

t.test('a statement prepared before a migration changed its columns is run again, not failed', { skip }, async (t) => {
  const database = await createTestDatabase(t, { readPoolSize: 1 })
  await database.rows(sql`CREATE TABLE widgets (id int PRIMARY KEY)`)
  await database.rows(sql`INSERT INTO widgets VALUES (1)`)
  const read = () => database.reads.rows(sql`SELECT * FROM widgets`)
  t.same(await read(), [{ id: 1 }])
  t.same(await read(), [{ id: 1 }], 'the prepared statement answers')
  await database.rows(sql`ALTER TABLE widgets ADD COLUMN label text NOT NULL DEFAULT 'w'`)
  t.same(await read(), [{ id: 1, label: 'w' }], 'the new column is read after the change')
  t.same(await read(), [{ id: 1, label: 'w' }], 'and on the connection that replaced the stale one')
})
