import { Agent, request } from 'undici'

export interface UsageTotals {
  readonly calls: number
  readonly failed: number
  readonly tokens: number
  /** USD, as the service computed it from its price catalog. */
  readonly cost: number
  /** Calls the service could not price (their cost is not in `cost`). */
  readonly unpricedCalls: number
}

export type UsageQueryFailure = 'unreachable' | 'rejected' | 'bad_response'

export class UsageQueryError extends Error {
  readonly failure: UsageQueryFailure

  constructor(failure: UsageQueryFailure, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'UsageQueryError'
    this.failure = failure
  }
}

export interface UsageQueryOptions {
  /** Service root, e.g. http://localhost:3000 (a path prefix is kept). */
  readonly baseUrl: string
  readonly apiKey: string
  readonly botId: string
  readonly timeoutMs: number
}

/**
 * Reads this bot's totals from the service's `GET /api/usage` (read scope). Owns a small
 * connection pool; `close()` it with the bot.
 */
export class UsageReader {
  readonly #options: UsageQueryOptions
  readonly #agent: Agent

  constructor(options: UsageQueryOptions) {
    this.#options = options
    this.#agent = new Agent({
      connections: 2,
      connect: { timeout: options.timeoutMs },
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    })
  }

  /** Totals from `since` (a UTC date, YYYY-MM-DD) until now. Throws UsageQueryError. */
  async totalsSince(since: string): Promise<UsageTotals> {
    const { baseUrl, apiKey, botId, timeoutMs } = this.#options
    const url = new URL(`${baseUrl.replace(/\/+$/, '')}/api/usage`)
    url.search = new URLSearchParams({ botId, startDate: since, limit: '1' }).toString()
    let statusCode: number
    let body: unknown
    try {
      const response = await request(url, {
        dispatcher: this.#agent,
        headers: { authorization: `Bearer ${apiKey}`, accept: 'application/json' },
        signal: AbortSignal.timeout(timeoutMs),
      })
      statusCode = response.statusCode
      body = await response.body.json().catch(() => undefined)
    } catch (error) {
      throw new UsageQueryError('unreachable', `usage service unreachable: ${describe(error)}`, { cause: error })
    }
    if (statusCode === 401 || statusCode === 403) {
      throw new UsageQueryError('rejected', `usage service refused the key (${statusCode}): ${errorMessageOf(body)}`)
    }
    if (statusCode !== 200) throw new UsageQueryError('unreachable', `usage service answered ${statusCode}: ${errorMessageOf(body)}`)
    const totals = parseTotals(body)
    if (totals === undefined) throw new UsageQueryError('bad_response', 'usage service answered 200 with an unexpected body')
    return totals
  }

  close(): Promise<void> {
    return this.#agent.close()
  }
}

function parseTotals(body: unknown): UsageTotals | undefined {
  if (!isRecord(body) || !Array.isArray(body.stats) || typeof body.totalCost !== 'number') return undefined
  let calls = 0
  let failed = 0
  let tokens = 0
  let unpricedCalls = 0
  for (const row of body.stats) {
    if (!isRecord(row) || !isRecord(row._count) || !isRecord(row._sum)) return undefined
    calls += numberOr0(row._count.id)
    failed += numberOr0(row._count.failed)
    tokens += numberOr0(row._sum.totalTokens)
    if (isRecord(row.unpriced)) unpricedCalls += numberOr0(row.unpriced.events)
  }
  return { calls, failed, tokens, cost: body.totalCost, unpricedCalls }
}

/** `/usage`'s answer. */
export function formatUsageReport(botId: string, today: UsageTotals, month: UsageTotals): string {
  const lines = [`Usage of ${botId}`, `Today (UTC): ${formatTotals(today)}`, `This month: ${formatTotals(month)}`]
  if (month.unpricedCalls > 0) {
    lines.push(`${formatCount(month.unpricedCalls)} call(s) this month use a model without a known price and are not in the cost.`)
  }
  return lines.join('\n')
}

function formatTotals(totals: UsageTotals): string {
  const failed = totals.failed > 0 ? ` (${formatCount(totals.failed)} failed)` : ''
  return `${formatCount(totals.calls)} calls${failed}, ${formatCount(totals.tokens)} tokens, ${formatUsd(totals.cost)}`
}

const countFormat = new Intl.NumberFormat('en-US')

export function formatCount(value: number): string {
  return countFormat.format(value)
}

/** Small amounts keep their significant digits: a cheap model's day can cost $0.000141. */
export function formatUsd(cost: number): string {
  if (cost === 0) return '$0.00'
  if (cost >= 1) return `$${cost.toFixed(2)}`
  if (cost >= 0.01) return `$${cost.toFixed(4)}`
  if (cost >= 0.000001) return `$${cost.toFixed(6)}`
  return '< $0.000001'
}

/** YYYY-MM-DD of today and of the first day of this month, in UTC. */
export function usagePeriods(now = new Date()): { today: string; monthStart: string } {
  const today = now.toISOString().slice(0, 10)
  return { today, monthStart: `${today.slice(0, 8)}01` }
}

function errorMessageOf(body: unknown): string {
  return isRecord(body) && typeof body.message === 'string' ? body.message : 'no error message'
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.name === 'TimeoutError' ? 'timed out' : error.message || error.name
  return String(error)
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function numberOr0(value: unknown): number {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0
}
