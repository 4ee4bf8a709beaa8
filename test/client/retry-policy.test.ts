import t from 'tap'
import { NetworkError, RetryableHttpError, defaultRetryPolicy, parseRetryAfter, retryDelayMs } from '../../src/client/index.js'

t.test('parseRetryAfter reads delta-seconds and HTTP dates', async (t) => {
  const now = Date.parse('2025-01-01T00:00:00Z')
  t.equal(parseRetryAfter('3', now), 3000)
  t.equal(parseRetryAfter('0.5', now), 500)
  t.equal(parseRetryAfter('Wed, 01 Jan 2025 00:00:10 GMT', now), 10_000)
  t.equal(parseRetryAfter('Tue, 31 Dec 2024 00:00:00 GMT', now), 0)
  t.equal(parseRetryAfter('soon', now), undefined)
  t.equal(parseRetryAfter(undefined, now), undefined)
})

t.test('retryDelayMs: full jitter under an exponential ceiling, Retry-After wins but is capped', async (t) => {
  const policy = { ...defaultRetryPolicy, baseDelayMs: 100, maxDelayMs: 1000, maxRetryAfterMs: 5000 }
  const network = new NetworkError('refused')
  t.equal(retryDelayMs(policy, 0, network, () => 0.999), 99)
  t.equal(retryDelayMs(policy, 3, network, () => 0.5), 400)
  t.equal(retryDelayMs(policy, 10, network, () => 0.999), 999)
  t.equal(retryDelayMs(policy, 0, network, () => 0), 0)
  t.equal(retryDelayMs(policy, 0, new RetryableHttpError(503, 2000, '503')), 2000)
  t.equal(retryDelayMs(policy, 0, new RetryableHttpError(503, 60_000, '503')), 5000)
})
