import type { FastifyBaseLogger } from 'fastify'
import type { Database } from '../db/connect.js'
import type { CommittedEvent } from '../usage/ingest.js'
import type { DeliveryWorker } from './delivery.js'
import { periodWindow, type PeriodWindow } from './periods.js'
import { listAlerts, recordAlerts, type AlertCandidate, type StoredAlert } from './alert-store.js'
import { CHANNELS, listBudgets, type Budget } from './budget-store.js'
import { spendByBudget } from './spend.js'
import { perUserCandidates, perUserStanding, userAlertKey } from './user-alerts.js'

export interface BudgetMonitorOptions {
  /** Quiet time after a relevant commit before evaluating; commits meanwhile share the evaluation. */
  debounceMs: number
  /** Every budget is evaluated this often: projections, period rollover, budgets changed elsewhere. */
  evaluateIntervalMs: number
  projectionMinElapsedPercent: number
  log: FastifyBaseLogger
  /** Injectable for tests; the period and projection clock. */
  clock?: () => Date
  /** Tells the other instances that a budget changed (see ChangeFeed); they then call changedElsewhere(). */
  announceChange?: (id: string) => void
  /** Per-user budgets: users read per evaluation at most (the highest spenders). Default 10000. */
  maxTrackedUsers?: number
  /** Told the budgets after every (re)load, e.g. the allowance state. */
  onBudgets?: (budgets: Budget[]) => void
}

/** Where a budget stands in its current period. */
export interface BudgetStanding {
  window: PeriodWindow
  spent: bigint
  /** At the current rate; null at the very start of a period. */
  projected: bigint | null
  evaluatedAt: Date
  /** Per-user budgets: whose spend `spent` is (the one asked for, else the top spender); null otherwise. */
  userId: string | null
  /** Per-user budgets: the highest spenders this period. */
  users?: { userId: string; spent: bigint }[]
}

interface CachedWindow {
  window: PeriodWindow
  startMs: number
  endMs: number
}

export function projectSpend(spent: bigint, window: PeriodWindow, now: Date): bigint | null {
  const elapsed = now.getTime() - window.start.getTime()
  if (elapsed <= 0) return null
  const length = window.end.getTime() - window.start.getTime()
  return (spent * BigInt(length)) / BigInt(Math.min(elapsed, length))
}

/**
 * Decides when budgets cross thresholds. After each ingest commit it only marks the budgets the
 * new events count towards (in memory, no I/O) and evaluates those once the commits quiet down;
 * a timer evaluates all budgets. An evaluation is one spend query for all its budgets plus, only
 * when something new is crossed, one transaction that records the alerts (see recordAlerts).
 */
export class BudgetMonitor {
  private budgets: Budget[] = []
  private readonly windows = new Map<string, CachedWindow>()
  /** Per budget: the period (and limit) of `keys`, and the alert keys known to exist for it. */
  private readonly known = new Map<string, { period: string; keys: Set<string> }>()
  private readonly dirty = new Set<string>()
  private allDirty = false
  private debounceTimer: NodeJS.Timeout | null = null
  private tickTimer: NodeJS.Timeout | null = null
  private evaluating: Promise<void> | null = null
  private ticking: Promise<void> | null = null
  private readonly reloads = new Set<Promise<void>>()
  private closed = false
  private readonly clock: () => Date

  constructor(
    private readonly database: Database,
    private readonly delivery: DeliveryWorker,
    private readonly opts: BudgetMonitorOptions,
  ) {
    this.clock = opts.clock ?? (() => new Date())
  }

  async start(): Promise<void> {
    await this.reload()
    this.delivery.kick()
    this.allDirty = true
    this.schedule(0)
    this.scheduleTick()
  }

  /** The WriteQueue's onCommitted hook: synchronous, no I/O. */
  readonly onCommitted = (events: CommittedEvent[]): void => {
    if (this.budgets.length === 0 || this.closed) return
    const now = this.clock().getTime()
    let marked = false
    for (const b of this.budgets) {
      if (!b.enabled || this.dirty.has(b.id)) continue
      const w = this.windowOf(b, now)
      for (const e of events) {
        if (b.scope.botId !== null && e.botId !== b.scope.botId) continue
        if (b.scope.provider !== null && e.provider !== b.scope.provider) continue
        if (b.scope.model !== null && e.model !== b.scope.model) continue
        const at = e.createdAt.getTime()
        if (at < w.startMs || at >= w.endMs) continue
        this.dirty.add(b.id)
        marked = true
        break
      }
    }
    if (marked) this.schedule(this.opts.debounceMs)
  }

  /**
   * After a budget was created, changed or deleted through this instance. Resolves once this
   * instance has reloaded its budgets (the allowance knows the change), so the route that made
   * the change answers only then.
   */
  async budgetChanged(id: string): Promise<void> {
    const reloaded = this.changedElsewhere(id)
    if (!this.closed) this.opts.announceChange?.(id)
    await reloaded
  }

  /** A budget (null: any budget) changed on another instance: reload and evaluate it here too. */
  changedElsewhere(id: string | null): Promise<void> {
    if (this.closed) return Promise.resolve()
    if (id === null) this.known.clear()
    else {
      this.windows.delete(id)
      this.known.delete(id)
    }
    const reload: Promise<void> = this.reload()
      .then(() => {
        if (id === null) this.allDirty = true
        else this.dirty.add(id)
        this.schedule(0)
      })
      .catch((err: unknown) => this.opts.log.warn({ err }, 'reloading budgets failed'))
      .finally(() => this.reloads.delete(reload))
    this.reloads.add(reload)
    return reload
  }

  /** Spend, period and projection of one budget now (per-user budgets: of `userId`, else of the top spender). */
  async standing(budget: Budget, userId?: string): Promise<BudgetStanding> {
    const now = this.clock()
    const window = periodWindow(now, budget.period, budget.timeZone)
    if (budget.perUser !== null) {
      const s = await perUserStanding(this.database, budget, window, userId)
      const at = { window, spent: s.spent, projected: projectSpend(s.spent, window, now), evaluatedAt: now, userId: s.userId }
      return { ...at, users: s.top }
    }
    const spent = (await spendByBudget(this.database, [{ budgetId: budget.id, scope: budget.scope, window }])).get(budget.id) ?? 0n
    return { window, spent, projected: projectSpend(spent, window, now), evaluatedAt: now, userId: null }
  }

  /** This period's alerts of a budget (per-user budgets: of one user). */
  alertsOf(budget: Budget, window: PeriodWindow, userId: string | null = null): Promise<StoredAlert[]> {
    return listAlerts(this.database, { budgetId: budget.id, periodStart: window.start, userId: userId ?? '', limit: 100 })
  }

  async stop(): Promise<void> {
    this.closed = true
    if (this.debounceTimer) clearTimeout(this.debounceTimer)
    if (this.tickTimer) clearTimeout(this.tickTimer)
    await Promise.all([this.ticking, ...this.reloads])
    await this.evaluating
  }

  private async reload(): Promise<void> {
    this.budgets = await listBudgets(this.database)
    this.opts.onBudgets?.(this.budgets)
    // Another instance may have changed a budget's period or zone.
    this.windows.clear()
    const ids = new Set(this.budgets.map((b) => b.id))
    for (const id of this.known.keys()) if (!ids.has(id)) this.known.delete(id)
  }

  private windowOf(b: Budget, now: number): CachedWindow {
    const cached = this.windows.get(b.id)
    if (cached && now >= cached.startMs && now < cached.endMs) return cached
    const window = periodWindow(new Date(now), b.period, b.timeZone)
    const fresh = { window, startMs: window.start.getTime(), endMs: window.end.getTime() }
    this.windows.set(b.id, fresh)
    return fresh
  }

  private schedule(delayMs: number): void {
    if (this.closed || this.debounceTimer) return
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = null
      void this.runNow()
    }, delayMs)
    this.debounceTimer.unref()
  }

  private scheduleTick(): void {
    if (this.closed) return
    this.tickTimer = setTimeout(() => {
      this.tickTimer = null
      this.ticking = this.reload()
        .then(() => {
          this.allDirty = true
          this.delivery.kick()
          return this.runNow()
        })
        .catch((err: unknown) => this.opts.log.warn({ err }, 'periodic budget evaluation failed'))
        .finally(() => {
          this.ticking = null
          this.scheduleTick()
        })
    }, this.opts.evaluateIntervalMs)
    this.tickTimer.unref()
  }

  /** One evaluation at a time per instance; work marked meanwhile runs right after. */
  private async runNow(): Promise<void> {
    while (this.evaluating) await this.evaluating
    if (this.closed || (!this.allDirty && this.dirty.size === 0)) return
    const targets = this.allDirty ? this.budgets.filter((b) => b.enabled) : this.budgets.filter((b) => b.enabled && this.dirty.has(b.id))
    this.allDirty = false
    this.dirty.clear()
    this.evaluating = this.evaluate(targets)
      .catch((err: unknown) => this.opts.log.warn({ err }, 'budget evaluation failed; the next commit or tick retries'))
      .finally(() => {
        this.evaluating = null
      })
    await this.evaluating
    if (this.allDirty || this.dirty.size > 0) this.schedule(this.opts.debounceMs)
  }

  private async evaluate(targets: Budget[]): Promise<void> {
    if (targets.length === 0) return
    const now = this.clock()
    const windows = new Map(targets.map((b) => [b.id, this.windowOf(b, now.getTime()).window]))
    const whole = targets.filter((b) => b.perUser === null)
    const perUser = targets.filter((b) => b.perUser !== null)
    const [spent, userCandidates] = await Promise.all([
      spendByBudget(
        this.database,
        whole.map((b) => ({ budgetId: b.id, scope: b.scope, window: windows.get(b.id) ?? periodWindow(now, b.period, b.timeZone) })),
      ),
      Promise.all(
        perUser.map((b) => {
          const window = windows.get(b.id) ?? periodWindow(now, b.period, b.timeZone)
          return perUserCandidates(this.database, b, window, this.knownKeys(b, window), this.opts.maxTrackedUsers ?? 10_000)
        }),
      ),
    ])
    const candidates: AlertCandidate[] = userCandidates.flat()
    for (const b of whole) {
      const window = windows.get(b.id)
      if (!window) continue
      const s = spent.get(b.id) ?? 0n
      const known = this.knownKeys(b, window)
      const channels = CHANNELS.filter((c) => b.channels[c] !== undefined)
      const base = { budgetId: b.id, window, limit: b.limit, spent: s, channels }
      const length = window.end.getTime() - window.start.getTime()
      const elapsed = now.getTime() - window.start.getTime()
      // A rate measured over the first minutes of a period is noise: not alerted, not reported.
      const projected = elapsed * 100 >= length * this.opts.projectionMinElapsedPercent ? projectSpend(s, window, now) : null
      for (const t of b.thresholds) {
        if (s * 100n >= b.limit * BigInt(t) && !known.has(`threshold:${t}`)) {
          candidates.push({ ...base, kind: 'threshold', threshold: t, projected })
        }
      }
      if (b.notifyProjected && s < b.limit && projected !== null && projected > b.limit && !known.has('projected:100')) {
        candidates.push({ ...base, kind: 'projected', threshold: 100, projected })
      }
    }
    if (candidates.length === 0) return
    const recorded = await recordAlerts(this.database, candidates)
    // Whether this instance inserted them or another one did, they exist now.
    for (const c of candidates) {
      const key = c.userId === undefined ? `${c.kind}:${c.threshold}` : userAlertKey(c.threshold, c.userId)
      this.knownKeys(targets.find((b) => b.id === c.budgetId) ?? null, c.window).add(key)
    }
    for (const a of recorded) {
      this.opts.log.info({ alertId: a.id, budgetId: a.budgetId, kind: a.kind, threshold: a.threshold }, 'budget alert fired')
    }
    if (recorded.some((a) => a.deliveries > 0)) this.delivery.kick()
  }

  private knownKeys(b: Budget | null, window: PeriodWindow): Set<string> {
    if (b === null) return new Set()
    const period = `${window.start.toISOString()}|${b.limit}`
    const entry = this.known.get(b.id)
    if (entry && entry.period === period) return entry.keys
    const fresh = { period, keys: new Set<string>() }
    this.known.set(b.id, fresh)
    return fresh.keys
  }
}
