import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { sql } from 'drizzle-orm'
import t from 'tap'
import { ERROR_ROLLUPS, ROLLUP_TABLES } from '../../src/db/event-store.js'
import { STORED_MEASURES } from '../../src/db/measures.js'
import { MIGRATIONS_DIR, migrateDatabase } from '../../src/db/migrate.js'
import { upsertRollupFrom } from '../../src/usage/rollups.js'
import { errorRollupMismatches, rollupMismatches } from '../analytics/support.js'
import { createTestDatabase } from '../helpers/db.js'

/**
 * A database that holds events and the four original rollups before the migration that adds
 * the narrow hourly, quarter-hour and error rollups: after migrating, the new rollups equal the
 * raw events (the migration's backfill), so no answer changes on upgrade.
 */

const database = await createTestDatabase(t, { migrate: false })

t.test('an upgraded database has new rollups equal to its raw events', async (t) => {
  // The migrations before the one creating usage_hourly_models, whatever its number.
  const journal = JSON.parse(readFileSync(path.join(MIGRATIONS_DIR, 'meta/_journal.json'), 'utf8')) as { entries: { tag: string }[] }
  const adding = journal.entries.findIndex((e) => readFileSync(path.join(MIGRATIONS_DIR, `${e.tag}.sql`), 'utf8').includes('CREATE TABLE "usage_hourly_models"'))
  t.ok(adding > 0, 'a migration adds the narrow rollups')
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

  // Events straight into the table, and the rollups that existed then built from them.
  await database.db.execute(sql`
    INSERT INTO usage_events (id, bot_id, created_at, provider, model, request_type, success, error_message, input_tokens, output_tokens,
      total_tokens, latency_ms, cost, priced)
    SELECT 'e' || g, 'bot_' || (g % 3), timestamptz '2024-03-30T00:00:00Z' + g * interval '7 minutes 13 seconds', 'acme',
      'acme-' || (g % 2), 'message', g % 5 <> 0, CASE WHEN g % 5 = 0 THEN 'boom ' || (g % 3) END, g, 2 * g, 3 * g,
      CASE WHEN g % 7 <> 0 THEN g * 10 END, g * 0.001, g % 4 <> 0
    FROM generate_series(1, 1500) g`)
  const old = ['usage_hourly', 'usage_daily', 'usage_daily_models', 'usage_daily_bots']
  for (const rollup of ROLLUP_TABLES.filter((r) => old.includes(r.name))) {
    // Only the measures that table had then (later migrations add more, e.g. audio tokens).
    const columns = await database.rows<{ column_name: string }>(
      sql`SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = ${rollup.name}`,
    )
    const had = new Set(columns.map((c) => c.column_name))
    await database.db.execute(upsertRollupFrom(rollup, 'usage_events', sql`TRUE`, STORED_MEASURES.filter((m) => had.has(m.column))))
  }

  await migrateDatabase(database)
  for (const rollup of ROLLUP_TABLES) t.same(await rollupMismatches(database, rollup), [], `${rollup.name} equals raw after the upgrade`)
  for (const rollup of ERROR_ROLLUPS) t.same(await errorRollupMismatches(database, rollup), [], `${rollup.name} equals raw after the upgrade`)
  const [{ n }] = await database.rows<{ n: number | string }>(sql`SELECT count(*) AS n FROM usage_quarter_hourly_models`)
  t.ok(Number(n) > 0, 'the backfill wrote rows')
})
