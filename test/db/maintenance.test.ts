import { sql } from 'drizzle-orm'
import t from 'tap'
import { maintainTables } from '../../src/db/maintenance.js'
import { buildTestApp } from '../helpers/app.js'
import { createTestDatabase, ENGINE } from '../helpers/db.js'
import { ev, seed } from '../analytics/support.js'

/**
 * The embedded engine has no autovacuum workers, so the service analyzes and vacuums it itself:
 * without statistics its planner sorted every remaining row of usage_events for each page of
 * an export or of /api/usage/events.
 */

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)

const lastAnalyzed = async (table: string) => {
  const [row] = await database.rows<{ analyzed: Date | string | null; modified: string | number }>(sql`
    SELECT coalesce(last_analyze, last_autoanalyze) AS analyzed, n_mod_since_analyze AS modified
    FROM pg_stat_user_tables WHERE schemaname = ${database.schema} AND relname = ${table}`)
  return row
}

const SEEDED = 6000
const END = Date.now() - 60_000

t.test('writes past the threshold get usage_events analyzed without anyone asking (embedded engine)', { skip: ENGINE !== 'pglite' && 'Postgres runs autovacuum itself' }, async (t) => {
  t.equal((await lastAnalyzed('usage_events')).analyzed, null, 'a fresh database was never analyzed')
  await seed(app, Array.from({ length: SEEDED }, (_, i) => ev(`e${i}`, new Date(END - i * 60_000).toISOString())))
  // The early check runs about a second after this many writes.
  const deadline = Date.now() + 30_000
  while ((await lastAnalyzed('usage_events')).analyzed === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  t.not((await lastAnalyzed('usage_events')).analyzed, null, 'usage_events was analyzed')
})

t.test('maintainTables analyzes what changed, and then nothing until it changes again', async (t) => {
  if (ENGINE !== 'pglite') await seed(app, Array.from({ length: SEEDED }, (_, i) => ev(`e${i}`, new Date(END - i * 60_000).toISOString())))
  await seed(app, Array.from({ length: 2000 }, (_, i) => ev(`more${i}`, new Date(END - i * 1000).toISOString())))
  // Postgres publishes other sessions' row counts within a second or so: ask until it sees them.
  let done = await maintainTables(database)
  for (let i = 0; i < 50 && !done.includes('analyze usage_events'); i++) {
    await new Promise((r) => setTimeout(r, 200))
    done = [...done, ...(await maintainTables(database))]
  }
  t.ok(done.includes('analyze usage_events'), `usage_events analyzed (${done.join(', ')})`)
  // Only the embedded engine, where the service runs this, is checked here: Postgres runs
  // autovacuum of its own. Even there a backend publishes its row counts up to a second late
  // (PostgreSQL's stats flush interval), so writes committed just before an ANALYZE may be
  // counted just after it, and the app's own job may have run in between: what must hold is
  // that the job settles — once the late counts are in, nothing is left to analyze.
  if (ENGINE === 'pglite') {
    let settled = false
    for (let i = 0; i < 5 && !settled; i++) {
      await new Promise((r) => setTimeout(r, 1100))
      settled = !(await maintainTables(database)).includes('analyze usage_events')
    }
    t.ok(settled, 'nothing to analyze once the late counts are in')
    await new Promise((r) => setTimeout(r, 1100))
    t.equal(Number((await lastAnalyzed('usage_events')).modified), 0, 'no change since')
    t.notOk((await maintainTables(database)).includes('analyze usage_events'), 'and nothing to analyze later')
  }

  // With statistics the first page of an export reads the created_at index in order instead
  // of sorting every row of the range.
  const from = new Date(END - 400 * 86_400_000).toISOString()
  const plan = await database.rows<{ 'QUERY PLAN': string }>(sql`
    EXPLAIN SELECT * FROM usage_events WHERE created_at >= ${from}::timestamptz AND created_at < now()
    ORDER BY created_at, bot_id, id LIMIT 501`)
  const text = plan.map((r) => r['QUERY PLAN']).join('\n')
  t.match(text, /Index Scan using usage_events_created_at_idx/, 'the page reads the created_at index in order')
  t.notMatch(text, /Bitmap Heap Scan/, 'no bitmap scan and full sort of the range')
})
