import { sql } from 'drizzle-orm'
import t from 'tap'
import { createTestDatabase, ENGINE } from '../helpers/db.js'

/**
 * Database.prepare and preparedTransaction (the ingest insert, the rollup fold) answer as
 * unprepared statements do, whatever the values hold. On the embedded engine each text is
 * PREPAREd once and run as EXECUTE with its values as literals: one statement per text in the
 * session, kept through a rollback, and prepared again after a schema change under it.
 */

const database = await createTestDatabase(t)
const embeddedOnly = ENGINE !== 'pglite' && 'on PostgreSQL these are named protocol statements, one per pooled connection'

const tricky = ["it's", '$v$', '$v0$ and $v$ and $v1$', 'ends in $v', 'ends in $v$v', 'x$v0', 'back\\slash \\x00 \\n', 'ünï €', '🙂 surrogate pair', '', "''"]
const query = sql`SELECT ${sql.placeholder('a')}::text AS a, ${sql.placeholder('n')}::int8 AS n, ${sql.placeholder('d')}::timestamptz AS d,
  ${sql.placeholder('b')}::boolean AS b, ${sql.placeholder('j')}::jsonb AS j, ${sql.placeholder('x')}::numeric AS x, ${sql.placeholder('none')}::text AS none`

type Row = { a: string; n: number | string | bigint; d: Date | string; b: boolean; j: unknown; x: string | number; none: string | null }
const normalized = (r: Row) => ({ a: r.a, n: String(r.n), d: new Date(r.d).toISOString(), b: r.b, j: r.j, x: Number(r.x), none: r.none })

t.test('values reach a prepared statement unchanged', async (t) => {
  const run = database.prepare<Row>('test.values', query)
  for (const [i, a] of tricky.entries()) {
    const d = new Date(Date.UTC(2026, 0, 2, 3, 4, 5, i))
    const values = { a, n: 9_007_199_254_740_991 - i, d, b: i % 2 === 0, j: JSON.stringify({ a, list: [i, null] }), x: 0.000_000_000_123 * (i + 1), none: null }
    const [row] = await run(values)
    t.same(normalized(row), { a, n: String(9_007_199_254_740_991 - i), d: d.toISOString(), b: i % 2 === 0, j: { a, list: [i, null] }, x: 0.000_000_000_123 * (i + 1), none: null }, `value ${JSON.stringify(a)}`)
  }
  const inTransaction = await database.preparedTransaction((exec) => exec<Row>('test.values-tx', sql`SELECT ${tricky[2]}::text AS a, ${7}::int8 AS n, ${new Date(0)}::timestamptz AS d,
    ${true}::boolean AS b, ${'{"k": "$v$"}'}::jsonb AS j, ${'1.5'}::numeric AS x, ${null}::text AS none`))
  t.same(normalized(inTransaction[0]), { a: tricky[2], n: '7', d: new Date(0).toISOString(), b: true, j: { k: '$v$' }, x: 1.5, none: null }, 'inside a transaction')
})

const preparedCount = async (marker: string) =>
  Number((await database.rows<{ n: string | number }>(sql`SELECT count(*) AS n FROM pg_prepared_statements WHERE statement LIKE ${`%${marker}%`} AND statement NOT LIKE '%pg_prepared_statements%'`))[0].n)

t.test('one PREPARE per text, kept through a rollback', { skip: embeddedOnly }, async (t) => {
  const run = database.prepare<{ v: string }>('test.once', sql`SELECT 'once_marker' || ${sql.placeholder('v')}::text AS v`)
  for (let i = 0; i < 5; i++) t.same(await run({ v: String(i) }), [{ v: `once_marker${i}` }])
  t.equal(await preparedCount('once_marker'), 1, 'five runs, one prepared statement')

  const failing = sql`SELECT 'rollback_marker' || ${'x'}::text AS v`
  await t.rejects(
    database.preparedTransaction(async (exec) => {
      await exec('test.rollback', failing)
      throw new Error('abandoned')
    }),
    /abandoned/,
  )
  t.same(await database.preparedTransaction((exec) => exec('test.rollback', failing)), [{ v: 'rollback_markerx' }], 'runs after the rollback')
  t.equal(await preparedCount('rollback_marker'), 1, 'prepared once, kept through the rollback')
})

t.test('a schema change under a prepared statement is survived', { skip: embeddedOnly }, async (t) => {
  await database.rows(sql`CREATE TABLE prepared_shape (a int)`)
  await database.rows(sql`INSERT INTO prepared_shape VALUES (1)`)
  const run = database.prepare<Record<string, unknown>>('test.shape', sql`SELECT * FROM prepared_shape WHERE a >= ${sql.placeholder('min')}`)
  t.same(await run({ min: 0 }), [{ a: 1 }])
  await database.rows(sql`ALTER TABLE prepared_shape ADD COLUMN b text DEFAULT 'new'`)
  t.same(await run({ min: 0 }), [{ a: 1, b: 'new' }], 'the new column is there')
  // Inside a transaction the failed EXECUTE aborts it, so that run fails; the next one prepares again.
  const shape = sql`SELECT * FROM prepared_shape`
  t.same(await database.preparedTransaction((exec) => exec('test.shape-tx', shape)), [{ a: 1, b: 'new' }])
  await database.rows(sql`ALTER TABLE prepared_shape ADD COLUMN c int DEFAULT 3`)
  await t.rejects(database.preparedTransaction((exec) => exec('test.shape-tx', shape)), /cached plan must not change result type/)
  t.same(await database.preparedTransaction((exec) => exec('test.shape-tx', shape)), [{ a: 1, b: 'new', c: 3 }], 'the next transaction prepares it again')
})
