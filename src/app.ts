import cors from '@fastify/cors'
import rateLimit from '@fastify/rate-limit'
import underPressure, { TYPE_EVENT_LOOP_DELAY } from '@fastify/under-pressure'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyError, type FastifyInstance, type FastifyRequest } from 'fastify'
import { createHash } from 'node:crypto'
import pino from 'pino'
import { summaryGroups } from './analytics/queries.js'
import { analyticsRoutes } from './analytics/routes.js'
import { ensureAdminKey } from './auth/keys.js'
import { Authenticator, guardRoutes } from './auth/plugin.js'
import { keyRoutes } from './auth/routes.js'
import { DeliveryWorker } from './budgets/delivery.js'
import { BudgetMonitor } from './budgets/evaluator.js'
import { budgetRoutes } from './budgets/routes.js'
import type { Config } from './config.js'
import { dashboardRoutes } from './dashboard/routes.js'
import { ChangeFeed } from './db/change-feed.js'
import { connectDatabase, databaseFailure, type Database } from './db/connect.js'
import { databaseFailureForLog } from './db/errors.js'
import { migrateDatabase } from './db/migrate.js'
import { errorBody, Errors } from './errors.js'
import { healthRoutes } from './health/routes.js'
import { sharedRateLimit } from './plugins/shared-rate-limit.js'
import { requestIdOf } from './lib/request-id.js'
import { otelRoutes } from './otel/routes.js'
import { metricsRoutes, observeRequests, ServiceMetrics } from './plugins/metrics.js'
import { describeValidationError, validatorCompiler } from './lib/validation.js'
import { pricingRoutes } from './pricing/routes.js'
import { errorForLog, requestForLog, scrubSecrets } from './plugins/log-safety.js'
import { documentRoutes } from './openapi.js'
import { PricingService } from './pricing/service.js'
import { registerSecurityHeaders } from './security-headers.js'
import { WriteQueue } from './usage/ingest.js'
import { startRetention } from './usage/retention.js'
import { usageRoutes } from './usage/routes.js'

export interface AppDeps {
  /** An already-connected database (tests share one per file); the app then does not close it. */
  database?: Database
  /** Where log lines go instead of stdout (tests read them back to check redaction). */
  logDestination?: NodeJS.WritableStream
  /** Shows a bootstrap admin key created at first start; default prints it to stdout. */
  announceAdminKey?: (key: string) => void
  /** The clock budgets compute periods and projections with (tests move it); default real time. */
  budgetClock?: () => Date
}

function printAdminKey(key: string): void {
  process.stdout.write(
    [
      '',
      '================================================================================',
      ' No ADMIN_API_KEY was configured and the database had no admin key, so one was',
      ' created. It is shown ONCE; only its hash is stored. Save it now:',
      '',
      `   ${key}`,
      '',
      ' Use it as  Authorization: Bearer <key>  to create bot keys with POST /api/keys.',
      '================================================================================',
      '',
    ].join('\n') + '\n',
  )
}

/** How often under-pressure samples event-loop delay and memory (its default). */
const PRESSURE_SAMPLE_MS = 1000

/** Paths pino must never print: keys, tokens and anything that looks like them. */
export const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers["x-api-key"]',
  'req.headers.cookie',
  '*.apiKey',
  '*.key',
  '*.token',
  '*.secret',
  '*.password',
]

export function createLogger(config: Config, destination?: NodeJS.WritableStream): pino.Logger {
  const options: pino.LoggerOptions = {
    level: config.logLevel,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { req: requestForLog, err: errorForLog },
    hooks: { streamWrite: scrubSecrets },
  }
  if (destination) return pino(options, destination)
  // Pretty output for a human at a terminal; JSON lines for everything else.
  if (process.stdout.isTTY) return pino({ ...options, transport: { target: 'pino-pretty', options: { translateTime: 'SYS:standard' } } })
  return pino(options)
}

/** Builds the service without listening. The caller owns `listen()` and `close()`. */
export async function buildApp(config: Config, deps: AppDeps = {}): Promise<FastifyInstance> {
  const app = Fastify({
    loggerInstance: createLogger(config, deps.logDestination) as FastifyBaseLogger,
    bodyLimit: config.bodyLimit,
    // A client's X-Request-Id only when short and safe (requestIdOf), else a new one.
    requestIdHeader: false,
    genReqId: requestIdOf,
    // A client cannot hold a socket for free: headers, the whole request and idle sockets are timed.
    requestTimeout: config.http.requestTimeoutMs,
    connectionTimeout: config.http.idleTimeoutMs,
    keepAliveTimeout: config.http.keepAliveTimeoutMs,
    http: {
      headersTimeout: config.http.headersTimeoutMs,
      // Node checks both timeouts on this interval (default 30 s, which would stretch them).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(config.http.headersTimeoutMs / 4))),
    },
  }).withTypeProvider<TypeBoxTypeProvider>()
  // Sockets past the cap are closed on accept instead of exhausting file descriptors.
  if (config.http.maxConnections > 0) app.server.maxConnections = config.http.maxConnections

  // JSON only: a text/plain body would otherwise reach validation as a string.
  app.removeContentTypeParser('text/plain')
  app.setValidatorCompiler(validatorCompiler)
  app.setSchemaErrorFormatter((errors, dataVar) => {
    const first = errors[0]
    return new Errors.validation(first ? describeValidationError(dataVar, first) : `${dataVar} is invalid`)
  })

  app.setErrorHandler((error: FastifyError, request, reply) => {
    let status = error.statusCode ?? 500
    let code = error.code ?? 'INTERNAL_ERROR'
    let message = error.message
    if (error.validation) {
      status = 400
      code = 'VALIDATION_ERROR'
    } else if (code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error instanceof SyntaxError) {
      status = 400
      code = 'INVALID_JSON'
      message = `Body is not valid JSON: ${error.message}`
    } else if (code === 'FST_ERR_CTP_EMPTY_JSON_BODY') {
      status = 400
      code = 'INVALID_JSON'
      message = 'Body must not be empty when Content-Type is application/json'
    } else if (code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      status = 413
      code = 'BODY_TOO_LARGE'
      message = `Body exceeds the limit of ${config.bodyLimit} bytes`
    } else if (code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      status = 415
      code = 'UNSUPPORTED_MEDIA_TYPE'
      message = `Content-Type ${request.headers['content-type'] ?? '(none)'} is not supported; send application/json`
    }
    if (status >= 500) {
      const failure = databaseFailure(error)
      // Shedding load is expected under overload; logging every shed request would add to it.
      if (code === 'OVERLOADED' || code === 'ANALYTICS_BUSY') request.log.debug({ code, route: routeOf(request) }, message)
      else if (failure === 'statement-timeout' || failure === 'pool-busy') request.log.warn({ failure, route: routeOf(request) }, 'database busy')
      else request.log.error({ err: error, code, route: routeOf(request) }, 'request failed')
      // Only our own declared 503s (overload, database down or busy) keep their message; anything
      // else is an internal failure whose details stay in the log, never in the response.
      const body =
        status === 503 && DECLARED_503.has(code)
          ? errorBody(503, code, message)
          : failure === 'statement-timeout'
            ? errorBody(503, 'QUERY_TIMEOUT', new Errors.queryTimeout(config.queryTimeoutMs).message)
            : failure === 'pool-busy'
              ? errorBody(503, 'DATABASE_BUSY', new Errors.databaseBusy(config.pgConnectTimeoutMs).message)
              : failure === 'unavailable'
                ? errorBody(503, 'DATABASE_UNAVAILABLE', 'Database is unavailable: retry later')
                : errorBody(500, 'INTERNAL_ERROR', 'Internal server error')
      // A cancelled query would most likely be cancelled again at once: ask for a longer pause.
      if (body.statusCode === 503) reply.header('retry-after', body.code === 'QUERY_TIMEOUT' ? '5' : '1')
      return reply.code(body.statusCode).send(body)
    }
    if (status === 429 && !reply.hasHeader('retry-after')) reply.header('retry-after', '1')
    // A JSON parse error quotes the body it could not parse: its message stays out of the log.
    request.log.info({ code, status, route: routeOf(request) }, code === 'INVALID_JSON' ? 'request body is not valid JSON' : message)
    return reply.code(status).send(errorBody(status, code, message))
  })

  // One registry per app (its queue and pool gauges are attached once those exist, below).
  const metrics = new ServiceMetrics({ maxBots: config.metrics.maxBots, maxModels: config.metrics.maxModels })
  app.decorate('metrics', metrics)
  observeRequests(app, metrics)

  // Echo the request id so a caller can quote it when reporting a problem.
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })

  app.setNotFoundHandler((request, reply) => {
    const body = errorBody(404, 'NOT_FOUND', `Route ${request.method} ${request.url.split('?')[0]} not found`)
    return reply.code(404).send(body)
  })

  // Before load shedding, so that its 503s carry the headers too.
  await registerSecurityHeaders(app)

  // Shed load instead of queueing it when the process itself is the bottleneck.
  //
  // Event-loop delay is sampled as the mean over each PRESSURE_SAMPLE_MS interval, so the
  // samples taken just after start still hold the seconds spent booting the embedded engine,
  // migrating and compiling every route's schemas: that is start-up, not load, and it used to
  // shed the first requests with 503. Until two intervals after ready, delay alone sheds nothing.
  let delayCountsFrom = Infinity
  app.addHook('onReady', async () => {
    delayCountsFrom = Date.now() + 2 * PRESSURE_SAMPLE_MS
  })
  await app.register(underPressure, {
    maxEventLoopDelay: config.pressure.maxEventLoopDelayMs,
    maxHeapUsedBytes: config.pressure.maxHeapUsedBytes,
    sampleInterval: PRESSURE_SAMPLE_MS,
    exposeStatusRoute: false,
    pressureHandler: async (_request, _reply, type) => {
      if (type === TYPE_EVENT_LOOP_DELAY && Date.now() < delayCountsFrom) return
      throw new Errors.underPressure()
    },
  })

  await app.register(cors, {
    origin: config.corsOrigins.includes('*') ? true : config.corsOrigins.length > 0 ? config.corsOrigins : false,
    methods: ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'],
  })

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'LLM usage tracking API',
        version: '0.1.0',
        description:
          'Bots report every model call; the service stores it and answers spend, volume, error and trend questions.\n\n' +
          'Token conventions: inputTokens counts all prompt tokens including cache reads and writes (cacheReadTokens and ' +
          'cacheWriteTokens are parts of it); outputTokens counts all generated tokens including reasoning (reasoningTokens is a part); ' +
          'totalTokens = inputTokens + outputTokens.',
      },
      tags: [
        { name: 'usage', description: 'Record model calls and read usage stats' },
        { name: 'analytics', description: 'Time series, summaries, breakdowns, errors, events and exports' },
        { name: 'reports', description: 'Monthly reports (JSON or CSV)' },
        { name: 'prices', description: 'Price catalog, overrides, quotes and repricing' },
        { name: 'keys', description: 'API keys (admin)' },
        { name: 'budgets', description: 'Spending budgets per period, threshold and projection alerts, alert history (admin)' },
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'metrics', description: 'Prometheus metrics (scope metrics)' },
        { name: 'otel', description: 'OpenTelemetry (OTLP/HTTP) trace ingest: GenAI spans become usage events' },
      ],
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'API key: Authorization: Bearer usk_...' },
        },
      },
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  documentRoutes(app)

  const ownsDatabase = deps.database === undefined
  const database =
    deps.database ??
    (await connectDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      schema: config.databaseSchema,
      poolSize: config.pgPoolSize,
      readPoolSize: config.pgReadPoolSize,
      queryTimeoutMs: config.queryTimeoutMs,
      connectTimeoutMs: config.pgConnectTimeoutMs,
      onPoolError: (err) => app.log.warn({ err }, 'idle database connection failed'),
    }))
  if (config.migrate && ownsDatabase) await migrateDatabase(database)
  // Tell other processes on the embedded data dir where this one answers (`npm run reprice` calls it).
  const dataDirLock = ownsDatabase ? database.dataDirLock : null
  if (dataDirLock) {
    app.addHook('onListen', async () => {
      const address = app.addresses()[0]
      if (!address || typeof address === 'string') return
      const host = address.family === 'IPv6' ? `[${address.address}]` : address.address
      dataDirLock.record({ url: `http://${host === '0.0.0.0' ? '127.0.0.1' : host === '[::]' ? '[::1]' : host}:${address.port}` })
    })
  }
  // Analytics and exports (read-only, may lag by the replica's delay) read here, through its
  // `reads` pool like any heavy read; everything that must see its own writes (ingest, keys,
  // prices, budgets, GET /api/usage) uses `database`.
  const readDatabase =
    config.databaseReadUrl === null
      ? database
      : await connectDatabase({
          databaseUrl: config.databaseReadUrl,
          dataDir: config.dataDir,
          schema: database.schema,
          // Only the read pool is used on a replica: the primary-side pool stays at one idle slot.
          poolSize: 1,
          readPoolSize: config.pgReadPoolSize,
          queryTimeoutMs: config.queryTimeoutMs,
          connectTimeoutMs: config.pgConnectTimeoutMs,
          onPoolError: (err) => app.log.warn({ err }, 'idle read-replica connection failed'),
        })
  // Key, price and budget changes reach the other instances at once (LISTEN/NOTIFY).
  const changes = new ChangeFeed(database, { connectionString: config.databaseUrl, log: app.log })

  const alertDelivery = new DeliveryWorker(database, {
    ...config.alerts,
    timeoutMs: config.alerts.webhookTimeoutMs,
    publicUrl: config.publicUrl,
    log: app.log,
    onAttempt: metrics.onAlertAttempt,
  })
  const budgetMonitor = new BudgetMonitor(database, alertDelivery, {
    ...config.budgets,
    log: app.log,
    clock: deps.budgetClock,
    announceChange: (id) => changes.publish('budgets', id),
  })

  const writeQueue = new WriteQueue(database, {
    enabled: config.ingest.groupCommit,
    maxEvents: config.ingest.groupMaxEvents,
    maxWaitMs: config.ingest.groupMaxWaitMs,
    maxQueuedEvents: config.ingest.maxQueuedEvents,
    maxQueueDelayMs: config.ingest.maxQueueDelayMs,
    // The embedded engine has one connection; on Postgres writes leave pooled connections for reads.
    maxConcurrentFlushes: database.engine === 'pglite' ? 1 : Math.min(config.ingest.maxConcurrentFlushes, Math.max(1, config.pgPoolSize - 2)),
    flushWhenIdle: database.engine === 'postgres',
    onCommitted: (created) => {
      budgetMonitor.onCommitted(created)
      metrics.onCommitted(created)
    },
    onFlushed: metrics.onFlushed,
    onFlushError: (err) => app.log.error(databaseFailureForLog(err), 'ingest flush failed; its requests were answered 503'),
  })
  metrics.observeGauges({ queuedEvents: () => writeQueue.queuedEvents, poolStats: database.poolStats })

  if (config.authDisabled) {
    app.log.warn('AUTH_DISABLED=true: EVERY ENDPOINT IS OPEN TO ANYONE WHO CAN REACH THIS SERVICE. Use only for local experiments.')
  } else if (config.adminApiKey === null) {
    const created = await ensureAdminKey(database)
    if (created) (deps.announceAdminKey ?? printAdminKey)(created)
  }
  const auth = new Authenticator(database, {
    adminApiKey: config.adminApiKey,
    authDisabled: config.authDisabled,
    cacheTtlMs: config.authCacheTtlMs,
    lastUsedFlushMs: 60_000,
    announceChange: () => changes.publish('keys'),
  })

  const pricing = new PricingService(database, {
    refreshMs: config.priceRefreshMs,
    onRefreshError: (err) => app.log.warn({ err }, 'reloading price overrides failed; keeping the previous ones'),
    announceChange: () => changes.publish('prices'),
  })
  await pricing.start()
  // The metrics' capped bot labels go first to the bots that spent most in the last 30 days.
  const since = Date.now() - 30 * 86_400_000
  const top = await summaryGroups(database, {}, { from: since, to: Date.now() }, config.metrics.maxBots).catch((err: unknown) => {
    app.log.warn({ err }, 'reading the top bots for the metrics labels failed; labels go to bots as they are seen')
    return null
  })
  if (top) metrics.admitBots(top.byBot.map((b) => b.botId))
  await budgetMonitor.start()
  changes.on('keys', () => auth.forget())
  changes.on('prices', () => void pricing.reload().catch((err: unknown) => app.log.warn({ err }, 'reloading price overrides failed; keeping the previous ones')))
  changes.on('budgets', (id) => budgetMonitor.changedElsewhere(id))
  await changes.start()
  const { redis } = config
  const sharedLimits =
    redis === null ? null : sharedRateLimit({ redisUrl: redis.url, keyPrefix: redis.keyPrefix, commandTimeoutMs: redis.commandTimeoutMs, log: app.log })
  if (sharedLimits) app.addHook('onReady', async () => sharedLimits.connect())

  const retentionDays = config.retentionDays
  const stopRetention =
    retentionDays === null
      ? null
      : startRetention(database, {
          retentionDays,
          ...config.retention,
          onError: (err) => app.log.warn({ err }, 'deleting expired raw events failed; retrying at the next run'),
          onDeleted: (count, cutoff) => app.log.info({ count, cutoff }, 'deleted raw events past RETENTION_DAYS'),
        })

  app.addHook('onClose', async () => {
    await changes.close()
    await sharedLimits?.close()
    await stopRetention?.()
    pricing.stop()
    await writeQueue.close()
    await budgetMonitor.stop()
    await alertDelivery.stop()
    await auth.close()
    if (readDatabase !== database) await readDatabase.close()
    if (ownsDatabase) await database.close()
  })

  await app.register(healthRoutes, { database })
  await app.register(dashboardRoutes)

  // Everything under /api needs a key with the route's scope, and is rate limited per key.
  await app.register(async (api) => {
    await api.register(rateLimit, {
      max: config.rateLimit.max,
      timeWindow: config.rateLimit.windowMs,
      // With REDIS_URL the counters are shared by every instance (per instance while Redis is away).
      ...(sharedLimits ? { store: sharedLimits.store } : {}),
      // Per key (by a hash of the Authorization header, so even unknown keys are limited
      // before they reach the database), per IP for requests without one.
      keyGenerator: (request) => {
        const header = request.headers.authorization
        return header ? `k:${createHash('sha256').update(header).digest('base64url').slice(0, 22)}` : `ip:${request.ip}`
      },
      errorResponseBuilder: (_request, context) => new Errors.rateLimited(Math.max(1, Math.ceil(context.ttl / 1000))),
    })
    guardRoutes(api, auth)
    await api.register(keyRoutes, { database, auth })
    await api.register(usageRoutes, { config, writeQueue, priceEvent: pricing.priceEvent })
    await api.register(otelRoutes, {
      config,
      writeQueue,
      priceEvent: pricing.priceEvent,
      onExport: (o) => metrics.recordIngest('/v1/traces', { ...o, rejectedReason: 'rejected_span' }),
    })
    await api.register(metricsRoutes, { metrics })
    await api.register(pricingRoutes, { database, pricing })
    await api.register(analyticsRoutes, { config, database: readDatabase, primary: database })
    await api.register(budgetRoutes, {
      database,
      monitor: budgetMonitor,
      definitions: {
        defaultTimeZone: config.budgets.timeZone,
        hasDefaultTelegramToken: config.alerts.telegramBotToken !== null,
        emailConfigured: config.alerts.smtpUrl !== null,
        webhookAllowPrivate: config.alerts.webhookAllowPrivate,
      },
    })
  })

  return app
}

/** "POST /api/budgets": the route pattern, never the URL (which may carry a query string). */
function routeOf(request: FastifyRequest): string {
  return `${request.method} ${request.routeOptions.url ?? '(no route)'}`
}

/** Our own 503s, whose messages tell the client what to do. */
const DECLARED_503 = new Set(['OVERLOADED', 'DATABASE_UNAVAILABLE', 'WRITE_FAILED', 'DATABASE_BUSY', 'QUERY_TIMEOUT', 'ANALYTICS_BUSY'])
