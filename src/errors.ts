import createError from '@fastify/error'
import { STATUS_CODES } from 'node:http'
import { Type } from 'typebox'

/**
 * Every error the API returns, declared once. Codes are stable: clients and dashboards match
 * on `code`, never on `message`.
 */
export const Errors = {
  validation: createError('VALIDATION_ERROR', '%s', 400),
  invalidJson: createError('INVALID_JSON', 'Body is not valid JSON: %s', 400),
  emptyJson: createError('INVALID_JSON', 'Body must not be empty when Content-Type is application/json', 400),
  unsupportedMediaType: createError('UNSUPPORTED_MEDIA_TYPE', 'Content-Type %s is not supported; send application/json', 415),
  bodyTooLarge: createError('BODY_TOO_LARGE', 'Body exceeds the limit of %s bytes', 413),
  unauthorized: createError('UNAUTHORIZED', 'Missing or invalid API key: send Authorization: Bearer <key>', 401),
  forbidden: createError('FORBIDDEN', '%s', 403),
  notFound: createError('NOT_FOUND', '%s', 404),
  rateLimited: createError('RATE_LIMITED', 'Rate limit exceeded: retry in %s seconds', 429),
  overloaded: createError('OVERLOADED', 'Service is overloaded: retry in %s seconds', 503),
  underPressure: createError('OVERLOADED', 'Service is under pressure (event loop or memory): retry in a second', 503),
  writeFailed: createError('WRITE_FAILED', 'Storing the events failed and nothing was stored: retry in %s seconds', 503),
  databaseUnavailable: createError('DATABASE_UNAVAILABLE', 'Database is unavailable: retry later', 503),
  /**
   * The database refused the event's values (SQLSTATE class 22, 23 or 54) although validation
   * passed: sending it again cannot succeed, so it is not a 503. Its group's other events are stored.
   */
  unstorableEvent: createError('UNSTORABLE_EVENT', '%s could not be stored: the database refused its values (SQLSTATE %s); do not retry it unchanged', 422),
  databaseBusy: createError('DATABASE_BUSY', 'No database connection became free within %s ms: retry in a second', 503),
  queryTimeout: createError(
    'QUERY_TIMEOUT',
    'The query ran longer than %s ms (QUERY_TIMEOUT_MS) and was cancelled: narrow the date range or filters, or retry later',
    503,
  ),
  analyticsBusy: createError('ANALYTICS_BUSY', 'Too many heavy analytics queries are running or waiting: retry in a second', 503),
  unsupportedContentEncoding: createError('UNSUPPORTED_MEDIA_TYPE', 'Content-Encoding %s is not supported; send gzip or none', 415),
  internal: createError('INTERNAL_ERROR', 'Internal server error', 500),
  /** The last line of a JSON-lines export that failed after its first byte (CSV exports are aborted instead). */
  exportIncomplete: createError('EXPORT_INCOMPLETE', 'The export failed after %s events and this file is incomplete: retry the export', 500),
} as const

/** The body of every error response. */
export const ErrorResponse = Type.Object(
  {
    statusCode: Type.Integer(),
    code: Type.String(),
    error: Type.String(),
    message: Type.String(),
  },
  { description: 'Every error: 4xx messages name the offending field; 5xx never leak internals.' },
)

export function errorBody(statusCode: number, code: string, message: string) {
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Error', message }
}

/** True for an error declared above (matched by its code, as @fastify/error's instanceof does). */
export function isDeclared(error: unknown): boolean {
  return Object.values(Errors).some((declared) => error instanceof declared)
}
