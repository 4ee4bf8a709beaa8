import path from 'node:path'
import { METADATA_KEY_CHARS } from './lib/schemas.js'
import { canonicalTimeZone, timeZoneProblem } from './lib/time-zone.js'

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
  /** Longest range of a breakdown by a metadata key, which reads raw events. */
  metadataRawMaxDays: number
  /** Metadata keys folded into rollups (METADATA_ROLLUP_KEYS), and how many values per key get rows of their own. */
  metadataRollups: { keys: string[]; maxValues: number }
  pgPoolSize: number
  /** Separate Postgres pool for heavy reads (analytics, reports, exports), so ingest never waits behind them. */
  pgReadPoolSize: number
  /**
   * random_page_cost of the read pool's sessions (PG_READ_RANDOM_PAGE_COST; default 1.1, as
   * DEFAULT_READ_RANDOM_PAGE_COST in db/connect.ts), null for the server's own setting.
   */
  pgReadRandomPageCost: number | null
  /** The embedded engine's shared_buffers, MB (default 32, as DEFAULT_EMBEDDED_SHARED_BUFFERS_MB in db/connect.ts; PGlite's own is 128). */
  embeddedSharedBuffersMb: number
  /** How long a query waits for a free pooled connection before answering 503 DATABASE_BUSY, ms. */
  pgConnectTimeoutMs: number
  /** Statement timeout of the read pool (Postgres), ms; 0 = none. A cancelled read answers 503 QUERY_TIMEOUT. */
  queryTimeoutMs: number
  /** Heavy analytics (metadata breakdowns, raw scans, exports, reports) running at once, and waiting for a turn. */
  heavyReads: { maxConcurrent: number; maxQueued: number; maxQueueWaitMs: number }
  /** HTTP server limits (see README "Limits and timeouts"). */
  http: { headersTimeoutMs: number; requestTimeoutMs: number; keepAliveTimeoutMs: number; idleTimeoutMs: number; maxConnections: number; listenBacklog: number }
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
    /** Refuse new writes (503) while the oldest queued one has waited this long. */
    maxQueueDelayMs: number
    /** Refuse small writes (503) while the event loop is this late (Postgres; 0 = off). */
    maxLoopDelayMs: number
    /** Insert statements in flight at once on Postgres. */
    maxConcurrentFlushes: number
  }
  retentionDays: number | null
  /** How often the retention job deletes expired raw events, and how many per statement. */
  retention: { intervalMs: number; batchSize: number }
  /** How often the rollup worker folds new events into the rollups (also soon after each commit), ms. */
  rollupIntervalMs: number
  /** Load shedding: 503 + Retry-After when the event loop lags or the heap grows past these (0 = off). */
  pressure: { maxEventLoopDelayMs: number; maxHeapUsedBytes: number }
  budgets: {
    /** IANA zone of calendar periods for budgets that name none. */
    timeZone: string
    /** Evaluation runs this long after a commit touching a budget, covering all commits meanwhile. */
    debounceMs: number
    /** Every budget is evaluated (projections, period rollover, other instances' budgets) this often. */
    evaluateIntervalMs: number
    /** No projected-overrun alert before this share of the period has passed (early rates are noise). */
    projectionMinElapsedPercent: number
    /** Block budgets' spend is read again this often (other instances' usage): the bound on a stale allowance. */
    allowanceSyncMs: number
    /** Users tracked per per-user budget and period (memory bound); past it, see docs/budgets.md. */
    maxTrackedUsers: number
  }
  /** Unusual-spend alerts and scheduled reports (docs/budgets.md). */
  watch: {
    /** Every unusual-spend rule is evaluated this often (besides shortly after commits of recent usage). */
    spendAlertIntervalMs: number
    /** How often report schedules are checked for a period due to be sent. */
    reportIntervalMs: number
  }
  alerts: {
    /** smtp(s)://user:pass@host:port; null: email channels are refused. */
    smtpUrl: string | null
    emailFrom: string | null
    /** Default Telegram bot token for telegram channels that bring none. */
    telegramBotToken: string | null
    telegramApiRoot: string
    webhookTimeoutMs: number
    /** Budget webhooks may reach private, loopback and link-local addresses (default: refused). */
    webhookAllowPrivate: boolean
    /** Attempts per delivery (all channels) before it is marked failed. */
    maxAttempts: number
    /** Backoff after the first failure; doubles with each further one. */
    retryBaseMs: number
  }
  /** A replica analytics and exports read from (seconds behind the primary); null: the primary. */
  databaseReadUrl: string | null
  /** Shared rate-limit counters; null: each instance counts for itself. */
  redis: { url: string; keyPrefix: string; commandTimeoutMs: number } | null
  /** Base URL people reach the service at (links in alerts), no trailing slash; null: no links. */
  publicUrl: string | null
  metrics: {
    /** Also serve GET /metrics without a key on this port (private networks); null: only the API port, with a key. */
    port: number | null
    /** Distinct bot label values before the rest count as `other`. */
    maxBots: number
    /** Distinct model label values before the rest count as `other`. */
    maxModels: number
  }
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

  const randomPageCostRaw = str('PG_READ_RANDOM_PAGE_COST')
  let pgReadRandomPageCost: number | null = 1.1
  if (randomPageCostRaw !== undefined) {
    const n = Number(randomPageCostRaw)
    if (!/^\d{1,4}(\.\d{1,3})?$/.test(randomPageCostRaw) || n > 1000) {
      problems.push(`PG_READ_RANDOM_PAGE_COST must be a number between 0 and 1000, 0 for the server's own setting (got "${randomPageCostRaw}")`)
    } else pgReadRandomPageCost = n === 0 ? null : n
  }

  const budgetTimeZone = str('BUDGET_TIMEZONE') ?? 'UTC'
  const budgetZone = canonicalTimeZone(budgetTimeZone)
  if (budgetZone === null) problems.push(timeZoneProblem('BUDGET_TIMEZONE', budgetTimeZone))
  const smtpUrl = str('SMTP_URL') ?? null
  // The URL may carry a password: never echo it.
  if (smtpUrl !== null && !/^smtps?:\/\/[^/\s]+/.test(smtpUrl)) problems.push('SMTP_URL must look like smtp://user:pass@host:587 or smtps://host:465')
  const emailFrom = str('ALERT_EMAIL_FROM') ?? null
  if (smtpUrl !== null && emailFrom === null) problems.push('ALERT_EMAIL_FROM is required when SMTP_URL is set')
  const telegramBotToken = str('ALERT_TELEGRAM_BOT_TOKEN') ?? null
  if (telegramBotToken !== null && !/^\d+:[A-Za-z0-9_-]+$/.test(telegramBotToken)) problems.push('ALERT_TELEGRAM_BOT_TOKEN must look like 123456:ABC-DEF... (a Bot API token)')
  const telegramApiRoot = (str('TELEGRAM_API_ROOT') ?? 'https://api.telegram.org').replace(/\/+$/, '')
  if (!/^https?:\/\/[^/\s]+/.test(telegramApiRoot)) problems.push(`TELEGRAM_API_ROOT must be an http(s) URL (got "${telegramApiRoot}")`)

  const databaseReadUrl = str('DATABASE_READ_URL') ?? null
  if (databaseReadUrl !== null) {
    if (!/^postgres(ql)?:\/\//.test(databaseReadUrl)) problems.push('DATABASE_READ_URL must start with postgres:// or postgresql://')
    else if (databaseUrl === null) problems.push('DATABASE_READ_URL needs DATABASE_URL (the embedded engine has no replicas)')
  }
  const redisUrl = str('REDIS_URL') ?? null
  if (redisUrl !== null && !/^rediss?:\/\/[^/\s]*/.test(redisUrl)) problems.push('REDIS_URL must look like redis://host:6379 or rediss://user:pass@host:6380/0')
  const redisKeyPrefix = str('REDIS_KEY_PREFIX') ?? 'llm-usage:rl:'
  const queryTimeoutMs = int('QUERY_TIMEOUT_MS', 30_000, 0, 3_600_000)
  const maxQueueWaitMs = int('ANALYTICS_MAX_QUEUE_WAIT_MS', 10_000, 1, 600_000)
  const headersTimeoutMs = int('HTTP_HEADERS_TIMEOUT_MS', 10_000, 1, 600_000)
  const requestTimeoutMs = int('HTTP_REQUEST_TIMEOUT_MS', 30_000, 1, 3_600_000)
  const idleTimeoutMs = int('HTTP_IDLE_TIMEOUT_MS', 120_000, 0, 3_600_000)
  // Node refuses a headers timeout longer than the whole-request timeout.
  if (headersTimeoutMs > requestTimeoutMs) problems.push(`HTTP_HEADERS_TIMEOUT_MS (${headersTimeoutMs}) must not exceed HTTP_REQUEST_TIMEOUT_MS (${requestTimeoutMs})`)
  // A socket is idle while its request waits for a turn and runs its query: it must outlast both.
  if (idleTimeoutMs > 0 && queryTimeoutMs > 0 && idleTimeoutMs <= queryTimeoutMs + maxQueueWaitMs) {
    problems.push(`HTTP_IDLE_TIMEOUT_MS (${idleTimeoutMs}) must exceed QUERY_TIMEOUT_MS + ANALYTICS_MAX_QUEUE_WAIT_MS (${queryTimeoutMs + maxQueueWaitMs}), or be 0`)
  }
  const publicUrl = str('PUBLIC_URL')?.replace(/\/+$/, '') ?? null
  if (publicUrl !== null && !/^https?:\/\/[^/\s]+(\/\S*)?$/.test(publicUrl)) problems.push(`PUBLIC_URL must be an http(s) URL such as https://usage.example.com (got "${publicUrl}")`)
  const metadataRollupKeys = (str('METADATA_ROLLUP_KEYS') ?? '').split(',').map((k) => k.trim()).filter((k) => k !== '')
  const metadataKey = new RegExp(`^${METADATA_KEY_CHARS}$`)
  for (const k of metadataRollupKeys.filter((k) => !metadataKey.test(k))) {
    problems.push(`METADATA_ROLLUP_KEYS has "${k}": a metadata key is 1-100 characters of A-Z a-z 0-9 _ . : -`)
  }
  if (new Set(metadataRollupKeys).size !== metadataRollupKeys.length) problems.push('METADATA_ROLLUP_KEYS names a key twice')
  if (metadataRollupKeys.length > 20) problems.push(`METADATA_ROLLUP_KEYS has ${metadataRollupKeys.length} keys: at most 20 (each multiplies the rollup writes)`)
  const metricsPort = str('METRICS_PORT') === undefined ? null : int('METRICS_PORT', 0, 1, 65535)

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
    metadataRawMaxDays: int('METADATA_RAW_MAX_DAYS', 31, 1, 36500),
    metadataRollups: { keys: metadataRollupKeys, maxValues: int('METADATA_ROLLUP_MAX_VALUES', 1000, 1, 1_000_000) },
    pgPoolSize: int('PG_POOL_SIZE', 10, 1, 200),
    pgReadPoolSize: int('PG_READ_POOL_SIZE', 4, 1, 200),
    pgReadRandomPageCost,
    embeddedSharedBuffersMb: int('EMBEDDED_SHARED_BUFFERS_MB', 32, 1, 4096),
    pgConnectTimeoutMs: int('PG_CONNECT_TIMEOUT_MS', 5000, 100, 120_000),
    queryTimeoutMs,
    heavyReads: {
      maxConcurrent: int('ANALYTICS_MAX_CONCURRENT', 2, 1, 100),
      maxQueued: int('ANALYTICS_MAX_QUEUED', 8, 0, 10_000),
      maxQueueWaitMs,
    },
    http: {
      headersTimeoutMs,
      requestTimeoutMs,
      keepAliveTimeoutMs: int('HTTP_KEEP_ALIVE_TIMEOUT_MS', 72_000, 1, 3_600_000),
      idleTimeoutMs,
      maxConnections: int('HTTP_MAX_CONNECTIONS', 10_000, 0, 1_000_000),
      listenBacklog: int('HTTP_LISTEN_BACKLOG', 4096, 1, 65_535),
    },
    priceRefreshMs: int('PRICE_REFRESH_MS', 30_000, 0, 3_600_000),
    ingest: {
      groupCommit: bool('INGEST_GROUP_COMMIT', true),
      groupMaxEvents: int('INGEST_GROUP_MAX_EVENTS', 500, 1, 10000),
      groupMaxWaitMs: int('INGEST_GROUP_MAX_WAIT_MS', 2, 0, 1000),
      maxQueuedEvents: int('INGEST_MAX_QUEUED_EVENTS', 20000, 1, 10_000_000),
      maxQueueDelayMs: int('INGEST_MAX_QUEUE_DELAY_MS', 50, 1, 60_000),
      maxLoopDelayMs: int('INGEST_MAX_LOOP_DELAY_MS', 50, 0, 60_000),
      maxConcurrentFlushes: int('INGEST_MAX_CONCURRENT_FLUSHES', 2, 1, 100),
    },
    retentionDays: retention === 0 ? null : retention,
    retention: {
      intervalMs: int('RETENTION_INTERVAL_MINUTES', 60, 1, 10080) * 60_000,
      batchSize: int('RETENTION_BATCH_SIZE', 5000, 1, 1_000_000),
    },
    rollupIntervalMs: int('ROLLUP_INTERVAL_MS', 250, 10, 3_600_000),
    pressure: {
      maxEventLoopDelayMs: int('MAX_EVENT_LOOP_DELAY_MS', 1000, 0, 60_000),
      maxHeapUsedBytes: int('MAX_HEAP_USED_BYTES', 512 * 1024 * 1024, 0, 64 * 1024 ** 3),
    },
    budgets: {
      timeZone: budgetZone ?? 'UTC',
      debounceMs: int('BUDGET_DEBOUNCE_MS', 1000, 0, 600_000),
      evaluateIntervalMs: int('BUDGET_EVAL_INTERVAL_MS', 60_000, 10, 3_600_000),
      projectionMinElapsedPercent: int('BUDGET_PROJECTION_MIN_ELAPSED_PERCENT', 10, 0, 100),
      allowanceSyncMs: int('BUDGET_ALLOWANCE_SYNC_MS', 2000, 10, 3_600_000),
      maxTrackedUsers: int('BUDGET_MAX_TRACKED_USERS', 10_000, 1, 1_000_000),
    },
    watch: {
      spendAlertIntervalMs: int('SPEND_ALERT_INTERVAL_MS', 60_000, 10, 3_600_000),
      reportIntervalMs: int('REPORT_INTERVAL_MS', 60_000, 10, 3_600_000),
    },
    alerts: {
      smtpUrl,
      emailFrom,
      telegramBotToken,
      telegramApiRoot,
      webhookTimeoutMs: int('ALERT_WEBHOOK_TIMEOUT_MS', 10_000, 100, 120_000),
      webhookAllowPrivate: bool('ALERT_WEBHOOK_ALLOW_PRIVATE', false),
      maxAttempts: int('ALERT_MAX_ATTEMPTS', 5, 1, 20),
      retryBaseMs: int('ALERT_RETRY_BASE_MS', 2000, 1, 3_600_000),
    },
    databaseReadUrl,
    redis: redisUrl === null ? null : { url: redisUrl, keyPrefix: redisKeyPrefix, commandTimeoutMs: int('REDIS_COMMAND_TIMEOUT_MS', 1000, 10, 60_000) },
    publicUrl,
    metrics: {
      port: metricsPort,
      maxBots: int('METRICS_MAX_BOTS', 50, 1, 10_000),
      maxModels: int('METRICS_MAX_MODELS', 200, 1, 10_000),
    },
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return config
}
