/**
 * Every failure the usage client reports, one class per cause, each with a stable `code`.
 * These never reach the host through `track()`: they are passed to the `onError` hook.
 * Only construction (`new UsageClient`, `fromEnv`) throws, with `UsageClientConfigError`.
 */
export type UsageClientErrorCode =
  | 'USAGE_CLIENT_CONFIG'
  | 'USAGE_CLIENT_INVALID_EVENT'
  | 'USAGE_CLIENT_METADATA_DROPPED'
  | 'USAGE_CLIENT_EVENT_REJECTED'
  | 'USAGE_CLIENT_REQUEST_REJECTED'
  | 'USAGE_CLIENT_HTTP_RETRYABLE'
  | 'USAGE_CLIENT_NETWORK'
  | 'USAGE_CLIENT_TIMEOUT'
  | 'USAGE_CLIENT_BAD_RESPONSE'
  | 'USAGE_CLIENT_QUEUE_FULL'
  | 'USAGE_CLIENT_CLOSED'
  | 'USAGE_CLIENT_SPOOL_IO'
  | 'USAGE_CLIENT_SPOOL_CORRUPT'
  | 'USAGE_CLIENT_SPOOL_LOCKED'
  | 'USAGE_CLIENT_INTERNAL'

export class UsageClientError extends Error {
  readonly code: UsageClientErrorCode
  /** Ids of the events this failure concerns (empty when it concerns none, e.g. a spool read). */
  eventIds: readonly string[] = []

  constructor(code: UsageClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** Bad options or environment: thrown by the constructor and `fromEnv`, never later. */
export class UsageClientConfigError extends UsageClientError {
  constructor(message: string) {
    super('USAGE_CLIENT_CONFIG', message)
  }
}

/** `track()` got something that is not a valid usage event; it is counted as failed. */
export class InvalidEventError extends UsageClientError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('USAGE_CLIENT_INVALID_EVENT', message, options)
  }
}

/** The event's metadata could not be serialized or was too large; the event is sent without it. */
export class MetadataDroppedError extends UsageClientError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('USAGE_CLIENT_METADATA_DROPPED', message, options)
  }
}

/** The service answered `invalid` for one event of a batch; that event is counted as failed. */
export class EventRejectedError extends UsageClientError {
  readonly serverCode: string
  constructor(serverCode: string, message: string) {
    super('USAGE_CLIENT_EVENT_REJECTED', message)
    this.serverCode = serverCode
  }
}

/** The service rejected a whole request with a non-retryable 4xx (bad key, wrong bot, malformed). */
export class RequestRejectedError extends UsageClientError {
  readonly statusCode: number
  readonly serverCode: string | undefined
  constructor(statusCode: number, serverCode: string | undefined, message: string) {
    super('USAGE_CLIENT_REQUEST_REJECTED', message)
    this.statusCode = statusCode
    this.serverCode = serverCode
  }
}

/** 429 or 5xx: retried with backoff, honouring `retryAfterMs` when the service sent one. */
export class RetryableHttpError extends UsageClientError {
  readonly statusCode: number
  readonly retryAfterMs: number | undefined
  constructor(statusCode: number, retryAfterMs: number | undefined, message: string) {
    super('USAGE_CLIENT_HTTP_RETRYABLE', message)
    this.statusCode = statusCode
    this.retryAfterMs = retryAfterMs
  }
}

/** Connection refused, reset, DNS failure or a socket closed mid-request: retried. */
export class NetworkError extends UsageClientError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('USAGE_CLIENT_NETWORK', message, options)
  }
}

/** No complete answer within `timeoutMs`: retried. */
export class RequestTimeoutError extends UsageClientError {
  constructor(timeoutMs: number) {
    super('USAGE_CLIENT_TIMEOUT', `no response from the usage service within ${timeoutMs} ms`)
  }
}

/** A 200 whose body is not the batch response contract: retried (the server dedupes). */
export class BadResponseError extends UsageClientError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('USAGE_CLIENT_BAD_RESPONSE', message, options)
  }
}

/** The in-memory queue was full and there is no spool (or the spool failed): the event is dropped. */
export class QueueFullError extends UsageClientError {
  constructor(message: string) {
    super('USAGE_CLIENT_QUEUE_FULL', message)
  }
}

/** `track()` after `close()`, or events left unsent at the close deadline without a spool. */
export class ClientClosedError extends UsageClientError {
  constructor(message: string) {
    super('USAGE_CLIENT_CLOSED', message)
  }
}

/** Reading or writing the spool failed (disk full, permissions). */
export class SpoolIoError extends UsageClientError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('USAGE_CLIENT_SPOOL_IO', message, options)
  }
}

/** A spool line that is not a valid event (torn write, manual edit): skipped. */
export class SpoolCorruptLineError extends UsageClientError {
  readonly file: string
  readonly line: number
  constructor(file: string, line: number, message: string) {
    super('USAGE_CLIENT_SPOOL_CORRUPT', `${file}:${line}: ${message}`)
    this.file = file
    this.line = line
  }
}

/** Another live process holds the spool directory; this client runs without a spool. */
export class SpoolLockedError extends UsageClientError {
  constructor(message: string) {
    super('USAGE_CLIENT_SPOOL_LOCKED', message)
  }
}

/** A bug in the client itself, caught before it could reach the host. */
export class InternalError extends UsageClientError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('USAGE_CLIENT_INTERNAL', message, options)
  }
}
