import type { AllowanceOptions } from './allowance.js'
import { UsageClientConfigError, type UsageClientError } from './errors.js'
import { defaultRetryPolicy, type RetryPolicy } from './retry-policy.js'

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
  /** `allowance()`: its cache, timeout and what it answers when the service cannot be asked. */
  allowance?: AllowanceOptions
}

/** The options with every default applied: what the client's parts are built from. */
export interface UsageClientSettings {
  readonly baseUrl: string
  readonly apiKey: string
  readonly botId: string
  readonly batchSize: number
  readonly flushIntervalMs: number
  readonly maxQueue: number
  readonly maxBatchBytes: number
  readonly spoolDir: string | undefined
  readonly maxSpoolSegmentBytes: number
  readonly timeoutMs: number
  readonly retry: RetryPolicy
  readonly onError: ((error: UsageClientError) => void) | undefined
  readonly logger: UsageClientLogger | undefined
  readonly closeDeadlineMs: number
  readonly flushOnExit: boolean
  readonly allowance: AllowanceOptions
}

/** Validates `options` (every problem in one `UsageClientConfigError`) and applies the defaults. */
export function resolveOptions(options: UsageClientOptions): UsageClientSettings {
  const problems = validateOptions(options)
  if (problems.length > 0) throw new UsageClientConfigError(`invalid usage client options: ${problems.join('; ')}`)
  return {
    baseUrl: options.baseUrl,
    apiKey: options.apiKey,
    botId: options.botId,
    batchSize: options.batchSize ?? 100,
    flushIntervalMs: options.flushIntervalMs ?? 1000,
    maxQueue: options.maxQueue ?? 10_000,
    maxBatchBytes: options.maxBatchBytes ?? 900_000,
    spoolDir: options.spoolDir,
    maxSpoolSegmentBytes: options.maxSpoolSegmentBytes ?? 4 * 1024 * 1024,
    timeoutMs: options.timeoutMs ?? 10_000,
    retry: {
      ...defaultRetryPolicy,
      ...options.retry,
      ...(options.maxRetries !== undefined ? { maxRetries: options.maxRetries } : {}),
    },
    onError: options.onError,
    logger: options.logger,
    closeDeadlineMs: options.closeDeadlineMs ?? 5000,
    flushOnExit: options.flushOnExit ?? true,
    allowance: { ...options.allowance },
  }
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
  integer('allowance.cacheMs', options.allowance?.cacheMs, 0, 10_000)
  integer('allowance.timeoutMs', options.allowance?.timeoutMs, 1, 600_000)
  if (options.allowance?.failOpen !== undefined && typeof options.allowance.failOpen !== 'boolean') problems.push('allowance.failOpen must be a boolean')
  if (options.spoolDir !== undefined && (typeof options.spoolDir !== 'string' || options.spoolDir === '')) {
    problems.push('spoolDir must be a non-empty path')
  }
  return problems
}
