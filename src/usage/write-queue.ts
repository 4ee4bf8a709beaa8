import { Errors } from '../errors.js'
import { toUsageEvent } from '../db/event-store.js'
import type { Database } from '../db/connect.js'
import { isDataFault, isTransientConflict, sqlStateOf } from '../db/errors.js'
import { eventKey, insertEvents, lockEventsForWrite, type InsertOutcome, type NewUsageEvent } from './repository.js'
import type { UsageEvent } from '../lib/usage-event.js'

export interface WriteQueueOptions {
  enabled: boolean
  maxEvents: number
  maxWaitMs: number
  maxQueuedEvents: number
  /**
   * Small writes are refused (503) when their predicted wait before their flush starts exceeds
   * this (the in-flight flushes' remaining time plus their queue position over the measured
   * throughput), and whenever the oldest waiting write has already waited this long.
   */
  maxQueueDelayMs: number
  /**
   * Small writes are also refused while the event loop's delay (what a request read now has
   * already waited in its socket, see LoopDelayMonitor) is past this, ms; 0 turns it off.
   */
  maxLoopDelayMs?: number
  /** The event loop's current delay, ms (LoopDelayMonitor.delayMs). */
  loopDelayMs?: () => number
  /** Flushes allowed in flight at once (connections the writer may hold). */
  maxConcurrentFlushes: number
  /**
   * Flush at once when nothing is in flight (Postgres: waiting would only add latency). The
   * embedded engine runs a statement synchronously on this thread, so nothing arrives while it
   * is "in flight": there, writes always wait maxWaitMs for company.
   */
  flushWhenIdle: boolean
  /**
   * Called after each commit with the events it stored (not duplicates), e.g. for budget checks.
   * Must be cheap and must not throw; it runs off the request's critical path.
   */
  onCommitted?: (created: NewUsageEvent[]) => void
  /** Told about the cause whenever a flush fails (its callers get WRITE_FAILED). */
  onFlushError?: (err: unknown) => void
  /** Told the size and duration of each committed insert (metrics). Must be cheap and not throw. */
  onFlushed?: (events: number, durationMs: number) => void
}

export interface StoredResult {
  status: 'created' | 'duplicate'
  id: string
  /** The stored record; present when the writer asked for records. */
  event?: UsageEvent
}

/** An event the database refused for its values; the rest of its group was stored. */
export interface RefusedResult {
  status: 'refused'
  id: string
  /** The SQLSTATE the database answered with (class 22, 23 or 54). */
  sqlState: string
}

export type WriteResult = StoredResult | RefusedResult

/** What a flush is assumed to take before the first one was measured, ms. */
const INITIAL_FLUSH_MS = 5

/** Weight of the newest flush in the moving averages (about the last ten flushes count). */
const FLUSH_AVERAGE_WEIGHT = 0.2

/** Runs of a statement that lost a deadlock or serialization conflict, before it counts as failed. */
const CONFLICT_ATTEMPTS = 3

interface Pending {
  events: NewUsageEvent[]
  withRecords: boolean
  enqueuedAt: number
  resolve: (r: WriteResult[]) => void
  reject: (e: Error) => void
}

/**
 * Group commit: concurrent writers' events are coalesced into one insert statement (flushed at
 * maxEvents or after maxWaitMs, or at once when a connection is free), and each caller is
 * answered only after its rows are committed. When the queue backs up, callers get 503 at once
 * instead of queueing without bound.
 *
 * A flush the database refuses for its data (an event validation could not catch) is retried
 * in halves inside one transaction, each half under a savepoint, down to the offending events:
 * they alone are answered 'refused', the rest of the group commits as usual. Only a failure of
 * the infrastructure (connection, shutdown, timeout) fails the whole group, with a retryable error.
 */
export class WriteQueue {
  private pending: Pending[] = []
  private pendingEvents = 0
  private inFlight = 0
  /** Start times (performance.now()) of the flushes in flight. */
  private readonly flights = new Set<number>()
  /** Moving averages of a flush's duration (ms) and size (events), learned from every commit. */
  private flushMs = INITIAL_FLUSH_MS
  private flushEvents = 1
  private timer: NodeJS.Timeout | null = null
  private closed = false

  constructor(
    private readonly database: Database,
    private readonly opts: WriteQueueOptions,
  ) {}

  /** Events waiting for a flush (queue depth). */
  get queuedEvents(): number {
    return this.pendingEvents
  }

  /**
   * How long a small write admitted now would wait before its flush starts, ms: until a flush
   * slot frees (the in-flight flushes' remaining time, from their average duration), plus its
   * queue position over the measured throughput (the full groups queued ahead of it, sharing the
   * flush slots). Counting the flush in flight matters: a write
   * that arrives just after a long flush started waits for all of it, with nothing queued yet
   * to show for it.
   */
  predictedWaitMs(now = performance.now()): number {
    let slotFreeIn = 0
    if (this.inFlight >= this.opts.maxConcurrentFlushes) {
      slotFreeIn = Infinity
      for (const started of this.flights) slotFreeIn = Math.min(slotFreeIn, remainingFlushMs(this.flushMs, now - started))
      if (!Number.isFinite(slotFreeIn)) slotFreeIn = 0
    }
    // Everything queued goes into the next group up to maxEvents (groups grow with the queue),
    // so only full groups ahead add flushes: each as long as the average flush, or longer in
    // proportion when a full group is larger than the average one.
    const fullGroupsAhead = Math.floor(this.pendingEvents / this.opts.maxEvents)
    const fullFlushMs = this.flushMs * Math.max(1, this.opts.maxEvents / this.flushEvents)
    return slotFreeIn + (fullGroupsAhead * fullFlushMs) / this.opts.maxConcurrentFlushes
  }

  /**
   * Admission. Never past maxQueuedEvents. Small writes (the ones group commit is for) are also
   * refused when their predicted wait exceeds maxQueueDelayMs, or while the oldest waiting write
   * has waited that long, or while the event loop is later than maxLoopDelayMs (the request
   * already waited that long in its socket): the writer is not keeping up, and queueing more
   * would only grow everyone's latency. A write that finds nothing queued and nothing in flight is always
   * admitted. Large batches fill a group on their own and normally wait a few flushes behind
   * each other, so only the event bound applies to them.
   */
  wouldAdmit(events: number): boolean {
    if (this.closed) return false
    if (this.pending.length === 0 && this.inFlight === 0) return true
    if (this.pendingEvents + events > this.opts.maxQueuedEvents) return false
    if (events * 2 >= this.opts.maxEvents) return true
    if (this.opts.maxLoopDelayMs && this.opts.loopDelayMs && this.opts.loopDelayMs() >= this.opts.maxLoopDelayMs) return false
    if (this.pending.length > 0 && Date.now() - this.pending[0].enqueuedAt >= this.opts.maxQueueDelayMs) return false
    return this.predictedWaitMs() < this.opts.maxQueueDelayMs
  }


  /**
   * Stores the events once each; resolves after commit. `withRecords: false` (batch ingest)
   * answers with ids only, which saves sending whole rows back from the database.
   */
  async write(events: NewUsageEvent[], { withRecords = true }: { withRecords?: boolean } = {}): Promise<WriteResult[]> {
    if (this.closed) throw new Errors.overloaded(1)
    if (!this.opts.enabled) return this.committed(events, await this.store(events, withRecords))
    if (!this.wouldAdmit(events.length)) throw new Errors.overloaded(1)
    return new Promise<WriteResult[]>((resolve, reject) => {
      this.pending.push({ events, withRecords, enqueuedAt: Date.now(), resolve, reject })
      this.pendingEvents += events.length
      this.schedule()
    })
  }

  private committed(events: NewUsageEvent[], results: WriteResult[]): WriteResult[] {
    const created = events.filter((_, i) => results[i].status === 'created')
    if (created.length > 0 && this.opts.onCommitted) {
      const notify = this.opts.onCommitted
      queueMicrotask(() => {
        try {
          notify(created)
        } catch {
          // A listener's failure must never fail or slow an acknowledged write.
        }
      })
    }
    return results
  }

  /** Stores one group: every event is stored (created or duplicate) or refused, or it throws WRITE_FAILED. */
  private async store(events: NewUsageEvent[], withRecords: boolean): Promise<WriteResult[]> {
    for (let attempt = 1; ; attempt++) {
      try {
        const started = performance.now()
        const outcome = await insertEvents(this.database, events, withRecords)
        this.opts.onFlushed?.(events.length, performance.now() - started)
        return distribute(events, outcome, withRecords)
      } catch (err) {
        if (isTransientConflict(err) && attempt < CONFLICT_ATTEMPTS) continue
        if (isDataFault(err)) return this.storeIsolatingRefused(events, withRecords, err)
        return this.failed(err)
      }
    }
  }

  /**
   * The group failed for its data: find the offending events by bisection. Everything runs in
   * one transaction, each attempt under a savepoint, so the group still commits as a whole
   * (or, if the database fails meanwhile, not at all).
   */
  private async storeIsolatingRefused(events: NewUsageEvent[], withRecords: boolean, cause: unknown): Promise<WriteResult[]> {
    const refused = new Map<number, string>()
    const unknownState = (err: unknown) => sqlStateOf(err) ?? 'unknown'
    if (events.length === 1) {
      refused.set(0, unknownState(cause))
      return distribute(events, { created: new Map(), existing: new Map() }, withRecords, refused)
    }
    try {
      const outcome: InsertOutcome = { created: new Map(), existing: new Map() }
      await this.database.db.transaction(async (tx) => {
        // Before the first savepoint: a rolled-back attempt releases the lock it took (see lockEventsForWrite).
        await lockEventsForWrite(tx)
        const attempt = async (from: number, to: number): Promise<void> => {
          try {
            const part = await tx.transaction((savepoint) => insertEvents(this.database, events.slice(from, to), withRecords, savepoint))
            for (const [k, v] of part.created) outcome.created.set(k, v)
            for (const [k, v] of part.existing) outcome.existing.set(k, v)
          } catch (err) {
            if (!isDataFault(err)) throw err
            if (to - from === 1) refused.set(from, unknownState(err))
            else await split(from, to)
          }
        }
        const split = async (from: number, to: number) => {
          const middle = from + Math.floor((to - from) / 2)
          await attempt(from, middle)
          await attempt(middle, to)
        }
        await split(0, events.length)
      })
      return distribute(events, outcome, withRecords, refused)
    } catch (err) {
      return this.failed(err)
    }
  }

  private failed(err: unknown): never {
    // Nothing of this group is stored, so every caller in it (and only those) gets a retryable
    // error; the cause goes to the log.
    this.opts.onFlushError?.(err)
    throw new Errors.writeFailed(1)
  }

  private schedule(): void {
    if (this.pending.length === 0 || this.inFlight >= this.opts.maxConcurrentFlushes) return
    if (this.pendingEvents >= this.opts.maxEvents || this.opts.maxWaitMs === 0 || (this.inFlight === 0 && this.opts.flushWhenIdle)) {
      // A full group, or (Postgres) nothing in flight: waiting would only add latency. Under load,
      // flushes are in flight and arrivals accumulate into the next group by themselves.
      this.flushNow()
      return
    }
    this.timer ??= setTimeout(() => {
      this.timer = null
      this.flushNow()
    }, this.opts.maxWaitMs)
  }

  private flushNow(): void {
    if (this.timer) {
      clearTimeout(this.timer)
      this.timer = null
    }
    const group: Pending[] = []
    let n = 0
    while (this.pending.length > 0 && (group.length === 0 || n + this.pending[0].events.length <= this.opts.maxEvents)) {
      const p = this.pending.shift() as Pending
      group.push(p)
      n += p.events.length
    }
    if (group.length === 0) return
    this.pendingEvents -= n
    this.inFlight++
    // Distinct even when two flushes start within the timer's resolution.
    let started = performance.now()
    while (this.flights.has(started)) started += 1e-6
    this.flights.add(started)
    const events = group.flatMap((p) => p.events)
    const withRecords = group.some((p) => p.withRecords)
    this.store(events, withRecords)
      .then((stored) => {
        this.learn(events.length, performance.now() - started)
        const results = this.committed(events, stored)
        let i = 0
        for (const p of group) {
          p.resolve(results.slice(i, i + p.events.length))
          i += p.events.length
        }
      })
      .catch((err: unknown) => {
        for (const p of group) p.reject(err instanceof Error ? err : new Error(String(err)))
      })
      .finally(() => {
        this.flights.delete(started)
        this.inFlight--
        this.schedule()
      })
    this.schedule()
  }

  /** Folds one committed flush into the averages admission predicts with. */
  private learn(events: number, durationMs: number): void {
    this.flushMs += FLUSH_AVERAGE_WEIGHT * (Math.max(0.1, durationMs) - this.flushMs)
    this.flushEvents += FLUSH_AVERAGE_WEIGHT * (events - this.flushEvents)
  }

  /** Flushes what is queued and refuses new writes. */
  async close(): Promise<void> {
    this.closed = true
    while (this.pending.length > 0 || this.inFlight > 0) {
      if (this.pending.length > 0 && this.inFlight < this.opts.maxConcurrentFlushes) this.flushNow()
      await new Promise((r) => setTimeout(r, 5))
    }
  }
}

/**
 * What is left of a flush that has run `elapsedMs`, from the average flush `averageMs`: the rest
 * of the average while it is young, and once it has run half the average, as long again as it has
 * already run. Flush durations have a long tail (a commit waiting for a checkpoint's fsync or for
 * another flush's row locks): a flush past its average is not about to end, it is a slow one, and
 * taking it for nearly done (its remaining average time, 0) admitted every write that arrived
 * during it: they all then waited for it (2x overload: 0% shed, accepted p99 603 ms).
 */
export function remainingFlushMs(averageMs: number, elapsedMs: number): number {
  return Math.max(averageMs - elapsedMs, elapsedMs, 0)
}

/**
 * Maps the statement's outcome back to the callers' events in order. The first occurrence of a
 * key that the statement inserted is 'created'; any later occurrence (same id twice in one
 * group) and keys that already existed are 'duplicate' with the stored record.
 */
function distribute(
  events: NewUsageEvent[],
  outcome: InsertOutcome,
  withRecords: boolean,
  /** Events the database refused, by index, with their SQLSTATE. */
  refused = new Map<number, string>(),
): WriteResult[] {
  const claimed = new Set<string>()
  return events.map((e, i) => {
    const sqlState = refused.get(i)
    if (sqlState !== undefined) return { status: 'refused', id: e.id, sqlState }
    const key = eventKey(e.botId, e.id)
    const created = outcome.created.get(key)
    const status = created && !claimed.has(key) ? 'created' : 'duplicate'
    if (status === 'created') claimed.add(key)
    if (!withRecords) return { status, id: e.id }
    const row = created ?? outcome.existing.get(key)
    if (!row) throw new Error(`event ${e.botId}/${e.id} was neither inserted nor found`)
    return { status, id: e.id, event: toUsageEvent(row) }
  })
}
