import { randomUUID } from 'node:crypto'
import type { IncomingMessage } from 'node:http'

/** A client's X-Request-Id is kept only when it is short and cannot break a log line or a header. */
const SAFE_REQUEST_ID = /^[A-Za-z0-9._:-]{1,64}$/

/**
 * The id of a request, echoed in X-Request-Id and logged as reqId: the caller's own when it is at
 * most 64 characters of A-Z a-z 0-9 . _ : -, else a new UUID (a huge or odd header is not echoed).
 */
export function requestIdOf(request: IncomingMessage): string {
  const given = request.headers['x-request-id']
  return typeof given === 'string' && SAFE_REQUEST_ID.test(given) ? given : randomUUID()
}
