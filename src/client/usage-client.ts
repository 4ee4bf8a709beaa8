import { AsyncLocalStorage } from 'node:async_hooks'
import {
  ClientClosedError,
  EventRejectedError,
  InternalError,
  QueueFullError,
  RequestRejectedError,
  SpoolIoError,
  UsageClientConfigError,
  UsageClientError,
} from './errors.js'
import { prepareEvent, type Metadata, type TrackEvent, type Tracker } from './event.js'
import { defaultRetryPolicy, isRetryable, retryDelayMs, type RetryPolicy } from './retry-policy.js'
import { Spool } from './spool.js'
import { BatchTransport, type BatchResponse } from './transport.js'

/** Anything with pino's or console's `warn` works. */
export interface UsageClientLogger {
  warn(details: object, message?: string): void
  info?(details: object, message?: string): void
}

export interface UsageClientOptions {
  /** Service root, e.g. `https://usage.example.com`; `/api/usage/batch` is appended. */
  baseUrl: string
  apiKey: string
  botId: string
  /** Send as soon as this many events are queued (1..1000). Default 100. */
  batchSize?: number
  /** Send queued events at most this long after the first one was queued. Default 1000. */
  flushIntervalMs?: number
  /** Events held in memory; past it they spill to the spool, or the newest are dropped. Default 10000. */
  maxQueue?: number
  /** A request body is kept under this size (the service accepts 1 MiB). Default 900000. */
  maxBatchBytes?: number
  /** Directory of the durable spool. Unset: no spool, overflow drops the newest events. */
  spoolDir?: string
  /** Spool segment size before rotation. Default 4 MiB. */
  maxSpoolSegmentBytes?: number
  /** Per-request timeout (connect, headers, body). Default 10000. */
  timeoutMs?: number
  /** Shorthand for `retry.maxRetries`. */
  maxRetries?: number
  retry?: Partial<RetryPolicy>
  /** Called for every event that fails, is dropped, or a spool problem. Exceptions in it are swallowed. */
  onError?: (error: UsageClientError) => void
  logger?: UsageClientLogger
  /** Default deadline of `close()`. Default 5000. */
  closeDeadlineMs?: number
  /**
   * When the host's event loop empties (`beforeExit`: the script ended normally) with events still
   * queued, close the client once, within `closeDeadlineMs`, so they are delivered (or spooled).
   * Signals, `process.exit()` and crashes skip `beforeExit`: call `close()` there. Default true.
   */
  flushOnExit?: boolean
}

export interface UsageClientStats {
  /** In memory: waiting, in flight, or being written to the spool. */
  queued: number
  /** Acknowledged by the service as created or duplicate. */
  sent: number
  /** Request attempts that were retried. */
  retried: number
  /** Events written to the spool (cumulative; they count as sent once replayed). */
  spooled: number
  /** Events lost: queue full without a spool, or unsent at the close deadline without a spool. */
  dropped: number
  /** Events rejected: invalid locally, `invalid` from the service, or a non-retryable 4xx. */
  failed: number
}

interface QueuedEvent {
  readonly seq: number
  readonly id: string
  readonly json: string
  readonly bytes: number
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

const noSeq = -1
const maxEventsPerRequest = 1000

/**
 * Reports usage events to the service without ever blocking or failing the host: `track()` only
 * validates and queues; one background loop sends batches in order, retries with backoff, and
 * hands batches to the durable spool when the service stays unreachable.
 */
export class UsageClient implements Tracker {
  readonly botId: string
  readonly #transport: BatchTransport
  readonly #policy: RetryPolicy
  readonly #batchSize: number
  readonly #flushIntervalMs: number
  readonly #maxQueue: number
  readonly #maxBatchBytes: number
  readonly #closeDeadlineMs: number
  readonly #onError: ((error: UsageClientError) => void) | undefined
  readonly #logger: UsageClientLogger | undefined
  readonly #context = new AsyncLocalStorage<Metadata>()
  readonly #counts = { sent: 0, retried: 0, spooled: 0, dropped: 0, failed: 0 }

  #queue: QueuedEvent[] = []
  #inflight: QueuedEvent[] = []
  readonly #spilling = new Set<QueuedEvent[]>()
  #spillingCount = 0
  #seq = 0
  readonly #spool: Promise<Spool | null>
  readonly #hasSpoolDir: boolean
  #replay: { file: string; events: QueuedEvent[]; offset: number } | null = null

  /** The service failed a whole retry round: probe again at #nextProbeAt, meanwhile spool. */
  #unreachable = false
  #failedRounds = 0
  #nextProbeAt = 0
  #due = false
  /** Set by #wake(); consumed by the next activity sleep so no wake-up is lost. */
  #activity = false
  #flushRequested = 0
  #timer: NodeJS.Timeout | null = null
  #waiters = new Set<() => void>()
  #flushWaiters: FlushWaiter[] = []
  #closing = false
  #stopped = false
  #closed: Promise<void> | null = null
  readonly #loop: Promise<void>
  /**
   * The client's timers are unref'd so it never holds a process open; without this, a script
   * that tracked and then simply ended lost everything still queued.
   */
  readonly #onBeforeExit = (): void => {
    if (this.#closing || this.stats().queued === 0) return
    closeOnExit.delete(this.#onBeforeExit)
    void this.close()
  }

  constructor(options: UsageClientOptions) {
    const problems = validateOptions(options)
    if (problems.length > 0) throw new UsageClientConfigError(`invalid usage client options: ${problems.join('; ')}`)
    this.botId = options.botId
    this.#batchSize = options.batchSize ?? 100
    this.#flushIntervalMs = options.flushIntervalMs ?? 1000
    this.#maxQueue = options.maxQueue ?? 10_000
    this.#maxBatchBytes = options.maxBatchBytes ?? 900_000
    this.#closeDeadlineMs = options.closeDeadlineMs ?? 5000
    this.#policy = {
      ...defaultRetryPolicy,
      ...options.retry,
      ...(options.maxRetries !== undefined ? { maxRetries: options.maxRetries } : {}),
    }
    this.#onError = options.onError
    this.#logger = options.logger
    this.#transport = new BatchTransport({
      baseUrl: options.baseUrl,
      apiKey: options.apiKey,
      timeoutMs: options.timeoutMs ?? 10_000,
      connections: 1,
    })
    this.#hasSpoolDir = options.spoolDir !== undefined
    this.#spool =
      options.spoolDir === undefined
        ? Promise.resolve(null)
        : Spool.open({
            dir: options.spoolDir,
            maxSegmentBytes: options.maxSpoolSegmentBytes ?? 4 * 1024 * 1024,
            onCorruptLine: (error) => this.#report(error),
          }).catch((error: unknown) => {
            this.#report(asClientError(error, 'cannot open the spool; running without it'))
            return null
          })
    this.#loop = this.#run().catch((error: unknown) => {
      this.#report(new InternalError('usage client send loop crashed', { cause: error }))
    })
    if (options.flushOnExit ?? true) watchExit(this.#onBeforeExit)
  }

  /** Queues one event. Never throws and never waits; problems go to `onError`. */
  track(event: TrackEvent): void {
    try {
      this.#track(event)
    } catch (error) {
      this.#counts.failed++
      this.#report(asClientError(error, 'track() failed'))
    }
  }

  /** The call shape of the existing bots' `trackUsage` helper. */
  trackUsage(
    model: string,
    provider: string,
    inputTokens: number,
    outputTokens: number,
    success: boolean,
    errorMessage?: string,
  ): void {
    this.track({ model, provider, inputTokens, outputTokens, success, errorMessage })
  }

  /**
   * Runs `fn` with metadata merged into every event tracked inside it (including by the SDK
   * instrumentation), e.g. `client.withMetadata({ chatId }, () => llm.messages.create(...))`.
   */
  withMetadata<T>(metadata: Metadata, fn: () => T): T {
    const outer = this.#context.getStore()
    return this.#context.run(outer ? { ...outer, ...metadata } : metadata, fn)
  }

  currentMetadata(): Metadata | undefined {
    return this.#context.getStore()
  }

  stats(): UsageClientStats {
    return {
      queued: this.#queue.length + this.#inflight.length + this.#spillingCount,
      ...this.#counts,
    }
  }

  /**
   * Sends (or spools) everything queued before this call. Resolves `true` when done, `false` when
   * `timeoutMs` passed first (events stay queued and keep being retried).
   */
  flush(options: { timeoutMs?: number } = {}): Promise<boolean> {
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
      if (options.timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.#flushWaiters = this.#flushWaiters.filter((other) => other !== waiter)
          waiter.resolve(false)
        }, options.timeoutMs)
        timer.unref()
      }
      this.#wake()
    })
  }

  /**
   * Drains within `deadlineMs`; what is still unsent then goes to the spool (or is counted as
   * dropped without one). Closes the connection pool. Idempotent.
   */
  close(options: { deadlineMs?: number } = {}): Promise<void> {
    this.#closed ??= this.#close(options.deadlineMs ?? this.#closeDeadlineMs)
    return this.#closed
  }

  async #close(deadlineMs: number): Promise<void> {
    this.#closing = true
    closeOnExit.delete(this.#onBeforeExit)
    const started = Date.now()
    await this.flush({ timeoutMs: deadlineMs })
    this.#stopped = true
    this.#transport.abortInflight()
    this.#wake()
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
        this.#counts.dropped += leftover.length
        this.#report(
          withIds(
            new ClientClosedError(`${leftover.length} events not sent before the close deadline and no spool configured`),
            leftover,
          ),
        )
      }
    }
    this.#resolveFlushWaiters()
    if (this.#timer) clearTimeout(this.#timer)
    const spool = await this.#spool
    await spool?.close()
    await this.#transport.close().catch(() => undefined)
  }

  #track(input: TrackEvent): void {
    if (this.#closing) {
      this.#counts.dropped++
      this.#report(new ClientClosedError('track() after close(): event dropped'))
      return
    }
    const prepared = prepareEvent(input, this.botId, this.#context.getStore())
    if (prepared.warning) this.#report(prepared.warning)
    const queued: QueuedEvent = {
      seq: ++this.#seq,
      id: prepared.event.id,
      json: prepared.json,
      bytes: Buffer.byteLength(prepared.json) + 1,
    }
    if (this.#queue.length >= this.#maxQueue) {
      // Full: move the whole queue to disk in one fsync'd write, or drop this (the newest) event.
      if (this.#hasSpoolDir && this.#spillingCount < Math.max(this.#maxQueue * 4, 50_000)) {
        void this.#spill(this.#queue)
        this.#queue = []
      } else {
        this.#counts.dropped++
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
    if (this.#queue.length >= this.#batchSize) this.#wake()
    else this.#armTimer()
  }

  async #run(): Promise<void> {
    const spool = await this.#spool
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
        await this.#sleep(this.#nextProbeAt - Date.now(), true)
        continue
      }
      const batch = await this.#nextBatch(spool)
      if (!batch) {
        await this.#sleep(Infinity, true)
        continue
      }
      const outcome = await this.#deliver(batch.events)
      if (outcome === 'done') {
        if (this.#unreachable) this.#logger?.info?.({ failedRounds: this.#failedRounds }, 'usage service reachable again')
        this.#unreachable = false
        this.#failedRounds = 0
        if (batch.source === 'memory') this.#inflight = []
        else await this.#advanceReplay(spool, batch.events.length)
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

  async #nextBatch(spool: Spool | null): Promise<Batch | null> {
    if (spool && !this.#replay && spool.hasBacklog) {
      try {
        const segment = await spool.takeOldest()
        if (segment) {
          this.#replay = {
            file: segment.file,
            offset: 0,
            events: segment.lines.map((json) => ({ seq: noSeq, id: eventId(json), json, bytes: Buffer.byteLength(json) + 1 })),
          }
        }
      } catch (error) {
        this.#report(asClientError(error, 'cannot read the spool'))
      }
    }
    if (this.#replay) {
      if (this.#replay.offset >= this.#replay.events.length && spool) {
        await this.#advanceReplay(spool, 0)
        return this.#nextBatch(spool)
      }
      return { source: 'spool', events: this.#take(this.#replay.events, this.#replay.offset) }
    }
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
  #take(from: QueuedEvent[], offset: number): QueuedEvent[] {
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

  async #advanceReplay(spool: Spool | null, acknowledged: number): Promise<void> {
    const replay = this.#replay
    if (!replay) return
    replay.offset += acknowledged
    if (replay.offset < replay.events.length) return
    this.#replay = null
    try {
      await spool?.remove(replay.file)
    } catch (error) {
      this.#report(asClientError(error, 'cannot delete a replayed spool segment'))
    }
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
        this.#counts.retried++
        await this.#sleep(retryDelayMs(this.#policy, attempt, error), false)
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
    this.#counts.failed += events.length
    this.#report(withIds(error, events))
    return 'done'
  }

  #acknowledge(events: QueuedEvent[], response: BatchResponse): void {
    for (const result of response.results) {
      if (result.status === 'invalid') {
        this.#counts.failed++
        const event = events[result.index]
        const rejected = new EventRejectedError(
          result.error?.code ?? 'INVALID',
          `usage service rejected event ${event?.id ?? result.id}: ${result.error?.message ?? 'invalid'}`,
        )
        this.#report(event ? withIds(rejected, [event]) : rejected)
      } else {
        this.#counts.sent++
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
      this.#counts.spooled += events.length
    } catch (error) {
      this.#counts.dropped += events.length
      this.#report(withIds(asClientError(error, 'cannot write the spool'), events))
    } finally {
      this.#spilling.delete(events)
      this.#spillingCount -= events.length
      this.#resolveFlushWaiters()
      this.#wake()
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
    if (this.#timer || this.#due) return
    this.#timer = setTimeout(() => {
      this.#timer = null
      this.#due = true
      this.#wake()
    }, this.#flushIntervalMs)
    this.#timer.unref()
  }

  #wake(): void {
    // Work that arrives while the loop is between its check and its next sleep (e.g. track()
    // right after a flush() resolved) must not be lost: the next activity sleep returns at once.
    this.#activity = true
    const waiters = this.#waiters
    this.#waiters = new Set()
    for (const wake of waiters) wake()
  }

  /** Sleeps up to `ms`; woken early by close(), and by new work when `onActivity` is set. */
  #sleep(ms: number, onActivity: boolean): Promise<void> {
    if (this.#stopped) return Promise.resolve()
    if (onActivity && this.#activity) {
      this.#activity = false
      return Promise.resolve()
    }
    return new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined
      const done = (): void => {
        if (timer) clearTimeout(timer)
        this.#waiters.delete(wake)
        resolve()
      }
      const wake = (): void => {
        if (onActivity || this.#stopped) {
          if (onActivity) this.#activity = false
          done()
        } else this.#waiters.add(wake)
      }
      this.#waiters.add(wake)
      if (Number.isFinite(ms)) {
        timer = setTimeout(done, Math.max(0, ms))
        timer.unref()
      }
    })
  }

  #report(error: UsageClientError): void {
    try {
      if (this.#onError) this.#onError(error)
      else this.#logDefault(error)
    } catch {
      // An onError hook that throws must not break tracking or the host.
    }
  }

  readonly #logged = new Map<string, { at: number; suppressed: number }>()

  /** Without onError: log, but at most one line per error code every 10 s (an outage can fail thousands). */
  #logDefault(error: UsageClientError): void {
    const now = Date.now()
    const last = this.#logged.get(error.code)
    if (last && now - last.at < 10_000) {
      last.suppressed++
      return
    }
    const suppressed = last?.suppressed ?? 0
    this.#logged.set(error.code, { at: now, suppressed: 0 })
    const message = suppressed > 0 ? `${error.message} (${suppressed} similar suppressed)` : error.message
    if (this.#logger) this.#logger.warn({ err: error, code: error.code, suppressed }, message)
    else console.warn(`[usage-client] ${error.code}: ${message}`)
  }
}

/**
 * The exit hooks of open clients, behind one `beforeExit` listener: a program that opens more
 * than ten clients gets no MaxListenersExceededWarning. Each client leaves the set at close().
 */
const closeOnExit = new Set<() => void>()

function watchExit(hook: () => void): void {
  if (closeOnExit.size === 0 && !process.listeners('beforeExit').includes(runExitHooks)) process.on('beforeExit', runExitHooks)
  closeOnExit.add(hook)
}

function runExitHooks(): void {
  for (const hook of [...closeOnExit]) hook()
}

function validateOptions(options: UsageClientOptions): string[] {
  const problems: string[] = []
  if (typeof options !== 'object' || options === null) return ['options must be an object']
  try {
    const url = new URL(options.baseUrl)
    if (url.protocol !== 'http:' && url.protocol !== 'https:') problems.push('baseUrl must be http(s)')
  } catch {
    problems.push(`baseUrl is not a URL: ${String(options.baseUrl)}`)
  }
  if (typeof options.apiKey !== 'string' || options.apiKey === '') problems.push('apiKey is required')
  if (typeof options.botId !== 'string' || options.botId.length < 1 || options.botId.length > 128) {
    problems.push('botId must be 1..128 characters')
  }
  const integer = (name: string, value: number | undefined, min: number, max: number): void => {
    if (value !== undefined && (!Number.isInteger(value) || value < min || value > max)) {
      problems.push(`${name} must be an integer in ${min}..${max}`)
    }
  }
  integer('batchSize', options.batchSize, 1, 1000)
  integer('flushIntervalMs', options.flushIntervalMs, 0, 3_600_000)
  integer('maxQueue', options.maxQueue, 1, 10_000_000)
  integer('maxBatchBytes', options.maxBatchBytes, 1024, 64 * 1024 * 1024)
  integer('timeoutMs', options.timeoutMs, 1, 3_600_000)
  integer('maxRetries', options.maxRetries ?? options.retry?.maxRetries, 0, 100)
  integer('retry.baseDelayMs', options.retry?.baseDelayMs, 0, 3_600_000)
  integer('retry.maxDelayMs', options.retry?.maxDelayMs, 0, 3_600_000)
  integer('closeDeadlineMs', options.closeDeadlineMs, 0, 3_600_000)
  if (options.spoolDir !== undefined && (typeof options.spoolDir !== 'string' || options.spoolDir === '')) {
    problems.push('spoolDir must be a non-empty path')
  }
  return problems
}

function asClientError(error: unknown, context: string): UsageClientError {
  if (error instanceof UsageClientError) return error
  return new InternalError(`${context}: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
}

function withIds<E extends UsageClientError>(error: E, events: readonly QueuedEvent[]): E {
  error.eventIds = events.map((event) => event.id)
  return error
}

function eventId(json: string): string {
  const match = /"id":"([^"]*)"/.exec(json)
  return match ? match[1] : ''
}

async function raceTimeout(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([
    promise,
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, ms)
      timer.unref()
    }),
  ])
  if (timer) clearTimeout(timer)
}
