import { Pool } from 'undici'
import { BadResponseError, type UsageClientError } from './errors.js'
import { asClientError } from './reporter.js'
import { httpError, requestWithDeadline } from './transport.js'

/** How `allowance()` asks the service and what it does when it cannot. */
export interface AllowanceOptions {
  /** Answers are reused this long per user (and provider/model), 0..10000 ms. Default 2000. */
  cacheMs?: number
  /**
   * When the service cannot answer (down, slow, refusing the key): true (default) answers
   * `allowed: true` with `unknown: true`, so an outage of the usage service does not stop the
   * bot; false answers `allowed: false` (fail closed).
   */
  failOpen?: boolean
  /** Per request. Default 2000. */
  timeoutMs?: number
}

export interface AllowanceQuery {
  /** The end user, as the events carry it in the budget's `perUser.key` metadata (numbers as their text). */
  userId?: string | number
  provider?: string
  model?: string
}

export interface BlockingBudget {
  readonly budgetId: string
  readonly name: string
  readonly limitUsd?: number
  readonly spentUsd?: number
  readonly resetsAt: Date
  readonly userId?: string
}

export interface Allowance {
  /** false: a hard budget is spent; do not call the model. */
  readonly allowed: boolean
  readonly remainingUsd: number | null
  /** Blocked: when it allows again. Allowed: when the tightest budget resets. null when no hard budget applies. */
  readonly resetsAt: Date | null
  readonly blockedBy: readonly BlockingBudget[]
  /** true: the service could not be asked and `allowed` is the `failOpen` choice; `error` says why. */
  readonly unknown: boolean
  readonly error?: UsageClientError
}

export interface AllowanceCheckerOptions extends AllowanceOptions {
  readonly baseUrl: string
  readonly apiKey: string
  readonly botId: string
  /** Told every failure (the client's onError). */
  readonly report: (error: UsageClientError) => void
  /** Milliseconds clock of the cache (tests). */
  readonly now?: () => number
}

/** Answers kept at most, per process; the oldest go first. */
const MAX_CACHED = 10_000

/**
 * `GET /api/budgets/allowance` with a short per-user cache. Concurrent checks of one user share
 * one request. Never throws: a failure is an answer with `unknown: true`.
 */
export class AllowanceChecker {
  readonly #pool: Pool
  readonly #path: string
  readonly #authorization: string
  readonly #botId: string
  readonly #cacheMs: number
  readonly #failOpen: boolean
  readonly #timeoutMs: number
  readonly #report: (error: UsageClientError) => void
  readonly #now: () => number
  readonly #cache = new Map<string, { expires: number; answer: Promise<Allowance> }>()

  constructor(options: AllowanceCheckerOptions) {
    const url = new URL(options.baseUrl)
    this.#path = `${url.pathname.replace(/\/+$/, '')}/api/budgets/allowance`
    this.#authorization = `Bearer ${options.apiKey}`
    this.#botId = options.botId
    this.#cacheMs = options.cacheMs ?? 2000
    this.#failOpen = options.failOpen ?? true
    this.#timeoutMs = options.timeoutMs ?? 2000
    this.#report = options.report
    this.#now = options.now ?? Date.now
    this.#pool = new Pool(url.origin, {
      connections: 2,
      keepAliveTimeout: 30_000,
      connectTimeout: this.#timeoutMs,
      headersTimeout: this.#timeoutMs,
      bodyTimeout: this.#timeoutMs,
    })
  }

  check(query: AllowanceQuery = {}): Promise<Allowance> {
    const params = new URLSearchParams({ botId: this.#botId })
    if (query.userId !== undefined && query.userId !== '') params.set('userId', String(query.userId))
    if (query.provider !== undefined) params.set('provider', query.provider)
    if (query.model !== undefined) params.set('model', query.model)
    const search = params.toString()
    const now = this.#now()
    const cached = this.#cache.get(search)
    if (cached && cached.expires > now) return cached.answer
    const answer = this.#ask(search)
    if (this.#cacheMs > 0) {
      this.#cache.delete(search)
      this.#cache.set(search, { expires: now + this.#cacheMs, answer })
      if (this.#cache.size > MAX_CACHED) this.#cache.delete(this.#cache.keys().next().value as string)
    }
    return answer
  }

  async close(): Promise<void> {
    this.#cache.clear()
    await this.#pool.destroy()
  }

  async #ask(search: string): Promise<Allowance> {
    try {
      const answer = await requestWithDeadline(
        this.#pool,
        { method: 'GET', path: `${this.#path}?${search}`, headers: { authorization: this.#authorization, accept: 'application/json' } },
        this.#timeoutMs,
      )
      if (answer.statusCode !== 200) throw httpError(answer.statusCode, answer.retryAfter, answer.text)
      return parseAllowance(answer.text)
    } catch (error) {
      const failure = asClientError(error, 'allowance check failed')
      this.#report(failure)
      return { allowed: this.#failOpen, remainingUsd: null, resetsAt: null, blockedBy: [], unknown: true, error: failure }
    }
  }
}

function parseAllowance(text: string): Allowance {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (error) {
    throw new BadResponseError('the allowance answer is not JSON', { cause: error })
  }
  const b = body as Record<string, unknown> | null
  if (typeof b !== 'object' || b === null || typeof b.allowed !== 'boolean' || !Array.isArray(b.blockedBy)) {
    throw new BadResponseError('the allowance answer lacks allowed or blockedBy')
  }
  const date = (v: unknown): Date | null => (typeof v === 'string' && !Number.isNaN(Date.parse(v)) ? new Date(v) : null)
  const blockedBy = (b.blockedBy as Record<string, unknown>[]).map((x) => ({
    budgetId: String(x.budgetId),
    name: String(x.name),
    ...(typeof x.limitUsd === 'number' ? { limitUsd: x.limitUsd } : {}),
    ...(typeof x.spentUsd === 'number' ? { spentUsd: x.spentUsd } : {}),
    resetsAt: date(x.resetsAt) ?? new Date(Number.NaN),
    ...(typeof x.userId === 'string' ? { userId: x.userId } : {}),
  }))
  return {
    allowed: b.allowed,
    remainingUsd: typeof b.remainingUsd === 'number' ? b.remainingUsd : null,
    resetsAt: date(b.resetsAt),
    blockedBy,
    unknown: false,
  }
}
