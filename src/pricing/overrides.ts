import { canonicalProvider } from './dataset.js'
import { isValidPrice, USD_FRACTION_DIGITS } from '../lib/money.js'
import type { OverrideProblem, PriceOverride } from './types.js'

const MAX_PATTERN_LENGTH = 200

/** An override prepared for matching: provider canonicalised, pattern turned into a matcher. */
export interface CompiledOverride {
  override: PriceOverride
  provider: string
  /** True when the whole (normalised, lower-case) model name matches the glob. */
  matches: (name: string) => boolean
  exact: boolean
  /** Characters other than '*': a longer literal part is a more specific pattern. */
  specificity: number
}

export function compileOverride(override: PriceOverride): CompiledOverride {
  const pattern = override.modelPattern.trim().toLowerCase()
  return {
    override,
    provider: canonicalProvider(override.provider),
    matches: globMatcher(pattern),
    exact: !pattern.includes('*'),
    specificity: pattern.replaceAll('*', '').length,
  }
}

/**
 * A matcher for a glob where `*` stands for any run of characters (also none) and every other
 * character for itself, over the whole name. A RegExp of `.*` runs backtracks: the pattern
 * `*a*a*a*a*a*a*a*b` took 6.8 s against a 60-character name, per event. Here the literal
 * parts are found left to right, each at its first occurrence after the previous one, which
 * is never worse than any later occurrence: one pass over the name per literal, no backtracking.
 */
export function globMatcher(glob: string): (name: string) => boolean {
  const parts = glob.split('*')
  if (parts.length === 1) return (name) => name === glob
  const first = parts[0]
  const last = parts[parts.length - 1]
  const middle = parts.slice(1, -1).filter((p) => p !== '')
  const fixed = first.length + last.length
  return (name) => {
    if (name.length < fixed || !name.startsWith(first) || !name.endsWith(last)) return false
    let at = first.length
    const end = name.length - last.length
    for (const part of middle) {
      const found = name.indexOf(part, at)
      if (found < 0 || found + part.length > end) return false
      at = found + part.length
    }
    return true
  }
}

/**
 * The override for an event, among those active at `at` whose provider matches and whose pattern
 * matches one of `modelNames` (normalised spellings). Most specific first: an exact name beats a
 * glob, a longer glob beats a shorter one, then the latest effectiveFrom, then the smallest id.
 */
export function pickOverride(
  overrides: readonly CompiledOverride[],
  provider: string,
  modelNames: readonly string[],
  at: Date,
): PriceOverride | null {
  let best: CompiledOverride | null = null
  for (const candidate of overrides) {
    const { override } = candidate
    if (candidate.provider !== provider) continue
    if (at < override.effectiveFrom || (override.effectiveTo !== null && at >= override.effectiveTo)) continue
    if (!modelNames.some((name) => candidate.matches(name))) continue
    if (best === null || moreSpecific(candidate, best)) best = candidate
  }
  return best === null ? null : best.override
}

function moreSpecific(a: CompiledOverride, b: CompiledOverride): boolean {
  if (a.exact !== b.exact) return a.exact
  if (a.specificity !== b.specificity) return a.specificity > b.specificity
  const fromA = a.override.effectiveFrom.getTime()
  const fromB = b.override.effectiveFrom.getTime()
  if (fromA !== fromB) return fromA > fromB
  return a.override.id < b.override.id
}

type OverrideInput = Omit<PriceOverride, 'id'> & { id?: string }

/**
 * Every problem with an override an admin wants to store, each naming its field; empty when valid.
 * `existing` is what is stored; when `o.id` is set (an update), the stored entry with that id is
 * ignored for the overlap check.
 */
export function overrideProblems(o: OverrideInput, existing: readonly PriceOverride[]): OverrideProblem[] {
  const problems: OverrideProblem[] = []
  const problem = (field: string, message: string): void => {
    problems.push({ field, message })
  }

  if (typeof o.provider !== 'string' || o.provider.trim() === '') problem('provider', 'must be a non-empty string')
  if (typeof o.modelPattern !== 'string' || o.modelPattern.trim() === '') {
    problem('modelPattern', 'must be a non-empty model name or glob')
  } else if (o.modelPattern.length > MAX_PATTERN_LENGTH) {
    problem('modelPattern', `must be at most ${MAX_PATTERN_LENGTH} characters`)
  } else if (/\s/.test(o.modelPattern)) {
    problem('modelPattern', 'must not contain whitespace')
  }

  const fromValid = isValidDate(o.effectiveFrom)
  if (!fromValid) problem('effectiveFrom', 'must be a valid date')
  const toValid = o.effectiveTo === null || isValidDate(o.effectiveTo)
  if (!toValid) problem('effectiveTo', 'must be a valid date or null')
  if (fromValid && toValid && o.effectiveTo !== null && o.effectiveTo <= o.effectiveFrom) {
    problem('effectiveTo', 'must be later than effectiveFrom')
  }

  checkPrice(problem, 'input', o.input, false)
  checkPrice(problem, 'output', o.output, false)
  checkPrice(problem, 'cacheRead', o.cacheRead, true)
  checkPrice(problem, 'cacheWrite', o.cacheWrite, true)
  checkPrice(problem, 'cacheWrite1h', o.cacheWrite1h, true)
  checkPrice(problem, 'reasoning', o.reasoning, true)

  if (!Array.isArray(o.tiers)) {
    problem('tiers', 'must be an array')
  } else {
    let previous: number | null = null
    o.tiers.forEach((tier, index) => {
      const field = `tiers[${index}]`
      const threshold = tier.aboveInputTokens
      if (!Number.isSafeInteger(threshold) || threshold < 0) {
        problem(`${field}.aboveInputTokens`, 'must be a non-negative integer')
      } else {
        if (previous !== null && threshold <= previous) {
          problem(`${field}.aboveInputTokens`, `must be greater than the previous tier's ${previous}: tiers are sorted ascending`)
        }
        previous = threshold
      }
      checkPrice(problem, `${field}.input`, tier.input, false)
      checkPrice(problem, `${field}.output`, tier.output, false)
      checkPrice(problem, `${field}.cacheRead`, tier.cacheRead, true)
      checkPrice(problem, `${field}.cacheWrite`, tier.cacheWrite, true)
      checkPrice(problem, `${field}.cacheWrite1h`, tier.cacheWrite1h, true)
    })
  }

  if (problems.length === 0) {
    const provider = canonicalProvider(o.provider)
    const pattern = o.modelPattern.trim().toLowerCase()
    for (const other of existing) {
      if (o.id !== undefined && other.id === o.id) continue
      if (canonicalProvider(other.provider) !== provider || other.modelPattern.trim().toLowerCase() !== pattern) continue
      if (overlaps(o.effectiveFrom, o.effectiveTo, other.effectiveFrom, other.effectiveTo)) {
        const until = other.effectiveTo === null ? 'open-ended' : `until ${other.effectiveTo.toISOString()}`
        problem(
          'effectiveFrom',
          `overlaps override ${other.id} for ${provider} ${other.modelPattern} (from ${other.effectiveFrom.toISOString()}, ${until})`,
        )
      }
    }
  }
  return problems
}

function checkPrice(
  problem: (field: string, message: string) => void,
  field: string,
  value: string | null | undefined,
  optional: boolean,
): void {
  if (value === undefined || value === null) {
    if (!optional) problem(field, 'is required: USD per million tokens as a decimal string, e.g. "2.5"')
    return
  }
  if (typeof value === 'string' && value.startsWith('-')) {
    problem(field, 'must not be negative')
  } else if (!isValidPrice(value)) {
    problem(
      field,
      `must be USD per million tokens as a decimal string with at most ${USD_FRACTION_DIGITS} fractional digits, e.g. "2.5"`,
    )
  }
}

function isValidDate(value: unknown): value is Date {
  return value instanceof Date && !Number.isNaN(value.getTime())
}

function overlaps(fromA: Date, toA: Date | null, fromB: Date, toB: Date | null): boolean {
  return (toB === null || fromA < toB) && (toA === null || fromB < toA)
}
