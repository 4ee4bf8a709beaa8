import path from 'node:path'

/**
 * Every environment variable the service reads, validated once at start. A bad value stops
 * start-up with one message that lists every problem (see ConfigError), never a stack trace.
 */
export interface Config {
  port: number
  host: string
  /** Unset: embedded PGlite in dataDir. */
  databaseUrl: string | null
  /** Postgres schema the service's tables live in (search_path); lets several deployments or test runs share one database. */
  databaseSchema: string
  dataDir: string
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent'
  /** Allowed cross-origin origins; empty means no cross-origin access. '*' allows any. */
  corsOrigins: string[]
  adminApiKey: string | null
  authDisabled: boolean
  migrate: boolean
  /** Max request body in bytes. */
  bodyLimit: number
  /** Max events in one POST /api/usage/batch. */
  maxBatchSize: number
  /** How far in the future an event's createdAt may be (clock skew allowance), ms. */
  maxFutureSkewMs: number
  rateLimit: { max: number; windowMs: number }
  /** How long a verified API key is trusted before asking the database again (revocation delay on other instances). */
  authCacheTtlMs: number
  /** Longest date range an aggregate or export query may cover, days. */
  maxQueryRangeDays: number
  pgPoolSize: number
  /** How often price overrides are reloaded from the database (picks up other instances' changes). */
  priceRefreshMs: number
  ingest: {
    /** Coalesce concurrent single-event writes into one statement. */
    groupCommit: boolean
    /** Flush a group at this many events... */
    groupMaxEvents: number
    /** ...or after this many ms, whichever first. */
    groupMaxWaitMs: number
    /** Events waiting for a flush beyond which new writes get 503 + Retry-After. */
    maxQueuedEvents: number
  }
  retentionDays: number | null
}

export class ConfigError extends Error {
  readonly problems: string[]
  constructor(problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
    this.name = 'ConfigError'
    this.problems = problems
  }
}

type Env = Record<string, string | undefined>

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

/** 'memory://' selects a throw-away in-memory embedded database; anything else is a directory. */
function resolveDataDir(value: string): string {
  return value.startsWith('memory://') ? value : path.resolve(value)
}

export function loadConfig(env: Env = process.env): Config {
  const problems: string[] = []
  const str = (name: string): string | undefined => {
    const v = env[name]
    return v === undefined || v.trim() === '' ? undefined : v.trim()
  }
  const int = (name: string, def: number, min: number, max: number): number => {
    const raw = str(name)
    if (raw === undefined) return def
    const n = Number(raw)
    if (!/^-?\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) {
      problems.push(`${name} must be an integer between ${min} and ${max} (got "${raw}")`)
      return def
    }
    return n
  }
  const bool = (name: string, def: boolean): boolean => {
    const raw = str(name)
    if (raw === undefined) return def
    if (/^(true|1|yes|on)$/i.test(raw)) return true
    if (/^(false|0|no|off)$/i.test(raw)) return false
    problems.push(`${name} must be true or false (got "${raw}")`)
    return def
  }

  const databaseUrl = str('DATABASE_URL') ?? null
  if (databaseUrl !== null && !/^postgres(ql)?:\/\//.test(databaseUrl)) {
    problems.push('DATABASE_URL must start with postgres:// or postgresql://')
  }
  const databaseSchema = str('DATABASE_SCHEMA') ?? 'public'
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(databaseSchema)) {
    problems.push(`DATABASE_SCHEMA must be a lower-case SQL identifier (got "${databaseSchema}")`)
  }

  const logLevelRaw = str('LOG_LEVEL') ?? 'info'
  const logLevel = (LOG_LEVELS as readonly string[]).includes(logLevelRaw) ? (logLevelRaw as Config['logLevel']) : 'info'
  if (logLevel !== logLevelRaw) problems.push(`LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')} (got "${logLevelRaw}")`)

  const corsOrigins = (str('CORS_ORIGINS') ?? '').split(',').map((s) => s.trim()).filter(Boolean)
  for (const o of corsOrigins) {
    if (o !== '*' && !/^https?:\/\/[^/\s]+$/.test(o)) problems.push(`CORS_ORIGINS entry "${o}" must be an origin like https://app.example.com (no path) or *`)
  }

  const adminApiKey = str('ADMIN_API_KEY') ?? null
  if (adminApiKey !== null && adminApiKey.length < 24) problems.push('ADMIN_API_KEY must be at least 24 characters')

  const retention = int('RETENTION_DAYS', 0, 0, 36500)

  const config: Config = {
    port: int('PORT', 3000, 0, 65535),
    host: str('HOST') ?? '0.0.0.0',
    databaseUrl,
    databaseSchema,
    dataDir: resolveDataDir(str('DATA_DIR') ?? './data'),
    logLevel,
    corsOrigins,
    adminApiKey,
    authDisabled: bool('AUTH_DISABLED', false),
    migrate: bool('MIGRATE', true),
    bodyLimit: int('BODY_LIMIT_BYTES', 1024 * 1024, 1024, 64 * 1024 * 1024),
    maxBatchSize: int('MAX_BATCH_SIZE', 1000, 1, 10000),
    maxFutureSkewMs: int('MAX_FUTURE_SKEW_SECONDS', 300, 0, 86400) * 1000,
    rateLimit: {
      max: int('RATE_LIMIT_MAX', 6000, 1, 10_000_000),
      windowMs: int('RATE_LIMIT_WINDOW_MS', 60_000, 100, 3_600_000),
    },
    authCacheTtlMs: int('AUTH_CACHE_TTL_MS', 5000, 0, 300_000),
    maxQueryRangeDays: int('MAX_QUERY_RANGE_DAYS', 400, 1, 36500),
    pgPoolSize: int('PG_POOL_SIZE', 10, 1, 200),
    priceRefreshMs: int('PRICE_REFRESH_MS', 30_000, 0, 3_600_000),
    ingest: {
      groupCommit: bool('INGEST_GROUP_COMMIT', true),
      groupMaxEvents: int('INGEST_GROUP_MAX_EVENTS', 500, 1, 10000),
      groupMaxWaitMs: int('INGEST_GROUP_MAX_WAIT_MS', 2, 0, 1000),
      maxQueuedEvents: int('INGEST_MAX_QUEUED_EVENTS', 20000, 1, 10_000_000),
    },
    retentionDays: retention === 0 ? null : retention,
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}
