import { InternalError, UsageClientError } from './errors.js'
import type { UsageClientLogger } from './options.js'

/**
 * Where every failure of the client goes: the `onError` hook when given, else a log line at most
 * once per error code every 10 s (an outage can fail thousands of events). Never throws.
 */
export class ErrorReporter {
  readonly #onError: ((error: UsageClientError) => void) | undefined
  readonly #logger: UsageClientLogger | undefined
  readonly #logged = new Map<string, { at: number; suppressed: number }>()

  constructor(onError: ((error: UsageClientError) => void) | undefined, logger: UsageClientLogger | undefined) {
    this.#onError = onError
    this.#logger = logger
  }

  readonly report = (error: UsageClientError): void => {
    try {
      if (this.#onError) this.#onError(error)
      else this.#logDefault(error)
    } catch {
      // An onError hook that throws must not break tracking or the host.
    }
  }

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

export function asClientError(error: unknown, context: string): UsageClientError {
  if (error instanceof UsageClientError) return error
  return new InternalError(`${context}: ${error instanceof Error ? error.message : String(error)}`, { cause: error })
}

/** Attaches the ids of the events a failure concerns, so `onError` can tell which were lost. */
export function withIds<E extends UsageClientError>(error: E, events: readonly { readonly id: string }[]): E {
  error.eventIds = events.map((event) => event.id)
  return error
}
