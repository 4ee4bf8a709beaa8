import { AsyncLocalStorage } from 'node:async_hooks'
import { AllowanceChecker, type Allowance, type AllowanceQuery } from './allowance.js'
import { ClientClosedError } from './errors.js'
import { prepareEvent, type Metadata, type TrackEvent, type Tracker } from './event.js'
import { unwatchExit, watchExit } from './exit-flush.js'
import { resolveOptions, type UsageClientOptions } from './options.js'
import { asClientError, ErrorReporter } from './reporter.js'
import { SendLoop } from './send-loop.js'
import { Spool } from './spool.js'
import { BatchTransport } from './transport.js'

export type { UsageClientLogger, UsageClientOptions } from './options.js'

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

/**
 * Reports usage events to the service without ever blocking or failing the host: `track()` only
 * validates and queues; one background loop (SendLoop) sends batches in order, retries with
 * backoff, and hands batches to the durable spool when the service stays unreachable.
 */
export class UsageClient implements Tracker {
  readonly botId: string
  readonly #closeDeadlineMs: number
  readonly #reporter: ErrorReporter
  readonly #sender: SendLoop
  readonly #context = new AsyncLocalStorage<Metadata>()
  readonly #allowance: AllowanceChecker
  #closed: Promise<void> | null = null
  /**
   * The client's timers are unref'd so it never holds a process open; without this, a script
   * that tracked and then simply ended lost everything still queued.
   */
  readonly #onBeforeExit = (): void => {
    if (this.#sender.closing || this.stats().queued === 0) return
    unwatchExit(this.#onBeforeExit)
    void this.close()
  }

  constructor(options: UsageClientOptions) {
    const settings = resolveOptions(options)
    this.botId = settings.botId
    this.#closeDeadlineMs = settings.closeDeadlineMs
    const reporter = new ErrorReporter(settings.onError, settings.logger)
    this.#reporter = reporter
    const transport = new BatchTransport({
      baseUrl: settings.baseUrl,
      apiKey: settings.apiKey,
      timeoutMs: settings.timeoutMs,
      connections: 1,
    })
    const spool =
      settings.spoolDir === undefined
        ? Promise.resolve(null)
        : Spool.open({
            dir: settings.spoolDir,
            maxSegmentBytes: settings.maxSpoolSegmentBytes,
            onCorruptLine: reporter.report,
          }).catch((error: unknown) => {
            reporter.report(asClientError(error, 'cannot open the spool; running without it'))
            return null
          })
    this.#sender = new SendLoop({
      transport,
      spool,
      hasSpoolDir: settings.spoolDir !== undefined,
      policy: settings.retry,
      batchSize: settings.batchSize,
      flushIntervalMs: settings.flushIntervalMs,
      maxQueue: settings.maxQueue,
      maxBatchBytes: settings.maxBatchBytes,
      reporter,
      logger: settings.logger,
    })
    this.#allowance = new AllowanceChecker({ ...settings.allowance, baseUrl: settings.baseUrl, apiKey: settings.apiKey, botId: settings.botId, report: reporter.report })
    if (settings.flushOnExit) watchExit(this.#onBeforeExit)
  }

  /**
   * May this bot (and `userId`) call a model now? Asks `GET /api/budgets/allowance` (the bot's
   * hard budgets), cached per user for `allowance.cacheMs`. Never throws: when the service cannot
   * answer, `unknown` is true and `allowed` follows `allowance.failOpen` (default: allowed).
   */
  allowance(query: AllowanceQuery = {}): Promise<Allowance> {
    return this.#allowance.check(query)
  }

  /** Queues one event. Never throws and never waits; problems go to `onError`. */
  track(event: TrackEvent): void {
    try {
      if (this.#sender.closing) {
        this.#sender.counts.dropped++
        this.#reporter.report(new ClientClosedError('track() after close(): event dropped'))
        return
      }
      const prepared = prepareEvent(event, this.botId, this.#context.getStore())
      if (prepared.warning) this.#reporter.report(prepared.warning)
      this.#sender.enqueue(prepared.event.id, prepared.json)
    } catch (error) {
      this.#sender.counts.failed++
      this.#reporter.report(asClientError(error, 'track() failed'))
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
    return { queued: this.#sender.queued, ...this.#sender.counts }
  }

  /**
   * Sends (or spools) everything queued before this call. Resolves `true` when done, `false` when
   * `timeoutMs` passed first (events stay queued and keep being retried).
   */
  flush(options: { timeoutMs?: number } = {}): Promise<boolean> {
    return this.#sender.flush(options.timeoutMs)
  }

  /**
   * Drains within `deadlineMs`; what is still unsent then goes to the spool (or is counted as
   * dropped without one). Closes the connection pool. Idempotent.
   */
  close(options: { deadlineMs?: number } = {}): Promise<void> {
    if (!this.#closed) {
      unwatchExit(this.#onBeforeExit)
      const allowance = this.#allowance.close().catch(() => undefined)
      this.#closed = this.#sender.close(options.deadlineMs ?? this.#closeDeadlineMs).then(() => allowance)
    }
    return this.#closed
  }
}
