/**
 * What a database error means for the caller, by SQLSTATE class
 * (https://www.postgresql.org/docs/current/errcodes-appendix.html). Both drivers put the
 * SQLSTATE in `code`; drizzle wraps driver errors and keeps the original as `cause`.
 */

/** The five-character SQLSTATE of a database error (or of its cause), else undefined. */
export function sqlStateOf(err: unknown): string | undefined {
  for (let e = err, hops = 0; e !== null && typeof e === 'object' && hops < 3; e = (e as { cause?: unknown }).cause, hops++) {
    const code = (e as { code?: unknown }).code
    // Errno codes (EPIPE) are not SQLSTATEs; no SQLSTATE class starts with E.
    if (typeof code === 'string' && /^[0-9A-DF-Z][0-9A-Z]{4}$/.test(code)) return code
  }
  return undefined
}

/**
 * The statement failed because of the values it carried, and will fail again with them:
 * 22 data exception (bad encoding, out of range, NUL in text), 23 integrity constraint
 * violation, 54 program limit exceeded (a value too large to index, nesting too deep).
 * Anything else (connection lost, shutdown, timeout, lock conflict) is the infrastructure's.
 */
export function isDataFault(err: unknown): boolean {
  const state = sqlStateOf(err)
  return state !== undefined && /^(22|23|54)/.test(state)
}

/** 40001 serialization failure, 40P01 deadlock: the same statement may succeed when run again. */
export function isTransientConflict(err: unknown): boolean {
  const state = sqlStateOf(err)
  return state === '40001' || state === '40P01'
}

/**
 * What may be logged about a failed statement: its SQLSTATE, or for a failure below the
 * database (network, driver) the errno code and message. Never the SQL text or its parameters
 * (a driver error's message includes both; a Postgres message can quote a value).
 */
export function databaseFailureForLog(err: unknown): { sqlState?: string; errno?: string; reason?: string } {
  const sqlState = sqlStateOf(err)
  if (sqlState !== undefined) return { sqlState }
  let innermost = err
  for (let hops = 0; hops < 3 && innermost !== null && typeof innermost === 'object' && (innermost as { cause?: unknown }).cause; hops++) {
    innermost = (innermost as { cause?: unknown }).cause
  }
  const code = (innermost as { code?: unknown } | null)?.code
  const message = innermost instanceof Error && innermost !== err ? innermost.message : undefined
  return { errno: typeof code === 'string' ? code : undefined, reason: message?.slice(0, 200) }
}
