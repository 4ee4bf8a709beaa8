/**
 * Strict acceptance of a dataset match. The dataset matches many models by prefix
 * ('claude-sonnet-5' starts_with), so a newer model whose name extends an older one
 * ('claude-sonnet-5-5', 'gpt-4o-2') would be priced as the older model. A match is accepted only
 * when what follows the matched prefix (or contained name) does not start a new version number:
 * a separator followed by a one- or two-digit number ('-5', '.1', '-5-20260101') is a newer
 * version and refused; dates and snapshots ('-20250929', '-2024-08-06', '-002', '@20250514'),
 * suffixes ('-latest', '-preview', ':thinking') and nothing at all are accepted. Exact names and
 * the dataset's regexes are accepted as they are.
 */
import type { MatchLogic } from '@pydantic/genai-prices'

const NEWER_VERSION = /^[-._]\d{1,2}(?=$|[-._@:/])/

function remainderAccepted(rest: string): boolean {
  return !NEWER_VERSION.test(rest)
}

/** True when the name matches `logic` through at least one rule that is not a version extension. */
export function strictlyMatches(logic: MatchLogic, name: string): boolean {
  const lower = name.toLowerCase()
  if ('or' in logic) return logic.or.some((part) => strictlyMatches(part, name))
  if ('and' in logic) return logic.and.every((part) => strictlyMatches(part, name))
  if ('equals' in logic) return lower === logic.equals.toLowerCase()
  if ('regex' in logic) return new RegExp(logic.regex).test(name)
  if ('ends_with' in logic) return lower.endsWith(logic.ends_with.toLowerCase())
  if ('starts_with' in logic) {
    const prefix = logic.starts_with.toLowerCase()
    return lower.startsWith(prefix) && remainderAccepted(lower.slice(prefix.length))
  }
  if ('contains' in logic) {
    const needle = logic.contains.toLowerCase()
    for (let at = lower.indexOf(needle); at >= 0; at = lower.indexOf(needle, at + 1)) {
      if (remainderAccepted(lower.slice(at + needle.length))) return true
    }
    return false
  }
  return false
}

// The dataset retries compact dates as dashed ones (gpt-4o-20240806 -> gpt-4o-2024-08-06).
const COMPACT_DATE = /(-)(20\d{2})(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])(?=-|:|$)/g

/** The spellings the dataset itself tries for a name. */
export function datasetSpellings(name: string): string[] {
  const dashed = name.replace(COMPACT_DATE, '$1$2-$3-$4')
  return dashed === name ? [name] : [name, dashed]
}

/** True when `name` is `pattern` ('exact' or 'prefix*'), both lower-case. */
export function namePatternMatches(pattern: string, name: string): boolean {
  return pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : name === pattern
}
