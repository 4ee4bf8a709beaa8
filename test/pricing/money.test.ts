import t from 'tap'
import {
  costForTokens,
  decimalFromNumber,
  formatUsd,
  isValidPrice,
  multiplyDecimals,
  multiplyUsd,
  parseUsd,
  usdFromNumber,
  usdToNumber,
} from '../../src/lib/money.js'

t.test('parseUsd reads exact pico-USD', async (t) => {
  t.equal(parseUsd('0.00495'), 4_950_000_000n)
  t.equal(parseUsd('0'), 0n)
  t.equal(parseUsd('3'), 3_000_000_000_000n)
  t.equal(parseUsd('0.000000000001'), 1n)
  t.equal(parseUsd('-0.1'), -100_000_000_000n)
  t.equal(parseUsd('12345678901234567890.5'), 12_345_678_901_234_567_890_500_000_000_000n)
  t.equal(parseUsd('1.50000000000000'), 1_500_000_000_000n, 'zeros past 12 digits lose nothing')
})

t.test('parseUsd rejects what is not an exact decimal', async (t) => {
  for (const bad of ['', ' 1', '1 ', '+1', '1e-5', '.5', '5.', '0x10', 'NaN', '1,5', '--1', 'abc']) {
    t.throws(() => parseUsd(bad), TypeError, JSON.stringify(bad))
  }
  t.throws(() => parseUsd('0.0000000000001'), RangeError, 'below a pico-dollar')
})

t.test('formatUsd renders the minimal decimal', async (t) => {
  t.equal(formatUsd(4_950_000_000n), '0.00495')
  t.equal(formatUsd(0n), '0')
  t.equal(formatUsd(1n), '0.000000000001')
  t.equal(formatUsd(3_000_000_000_000n), '3')
  t.equal(formatUsd(1_230_000_000_000n), '1.23')
  t.equal(formatUsd(-100_000_000_000n), '-0.1')
  t.equal(formatUsd(-1n), '-0.000000000001')
  for (const text of ['0.00495', '123.456789012345', '-7.5', '0.1', '1000000']) {
    t.equal(formatUsd(parseUsd(text)), text, `round trip ${text}`)
  }
})

t.test('usdToNumber is only a rendering', async (t) => {
  t.equal(usdToNumber(4_950_000_000n), 0.00495)
  t.equal(usdToNumber(0n), 0)
})

t.test('costForTokens is exact for dataset-style prices', async (t) => {
  t.equal(costForTokens(150, '3'), parseUsd('0.00045')) // 150*3/1e6
  t.equal(costForTokens(300, '15'), parseUsd('0.0045')) // 300*15/1e6
  t.equal(costForTokens(1, '0.075'), parseUsd('0.000000075'))
  t.equal(costForTokens(500, '0.01875'), parseUsd('0.000009375'))
  t.equal(costForTokens(0, '15'), 0n)
  t.equal(costForTokens(1_000_000, '0'), 0n)
  t.equal(costForTokens(9_007_199_254_740_991, '1000'), parseUsd('9007199254740.991'), 'no overflow near MAX_SAFE_INTEGER')
})

t.test('costForTokens rounds half-up at 12 decimals only when it must', async (t) => {
  t.equal(costForTokens(1, '0.000001'), 1n, '1e-12 USD is exact')
  t.equal(costForTokens(1, '0.0000005'), 1n, '0.5 pico rounds up')
  t.equal(costForTokens(1, '0.0000004'), 0n, '0.4 pico rounds down')
  t.equal(costForTokens(3, '0.0000005'), 2n, '1.5 pico rounds up')
  t.equal(costForTokens(1, '0.00000149'), 1n, '1.49 pico rounds down')
})

t.test('costForTokens rejects bad input', async (t) => {
  t.throws(() => costForTokens(-1, '3'), RangeError)
  t.throws(() => costForTokens(1.5, '3'), RangeError)
  t.throws(() => costForTokens(Number.NaN, '3'), RangeError)
  t.throws(() => costForTokens(1, '-3'), RangeError)
  t.throws(() => costForTokens(1, '3e2'), TypeError)
})

t.test('summing 100000 tiny costs is exact', async (t) => {
  let exact = 0n
  let float = 0
  for (let i = 0; i < 100_000; i++) {
    exact += costForTokens(1, '0.075') // 7.5e-8 USD each
    float += 0.075 / 1e6
  }
  t.equal(formatUsd(exact), '0.0075')
  t.not(float, 0.0075, 'the float sum drifts, which is why money is bigint')

  let picos = 0n
  for (let i = 0; i < 100_000; i++) picos += costForTokens(1, '0.000001')
  t.equal(formatUsd(picos), '0.0000001', '100000 one-pico costs')
})

t.test('decimalFromNumber gives the shortest decimal without exponent', async (t) => {
  t.equal(decimalFromNumber(3), '3')
  t.equal(decimalFromNumber(0.075), '0.075')
  t.equal(decimalFromNumber(0.01875), '0.01875')
  t.equal(decimalFromNumber(1.1), '1.1')
  t.equal(decimalFromNumber(1e-7), '0.0000001')
  t.equal(decimalFromNumber(1.5e-7), '0.00000015')
  t.equal(decimalFromNumber(-2.5e-8), '-0.000000025')
  t.equal(decimalFromNumber(1e21), '1000000000000000000000')
  t.equal(decimalFromNumber(1.25e22), '12500000000000000000000')
  t.throws(() => decimalFromNumber(Number.POSITIVE_INFINITY), RangeError)
})

t.test('usdFromNumber converts reported float costs', async (t) => {
  t.equal(usdFromNumber(0.00495), parseUsd('0.00495'))
  t.equal(usdFromNumber(0.1 + 0.2), parseUsd('0.3'), '0.30000000000000004 rounds to 0.3')
  t.equal(usdFromNumber(1.5e-12), 2n)
  t.equal(usdFromNumber(-1.5e-12), -2n, 'half away from zero')
  t.equal(usdFromNumber(1.4e-12), 1n)
})

t.test('isValidPrice', async (t) => {
  for (const good of ['0', '3', '0.075', '1000', '0.000000000001']) t.ok(isValidPrice(good), good)
  for (const bad of ['-1', '', '1e3', '0.0000000000001', ' 3', 'three']) t.notOk(isValidPrice(bad), bad)
})

t.test('modifiers multiply exactly and round half-up once', async (t) => {
  t.equal(multiplyDecimals('0.5', '1.1'), '0.55')
  t.equal(multiplyDecimals('2', '1.1'), '2.2')
  t.equal(multiplyDecimals('0.5', '2'), '1')
  t.equal(multiplyDecimals('3', '4'), '12')
  t.equal(multiplyUsd(75_000_000_000n, '0.55'), 41_250_000_000n) // $0.075 * 0.55 = $0.04125
  t.equal(multiplyUsd(3n, '0.5'), 2n, '1.5 pico-USD rounds half-up to 2')
  t.equal(multiplyUsd(1n, '0.4'), 0n)
})
