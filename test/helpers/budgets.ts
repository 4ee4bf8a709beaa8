import type { FastifyInstance } from 'fastify'
import { Writable } from 'node:stream'
import { buildApp } from '../../src/app.js'
import type { Database } from '../../src/db/connect.js'
import { ADMIN_KEY, bearer, testConfig } from './app.js'

/** Fast evaluation and retries for tests; each test may override. */
export const BUDGET_TEST_ENV = {
  BUDGET_DEBOUNCE_MS: '5',
  ALERT_RETRY_BASE_MS: '40',
  ALERT_MAX_ATTEMPTS: '4',
  ALERT_WEBHOOK_TIMEOUT_MS: '2000',
  // The fake receivers listen on 127.0.0.1, which alerts refuse unless the operator allows it.
  ALERT_WEBHOOK_ALLOW_PRIVATE: 'true',
}

/** A clock the test moves; the app computes budget periods and projections with it. */
export class TestClock {
  constructor(private at: Date) {}
  readonly now = (): Date => new Date(this.at)
  set(iso: string): void {
    this.at = new Date(iso)
  }
}

export interface BudgetTestApp {
  app: FastifyInstance
  rawLog: () => string
}

/** Like buildTestApp, with the budget clock injected; closed when the test ends. */
export async function buildBudgetApp(
  t: { teardown(fn: () => unknown): void },
  database: Database,
  env: Record<string, string> = {},
  clock?: TestClock,
): Promise<BudgetTestApp> {
  const chunks: string[] = []
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk))
      cb()
    },
  })
  const app = await buildApp(testConfig({ ...BUDGET_TEST_ENV, ...env }), { database, logDestination: stream, budgetClock: clock?.now })
  t.teardown(() => app.close())
  return { app, rawLog: () => chunks.join('') }
}

export async function api<T = Record<string, unknown>>(
  app: FastifyInstance,
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE',
  url: string,
  payload?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await app.inject({ method, url, payload: payload as object | undefined, headers: bearer(ADMIN_KEY) })
  return { status: res.statusCode, body: (res.body ? res.json() : {}) as T }
}

export interface CreatedBudget {
  id: string
  channels: { webhook?: { url: string; secret?: string } }
  [k: string]: unknown
}

export async function createBudget(app: FastifyInstance, body: Record<string, unknown>): Promise<CreatedBudget> {
  const res = await api<CreatedBudget>(app, 'POST', '/api/budgets', body)
  if (res.status !== 201) throw new Error(`create budget: ${res.status} ${JSON.stringify(res.body)}`)
  return res.body
}

/** A usage event with an exact cost: the model is unknown to the price catalog, so the reported cost is kept. */
export function costEvent(usd: number, fields: Record<string, unknown> = {}): Record<string, unknown> {
  return { botId: 'bot_x', provider: 'acme', model: 'acme-large', inputTokens: 10, outputTokens: 10, estimatedCost: usd, ...fields }
}

export async function postEvents(app: FastifyInstance, events: Record<string, unknown>[]): Promise<void> {
  const res = await app.inject({ method: 'POST', url: '/api/usage/batch', payload: { events }, headers: bearer(ADMIN_KEY) })
  const body = res.json() as { created: number; invalid: number }
  if (res.statusCode !== 200 || body.invalid > 0) throw new Error(`batch: ${res.statusCode} ${res.body}`)
}

export interface AlertView {
  id: string
  budgetId: string
  kind: 'threshold' | 'projected'
  threshold: number
  periodStart: string
  spentUsd: number
  limitUsd: number
  projectedUsd: number | null
  supersededBy: string | null
  deliveries: Array<{ channel: string; status: string; attempts: number; lastError: string | null; deliveredAt: string | null }>
}

export async function alertsOf(app: FastifyInstance, budgetId: string): Promise<AlertView[]> {
  const res = await api<{ alerts: AlertView[] }>(app, 'GET', `/api/alerts?budgetId=${budgetId}&limit=500`)
  return res.body.alerts
}
