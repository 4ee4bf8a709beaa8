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
