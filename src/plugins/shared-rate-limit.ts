import type { FastifyRateLimitStore, FastifyRateLimitStoreCtor } from '@fastify/rate-limit'
import type { FastifyBaseLogger } from 'fastify'
import { Redis } from 'ioredis'

const REDIS_CONNECT_TIMEOUT_MS = 2000
/** Local fallback counters kept at most; past this they are dropped (a burst of keys, not a leak). */
const MAX_LOCAL_KEYS = 10_000

/**
 * Fixed window per key: the first hit of a window sets its expiry; every hit returns the count
 * and the time left. One round trip, atomic, so several instances share one counter.
 */
const INCREMENT_SCRIPT = `
local current = redis.call('INCR', KEYS[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return { current, ttl }
`

type Callback = (error: Error | null, result?: { current: number; ttl: number }) => void

interface ScriptedRedis {
  usageRateLimit(key: string, windowMs: number): Promise<[number, number]>
}

export interface SharedRateLimit {
  /** The store class @fastify/rate-limit instantiates (its `store` option). */
  store: FastifyRateLimitStoreCtor
  /** Connects, waiting at most the connect timeout; never throws (while not connected, requests are counted locally). */
  connect(): Promise<void>
  close(): Promise<void>
}

/** The per-instance counters used while Redis cannot answer. */
class LocalWindows {
  private readonly windows = new Map<string, { count: number; resetAt: number }>()

  incr(key: string, windowMs: number): { current: number; ttl: number } {
    const now = Date.now()
    let w = this.windows.get(key)
    if (!w || w.resetAt <= now) {
      if (this.windows.size >= MAX_LOCAL_KEYS) this.windows.clear()
      w = { count: 0, resetAt: now + windowMs }
      this.windows.set(key, w)
    }
    w.count++
    return { current: w.count, ttl: w.resetAt - now }
  }
}

/**
 * Rate-limit counters shared by every instance through Redis. Redis is an optimisation, never a
 * dependency: while it is unreachable (down at start, stopped, hung) each request is counted in
 * this process instead, so the limit degrades to per-instance and no request fails or waits on it.
 * One warning is logged per outage, and one line when Redis is back.
 */
export function sharedRateLimit(opts: {
  redisUrl: string
  keyPrefix: string
  /** A hung Redis (a dead one refuses at once) delays a request by at most this before it is counted locally. */
  commandTimeoutMs: number
  log: FastifyBaseLogger
}): SharedRateLimit {
  const redis = new Redis(opts.redisUrl, {
    // A command issued while disconnected fails at once instead of queueing until Redis returns.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    connectTimeout: REDIS_CONNECT_TIMEOUT_MS,
    commandTimeout: opts.commandTimeoutMs,
    // Connected once the app is ready: compiling routes at start blocks the event loop for
    // longer than a connect timeout, which would log a false outage.
    lazyConnect: true,
    // Keep trying to reconnect for as long as the process runs, at most every 2 s.
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  })
  redis.defineCommand('usageRateLimit', { numberOfKeys: 1, lua: INCREMENT_SCRIPT })
  const scripted = redis as unknown as ScriptedRedis

  let degraded = false
  const degrade = (err: Error) => {
    if (degraded) return
    degraded = true
    opts.log.warn({ err: { message: err.message } }, 'Redis is unreachable: rate limits are per instance until it is back')
  }
  redis.on('error', degrade)
  redis.on('ready', () => {
    if (!degraded) return
    degraded = false
    opts.log.info('Redis is reachable again: rate limits are shared across instances')
  })

  const local = new LocalWindows()

  class SharedStore implements FastifyRateLimitStore {
    // @fastify/rate-limit constructs the store with its own options, which this store ignores.
    private readonly prefix: string
    constructor(prefix?: unknown) {
      this.prefix = typeof prefix === 'string' ? prefix : opts.keyPrefix
    }

    incr(key: string, callback: Callback, timeWindow: number): void {
      const fallback = () => callback(null, local.incr(this.prefix + key, timeWindow))
      if (redis.status !== 'ready') {
        degrade(new Error(`Redis connection is ${redis.status}`))
        fallback()
        return
      }
      scripted.usageRateLimit(this.prefix + key, timeWindow).then(
        ([current, ttl]) => callback(null, { current, ttl }),
        (err: Error) => {
          degrade(err)
          // A hung Redis (timed out, not refused) would make every request wait the timeout:
          // drop the connection, so requests count locally at once until a reconnect is ready.
          if (/timed out/i.test(err.message)) redis.disconnect(true)
          fallback()
        },
      )
    }

    child(routeOptions: { method?: unknown; url?: unknown }): FastifyRateLimitStore {
      return new SharedStore(`${this.prefix}${String(routeOptions.method)}${String(routeOptions.url)}-`)
    }
  }

  return {
    store: SharedStore as unknown as FastifyRateLimitStoreCtor,
    connect: () => redis.connect().catch(() => undefined),
    close: async () => {
      redis.disconnect()
    },
  }
}
