import { sql } from 'drizzle-orm'
import t, { type Test } from 'tap'
import { METADATA_ROLLUPS } from '../../src/db/event-store.js'
import { foldAll, rebuildRollups } from '../../src/usage/rollups.js'
import { syncMetadataRollupKeys } from '../../src/usage/metadata-keys.js'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { postUsage } from '../helpers/usage.js'
import { get, metadataRollupMismatches, seed, seededUsageEvents } from './support.js'

/**
 * Breakdowns by a declared metadata key (its rollup from `since` on, raw events before) equal raw
 * GROUP BYs over random ranges and zones: late and out-of-order events, the bound and the "other"
 * row, the absent key, before and after since, repricing, and a key dropped and declared again.
 */

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)

const { random, pick, fields } = seededUsageEvents(7151, { idPrefix: 'm', requestType: 'message', errorMessage: 'timeout' })

const START = Date.parse('2024-03-29T00:00:00Z')
const SPAN = 6 * 86_400_000
/** Events and ranges lie in [START, START + span): it grows as the test's clock moves on. */
let span = SPAN
const MAX_VALUES = 5

function randomEvent(at: number = START + Math.floor(random() * span)): Record<string, unknown> {
  const success = random() < 0.8
  const roll = random()
  // 12 users for a bound of 5: some are listed, the rest count as "other"; some events have no userId.
  const metadata = roll < 0.15 ? { chatId: `c${Math.floor(random() * 3)}` } : roll < 0.2 ? { userId: Math.floor(random() * 3) } : { userId: `u${Math.floor(random() * 12)}` }
  return {
    ...fields(success),
    latencyMs: Math.floor(random() * 3000),
    metadata,
    createdAt: new Date(at).toISOString(),
  }
}

async function assertRollupsExact(t: Test, when: string) {
  // The app's worker folds in the background; fold the rest now, so the tables hold every event.
  await foldAll(database)
  for (const rollup of METADATA_ROLLUPS) t.same(await metadataRollupMismatches(database, rollup), [], `${rollup.name} equals raw ${when}`)
}

interface Group {
  group: string | null
  other: boolean
  calls: number
  failures: number
  inputTokens: number
  cost: string
}

/** The raw GROUP BY: a value not listed for the key (past the bound) counts in "other" when `bounded`. */
async function rawGroups(key: string, from: number, to: number, bounded: boolean, botId?: string, success?: boolean): Promise<Group[]> {
  const value = sql`(metadata ->> ${key})`
  const group = bounded
    ? sql`CASE WHEN ${value} IS NULL THEN 'absent' WHEN v.listed IS FALSE THEN 'other' ELSE 'v:' || ${value} END`
    : sql`coalesce('v:' || ${value}, 'absent')`
  const rows = await database.rows<{ g: string; calls: string; failures: string; input_tokens: string; cost: string }>(sql`
    SELECT ${group} AS g, count(*) AS calls, count(*) FILTER (WHERE NOT success) AS failures, sum(input_tokens) AS input_tokens,
      coalesce(sum(cost), 0)::numeric(30, 12)::text AS cost
    FROM usage_events e LEFT JOIN metadata_rollup_values v ON v.key = ${key} AND v.value = ${value}
    WHERE created_at >= ${new Date(from).toISOString()} AND created_at < ${new Date(to).toISOString()}
      ${botId ? sql`AND bot_id = ${botId}` : sql``} ${success === undefined ? sql`` : sql`AND success = ${success}`}
    GROUP BY 1 ORDER BY 1`)
  return rows.map((r) => ({
    group: r.g === 'absent' || r.g === 'other' ? null : r.g.slice(2),
    other: r.g === 'other',
    calls: Number(r.calls),
    failures: Number(r.failures),
    inputTokens: Number(r.input_tokens),
    cost: Number(r.cost).toFixed(9),
  }))
}

interface BreakdownBody {
  rows: { group: Record<string, string | null>; other?: boolean; calls: number; failures: number; inputTokens: number; cost: number }[]
  totals: { calls: number; cost: number }
  source: 'rollups' | 'raw'
}

async function apiGroups(
  key: string,
  from: number,
  to: number,
  tz: string,
  botId?: string,
  success?: boolean,
): Promise<{ groups: Group[]; source: string; totals: BreakdownBody['totals'] }> {
  const range = `startDate=${encodeURIComponent(new Date(from).toISOString())}&endDate=${encodeURIComponent(new Date(to - 1).toISOString())}`
  const res = await get<BreakdownBody>(
    app,
    `/api/usage/breakdown?groupBy=metadata.${key}&${range}&tz=${encodeURIComponent(tz)}&limit=1000${botId ? `&botId=${botId}` : ''}${success === undefined ? '' : `&success=${success}`}`,
  )
  if (res.status !== 200) throw new Error(res.text)
  const groups = res.body.rows
    .map((r) => ({
      group: r.group[`metadata.${key}`],
      other: r.other === true,
      calls: r.calls,
      failures: r.failures,
      inputTokens: r.inputTokens,
      cost: r.cost.toFixed(9),
    }))
    .sort((a, b) => sortKey(a).localeCompare(sortKey(b)))
  return { groups, source: res.body.source, totals: res.body.totals }
}
const sortKey = (g: Group) => (g.other ? 'other' : g.group === null ? 'absent' : `v:${g.group}`)

/** endDate is inclusive to the millisecond and the API rounds to whole ms: ranges on whole seconds. */
const randomInstant = () => START + Math.floor((random() * span) / 1000) * 1000

async function checkRandomRanges(t: Test, key: string, since: number | null, n: number) {
  for (let i = 0; i < n; i++) {
    const [from, end] = [randomInstant(), randomInstant()].sort((a, b) => a - b)
    const to = end - from < 1000 ? from + 60_000 : end
    const tz = pick(['UTC', 'Europe/Berlin', 'Asia/Kolkata', 'Asia/Kathmandu', 'America/St_Johns'])
    // Over all bots a question reads its whole days without the bot split (usage_daily_metadata_values,
    // which keeps success, so a success filter reads it too); with a bot, the per-bot rows.
    const botId = random() < 0.3 ? pick(['bot_a', 'bot_b']) : undefined
    const success = random() < 0.2 ? random() < 0.5 : undefined
    const api = await apiGroups(key, from, to, tz, botId, success)
    const bounded = since !== null && to > since
    const raw = await rawGroups(key, from, to, bounded, botId, success)
    const where = `${key} ${new Date(from).toISOString()}..${new Date(to).toISOString()} ${tz}${botId ? ` ${botId}` : ''}${success === undefined ? '' : ` success=${success}`}`
    t.same(api.groups, raw, `groups equal the raw GROUP BY: ${where}`)
    t.equal(api.source, since !== null && from >= since ? 'rollups' : 'raw', `source: ${where}`)
    // Fewer rows than groups: the first rows of the whole answer, the other row included.
    const url = `/api/usage/breakdown?groupBy=metadata.${key}&startDate=${encodeURIComponent(new Date(from).toISOString())}&endDate=${encodeURIComponent(new Date(to - 1).toISOString())}&tz=${encodeURIComponent(tz)}${botId ? `&botId=${botId}` : ''}${success === undefined ? '' : `&success=${success}`}`
    const whole = await get<BreakdownBody>(app, `${url}&limit=1000`)
    const limit = 1 + Math.floor(random() * 3)
    const part = await get<BreakdownBody>(app, `${url}&limit=${limit}`)
    t.same([part.body.rows, part.body.totals], [whole.body.rows.slice(0, limit), whole.body.totals], `limit=${limit}: the first rows and the same totals: ${where}`)
  }
}

t.test('declared keys: the rollup plus raw before since equals raw GROUP BYs', async (t) => {
  // Events before the declaration, spread over the whole span (some later than since: late ones
  // cannot be, since ingest refuses createdAt past now + skew, so here they all lie before it).
  const declaredAt = START + 2 * 86_400_000 + 3 * 3_600_000 + 1234
  await seed(app, Array.from({ length: 300 }, () => randomEvent(START + Math.floor(random() * (declaredAt - START)))))
  await syncMetadataRollupKeys(database, { keys: ['userId', 'chatId'], maxValues: MAX_VALUES }, { now: new Date(declaredAt), maxFutureSkewMs: 0 })
  const [registry] = await database.rows<{ since: Date | string }>(sql`SELECT since FROM metadata_rollup_keys WHERE key = 'userId'`)
  const since = new Date(registry.since).getTime()
  t.equal(since, START + 2 * 86_400_000 + 4 * 3_600_000, 'since is the next whole hour')
  // After it, out of order and late (old events are accepted; before since they are not folded).
  for (let round = 0; round < 4; round++) {
    await seed(app, Array.from({ length: 250 }, () => randomEvent()))
    // Concurrent single posts (group commit), some repeated: counted once.
    const singles = Array.from({ length: 12 }, () => randomEvent())
    const results = await Promise.all([...singles, ...singles.slice(0, 3)].map((e) => postUsage(app, e)))
    t.equal(results.filter((r) => r.statusCode === 201).length, 12, 'concurrent single posts, three repeated')
  }
  await assertRollupsExact(t, 'after ingest')
  const [values] = await database.rows<{ listed: string; unlisted: string }>(
    sql`SELECT count(*) FILTER (WHERE listed) AS listed, count(*) FILTER (WHERE NOT listed) AS unlisted FROM metadata_rollup_values WHERE key = 'userId'`,
  )
  t.equal(Number(values.listed), MAX_VALUES, 'the bound holds')
  t.ok(Number(values.unlisted) > 0, 'some values are past the bound')

  await checkRandomRanges(t, 'userId', since, 40)
  await checkRandomRanges(t, 'chatId', since, 10)

  const after = await apiGroups('userId', since, START + SPAN, 'UTC')
  t.ok(after.groups.some((g) => g.other), 'an other row')
  t.ok(after.groups.some((g) => g.group === null && !g.other), 'an absent row')
  t.equal(after.source, 'rollups')

  // An undeclared key reads raw events, values not bounded.
  const undeclared = await apiGroups('tenant', since, START + SPAN, 'UTC')
  t.equal(undeclared.source, 'raw')
  t.same(undeclared.groups, await rawGroups('tenant', since, START + SPAN, false))

  // Repricing applies its deltas to the metadata rollups too.
  const override = await app.inject({
    method: 'POST',
    url: '/api/prices/overrides',
    headers: bearer(ADMIN_KEY),
    payload: { provider: 'acme', modelPattern: 'acme-large', effectiveFrom: '2024-03-30T00:00:00Z', input: 3, output: 15 },
  })
  t.equal(override.statusCode, 201, override.body)
  const reprice = await app.inject({ method: 'POST', url: '/api/prices/reprice', headers: bearer(ADMIN_KEY), payload: { startDate: '2024-03-29', endDate: '2024-04-05' } })
  t.equal(reprice.statusCode, 200, reprice.body)
  t.ok(reprice.json().changed > 0, 'repricing changed costs')
  await assertRollupsExact(t, 'after repricing')
  await checkRandomRanges(t, 'userId', since, 15)

  // Dropped (the clock is past every event so far): folding stops and reads go raw (plain values, no other row).
  await syncMetadataRollupKeys(database, { keys: ['chatId'], maxValues: MAX_VALUES }, { now: new Date(START + SPAN), maxFutureSkewMs: 0 })
  await seed(app, Array.from({ length: 100 }, () => randomEvent()))
  await checkRandomRanges(t, 'userId', null, 8)
  await checkRandomRanges(t, 'chatId', since, 5)

  // Declared again a day later: it starts over with a new since, its old rows gone; events come
  // in late and for the new day.
  const again = START + SPAN + 1800_000
  span = SPAN + 86_400_000
  await syncMetadataRollupKeys(database, { keys: ['chatId', 'userId'], maxValues: MAX_VALUES }, { now: new Date(again), maxFutureSkewMs: 0 })
  const [rows] = await database.rows<{ n: string }>(sql.raw(`SELECT count(*) AS n FROM ${METADATA_ROLLUPS[0].name} WHERE key = 'userId'`))
  t.equal(Number(rows.n), 0, 'old rows removed')
  await seed(app, Array.from({ length: 250 }, () => randomEvent()))
  await assertRollupsExact(t, 'after the key was declared again')
  await checkRandomRanges(t, 'userId', START + SPAN + 3_600_000, 20)
  const afterAgain = await apiGroups('userId', START + SPAN + 3_600_000, START + span, 'UTC')
  t.equal(afterAgain.source, 'rollups')
  t.ok(afterAgain.groups.some((g) => g.other), 'values past the bound again')

  // A rebuild chooses the listed values again and folds the same events.
  await rebuildRollups(database)
  await assertRollupsExact(t, 'after a rebuild')
  await checkRandomRanges(t, 'userId', START + SPAN + 3_600_000, 5)
})

t.test('a raw part longer than METADATA_RAW_MAX_DAYS is refused; after since it is not raw', async (t) => {
  const res = await get(app, `/api/usage/breakdown?groupBy=metadata.tenant&startDate=2024-01-01&endDate=2024-03-31`)
  t.equal(res.status, 400)
  t.match(res.text, /METADATA_RAW_MAX_DAYS/)
})
