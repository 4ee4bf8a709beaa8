import type { FastifyBaseLogger } from 'fastify'
import type { Database } from '../db/connect.js'
import { parseUsd } from '../lib/money.js'
import type { CommittedEvent } from '../usage/ingest.js'
import type { Budget } from './budget-store.js'
import { periodWindow, type PeriodWindow } from './periods.js'
import { spendByBudget } from './spend.js'
import { topUsers, userOf } from './user-spend.js'

export interface AllowanceStateOptions {
  /** How often the spend of every block budget is read again from the database (other instances' usage, reprices). */
  syncIntervalMs: number
  /** Users tracked per per-user budget and period; past it the lowest spenders share an upper bound. */
  maxTrackedUsers: number
  log: FastifyBaseLogger
  /** The budget clock (tests move it). */
  clock?: () => Date
}

/** One block budget's spend in its current period. */
interface Entry {
  budget: Budget
  /** What the spend depends on: a reload that changes none of it keeps the entry and its spend. */
  signature: string
  window: PeriodWindow
  startMs: number
  endMs: number
  /** Whole-scope budgets: spend this period, pico-USD. */
  spent: bigint
  /** Per-user budgets: spend per user, at most maxTrackedUsers entries. */
  users: Map<string, bigint>
  /** Per-user budgets: an upper bound of the spend of every user not in `users` (0 while all are tracked). */
  floor: bigint
}

export interface AllowanceRequest {
  botId: string
  userId?: string
  provider?: string
  model?: string
  /** A key bound to botId: budgets spanning other bots decide but do not show their figures. */
  boundToBot: boolean
}

export interface BudgetStanding {
  budgetId: string
  name: string
  limit: bigint
  spent: bigint
  resetsAt: Date
  userId: string | null
  /** The budget also counts other bots' usage: its figures are not shown to a bot's own key. */
  shared: boolean
}

export interface AllowanceAnswer {
  allowed: boolean
  /** The least remaining of the budgets that apply and may be shown; null when none. */
  remaining: bigint | null
  resetsAt: Date | null
  blockedBy: BudgetStanding[]
}

function signatureOf(b: Budget): string {
  return JSON.stringify([b.scope, b.period, b.timeZone, String(b.limit), b.perUser])
}

function costOf(e: CommittedEvent): bigint {
  if (e.cost === null || e.cost === undefined) return 0n
  try {
    return parseUsd(e.cost)
  } catch {
    return 0n
  }
}

/**
 * The hard budgets' spend, in memory, so GET /api/budgets/allowance answers without I/O.
 *
 * - This instance's commits are added as they are committed (onCommitted, synchronous).
 * - Every syncIntervalMs the spend of every block budget is read again from the database, which
 *   brings in other instances' usage and reprices: another instance's answer is right within
 *   syncIntervalMs plus the read's duration. Events committed here while that read runs are
 *   added again on top of it, so one may count twice until the next sync: an error towards
 *   blocking early, never towards allowing over the limit.
 * - A period that ends starts from zero at once (no read needed to answer again the next day).
 * - Per-user budgets track at most maxTrackedUsers users per period (the highest spenders, read
 *   with the database's top maxTrackedUsers + 1). Past the bound the lowest spender is evicted
 *   and `floor` becomes an upper bound of every untracked user's spend (Space-Saving): an
 *   untracked user is answered as having spent `floor`, so no one over the limit is allowed;
 *   users whose spend is near the lowest tracked one may be refused early.
 */
export class AllowanceState {
  private readonly byBot = new Map<string, Entry[]>()
  /** Block budgets of no one bot (all usage, a provider, a model): they apply to every bot. */
  private anyBot: Entry[] = []
  private entries: Entry[] = []
  private syncing: Promise<void> | null = null
  /** Events committed while a sync read runs: applied again on top of what it read. */
  private duringSync: CommittedEvent[] | null = null
  private syncAgain = false
  private timer: NodeJS.Timeout | null = null
  private closed = false
  private readonly clock: () => Date

  constructor(
    private readonly database: Database,
    private readonly opts: AllowanceStateOptions,
  ) {
    this.clock = opts.clock ?? (() => new Date())
  }

  /** Waits for the first read of the budgets known so far, then keeps them in sync. */
  async start(): Promise<void> {
    await this.sync()
    this.timer = setInterval(() => void this.sync(), this.opts.syncIntervalMs)
    this.timer.unref()
  }

  async stop(): Promise<void> {
    this.closed = true
    if (this.timer) clearInterval(this.timer)
    await this.syncing
  }

  /** The budgets as the monitor loaded them. Unchanged block budgets keep their spend; new or changed ones are read. */
  setBudgets(budgets: Budget[]): void {
    const previous = new Map(this.entries.map((e) => [e.budget.id, e]))
    const now = this.clock().getTime()
    let fresh = false
    this.entries = budgets
      .filter((b) => b.enabled && b.action === 'block')
      .map((budget) => {
        const signature = signatureOf(budget)
        const old = previous.get(budget.id)
        if (old && old.signature === signature) {
          old.budget = budget
          return old
        }
        fresh = true
        const window = periodWindow(new Date(now), budget.period, budget.timeZone)
        return { budget, signature, window, startMs: window.start.getTime(), endMs: window.end.getTime(), spent: 0n, users: new Map(), floor: 0n }
      })
    this.byBot.clear()
    this.anyBot = []
    for (const e of this.entries) {
      const bot = e.budget.scope.botId
      if (bot === null) this.anyBot.push(e)
      else this.byBot.set(bot, [...(this.byBot.get(bot) ?? []), e])
    }
    if (fresh) void this.sync()
  }

  /** The WriteQueue's onCommitted hook: synchronous, no I/O. */
  readonly onCommitted = (events: CommittedEvent[]): void => {
    if (this.entries.length === 0 || this.closed) return
    if (this.duringSync !== null) for (const e of events) this.duringSync.push(e)
    const now = this.clock().getTime()
    for (const e of events) this.apply(e, now, null)
  }

  /** Whether `botId` (and `userId`) may make another call now. No I/O. */
  allowance(r: AllowanceRequest): AllowanceAnswer {
    const now = this.clock().getTime()
    const answer: AllowanceAnswer = { allowed: true, remaining: null, resetsAt: null, blockedBy: [] }
    let lift = 0
    const consider = (e: Entry): void => {
      const s = this.standingOf(e, r, now)
      if (s === null) return
      const hidden = s.shared && r.boundToBot
      if (s.spent >= s.limit) {
        answer.allowed = false
        answer.blockedBy.push(s)
        lift = Math.max(lift, s.resetsAt.getTime())
      }
      if (!hidden && (answer.remaining === null || s.limit - s.spent < answer.remaining)) {
        answer.remaining = s.limit - s.spent
        if (answer.allowed) answer.resetsAt = s.resetsAt
      }
    }
    for (const e of this.byBot.get(r.botId) ?? []) consider(e)
    for (const e of this.anyBot) consider(e)
    if (!answer.allowed) answer.resetsAt = new Date(lift)
    return answer
  }

  /** Reads every block budget's spend again; concurrent callers share one read, a call during it runs one more. */
  sync(): Promise<void> {
    if (this.syncing) {
      this.syncAgain = true
      return this.syncing
    }
    if (this.closed || this.entries.length === 0) return Promise.resolve()
    this.syncing = this.read()
      .catch((err: unknown) => this.opts.log.warn({ err }, 'reading the spend of block budgets failed; allowances keep the spend counted so far'))
      .finally(() => {
        this.syncing = null
        this.duringSync = null
        if (this.syncAgain && !this.closed) {
          this.syncAgain = false
          void this.sync()
        }
      })
    return this.syncing
  }

  private async read(): Promise<void> {
    this.duringSync = []
    const now = this.clock().getTime()
    const targets = this.entries.map((e) => {
      this.roll(e, now)
      return { entry: e, window: e.window }
    })
    const whole = targets.filter((t) => t.entry.budget.perUser === null)
    const perUser = targets.filter((t) => t.entry.budget.perUser !== null)
    const [spent, users] = await Promise.all([
      spendByBudget(this.database, whole.map((t) => ({ budgetId: t.entry.budget.id, scope: t.entry.budget.scope, window: t.window }))),
      Promise.all(
        perUser.map((t) =>
          topUsers(this.database, { scope: t.entry.budget.scope, key: t.entry.budget.perUser?.key ?? '' }, t.window, this.opts.maxTrackedUsers + 1),
        ),
      ),
    ])
    const refreshed = new Set<Entry>()
    for (const t of whole) {
      if (!this.isCurrent(t.entry, t.window)) continue
      t.entry.spent = spent.get(t.entry.budget.id) ?? 0n
      refreshed.add(t.entry)
    }
    perUser.forEach((t, i) => {
      if (!this.isCurrent(t.entry, t.window)) return
      const rows = users[i]
      const tracked = rows.slice(0, this.opts.maxTrackedUsers)
      t.entry.users = new Map(tracked.map((u) => [u.userId, u.spent]))
      t.entry.floor = rows.length > tracked.length ? rows[rows.length - 1].spent : 0n
      refreshed.add(t.entry)
    })
    // What this instance committed while the read ran may or may not be in it: counted again (see the class comment).
    const late = this.duringSync
    this.duringSync = null
    const at = this.clock().getTime()
    for (const e of late) this.apply(e, at, refreshed)
  }

  /** The entry is still the one in use, for the same period as the read. */
  private isCurrent(e: Entry, window: PeriodWindow): boolean {
    return this.entries.includes(e) && e.window.start.getTime() === window.start.getTime()
  }

  private apply(e: CommittedEvent, now: number, only: Set<Entry> | null): void {
    let cost: bigint | null = null
    const visit = (entry: Entry): void => {
      if (only !== null && !only.has(entry)) return
      const scope = entry.budget.scope
      if (scope.provider !== null && e.provider !== scope.provider) return
      if (scope.model !== null && e.model !== scope.model) return
      this.roll(entry, now)
      const at = e.createdAt.getTime()
      if (at < entry.startMs || at >= entry.endMs) return
      cost ??= costOf(e)
      if (cost === 0n) return
      const perUser = entry.budget.perUser
      if (perUser === null) entry.spent += cost
      else {
        const user = userOf(e.metadata, perUser.key)
        if (user !== null) this.addUserSpend(entry, user, cost)
      }
    }
    for (const entry of this.byBot.get(e.botId) ?? []) visit(entry)
    for (const entry of this.anyBot) visit(entry)
  }

  private addUserSpend(e: Entry, user: string, cost: bigint): void {
    const known = e.users.get(user)
    if (known !== undefined) {
      e.users.set(user, known + cost)
      return
    }
    if (e.users.size >= this.opts.maxTrackedUsers) {
      // Space-Saving: the lowest spender leaves; what it spent bounds every untracked user.
      let lowest: string | null = null
      let least = 0n
      for (const [u, s] of e.users) {
        if (lowest === null || s < least) {
          lowest = u
          least = s
        }
      }
      if (lowest !== null) e.users.delete(lowest)
      if (least > e.floor) e.floor = least
      // The bound is coarse: read the exact top spenders again soon.
      this.syncSoon()
    }
    e.users.set(user, e.floor + cost)
  }

  /** Outside the hook's synchronous run (it must not start I/O itself). */
  private syncSoon(): void {
    if (this.syncing) this.syncAgain = true
    else setImmediate(() => void this.sync())
  }

  /** A new period starts from nothing. */
  private roll(e: Entry, now: number): void {
    if (now >= e.startMs && now < e.endMs) return
    e.window = periodWindow(new Date(now), e.budget.period, e.budget.timeZone)
    e.startMs = e.window.start.getTime()
    e.endMs = e.window.end.getTime()
    e.spent = 0n
    e.users = new Map()
    e.floor = 0n
  }

  private standingOf(e: Entry, r: AllowanceRequest, now: number): BudgetStanding | null {
    const scope = e.budget.scope
    if (scope.provider !== null && r.provider !== scope.provider) return null
    if (scope.model !== null && r.model !== scope.model) return null
    const perUser = e.budget.perUser
    if (perUser !== null && r.userId === undefined) return null
    this.roll(e, now)
    const spent = perUser === null ? e.spent : (e.users.get(r.userId ?? '') ?? e.floor)
    return {
      budgetId: e.budget.id,
      name: e.budget.name,
      limit: e.budget.limit,
      spent,
      resetsAt: e.window.end,
      userId: perUser === null ? null : (r.userId ?? null),
      shared: scope.botId === null,
    }
  }
}
