import { Type, type TStringOptions } from 'typebox'

/**
 * The one rule for time zone names, used by config (BUDGET_TIMEZONE), budgets, analytics and
 * reports: an IANA name (or UTC) that the runtime knows, in any letter case. Links and
 * deprecated aliases are accepted and replaced by the runtime's canonical name
 * ('US/Pacific-New' -> 'America/Los_Angeles', 'europe/berlin' -> 'Europe/Berlin'), which is
 * the name the service stores, echoes and hands to the database. Offsets ('+05:30') are not
 * names of this form.
 */
const TIME_ZONE_NAME = /^[A-Za-z][A-Za-z0-9_+-]*(\/[A-Za-z0-9_+-]+){0,2}$/

/** The canonical spelling of a valid zone name; null when `name` is not one. */
export function canonicalTimeZone(name: string): string | null {
  if (name.length > 64 || !TIME_ZONE_NAME.test(name)) return null
  try {
    return new Intl.DateTimeFormat('en-US', { timeZone: name }).resolvedOptions().timeZone
  } catch {
    return null
  }
}

/** What a refused zone's 400 (or config problem) says, naming the field. */
export function timeZoneProblem(field: string, got: string): string {
  return `${field} must be an IANA time zone name such as UTC or Europe/Berlin (got "${got}")`
}

/** The wire schema of a time zone field; the value is then checked with canonicalTimeZone. */
export const TimeZoneName = (options: TStringOptions = {}) => Type.String({ minLength: 1, maxLength: 64, ...options })
