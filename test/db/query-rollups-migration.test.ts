import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { sql } from 'drizzle-orm'
import t, { type Test } from 'tap'
import type { Database } from '../../src/db/connect.js'
import { ERROR_ROLLUPS, METADATA_ROLLUPS, ROLLUP_TABLES } from '../../src/db/event-store.js'
import { STORED_MEASURES } from '../../src/db/measures.js'
import { MIGRATIONS_DIR, migrateDatabase } from '../../src/db/migrate.js'
import { upsertErrorRollupFrom, upsertMetadataRollupFrom, upsertMetadataValuesFrom, upsertRollupFrom } from '../../src/usage/rollups.js'
import { errorRollupMismatches, metadataRollupMismatches, rollupMismatches } from '../analytics/support.js'
import { createTestDatabase } from '../helpers/db.js'

/**
 * A database that holds events and the rollups it had before a migration that adds rollups (the
 * narrow hourly, quarter-hour and error rollups; later the totals and hourly error rollups, then
 * the day rollup of declared metadata values over all bots): after
 * migrating, the new rollups equal the raw events (the migration's backfill), so no answer changes
 * on upgrade.
 */

/** Migrates `database` with the migrations before the first one whose SQL includes `marker`. */
async function migrateBefore(t: Test, database: Database, marker: string): Promise<void> {
  const journal = JSON.parse(readFileSync(path.join(MIGRATIONS_DIR, 'meta/_journal.json'), 'utf8')) as { entries: { tag: string }[] }
  const adding = journal.entries.findIndex((e) => readFileSync(path.join(MIGRATIONS_DIR, `${e.tag}.sql`), 'utf8').includes(marker))
  t.ok(adding > 0, `a migration has ${marker}`)
  const before = mkdtempSync(path.join(tmpdir(), 'migrations-before-'))
  cpSync(path.join(MIGRATIONS_DIR, 'meta'), path.join(before, 'meta'), { recursive: true })
  for (const e of journal.entries.slice(0, adding)) cpSync(path.join(MIGRATIONS_DIR, `${e.tag}.sql`), path.join(before, `${e.tag}.sql`))
  writeFileSync(path.join(before, 'meta/_journal.json'), JSON.stringify({ ...journal, entries: journal.entries.slice(0, adding) }))
  t.ok(readdirSync(before).length > 1)
  try {
    await database.migrate(before)
  } finally {
    rmSync(before, { recursive: true, force: true })
  }
}

/** Events straight into the table: two days around a DST change, failures with a few messages. */
async function insertEvents(database: Database): Promise<void> {
  await database.db.execute(sql`
    INSERT INTO usage_events (id, bot_id, created_at, provider, model, request_type, success, error_message, input_tokens, output_tokens,
      total_tokens, latency_ms, cost, priced)
    SELECT 'e' || g, 'bot_' || (g % 3), timestamptz '2024-03-30T00:00:00Z' + g * interval '7 minutes 13 seconds', 'acme',
      'acme-' || (g % 2), 'message', g % 5 <> 0, CASE WHEN g % 5 = 0 THEN 'boom ' || (g % 3) END, g, 2 * g, 3 * g,
      CASE WHEN g % 7 <> 0 THEN g * 10 END, g * 0.001, g % 4 <> 0
    FROM generate_series(1, 1500) g`)
}

/** Builds the named rollups from the raw events, with only the measures each table had then (later migrations add more). */
async function buildRollups(database: Database, names: readonly string[]): Promise<void> {
  for (const rollup of ROLLUP_TABLES.filter((r) => names.includes(r.name))) {
    const columns = await database.rows<{ column_name: string }>(
      sql`SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ${rollup.name}`,
    )
    const had = new Set(columns.map((c) => c.column_name))
    await database.db.execute(upsertRollupFrom(rollup, 'usage_events', sql`TRUE`, STORED_MEASURES.filter((m) => had.has(m.column))))
  }
  for (const rollup of ERROR_ROLLUPS.filter((r) => names.includes(r.name))) await database.db.execute(upsertErrorRollupFrom(rollup, 'usage_events'))
}

async function assertEveryRollupEqualsRaw(t: Test, database: Database): Promise<void> {
  for (const rollup of ROLLUP_TABLES) t.same(await rollupMismatches(database, rollup), [], `${rollup.name} equals raw after the upgrade`)
  for (const rollup of ERROR_ROLLUPS) t.same(await errorRollupMismatches(database, rollup), [], `${rollup.name} equals raw after the upgrade`)
}

const count = async (database: Database, table: string) =>
  Number((await database.rows<{ n: number | string }>(sql`SELECT count(*) AS n FROM ${sql.raw(table)}`))[0].n)

t.test('an upgraded database has new rollups equal to its raw events', async (t) => {
  const database = await createTestDatabase(t, { migrate: false })
  await migrateBefore(t, database, 'CREATE TABLE "usage_hourly_models"')
  await insertEvents(database)
  await buildRollups(database, ['usage_hourly', 'usage_daily', 'usage_daily_models', 'usage_daily_bots'])
  await migrateDatabase(database)
  await assertEveryRollupEqualsRaw(t, database)
  t.ok((await count(database, 'usage_quarter_hourly_models')) > 0, 'the backfill wrote rows')
})

t.test('an upgraded database gets totals and hourly error rollups equal to its raw events', async (t) => {
  const database = await createTestDatabase(t, { migrate: false })
  await migrateBefore(t, database, 'CREATE TABLE "usage_daily_totals"')
  await insertEvents(database)
  const added = ['usage_daily_totals', 'usage_hourly_totals', 'usage_quarter_hourly_totals', 'usage_hourly_errors_models']
  await buildRollups(database, [...ROLLUP_TABLES, ...ERROR_ROLLUPS].map((r) => r.name).filter((n) => !added.includes(n)))
  await migrateDatabase(database)
  await assertEveryRollupEqualsRaw(t, database)
  for (const table of added) t.ok((await count(database, table)) > 0, `the backfill wrote rows into ${table}`)
})

t.test('an upgraded database gets the metadata values per day over all bots equal to its raw events', async (t) => {
  const database = await createTestDatabase(t, { migrate: false })
  await migrateBefore(t, database, 'CREATE TABLE "usage_daily_metadata_values"')
  await insertEvents(database)
  // Two declared keys (chatId shared across bots, userId per bot, some events without either),
  // a bound of 4 so some values fold into "other", and the per-bot rollups as the old fold wrote them.
  await database.db.execute(sql`
    UPDATE usage_events SET metadata = CASE
      WHEN (extract(epoch FROM created_at)::bigint / 433) % 10 = 0 THEN '{}'::jsonb
      ELSE jsonb_build_object('chatId', 'c' || ((extract(epoch FROM created_at)::bigint / 433) % 6), 'userId', bot_id || '_u' || ((extract(epoch FROM created_at)::bigint / 433) % 3))
    END`)
  await database.db.execute(sql`INSERT INTO metadata_rollup_keys (key, since, max_values, active) VALUES
    ('chatId', '2024-03-30T05:00:00Z', 4, true), ('userId', '2024-03-29T00:00:00Z', 4, true)`)
  await database.db.execute(upsertMetadataValuesFrom('usage_events'))
  const old = METADATA_ROLLUPS.filter((r) => r.name !== 'usage_daily_metadata_values')
  t.equal(old.length, METADATA_ROLLUPS.length - 1)
  for (const rollup of old) await database.db.execute(upsertMetadataRollupFrom(rollup, 'usage_events', null))
  await migrateDatabase(database)
  for (const rollup of METADATA_ROLLUPS) t.same(await metadataRollupMismatches(database, rollup), [], `${rollup.name} equals raw after the upgrade`)
  t.ok((await count(database, 'usage_daily_metadata_values')) > 0, 'the backfill wrote rows')
  const [{ n }] = await database.rows<{ n: string }>(sql`SELECT count(DISTINCT kind) AS n FROM usage_daily_metadata_values`)
  t.equal(Number(n), 3, 'values, other and absent rows')
})
