import type { FastifyRequest } from 'fastify'

/**
 * What a log line may say about a request and an error. Logs never carry secrets: not the query
 * string (a caller may put a key in `?key=`), not SQL text or parameters (a failed budget insert
 * would print its webhook secret), not request bodies. Errors are logged by type and code, with
 * the Postgres fields that name what failed (table, column, constraint), never its message when
 * a database produced it: those quote values.
 */

/** Query strings are dropped, the path is kept. */
export function requestForLog(req: FastifyRequest) {
  const url = req.url ?? ''
  const q = url.indexOf('?')
  return {
    method: req.method,
    url: q === -1 ? url : url.slice(0, q),
    ...(q === -1 ? {} : { query: '[redacted]' }),
    host: req.host,
    remoteAddress: req.ip,
    remotePort: req.socket?.remotePort,
  }
}

type ErrorLike = Error & Record<string, unknown>

const DB_FIELDS = ['severity', 'table', 'column', 'constraint', 'dataType', 'routine'] as const

/** pg and PGlite errors carry a SQLSTATE and a severity; Drizzle wraps them with the query and its params. */
function isDatabaseError(e: ErrorLike): boolean {
  return (typeof e.severity === 'string' && typeof e.code === 'string') || ('query' in e && 'params' in e)
}

function causes(err: ErrorLike): ErrorLike[] {
  const chain: ErrorLike[] = []
  for (let e: unknown = err; e instanceof Error && chain.length < 5; e = (e as ErrorLike).cause) chain.push(e as ErrorLike)
  return chain
}

/** The stack's frames without its first line (the message). */
function frames(stack: unknown): string | undefined {
  if (typeof stack !== 'string') return undefined
  const at = stack.indexOf('\n    at ')
  return at === -1 ? undefined : stack.slice(at + 1)
}

export function errorForLog(err: unknown): Record<string, unknown> {
  if (!(err instanceof Error)) return { type: typeof err }
  const chain = causes(err as ErrorLike)
  const out: Record<string, unknown> = { type: err.name || err.constructor.name }
  const code = chain.map((e) => e.code).find((c) => typeof c === 'string' || typeof c === 'number')
  if (code !== undefined) out.code = code
  const db = chain.find(isDatabaseError)
  if (db) {
    const pgError = chain.find((e) => typeof e.severity === 'string') ?? db
    if (typeof pgError.code === 'string') out.sqlState = pgError.code
    for (const f of DB_FIELDS) if (typeof pgError[f] === 'string') out[f] = pgError[f]
    out.message = 'database error (its message and parameters are not logged: they may quote stored values)'
    // A driver or network failure under the query (refused, terminated, pool timeout) quotes no values.
    const root = chain[chain.length - 1]
    if (root !== db && typeof root.severity !== 'string') out.cause = scrubSecrets(root.message)
    out.stack = frames(err.stack)
    return out
  }
  out.message = scrubSecrets(chain.map((e) => e.message).join(': caused by: '))
  const stack = frames(err.stack)
  if (stack !== undefined) out.stack = scrubSecrets(stack)
  return out
}

/**
 * The last line of defence, applied to every log line: anything shaped like one of our secrets
 * (API keys, webhook secrets, Telegram bot tokens) is masked even if a code path logged it.
 */
const SECRET_SHAPES: [RegExp, string][] = [
  [/usk_[A-Za-z0-9_-]{6,}/g, 'usk_[redacted]'],
  [/whsec_[A-Za-z0-9_-]{6,}/g, 'whsec_[redacted]'],
  [/\b\d{3,20}:[A-Za-z0-9_-]{10,}/g, '[redacted bot token]'],
]

export function scrubSecrets(line: string): string {
  if (!/usk_|whsec_|\d:/.test(line)) return line
  return SECRET_SHAPES.reduce((s, [shape, mask]) => s.replace(shape, mask), line)
}
