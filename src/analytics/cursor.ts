import { Errors } from '../errors.js'
import type { EventPosition } from './queries.js'

const MICROS_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$/

/** Opaque to clients: base64url of the page's last sort key and the listing's snapshot instant. */
export function encodeCursor(p: EventPosition): string {
  return Buffer.from(JSON.stringify([p.createdAt, p.botId, p.id, p.asOf])).toString('base64url')
}

export function decodeCursor(value: string, field = 'querystring.cursor'): EventPosition {
  const invalid = () => new Errors.validation(`${field} is not a cursor returned by this endpoint`)
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(value, 'base64url').toString('utf8'))
  } catch {
    throw invalid()
  }
  if (!Array.isArray(parsed) || parsed.length !== 4 || !parsed.every((v) => typeof v === 'string')) throw invalid()
  const [createdAt, botId, id, asOf] = parsed as string[]
  if (!MICROS_UTC.test(createdAt) || !MICROS_UTC.test(asOf) || Number.isNaN(Date.parse(createdAt)) || Number.isNaN(Date.parse(asOf))) throw invalid()
  return { createdAt, botId, id, asOf }
}
