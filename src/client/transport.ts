import { Pool } from 'undici'
import {
  BadResponseError,
  NetworkError,
  RequestRejectedError,
  RequestTimeoutError,
  RetryableHttpError,
} from './errors.js'
import { isRetryableStatus, parseRetryAfter } from './retry-policy.js'

/** `created` and `duplicate` are stored; any other status the service sends is a per-item failure. */
export type ItemStatus = 'created' | 'duplicate' | 'invalid'

export interface BatchItemResult {
  readonly index: number
  readonly status: ItemStatus
  readonly id: string
  readonly error?: { readonly code: string; readonly message: string }
}

export interface BatchResponse {
  readonly results: readonly BatchItemResult[]
}

export interface TransportOptions {
  readonly baseUrl: string
  readonly apiKey: string
  readonly timeoutMs: number
  readonly connections: number
}

/**
 * One POST of pre-serialized events to `/api/usage/batch` over a keep-alive undici Pool.
 * It knows HTTP and the response contract, nothing about retries or spooling: every failure
 * becomes one typed error and the caller's policy decides what to do with it.
 */
export class BatchTransport {
  readonly #pool: Pool
  readonly #path: string
  readonly #authorization: string
  readonly #timeoutMs: number
  readonly #inflight = new Set<AbortController>()

  constructor(options: TransportOptions) {
    const url = new URL(options.baseUrl)
    this.#path = `${url.pathname.replace(/\/+$/, '')}/api/usage/batch`
    this.#authorization = `Bearer ${options.apiKey}`
    this.#timeoutMs = options.timeoutMs
    this.#pool = new Pool(url.origin, {
      connections: options.connections,
      pipelining: 1,
      keepAliveTimeout: 30_000,
      connectTimeout: options.timeoutMs,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    })
  }

  /** Sends `{"events":[...]}` built from already-serialized events, in order. */
  async send(serializedEvents: readonly string[]): Promise<BatchResponse> {
    const answer = await requestWithDeadline(
      this.#pool,
      {
        method: 'POST',
        path: this.#path,
        headers: { authorization: this.#authorization, 'content-type': 'application/json' },
        body: `{"events":[${serializedEvents.join(',')}]}`,
      },
      this.#timeoutMs,
      this.#inflight,
    )
    return interpret(answer.statusCode, answer.retryAfter, answer.text, serializedEvents.length)
  }

  /** Aborts requests in flight (used at the close deadline); they fail with NetworkError. */
  abortInflight(): void {
    for (const controller of this.#inflight) controller.abort()
  }

  async close(): Promise<void> {
    this.abortInflight()
    await this.#pool.destroy()
  }

}

/** A whole answer: status, Retry-After and the body's text. */
export interface Answer {
  statusCode: number
  retryAfter: string | string[] | undefined
  text: string
}

/**
 * One request over `pool` that gives up after `timeoutMs` in all (connect, headers and body
 * together), failing with RequestTimeoutError, or NetworkError when the network fails first.
 * `inflight` (optional) holds its AbortController while it runs, so a caller can abort it.
 */
export async function requestWithDeadline(
  pool: Pool,
  options: { method: 'GET' | 'POST'; path: string; headers: Record<string, string>; body?: string },
  timeoutMs: number,
  inflight?: Set<AbortController>,
): Promise<Answer> {
  const controller = new AbortController()
  let timedOut = false
  const timer = setTimeout(() => {
    timedOut = true
    controller.abort()
  }, timeoutMs)
  timer.unref()
  inflight?.add(controller)
  try {
    const response = await pool.request({ ...options, signal: controller.signal })
    return { statusCode: response.statusCode, retryAfter: response.headers['retry-after'], text: await response.body.text() }
  } catch (error) {
    throw requestError(error, timedOut, timeoutMs)
  } finally {
    clearTimeout(timer)
    inflight?.delete(controller)
  }
}

/** A request that failed before a complete answer: timed out, or the network failed. */
export function requestError(error: unknown, timedOut: boolean, timeoutMs: number): Error {
  if (timedOut) return new RequestTimeoutError(timeoutMs)
  const code = typeof error === 'object' && error !== null && 'code' in error ? String(error.code) : ''
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return new RequestTimeoutError(timeoutMs)
  }
  const message = error instanceof Error ? error.message : String(error)
  return new NetworkError(`usage service unreachable: ${code ? `${code} ` : ''}${message}`, { cause: error })
}

function interpret(
  statusCode: number,
  retryAfter: string | string[] | undefined,
  text: string,
  count: number,
): BatchResponse {
  if (statusCode === 200) return parseBatchResponse(text, count)
  throw httpError(statusCode, retryAfter, text)
}

/** A non-200 answer as the typed error: retryable (429, 5xx) or rejected (other 4xx). */
export function httpError(statusCode: number, retryAfter: string | string[] | undefined, text: string): Error {
  const { code, message } = parseErrorBody(text)
  const detail = `usage service answered ${statusCode}${code ? ` ${code}` : ''}${message ? `: ${message}` : ''}`
  if (isRetryableStatus(statusCode)) return new RetryableHttpError(statusCode, parseRetryAfter(retryAfter), detail)
  return new RequestRejectedError(statusCode, code, detail)
}

function parseErrorBody(text: string): { code?: string; message?: string } {
  try {
    const body: unknown = JSON.parse(text)
    if (typeof body !== 'object' || body === null) return {}
    const code = 'code' in body && typeof body.code === 'string' ? body.code : undefined
    const message = 'message' in body && typeof body.message === 'string' ? body.message : undefined
    return { code, message }
  } catch {
    return { message: text.slice(0, 200) }
  }
}

function parseBatchResponse(text: string, count: number): BatchResponse {
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (error) {
    throw new BadResponseError('usage service answered 200 with a body that is not JSON', { cause: error })
  }
  if (typeof body !== 'object' || body === null || !('results' in body) || !Array.isArray(body.results)) {
    throw new BadResponseError('usage service answered 200 without a results array')
  }
  const results: BatchItemResult[] = []
  for (const item of body.results as unknown[]) {
    if (typeof item !== 'object' || item === null) continue
    const record = item as Record<string, unknown>
    if (typeof record.index !== 'number' || typeof record.status !== 'string') continue
    // A status this client does not know (a newer service's per-item failure) is not a stored
    // event: report it as failed with its error instead of retrying the batch forever.
    const status: ItemStatus = record.status === 'created' || record.status === 'duplicate' ? record.status : 'invalid'
    const error = record.error as { code?: unknown; message?: unknown } | undefined
    results.push({
      index: record.index,
      status,
      id: typeof record.id === 'string' ? record.id : '',
      error:
        error && typeof error === 'object'
          ? { code: String(error.code ?? 'UNKNOWN'), message: String(error.message ?? '') }
          : status === 'invalid'
            ? { code: 'UNKNOWN', message: `the service answered status "${String(record.status)}" without an error` }
            : undefined,
    })
  }
  if (results.length !== count) {
    throw new BadResponseError(`usage service answered ${results.length} results for ${count} events`)
  }
  return { results }
}
