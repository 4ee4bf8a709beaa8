import {
  ClientClosedError,
  EventRejectedError,
  InternalError,
  QueueFullError,
  RequestRejectedError,
  SpoolIoError,
  type UsageClientError,
} from './errors.js'
import type { UsageClientLogger } from './options.js'
import { noSeq, queuedEvent, type QueuedEvent } from './queued-event.js'
import { asClientError, withIds, type ErrorReporter } from './reporter.js'
import { isRetryable, retryDelayMs, type RetryPolicy } from './retry-policy.js'
import type { Spool } from './spool.js'
import { SpoolReplay } from './spool-replay.js'
import type { BatchResponse, BatchTransport } from './transport.js'
import { raceTimeout, WakeUp } from './wake-up.js'

export interface SendLoopOptions {
  readonly transport: BatchTransport
  /** Resolves to null when no spool is configured or it could not be opened. */
  readonly spool: Promise<Spool | null>
  /** A spool directory is configured (it may still be opening, or have failed to). */
  readonly hasSpoolDir: boolean
  readonly policy: RetryPolicy
  readonly batchSize: number
  readonly flushIntervalMs: number
  readonly maxQueue: number
  readonly maxBatchBytes: number
  readonly reporter: ErrorReporter
  readonly logger: UsageClientLogger | undefined
}

/** What happened to events once they left the queue (see UsageClientStats). */
export interface DeliveryCounts {
  sent: number
  retried: number
  spooled: number
  dropped: number
  failed: number
}

/** A batch on its way: from memory (has seq) or from a spool segment being replayed. */
interface Batch {
  readonly source: 'memory' | 'spool'
  readonly events: QueuedEvent[]
}

type Delivery = 'done' | 'unreachable' | 'stopped'

interface FlushWaiter {
  readonly target: number
  readonly resolve: (complete: boolean) => void
}

const maxEventsPerRequest = 1000

/**
 * The queue and the one background loop that empties it: sends batches in order, retries with
 * backoff, hands batches to the durable spool while the service stays unreachable, and replays
 * the spool once it is back.
 */
export class SendLoop {
  readonly counts: DeliveryCounts = { sent: 0, retried: 0, spooled: 0, dropped: 0, failed: 0 }
  readonly #transport: BatchTransport
  readonly #spool: Promise<Spool | null>
  readonly #hasSpoolDir: boolean
  readonly #policy: RetryPolicy
  readonly #batchSize: number
  readonly #flushIntervalMs: number
  readonly #maxQueue: number
  readonly #maxBatchBytes: number
  readonly #report: (error: UsageClientError) => void
  readonly #logger: UsageClientLogger | undefined
  readonly #wakeUp = new WakeUp(() => this.#stopped)

  #queue: QueuedEvent[] = []
  #inflight: QueuedEvent[] = []
  readonly #spilling = new Set<QueuedEvent[]>()
  #spillingCount = 0
  #seq = 0

  /** The service failed a whole retry round: probe again at #nextProbeAt, meanwhile spool. */
  #unreachable = false
  #failedRounds = 0
  #nextProbeAt = 0
  #due = false
  #flushRequested = 0
  #flushWaiters: FlushWaiter[] = []
  #closing = false
  #stopped = false
  readonly #loop: Promise<void>

  constructor(options: SendLoopOptions) {
    this.#transport = options.transport
    this.#spool = options.spool
    this.#hasSpoolDir = options.hasSpoolDir
    this.#policy = options.policy
    this.#batchSize = options.batchSize
    this.#flushIntervalMs = options.flushIntervalMs
    this.#maxQueue = options.maxQueue
    this.#maxBatchBytes = options.maxBatchBytes
    this.#report = options.reporter.report
    this.#logger = options.logger
    this.#loop = this.#run().catch((error: unknown) => {
      this.#report(new InternalError('usage client send loop crashed', { cause: error }))
    })
  }

  /** close() has begun: nothing more is accepted. */
  get closing(): boolean {
    return this.#closing
  }

  /** In memory: waiting, in flight, or being written to the spool. */
  get queued(): number {
    return this.#queue.length + this.#inflight.length + this.#spillingCount
  }

  /** Queues one serialized event; when the queue is full it spills to the spool or drops this one. */
  enqueue(id: string, json: string): void {
    const queued = queuedEvent(++this.#seq, id, json)
    if (this.#queue.length >= this.#maxQueue) {
      // Full: move the whole queue to disk in one fsync'd write, or drop this (the newest) event.
      if (this.#hasSpoolDir && this.#spillingCount < Math.max(this.#maxQueue * 4, 50_000)) {
        void this.#spill(this.#queue)
        this.#queue = []
      } else {
        this.counts.dropped++
        this.#report(
          withIds(
            new QueueFullError(`usage queue full (${this.#maxQueue} events)${this.#hasSpoolDir ? ' and spool backlogged' : ''}: newest event dropped`),
            [queued],
          ),
        )
        return
      }
    }
    this.#queue.push(queued)
    if (this.#queue.length >= this.#batchSize) this.#wakeUp.wake()
    else this.#armTimer()
  }

  /** Resolves `true` once everything enqueued so far is sent or spooled, `false` at `timeoutMs`. */
  flush(timeoutMs: number | undefined): Promise<boolean> {
    const target = this.#seq
    if (this.#lowestPendingSeq() > target) return Promise.resolve(true)
    this.#flushRequested++
    return new Promise<boolean>((resolve) => {
      let timer: NodeJS.Timeout | undefined
      // The client's own timers are unref'd so it never holds a process open, but a caller awaiting
      // flush() expects the retries to run: keep the event loop alive until this flush settles.
      const keepAlive = setInterval(() => undefined, 60_000)
      const waiter: FlushWaiter = {
        target,
        resolve: (complete) => {
          if (timer) clearTimeout(timer)
          clearInterval(keepAlive)
          this.#flushRequested--
          resolve(complete)
        },
      }
      this.#flushWaiters.push(waiter)
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.#flushWaiters = this.#flushWaiters.filter((other) => other !== waiter)
          waiter.resolve(false)
        }, timeoutMs)
        timer.unref()
      }
      this.#wakeUp.wake()
    })
  }

  /** Drains within `deadlineMs`, spools (or drops) the rest, stops the loop and closes spool and pool. */
  async close(deadlineMs: number): Promise<void> {
    this.#closing = true
    const started = Date.now()
    await this.flush(deadlineMs)
    this.#stopped = true
    this.#transport.abortInflight()
    this.#wakeUp.wake()
    const grace = Math.max(100, deadlineMs - (Date.now() - started))
    await raceTimeout(this.#loop, grace)
    const leftover = [...this.#inflight, ...this.#queue]
    this.#inflight = []
    this.#queue = []
    if (leftover.length > 0) {
      const spool = await this.#spool
      if (spool) {
        await this.#spill(leftover)
      } else {
        this.counts.dropped += leftover.length
        this.#report(
          withIds(
            new ClientClosedError(`${leftover.length} events not sent before the close deadline and no spool configured`),
            leftover,
          ),
        )
      }
    }
    this.#resolveFlushWaiters()
    this.#wakeUp.clearTimer()
    const spool = await this.#spool
    await spool?.close()
    await this.#transport.close().catch(() => undefined)
  }

  async #run(): Promise<void> {
    const spool = await this.#spool
    const replay = spool ? new SpoolReplay(spool, this.#report) : null
    while (!this.#stopped) {
      if (this.#unreachable && Date.now() < this.#nextProbeAt) {
        if (spool && this.#queue.length > 0 && (this.#due || this.#flushRequested > 0 || this.#closing || this.#queue.length >= this.#batchSize)) {
          this.#due = false
          const chunk = this.#queue
          this.#queue = []
          await this.#spill(chunk)
          continue
        }
        if (!spool && this.#queue.length > 0 && this.#closing) {
          // Nothing more to hope for before the deadline than the next probe; try now.
          this.#nextProbeAt = 0
          continue
        }
        await this.#wakeUp.sleep(this.#nextProbeAt - Date.now(), true)
        continue
      }
      const batch = await this.#nextBatch(replay)
      if (!batch) {
        await this.#wakeUp.sleep(Infinity, true)
        continue
      }
      const outcome = await this.#deliver(batch.events)
      if (outcome === 'done') {
        if (this.#unreachable) this.#logger?.info?.({ failedRounds: this.#failedRounds }, 'usage service reachable again')
        this.#unreachable = false
        this.#failedRounds = 0
        if (batch.source === 'memory') this.#inflight = []
        else await replay?.acknowledge(batch.events.length)
      } else if (batch.source === 'memory') {
        const events = this.#inflight
        this.#inflight = []
        if (outcome === 'unreachable' && spool) await this.#spill(events)
        else {
          this.#queue = events.concat(this.#queue)
          // They were due already: send them at the next probe, not at the next track().
          this.#due = true
        }
      }
      if (outcome === 'unreachable') this.#markUnreachable()
      this.#resolveFlushWaiters()
    }
  }

  #markUnreachable(): void {
    if (!this.#unreachable) this.#logger?.warn({}, 'usage service unreachable; events are kept and retried')
    this.#unreachable = true
    this.#failedRounds++
    this.#nextProbeAt = Date.now() + retryDelayMs(this.#policy, this.#failedRounds + this.#policy.maxRetries, undefined)
  }

  /** The spool's backlog first (oldest events), then the memory queue once a send is due. */
  async #nextBatch(replay: SpoolReplay | null): Promise<Batch | null> {
    const pending = await replay?.pending()
    if (pending) return { source: 'spool', events: this.#take(pending.events, pending.offset) }
    const ready =
      this.#queue.length >= this.#batchSize || this.#due || this.#flushRequested > 0 || this.#closing
    if (this.#queue.length === 0 || !ready) return null
    const events = this.#take(this.#queue, 0)
    this.#queue.splice(0, events.length)
    this.#inflight = events
    if (this.#queue.length === 0) this.#due = false
    else this.#armTimer()
    return { source: 'memory', events }
  }

  /**
   * The events for one request from `from[offset]`: batchSize only triggers a send; a backlog is
   * drained up to the service's 1000 events per request and the byte budget.
   */
  #take(from: readonly QueuedEvent[], offset: number): QueuedEvent[] {
    const events: QueuedEvent[] = []
    let bytes = 16
    for (let i = offset; i < from.length && events.length < maxEventsPerRequest; i++) {
      const event = from[i]
      if (events.length > 0 && bytes + event.bytes > this.#maxBatchBytes) break
      events.push(event)
      bytes += event.bytes
    }
    return events
  }

  /** One batch with the retry policy. 'unreachable' when the retry budget ran out. */
  async #deliver(events: QueuedEvent[]): Promise<Delivery> {
    for (let attempt = 0; ; attempt++) {
      if (this.#stopped) return 'stopped'
      let response: BatchResponse
      try {
        response = await this.#transport.send(events.map((event) => event.json))
      } catch (error) {
        if (this.#stopped) return 'stopped'
        if (error instanceof RequestRejectedError) return this.#rejected(events, error)
        if (!isRetryable(error)) this.#report(asClientError(error, 'unexpected error sending usage'))
        if (attempt >= this.#policy.maxRetries) return 'unreachable'
        this.counts.retried++
        await this.#wakeUp.sleep(retryDelayMs(this.#policy, attempt, error), false)
        continue
      }
      this.#acknowledge(events, response)
      return 'done'
    }
  }

  async #rejected(events: QueuedEvent[], error: RequestRejectedError): Promise<Delivery> {
    // A 400 or 413 for a batch may come from one event: halve until the culprit is alone.
    if ((error.statusCode === 400 || error.statusCode === 413) && events.length > 1) {
      const middle = Math.ceil(events.length / 2)
      for (const half of [events.slice(0, middle), events.slice(middle)]) {
        const outcome = await this.#deliver(half)
        if (outcome !== 'done') return outcome
      }
      return 'done'
    }
    this.counts.failed += events.length
    this.#report(withIds(error, events))
    return 'done'
  }

  #acknowledge(events: QueuedEvent[], response: BatchResponse): void {
    for (const result of response.results) {
      if (result.status === 'invalid') {
        this.counts.failed++
        const event = events[result.index]
        const rejected = new EventRejectedError(
          result.error?.code ?? 'INVALID',
          `usage service rejected event ${event?.id ?? result.id}: ${result.error?.message ?? 'invalid'}`,
        )
        this.#report(event ? withIds(rejected, [event]) : rejected)
      } else {
        this.counts.sent++
      }
    }
  }

  /** Writes events to the spool (one fsync); without a spool or on a disk error they are dropped. */
  async #spill(events: QueuedEvent[]): Promise<void> {
    if (events.length === 0) return
    this.#spilling.add(events)
    this.#spillingCount += events.length
    try {
      const spool = await this.#spool
      if (!spool) throw new SpoolIoError('no spool available')
      await spool.append(events.map((event) => event.json))
      this.counts.spooled += events.length
    } catch (error) {
      this.counts.dropped += events.length
      this.#report(withIds(asClientError(error, 'cannot write the spool'), events))
    } finally {
      this.#spilling.delete(events)
      this.#spillingCount -= events.length
      this.#resolveFlushWaiters()
      this.#wakeUp.wake()
    }
  }

  #lowestPendingSeq(): number {
    let lowest = Infinity
    const heads = [this.#inflight[0], this.#queue[0]]
    for (const chunk of this.#spilling) heads.push(chunk[0])
    for (const head of heads) if (head && head.seq !== noSeq && head.seq < lowest) lowest = head.seq
    return lowest
  }

  #resolveFlushWaiters(): void {
    if (this.#flushWaiters.length === 0) return
    const lowest = this.#lowestPendingSeq()
    const done = this.#flushWaiters.filter((waiter) => waiter.target < lowest)
    if (done.length === 0) return
    this.#flushWaiters = this.#flushWaiters.filter((waiter) => waiter.target >= lowest)
    for (const waiter of done) waiter.resolve(true)
  }

  #armTimer(): void {
    if (this.#due) return
    this.#wakeUp.armTimer(this.#flushIntervalMs, () => {
      this.#due = true
      this.#wakeUp.wake()
    })
  }
}
