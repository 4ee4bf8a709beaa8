import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { summaryGroups } from './analytics/queries.js'
import { analyticsRoutes } from './analytics/routes.js'
import { keyRoutes } from './auth/routes.js'
import { allowanceRoutes } from './budgets/allowance-routes.js'
import { AllowanceState } from './budgets/allowance-state.js'
import { DeliveryWorker } from './budgets/delivery.js'
import { BudgetMonitor } from './budgets/evaluator.js'
import { budgetRoutes } from './budgets/routes.js'
import { SpendWatch } from './budgets/anomaly.js'
import { spendAlertRoutes } from './budgets/anomaly-routes.js'
import { ReportScheduler } from './budgets/report-schedule.js'
import { reportScheduleRoutes } from './budgets/report-schedule-routes.js'
import type { Config } from './config.js'
import { dashboardRoutes } from './dashboard/routes.js'
import { ChangeFeed } from './db/change-feed.js'
import type { Database } from './db/connect.js'
import { databaseFailureForLog } from './db/errors.js'
import { startMaintenance } from './db/maintenance.js'
import { healthRoutes } from './health/routes.js'
import { otelRoutes } from './otel/routes.js'
import { requestIdOf } from './lib/request-id.js'
import { authGuard, createAuthenticator } from './plugins/auth-guard.js'
import { corsOrigins } from './plugins/cors.js'
import { openDatabases } from './plugins/database.js'
import { errorHandler } from './plugins/error-handler.js'
import { loadShedding } from './plugins/load-shedding.js'
import { metricsRoutes, observeRequests, ServiceMetrics } from './plugins/metrics.js'
import { createLogger } from './plugins/logger.js'
import { apiDocs } from './plugins/openapi.js'
import { apiRateLimit } from './plugins/rate-limit.js'
import { requestIdHeader } from './plugins/request-id.js'
import { securityHeaders } from './plugins/security-headers.js'
import { pricingRoutes } from './pricing/routes.js'
import { PricingService } from './pricing/service.js'
import { WriteQueue } from './usage/write-queue.js'
import { LoopDelayMonitor } from './lib/loop-delay.js'
import { startRetention } from './usage/retention.js'
import { RollupWorker } from './usage/rollup-worker.js'
import { usageRoutes } from './usage/routes.js'
import { syncMetadataRollupKeys } from './usage/metadata-keys.js'

export interface AppDeps {
  /** An already-connected database (tests share one per file); the app then does not close it. */
  database?: Database
  /** Where log lines go instead of stdout (tests read them back to check redaction). */
  logDestination?: NodeJS.WritableStream
  /** Shows a bootstrap admin key created at first start; default prints it to stdout. */
  announceAdminKey?: (key: string) => void
  /** The clock budgets, spend alerts and report schedules compute periods, hours and projections with (tests move it); default real time. */
  budgetClock?: () => Date
}

/** How often the embedded engine's tables are checked for ANALYZE and VACUUM (db/maintenance.ts). */
const EMBEDDED_MAINTENANCE_INTERVAL_MS = 30_000

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

  // Cross-cutting plugins, on the root and before any route, in this order: how requests fail,
  // headers on every answer (also load shedding's 503s), load shedding, CORS, the API docs.
  await app.register(errorHandler, { config })
  await app.register(requestIdHeader)
  await app.register(securityHeaders)
  await app.register(loadShedding, { pressure: config.pressure })
  await app.register(corsOrigins, { origins: config.corsOrigins })
  await app.register(apiDocs)
  // One registry per app (its queue and pool gauges are attached once those exist, below).
  const metrics = new ServiceMetrics({ maxBots: config.metrics.maxBots, maxModels: config.metrics.maxModels })
  app.decorate('metrics', metrics)
  observeRequests(app, metrics)

  // Services. onClose hooks run last-registered first: the services' hook below before the databases'.
  const { database, readDatabase } = await openDatabases(app, config, deps.database)
  // Which metadata keys are folded into rollups is the deployment's METADATA_ROLLUP_KEYS.
  await syncMetadataRollupKeys(database, config.metadataRollups, { now: new Date(), maxFutureSkewMs: config.maxFutureSkewMs })
  // Key, price and budget changes reach the other instances at once (LISTEN/NOTIFY).
  const changes = new ChangeFeed(database, { connectionString: config.databaseUrl, log: app.log })

  const alertDelivery = new DeliveryWorker(database, {
    ...config.alerts,
    timeoutMs: config.alerts.webhookTimeoutMs,
    publicUrl: config.publicUrl,
    log: app.log,
    onAttempt: metrics.onAlertAttempt,
  })
  const allowance = new AllowanceState(database, {
    syncIntervalMs: config.budgets.allowanceSyncMs,
    maxTrackedUsers: config.budgets.maxTrackedUsers,
    log: app.log,
    clock: deps.budgetClock,
  })
  const budgetMonitor = new BudgetMonitor(database, alertDelivery, {
    ...config.budgets,
    log: app.log,
    clock: deps.budgetClock,
    announceChange: (id) => changes.publish('budgets', id),
    onBudgets: (budgets) => allowance.setBudgets(budgets),
  })

  // The embedded engine has no autovacuum workers: without this its planner never gets statistics.
  const maintenance =
    database.engine === 'pglite'
      ? startMaintenance(database, {
          intervalMs: EMBEDDED_MAINTENANCE_INTERVAL_MS,
          onError: (err) => app.log.warn(databaseFailureForLog(err), 'analyzing or vacuuming the embedded database failed; retrying later'),
        })
      : null

  const spendWatch = new SpendWatch(database, alertDelivery, {
    intervalMs: config.watch.spendAlertIntervalMs,
    debounceMs: config.budgets.debounceMs,
    log: app.log,
    clock: deps.budgetClock,
  })
  app.decorate('spendWatch', spendWatch)
  const reportScheduler = new ReportScheduler(database, alertDelivery, {
    intervalMs: config.watch.reportIntervalMs,
    log: app.log,
    clock: deps.budgetClock,
    reads: readDatabase,
  })
  app.decorate('reportScheduler', reportScheduler)

  // On the embedded engine every statement runs on this thread: the loop is blocked by the
  // writer's own flushes, and that delay says nothing about overload.
  const maxLoopDelayMs = database.engine === 'postgres' ? config.ingest.maxLoopDelayMs : 0
  // Started once ready: boot, migrations and schema compilation block the loop for seconds, and
  // that is start-up, not load.
  const loopDelay = new LoopDelayMonitor()
  if (maxLoopDelayMs > 0) app.addHook('onReady', async () => loopDelay.start())
  // Folds committed events into the rollups off the write path; reads add what it has not folded yet.
  const rollupWorker = new RollupWorker(database, {
    intervalMs: config.rollupIntervalMs,
    onError: (err) => app.log.warn(databaseFailureForLog(err), 'folding events into the rollups failed; retrying at the next run'),
    onLagging: (lag) => app.log.warn(lag, 'the rollups lag behind the raw events; reads stay exact but read more raw events'),
  })
  const writeQueue = new WriteQueue(database, {
    enabled: config.ingest.groupCommit,
    maxEvents: config.ingest.groupMaxEvents,
    maxWaitMs: config.ingest.groupMaxWaitMs,
    maxQueuedEvents: config.ingest.maxQueuedEvents,
    maxQueueDelayMs: config.ingest.maxQueueDelayMs,
    maxLoopDelayMs,
    loopDelayMs: () => loopDelay.delayMs(),
    // The embedded engine has one connection; on Postgres writes leave pooled connections for reads.
    maxConcurrentFlushes: database.engine === 'pglite' ? 1 : Math.min(config.ingest.maxConcurrentFlushes, Math.max(1, config.pgPoolSize - 2)),
    flushWhenIdle: database.engine === 'postgres',
    onCommitted: (created) => {
      budgetMonitor.onCommitted(created)
      allowance.onCommitted(created)
      spendWatch.onCommitted(created)
      metrics.onCommitted(created)
      maintenance?.noteWrites(created.length)
      rollupWorker.kick()
    },
    onFlushed: metrics.onFlushed,
    onFlushError: (err) => app.log.error(databaseFailureForLog(err), 'ingest flush failed; its requests were answered 503'),
  })
  metrics.observeGauges({ queuedEvents: () => writeQueue.queuedEvents, poolStats: database.poolStats, rollupLag: () => rollupWorker.lag })

  const auth = await createAuthenticator(database, config, {
    log: app.log,
    announceAdminKey: deps.announceAdminKey,
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
  await allowance.start()
  await spendWatch.start()
  reportScheduler.start()
  changes.on('keys', () => auth.forget())
  changes.on('prices', () => void pricing.reload().catch((err: unknown) => app.log.warn({ err }, 'reloading price overrides failed; keeping the previous ones')))
  changes.on('budgets', (id) => budgetMonitor.changedElsewhere(id))
  await changes.start()

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

  rollupWorker.start()
  app.addHook('onClose', async () => {
    await changes.close()
    await stopRetention?.()
    await maintenance?.stop()
    pricing.stop()
    await writeQueue.close()
    loopDelay.stop()
    await rollupWorker.stop()
    await budgetMonitor.stop()
    await allowance.stop()
    await spendWatch.stop()
    await reportScheduler.stop()
    await alertDelivery.stop()
    await auth.close()
  })

  await app.register(healthRoutes, { database })
  await app.register(dashboardRoutes)

  // Everything under /api needs a key with the route's scope, and is rate limited per key.
  await app.register(async (api) => {
    await api.register(apiRateLimit, { rateLimit: config.rateLimit, redis: config.redis })
    await api.register(authGuard, { auth })
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
    await api.register(allowanceRoutes, { allowance })
    const definitions = {
      defaultTimeZone: config.budgets.timeZone,
      hasDefaultTelegramToken: config.alerts.telegramBotToken !== null,
      emailConfigured: config.alerts.smtpUrl !== null,
      webhookAllowPrivate: config.alerts.webhookAllowPrivate,
    }
    await api.register(budgetRoutes, { database, monitor: budgetMonitor, definitions })
    await api.register(spendAlertRoutes, { database, watch: spendWatch, definitions })
    await api.register(reportScheduleRoutes, { database, scheduler: reportScheduler, definitions, reads: readDatabase })
  })

  return app
}
