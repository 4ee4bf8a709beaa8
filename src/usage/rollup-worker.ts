import type { Database } from '../db/connect.js'
import { startPeriodic, type PeriodicJob } from '../lib/periodic.js'
import { foldRollups, type FoldOutcome } from './rollups.js'

export interface RollupWorkerOptions {
  /** How often the worker folds the tail into the rollups, ms. */
  intervalMs: number
  /** Events folded per statement at most (a transaction is never split). */
  maxRowsPerFold?: number
  /** A tail above this many rows, or older than warnAfterSeconds, is logged (at most once a minute). */
  warnRows?: number
  warnAfterSeconds?: number
  onError: (err: unknown) => void
  onLagging?: (lag: RollupLag) => void
}

export interface RollupLag {
  /** Committed events above the watermark after the last fold. */
  rows: number
  /** Age of the oldest of them (receive time), seconds. */
  seconds: number
}

/** A kick runs the fold this soon after a commit (coalescing the commits of a burst), ms. */
const KICK_DELAY_MS = 20

const WARN_EVERY_MS = 60_000

/**
 * Folds the events above the watermark into the rollups (foldRollups) every intervalMs, and soon
 * after a commit (kick). Every instance runs one: the fold's advisory lock lets one of them work
 * at a time, the others skip. A fold that filled its batch runs again at once (catching up).
 */
export class RollupWorker {
  private job: PeriodicJob | null = null
  private lastWarnAt = 0
  /** The lag after the last fold this instance ran (the metrics' gauge). */
  lag: RollupLag = { rows: 0, seconds: 0 }
  /** Folds this instance ran and events it folded (metrics). */
  folds = 0
  foldedEvents = 0

  constructor(
    private readonly database: Database,
    private readonly opts: RollupWorkerOptions,
  ) {}

  start(): void {
    const maxRows = this.opts.maxRowsPerFold ?? 50_000
    this.job ??= startPeriodic({
      intervalMs: this.opts.intervalMs,
      firstAfterMs: this.opts.intervalMs,
      onError: this.opts.onError,
      run: async () => {
        if (this.observe(await foldRollups(this.database, maxRows), maxRows)) this.job?.kick(0)
      },
    })
  }

  /** A commit happened: fold soon. */
  kick(): void {
    this.job?.kick(KICK_DELAY_MS)
  }

  /** Records a fold; true when it should run again at once (its batch was full). */
  private observe(outcome: FoldOutcome, maxRows: number): boolean {
    if (!outcome.ran) return false
    this.folds++
    this.foldedEvents += outcome.folded
    this.lag = { rows: outcome.behindRows, seconds: outcome.behindSeconds }
    const lagging = this.lag.rows > (this.opts.warnRows ?? 200_000) || this.lag.seconds > (this.opts.warnAfterSeconds ?? 60)
    if (lagging && Date.now() - this.lastWarnAt > WARN_EVERY_MS) {
      this.lastWarnAt = Date.now()
      this.opts.onLagging?.(this.lag)
    }
    return outcome.folded >= maxRows && outcome.behindRows > 0
  }

  /** Stops the timers and waits for a running fold (before the database closes). */
  async stop(): Promise<void> {
    await this.job?.stop()
  }
}
