import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import {
  errorMessageKey,
  filterConditions,
  grainStart,
  metadataRollupKey,
  metadataRollupKeyFrom,
  type ErrorRollupTable,
  type EventFilter,
  type MetadataRollupTable,
  type RollupTable,
} from '../../src/db/event-store.js'
import { foldAll, positionsOf, ROLLUP_MEASURE_COLUMNS, rollupAggregatesOfEvents } from '../../src/usage/rollups.js'
import type { Database } from '../../src/db/connect.js'
import { ADMIN_KEY, bearer } from '../helpers/app.js'
import { postBatch } from '../helpers/usage.js'

/** An event of an unknown provider: its cost is exactly the reported one (unpriced). */
export function ev(id: string, createdAt: string, extra: Record<string, unknown> = {}) {
  return {
    id,
    botId: 'bot_a',
    provider: 'acme',
    model: 'acme-large',
    requestType: 'message',
    inputTokens: 10,
    outputTokens: 5,
    estimatedCost: 0.01,
    createdAt,
    ...extra,
  }
}

/**
 * A seeded random source for the property tests, and the fields their random usage events share.
 * `fields(success)` draws, in this order, bot, model, request type (when given a list to pick
 * from; a single string is used as it is, without a draw), input and output tokens, cost and, for
 * a failure, its message (likewise): every draw of a test goes through `random`, so one seed gives
 * one sequence of events.
 */
export function seededUsageEvents(seed: number, opts: { idPrefix: string; requestType: string | readonly string[]; errorMessage: string | readonly string[] }) {
  let a = seed
  const random = (): number => {
    a = (a + 0x6d2b79f5) | 0
    let x = Math.imul(a ^ (a >>> 15), 1 | a)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]
  const valueOf = (v: string | readonly string[]) => (typeof v === 'string' ? v : pick(v))
  let serial = 0
  const fields = (success: boolean): Record<string, unknown> => ({
    id: `${opts.idPrefix}${serial++}`,
    botId: pick(['bot_a', 'bot_b', 'bot_c']),
    provider: 'acme',
    model: pick(['acme-large', 'acme-small']),
    requestType: valueOf(opts.requestType),
    inputTokens: Math.floor(random() * 5000),
    outputTokens: Math.floor(random() * 2000),
    estimatedCost: pick([0.000123, 0.5, 1.25, 0.0000007, 3]),
    success,
    ...(success ? {} : { errorMessage: valueOf(opts.errorMessage) }),
  })
  return { random, pick, fields }
}

/** Stores events through the batch endpoint, failing loudly on anything but 'created'. */
export async function seed(app: FastifyInstance, events: Record<string, unknown>[]): Promise<void> {
  for (let i = 0; i < events.length; i += 1000) {
    const res = await postBatch(app, events.slice(i, i + 1000))
    const body = res.json() as { created: number }
    if (res.statusCode !== 200 || body.created !== Math.min(1000, events.length - i)) {
      throw new Error(`seed failed: ${res.statusCode} ${res.body.slice(0, 500)}`)
    }
  }
}

export async function get<T>(app: FastifyInstance, url: string, key = ADMIN_KEY): Promise<{ status: number; body: T; text: string; headers: Record<string, unknown> }> {
  const res = await app.inject({ method: 'GET', url, headers: bearer(key) })
  const text = res.body
  const json = (res.headers['content-type'] ?? '').toString().startsWith('application/json') ? (JSON.parse(text) as T) : (undefined as T)
  return { status: res.statusCode, body: json, text, headers: res.headers }
}

/**
 * Rows of `rollup` that differ from the same aggregate recomputed from raw events, after folding
 * every committed event: empty when the rollup is exactly consistent (counts, tokens, cost, histogram, max latency).
 */
export async function rollupMismatches(database: Database, rollup: RollupTable): Promise<Record<string, unknown>[]> {
  await foldAll(database)
  const keyList = [rollup.grain, ...rollup.keys].join(', ')
  const columns = sql.raw([keyList, ...ROLLUP_MEASURE_COLUMNS].join(', '))
  const measuresOf = (alias: string) => sql.raw(`ROW(${ROLLUP_MEASURE_COLUMNS.map((c) => `${alias}.${c}`).join(', ')})`)
  const positions = sql.raw(positionsOf(rollup.keys.length + 1))
  return database.rows(sql`
    SELECT ${sql.raw(keyList)}, r.calls AS raw_calls, s.calls AS rollup_calls, r.cost AS raw_cost, s.cost AS rollup_cost
    FROM (
      SELECT ${sql.raw(grainStart(rollup.grain, 'created_at'))}, ${sql.raw(rollup.keys.join(', '))}, ${rollupAggregatesOfEvents()}
      FROM usage_events GROUP BY ${positions}
    ) AS r(${columns})
    FULL JOIN ${sql.raw(rollup.name)} s USING (${sql.raw(keyList)})
    WHERE r.calls IS NULL OR s.calls IS NULL OR ${measuresOf('r')} IS DISTINCT FROM ${measuresOf('s')}`)
}

/** Rows of an error rollup that differ from the failures counted from raw events. */
export async function errorRollupMismatches(database: Database, rollup: ErrorRollupTable): Promise<Record<string, unknown>[]> {
  await foldAll(database)
  const source: Record<string, string> = { [rollup.grain]: grainStart(rollup.grain, 'created_at'), message: errorMessageKey() }
  return database.rows(sql`
    SELECT ${sql.raw(rollup.columns.map((c) => `coalesce(r.${c}, s.${c}) AS ${c}`).join(', '))}, r.failures AS raw_failures, s.failures AS rollup_failures
    FROM (
      SELECT ${sql.raw(rollup.columns.map((c) => `${source[c] ?? c} AS ${c}`).join(', '))}, count(*) AS failures, max(created_at) AS last_seen
      FROM usage_events WHERE NOT success GROUP BY ${sql.raw(positionsOf(rollup.columns.length))}
    ) r
    FULL JOIN ${sql.raw(rollup.name)} s ON ${sql.raw(rollup.columns.map((c) => (c === 'message' ? `(r.message IS NULL) = (s.message IS NULL) AND coalesce(r.message, '') = coalesce(s.message, '')` : `r.${c} = s.${c}`)).join(' AND '))}
    WHERE r.failures IS NULL OR s.failures IS NULL OR (r.failures, r.last_seen) IS DISTINCT FROM (s.failures, s.last_seen)`)
}

/** Rows of a metadata rollup that differ from the same aggregate recomputed from raw events (empty when exact). */
export async function metadataRollupMismatches(database: Database, rollup: MetadataRollupTable): Promise<Record<string, unknown>[]> {
  const key = metadataRollupKey(rollup).join(', ')
  const measures = (alias: string) => sql.raw(`ROW(${ROLLUP_MEASURE_COLUMNS.map((c) => `${alias}.${c}`).join(', ')})`)
  return database.rows(sql`
    SELECT ${sql.raw(key)}, r.calls AS raw_calls, s.calls AS rollup_calls FROM (
      SELECT ${sql.raw(metadataRollupKeyFrom(rollup, 'e'))},
        CASE WHEN e.metadata ->> k.key IS NULL THEN 'a' WHEN v.listed IS FALSE THEN 'o' ELSE 'v' END AS kind,
        CASE WHEN e.metadata ->> k.key IS NULL OR v.listed IS FALSE THEN '' ELSE e.metadata ->> k.key END AS value,
        ${rollupAggregatesOfEvents()}
      FROM usage_events e JOIN metadata_rollup_keys k ON k.active AND e.created_at >= k.since
      LEFT JOIN metadata_rollup_values v ON v.key = k.key AND v.value = e.metadata ->> k.key
      GROUP BY ${sql.raw(positionsOf(metadataRollupKey(rollup).length))}
    ) AS r(${sql.raw([key, ...ROLLUP_MEASURE_COLUMNS].join(', '))})
    FULL JOIN ${sql.raw(rollup.name)} s USING (${sql.raw(key)})
    WHERE r.calls IS NULL OR s.calls IS NULL OR ${measures('r')} IS DISTINCT FROM ${measures('s')}`)
}

/**
 * Per model+provider totals straight from raw events, written out by hand: the reference GET
 * /api/usage (read from rollups through the measure table) must match.
 */
export function statsFromRaw(database: Database, f: EventFilter): Promise<Record<string, string | number | null>[]> {
  return database.rows<Record<string, string | number | null>>(sql`
    SELECT model, provider, count(*) AS calls, count(*) FILTER (WHERE NOT success) AS failed,
      coalesce(sum(input_tokens), 0) AS input_tokens, coalesce(sum(output_tokens), 0) AS output_tokens,
      coalesce(sum(total_tokens), 0) AS total_tokens, coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
      coalesce(sum(cache_write_tokens), 0) AS cache_write_tokens, coalesce(sum(reasoning_tokens), 0) AS reasoning_tokens,
      coalesce(sum(cost), 0) AS cost,
      count(*) FILTER (WHERE NOT priced) AS unpriced_calls,
      coalesce(sum(input_tokens) FILTER (WHERE NOT priced), 0) AS unpriced_input_tokens,
      coalesce(sum(output_tokens) FILTER (WHERE NOT priced), 0) AS unpriced_output_tokens,
      sum(coalesce(sum(cost), 0)) OVER () AS total_cost
    FROM usage_events WHERE ${filterConditions(f)}
    GROUP BY model, provider`)
}
