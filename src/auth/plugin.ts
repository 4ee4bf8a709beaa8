import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { Database } from '../db/connect.js'
import { Errors } from '../errors.js'
import { findActiveKeyByHash, keyDigest, recordLastUsed, sameDigest } from './keys.js'
import type { Scope } from './schemas.js'

export interface Principal {
  /** null for the ADMIN_API_KEY from the environment and for AUTH_DISABLED. */
  keyId: string | null
  scopes: ReadonlySet<Scope>
  /** The one bot this key may write and read; null for all bots. */
  botId: string | null
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Scope a caller needs (a list: any one of them); 'public' routes need no key. Every API route must declare one. */
    scope?: Scope | readonly Scope[] | 'public'
  }
  interface FastifyRequest {
    principal: Principal | null
  }
}

const ADMIN: Principal = { keyId: null, scopes: new Set(['admin', 'read', 'ingest', 'metrics']), botId: null }

export interface AuthOptions {
  adminApiKey: string | null
  authDisabled: boolean
  /** How long a looked-up key is trusted before the database is asked again. */
  cacheTtlMs: number
  /** How often lastUsedAt is written (one UPDATE for all keys used meanwhile). */
  lastUsedFlushMs: number
  /** Tells the other instances that keys changed (see ChangeFeed); they then call forget(). */
  announceChange?: () => void
}

interface CacheEntry {
  principal: Principal | null
  expires: number
}

/**
 * Resolves bearer keys to principals. Lookups are cached for cacheTtlMs (so the hot ingest path
 * does not query api_keys per request); revoking through this instance drops the cache at once,
 * other instances drop theirs when the change is announced to them, and within cacheTtlMs if
 * the announcement is lost.
 */
export class Authenticator {
  private cache = new Map<string, CacheEntry>()
  private used = new Map<string, Date>()
  private timer: NodeJS.Timeout | null = null
  /** Hashed once: each request then hashes only the key it presents. */
  private readonly adminDigest: Buffer | null

  constructor(
    private readonly database: Database,
    private readonly opts: AuthOptions,
  ) {
    this.adminDigest = opts.adminApiKey === null ? null : keyDigest(opts.adminApiKey)
    if (!opts.authDisabled) {
      this.timer = setInterval(() => void this.flushLastUsed().catch(() => undefined), opts.lastUsedFlushMs)
      this.timer.unref()
    }
  }

  async authenticate(authorization: string | undefined): Promise<Principal | null> {
    if (this.opts.authDisabled) return ADMIN
    const match = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '')
    if (!match) return null
    const key = match[1]
    const digest = keyDigest(key)
    if (this.adminDigest !== null && sameDigest(digest, this.adminDigest)) return ADMIN
    const hash = digest.toString('hex')
    const now = Date.now()
    let entry = this.cache.get(hash)
    if (!entry || entry.expires < now) {
      const stored = await findActiveKeyByHash(this.database, hash)
      entry = {
        principal: stored ? { keyId: stored.id, scopes: expandScopes(stored.scopes, stored.botId), botId: stored.botId } : null,
        expires: now + this.opts.cacheTtlMs,
      }
      if (this.cache.size > 10_000) this.cache.clear()
      this.cache.set(hash, entry)
    }
    if (entry.principal?.keyId) this.used.set(entry.principal.keyId, new Date(now))
    return entry.principal
  }

  /** After a key is created or revoked through this instance: forget here, announce to the others. */
  invalidate(): void {
    this.cache.clear()
    this.opts.announceChange?.()
  }

  /** Forget cached lookups (keys changed on another instance). */
  forget(): void {
    this.cache.clear()
  }

  async flushLastUsed(): Promise<void> {
    if (this.used.size === 0) return
    const batch = this.used
    this.used = new Map()
    await recordLastUsed(this.database, batch)
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    await this.flushLastUsed().catch(() => undefined)
  }
}

/** Scopes whose routes see every bot (keys, budgets, overrides; /metrics): never held by a bound key. */
const EVERY_BOT_SCOPES: readonly Scope[] = ['admin', 'metrics']

/**
 * admin implies read, ingest and metrics. A key bound to a bot never holds admin or metrics, so a
 * bound key that was stored with admin before that rule (POST /api/keys refuses it now) keeps
 * only what admin implies for one bot, read and ingest, and those stay limited to its bot.
 */
function expandScopes(scopes: Scope[], botId: string | null): ReadonlySet<Scope> {
  const expanded: Scope[] = scopes.includes('admin') ? ['admin', 'read', 'ingest', 'metrics'] : scopes
  return new Set(botId === null ? expanded : expanded.filter((s) => !EVERY_BOT_SCOPES.includes(s)))
}

/**
 * Guards every route registered in `scope`: a route that declares no scope fails at boot, each
 * route's OpenAPI entry gets the bearer requirement and its scope, and requests without the
 * scope get 401 (no or unknown or revoked key, all alike) or 403 (key lacks the scope).
 */
export function guardRoutes(scope: FastifyInstance, auth: Authenticator): void {
  scope.decorateRequest('principal', null)
  scope.addHook('onRoute', (route) => {
    const required = route.config?.scope
    if (!required) throw new Error(`route ${String(route.method)} ${route.url} must declare config.scope`)
    if (required === 'public') return
    const schema = (route.schema ??= {}) as Record<string, unknown>
    schema.security = [{ bearerAuth: [] }]
    const anyOf: readonly Scope[] = typeof required === 'string' ? [required] : required
    const names = anyOf.map((s) => `\`${s}\``).join(' or ')
    const sentence = `Requires an API key with scope ${names}${anyOf.includes('admin') ? '' : ' (or admin)'}.`
    const description = typeof schema.description === 'string' ? schema.description : ''
    // A GET's implicit HEAD route shares the GET's schema object: say it once.
    if (description.endsWith(sentence)) return
    schema.description = description ? `${description}\n\n${sentence}` : sentence
  })
  scope.addHook('onRequest', async (request) => {
    const required = request.routeOptions.config.scope
    if (required === 'public' || required === undefined) return
    const principal = await auth.authenticate(request.headers.authorization)
    if (!principal) throw new Errors.unauthorized()
    if (typeof required !== 'string') {
      if (!required.some((s) => principal.scopes.has(s))) throw new Errors.forbidden(`This key lacks the ${required.map((s) => `'${s}'`).join(' or ')} scope`)
      request.principal = principal
      return
    }
    if (EVERY_BOT_SCOPES.includes(required) && principal.botId !== null) {
      throw new Errors.forbidden(`This key is bound to bot '${principal.botId}': ${required} routes need a key bound to no bot`)
    }
    if (!principal.scopes.has(required)) throw new Errors.forbidden(`This key lacks the '${required}' scope`)
    request.principal = principal
  })
}

function principalOf(request: FastifyRequest): Principal {
  // guardRoutes sets it before any handler of a non-public route runs.
  return request.principal ?? ADMIN
}

/**
 * Bots the caller may read, given the botId it asked for: a bound key is silently restricted
 * to its bot and gets 403 for any other. null means no restriction.
 */
export function readableBots(request: FastifyRequest, requested: string | undefined): string[] | null {
  const { botId } = principalOf(request)
  if (botId === null) return requested === undefined ? null : [requested]
  if (requested !== undefined && requested !== botId) throw new Errors.forbidden(`This key may only read bot '${botId}'`)
  return [botId]
}

/** The bot an event is written for: defaults to the key's bot; another bot is 403. */
export function boundBot(request: FastifyRequest): string | undefined {
  return principalOf(request).botId ?? undefined
}

/**
 * A key may only be created by a caller at least as broad as it: only an unbound admin can reach
 * POST /api/keys (guardRoutes), and no key bound to a bot may hold admin or metrics.
 */
export function assertMayCreateKey(request: FastifyRequest, wanted: { scopes: readonly Scope[]; botId?: string | null }): void {
  const caller = principalOf(request)
  if (caller.botId !== null || !caller.scopes.has('admin')) throw new Errors.forbidden('Only an admin key bound to no bot may create keys')
  const everyBot = wanted.scopes.find((s) => EVERY_BOT_SCOPES.includes(s))
  if (wanted.botId != null && everyBot !== undefined) {
    throw new Errors.validation(`body.scopes must not contain ${everyBot} when body.botId is set: a key bound to a bot cannot hold the ${everyBot} scope`)
  }
}

export function assertMayWrite(request: FastifyRequest, botId: string): void {
  const bound = principalOf(request).botId
  if (bound !== null && bound !== botId) {
    throw new Errors.forbidden(`This key may only write usage for bot '${bound}' (got '${botId}')`)
  }
}
