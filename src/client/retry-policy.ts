import { NetworkError, RequestTimeoutError, RetryableHttpError, BadResponseError } from './errors.js'

export interface RetryPolicy {
  /** Attempts after the first before a batch is handed to the spool (or kept in memory). */
  readonly maxRetries: number
  /** Backoff base: attempt n waits a random time in [0, min(maxDelayMs, baseDelayMs * 2^n)]. */
  readonly baseDelayMs: number
  readonly maxDelayMs: number
  /** A `Retry-After` longer than this is capped, so a misbehaving proxy cannot park the client. */
  readonly maxRetryAfterMs: number
}

export const defaultRetryPolicy: RetryPolicy = {
  maxRetries: 3,
  baseDelayMs: 200,
  maxDelayMs: 30_000,
  maxRetryAfterMs: 120_000,
}

/**
 * Whether an HTTP status can succeed later: 408 (request timeout), 429 (rate limited) and 5xx.
 * Any other 4xx says the request itself is wrong (bad key, wrong bot, malformed, unstorable):
 * sending it again cannot help, so the events are dropped and reported, never spooled.
 */
export function isRetryableStatus(statusCode: number): boolean {
  return statusCode === 408 || statusCode === 429 || statusCode >= 500
}

export function isRetryable(error: unknown): boolean {
  return (
    error instanceof NetworkError ||
    error instanceof RequestTimeoutError ||
    error instanceof RetryableHttpError ||
    error instanceof BadResponseError
  )
}

/**
 * Exponential backoff with full jitter (AWS architecture blog, "Exponential Backoff And Jitter"),
 * except that a server-sent `Retry-After` is obeyed: the service knows when it will have room.
 */
export function retryDelayMs(
  policy: RetryPolicy,
  attempt: number,
  error: unknown,
  random: () => number = Math.random,
): number {
  if (error instanceof RetryableHttpError && error.retryAfterMs !== undefined) {
    return Math.min(Math.max(0, error.retryAfterMs), policy.maxRetryAfterMs)
  }
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** Math.min(attempt, 30))
  return Math.floor(random() * ceiling)
}

/** `Retry-After` is either delta-seconds or an HTTP date (RFC 9110 section 10.2.3). */
export function parseRetryAfter(value: string | string[] | undefined, now: number = Date.now()): number | undefined {
  const raw = Array.isArray(value) ? value[0] : value
  if (raw === undefined) return undefined
  const text = raw.trim()
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000)
  const date = Date.parse(text)
  if (Number.isNaN(date)) return undefined
  return Math.max(0, date - now)
}
