import rateLimit from '@fastify/rate-limit'
import fp from 'fastify-plugin'
import { createHash } from 'node:crypto'
import type { Config } from '../config.js'
import { Errors } from '../errors.js'
import { sharedRateLimit } from './shared-rate-limit.js'

/**
 * Rate limits every route of the scope it is registered in (everything under /api), per key: by
 * a hash of the Authorization header, so even unknown keys are limited before they reach the
 * database, and per IP for requests without one. With REDIS_URL the counters are shared by every
 * instance (per instance while Redis is away).
 */
export const apiRateLimit = fp<Pick<Config, 'rateLimit' | 'redis'>>(async (scope, { rateLimit: limits, redis }) => {
  const shared =
    redis === null ? null : sharedRateLimit({ redisUrl: redis.url, keyPrefix: redis.keyPrefix, commandTimeoutMs: redis.commandTimeoutMs, log: scope.log })
  if (shared) {
    scope.addHook('onReady', async () => shared.connect())
    scope.addHook('onClose', async () => shared.close())
  }
  await scope.register(rateLimit, {
    max: limits.max,
    timeWindow: limits.windowMs,
    ...(shared ? { store: shared.store } : {}),
    keyGenerator: (request) => {
      const header = request.headers.authorization
      return header ? `k:${createHash('sha256').update(header).digest('base64url').slice(0, 22)}` : `ip:${request.ip}`
    },
    errorResponseBuilder: (_request, context) => new Errors.rateLimited(Math.max(1, Math.ceil(context.ttl / 1000))),
  })
})
