import { foldAll } from '../../src/usage/rollups.js'
import { sql } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import type { Database } from '../../src/db/connect.js'
import { ADMIN_KEY, bearer } from './app.js'

export const SEED_EVENT = {
  botId: 'bot_123',
  model: 'claude-opus',
  provider: 'anthropic',
  inputTokens: 150,
  outputTokens: 300,
  totalTokens: 450,
  estimatedCost: 0.00675,
  requestType: 'message',
  success: true,
}

export async function countEvents(database: Database): Promise<number> {
  const [row] = await database.rows<{ n: string | number }>(sql`SELECT count(*) AS n FROM usage_events`)
  return Number(row.n)
}

/**
 * Holds the events table locked (and, on the embedded engine, its only connection): a flush
 * started now stays in flight until released.
 */
export async function holdWrites(database: Database): Promise<{ release: () => Promise<void> }> {
  let release = () => {}
  const held = new Promise<void>((r) => (release = r))
  let locked = () => {}
  const isLocked = new Promise<void>((r) => (locked = r))
  const tx = database.db.transaction(async (tx) => {
    await tx.execute(sql`LOCK TABLE usage_events IN EXCLUSIVE MODE`)
    locked()
    await held
  })
  await isLocked
  return {
    release: async () => {
      release()
      await tx
    },
  }
}

export function postUsage(app: FastifyInstance, body: unknown, headers: Record<string, string> = bearer(ADMIN_KEY)) {
  return app.inject({ method: 'POST', url: '/api/usage', payload: body as object, headers })
}

export function postBatch(app: FastifyInstance, events: unknown[], headers: Record<string, string> = bearer(ADMIN_KEY)) {
  return app.inject({ method: 'POST', url: '/api/usage/batch', payload: { events }, headers })
}

export async function getJson<T = Record<string, unknown>>(app: FastifyInstance, url: string, headers: Record<string, string> = bearer(ADMIN_KEY)) {
  const res = await app.inject({ method: 'GET', url, headers })
  return { status: res.statusCode, body: res.json() as T, headers: res.headers }
}

/** Rollup totals per key minus raw totals per key, after folding every committed event: empty when every rollup row is exact. */
export async function rollupMismatches(database: Database): Promise<Record<string, unknown>[]> {
  await foldAll(database)
  return database.rows(sql`
    WITH raw AS (
      SELECT date_trunc('hour', created_at, 'UTC') AS hour, bot_id, provider, model, request_type, success,
        count(*) AS calls, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
        coalesce(sum(cost), 0) AS cost, count(*) FILTER (WHERE NOT priced) AS unpriced_calls
      FROM usage_events GROUP BY 1, 2, 3, 4, 5, 6),
    roll AS (
      SELECT hour, bot_id, provider, model, request_type, success, calls, input_tokens, output_tokens, cost, unpriced_calls
      FROM usage_hourly WHERE calls > 0)
    SELECT * FROM (SELECT * FROM raw EXCEPT SELECT * FROM roll) a
    UNION ALL SELECT * FROM (SELECT * FROM roll EXCEPT SELECT * FROM raw) b`)
}
