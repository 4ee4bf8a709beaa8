/**
 * Exact money arithmetic. Amounts are bigint pico-USD (1e-12 USD); prices are decimal strings in
 * USD per million tokens. No floating point touches a cost: see docs/pricing.md.
 */

export const PICO_PER_USD = 1_000_000_000_000n
export const USD_FRACTION_DIGITS = 12
const TOKENS_PER_PRICE_UNIT = 1_000_000n

const DECIMAL_PATTERN = /^(-)?(\d+)(?:\.(\d+))?$/

/** An exact decimal: `units / 10 ** scale`. */
export interface Decimal {
  units: bigint
  scale: number
}

/** Parses a plain decimal string ("3", "0.075", "-1.5"); no exponent, no spaces, no "+". */
export function parseDecimal(decimal: string): Decimal {
  const match = typeof decimal === 'string' ? DECIMAL_PATTERN.exec(decimal) : null
  if (match === null) {
    throw new TypeError(`not a decimal number: ${JSON.stringify(decimal)}`)
  }
  const [, sign, whole, fraction = ''] = match
  const magnitude = BigInt(whole + fraction)
  return { units: sign === '-' ? -magnitude : magnitude, scale: fraction.length }
}

/** True when `price` is a non-negative decimal string with at most 12 fractional digits. */
export function isValidPrice(price: string): boolean {
  if (typeof price !== 'string' || !DECIMAL_PATTERN.test(price) || price.startsWith('-')) return false
  return parseDecimal(price).scale <= USD_FRACTION_DIGITS
}

/** "0.00495" -> 4950000000n. Throws on anything that is not an exact amount at pico-USD precision. */
export function parseUsd(decimal: string): bigint {
  const { units, scale } = parseDecimal(decimal)
  if (scale <= USD_FRACTION_DIGITS) return units * 10n ** BigInt(USD_FRACTION_DIGITS - scale)
  const divisor = 10n ** BigInt(scale - USD_FRACTION_DIGITS)
  if (units % divisor !== 0n) {
    throw new RangeError(`more than ${USD_FRACTION_DIGITS} fractional digits: ${decimal}`)
  }
  return units / divisor
}

/** 4950000000n -> "0.00495"; minimal form, "0" for zero, "-0.1" for negatives. */
export function formatUsd(pico: bigint): string {
  const negative = pico < 0n
  const magnitude = negative ? -pico : pico
  const whole = magnitude / PICO_PER_USD
  const fraction = (magnitude % PICO_PER_USD).toString().padStart(USD_FRACTION_DIGITS, '0').replace(/0+$/, '')
  const text = fraction === '' ? whole.toString() : `${whole}.${fraction}`
  return negative && magnitude !== 0n ? `-${text}` : text
}

/** The USD amount as a JSON number, for API responses only; never feed it back into arithmetic. */
export function usdToNumber(pico: bigint): number {
  return Number(formatUsd(pico))
}

/**
 * Exact cost of `tokens` at `usdPerMTok`, in pico-USD. Prices with up to 6 fractional digits are
 * always exact; finer prices round half-up at the 12th USD decimal (costs are never negative).
 */
export function costForTokens(tokens: number, usdPerMTok: string): bigint {
  if (!Number.isSafeInteger(tokens) || tokens < 0) {
    throw new RangeError(`token count must be a non-negative integer, got ${tokens}`)
  }
  const price = parseDecimal(usdPerMTok)
  if (price.units < 0n) throw new RangeError(`price must not be negative, got ${usdPerMTok}`)
  // pico = tokens * units / 10^scale * 1e12 / 1e6
  const numerator = BigInt(tokens) * price.units * (PICO_PER_USD / TOKENS_PER_PRICE_UNIT)
  return divideRoundHalfUp(numerator, 10n ** BigInt(price.scale))
}

/**
 * Shortest decimal string of a finite float, without exponent: 0.075 -> "0.075", 1e-7 -> "0.0000001".
 * This is how the dataset's float prices become exact decimals.
 */
export function decimalFromNumber(value: number): string {
  if (!Number.isFinite(value)) throw new RangeError(`not a finite number: ${value}`)
  const text = String(value)
  const exponentMatch = /^(-?)(\d+)(?:\.(\d+))?e([+-]\d+)$/.exec(text)
  if (exponentMatch === null) return text
  const [, sign, whole, fraction = '', exponentText] = exponentMatch
  const digits = whole + fraction
  const pointAt = whole.length + Number(exponentText)
  let plain: string
  if (pointAt <= 0) plain = `0.${'0'.repeat(-pointAt)}${digits}`
  else if (pointAt >= digits.length) plain = digits + '0'.repeat(pointAt - digits.length)
  else plain = `${digits.slice(0, pointAt)}.${digits.slice(pointAt)}`
  return sign + plain
}

/**
 * A float USD amount (e.g. a client-reported cost) as pico-USD, from its shortest decimal form,
 * rounded half away from zero at 12 decimals.
 */
export function usdFromNumber(value: number): bigint {
  const { units, scale } = parseDecimal(decimalFromNumber(value))
  if (scale <= USD_FRACTION_DIGITS) return units * 10n ** BigInt(USD_FRACTION_DIGITS - scale)
  const divisor = 10n ** BigInt(scale - USD_FRACTION_DIGITS)
  return units < 0n ? -divideRoundHalfUp(-units, divisor) : divideRoundHalfUp(units, divisor)
}

function divideRoundHalfUp(numerator: bigint, divisor: bigint): bigint {
  const quotient = numerator / divisor
  const remainder = numerator % divisor
  return remainder * 2n >= divisor ? quotient + 1n : quotient
}

/**
 * `pico` multiplied by a non-negative decimal multiplier ("0.5", "2", "1.1"), rounded half-up to
 * a whole pico-USD: how a service-tier modifier scales a bucket's cost.
 */
export function multiplyUsd(pico: bigint, multiplier: string): bigint {
  const factor = parseDecimal(multiplier)
  if (factor.units < 0n || pico < 0n) throw new RangeError(`cannot scale ${pico} by ${multiplier}`)
  return divideRoundHalfUp(pico * factor.units, 10n ** BigInt(factor.scale))
}

/** The exact product of two non-negative decimal strings ("0.5" x "1.1" = "0.55"). */
export function multiplyDecimals(a: string, b: string): string {
  const x = parseDecimal(a)
  const y = parseDecimal(b)
  const units = x.units * y.units
  const scale = x.scale + y.scale
  if (scale === 0) return units.toString()
  const digits = units.toString().padStart(scale + 1, '0')
  const text = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`.replace(/0+$/, '').replace(/\.$/, '')
  return text
}
