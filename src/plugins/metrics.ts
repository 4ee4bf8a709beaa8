import type { FastifyInstance } from 'fastify'
import { createServer, type Server } from 'node:http'
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * Prometheus metrics, one Registry per app (never prom-client's global one), exposed at
 * GET /metrics. Label values that come from clients (bot, model, provider) are capped: the first
 * `maxBots` bots this process sees keep their own label, later ones are counted as `other`;
 * models and providers likewise (docs/metrics.md). At start, the top spenders of the last 30
 * days are admitted first.
 */

export const OTHER = 'other'

/** Admits the first `max` distinct values; the rest become `other`. */
class LabelCap {
  private readonly admitted = new Set<string>()
  constructor(private readonly max: number) {}
  admit(values: string[]): void {
    for (const v of values) this.label(v)
  }
  label(value: string): string {
    if (this.admitted.has(value)) return value
    if (this.admitted.size >= this.max) return OTHER
    this.admitted.add(value)
    return value
  }
}

/** What the business counters read from each stored event. */
export interface CountedEvent {
  botId: string
  provider: string
  model: string
  inputTokens: number
  outputTokens: number
  cacheReadTokens: number
  cacheWriteTokens: number
  reasoningTokens: number
  cost: string | null
  priced: boolean
}

export interface PoolStats {
  total: number
  idle: number
  waiting: number
}

export interface MetricsOptions {
  maxBots: number
  maxModels: number
}

/** Read at scrape time. */
export interface GaugeSources {
  queuedEvents: () => number
  /** Absent for the embedded engine (one connection, no pool). */
  poolStats?: () => PoolStats
  /** Events above the rollup watermark (committed, not yet folded) and the oldest one's age, after this instance's last fold. */
  rollupLag?: () => { rows: number; seconds: number }
}

const TOKEN_TYPES = ['input', 'output', 'cache_read', 'cache_write', 'reasoning'] as const

export class ServiceMetrics {
  readonly registry = new Registry()
  private readonly bots: LabelCap
  private readonly models: LabelCap
  private readonly providers = new LabelCap(50)

  readonly httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration by method, route (the route pattern; unmatched for 404s) and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  })
  readonly ingestEvents = new Counter({
    name: 'usage_ingest_events_total',
    help: 'Events received by ingest routes, by route and outcome (created, duplicate, rejected)',
    labelNames: ['route', 'outcome'] as const,
    registers: [this.registry],
  })
  readonly ingestBatches = new Counter({
    name: 'usage_ingest_requests_total',
    help: 'Ingest requests (single events, batches, OTLP exports) answered 2xx, by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
  })
  readonly ingestRejections = new Counter({
    name: 'usage_ingest_rejections_total',
    help: 'Ingest requests or events refused, by route and reason (the error code; invalid_event for one event in a batch, rejected_span for an OTLP span)',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  })
  readonly flushSize = new Histogram({
    name: 'usage_group_commit_flush_events',
    help: 'Events per group-commit insert',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 5000],
    registers: [this.registry],
  })
  readonly flushDuration = new Histogram({
    name: 'usage_group_commit_flush_duration_seconds',
    help: 'Duration of each group-commit insert',
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  })
  readonly loadShed = new Counter({
    name: 'http_load_shed_total',
    help: 'Requests refused with 503 OVERLOADED (queue full or process under pressure), by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
  })
  readonly unpriced = new Counter({
    name: 'usage_unpriced_events_total',
    help: 'Stored events the price catalog could not price, by provider',
    labelNames: ['provider'] as const,
    registers: [this.registry],
  })
  readonly alertDeliveries = new Counter({
    name: 'budget_alert_deliveries_total',
    help: 'Budget alert delivery attempts by channel and status (delivered; failed: will retry; gave_up: no attempts left)',
    labelNames: ['channel', 'status'] as const,
    registers: [this.registry],
  })
  readonly calls = new Counter({
    name: 'llm_calls_total',
    help: 'Stored model calls by bot, provider and model (bots and models capped, then other)',
    labelNames: ['bot', 'provider', 'model'] as const,
    registers: [this.registry],
  })
  readonly tokens = new Counter({
    name: 'llm_tokens_total',
    help: 'Tokens of stored model calls by type (input includes cache_read and cache_write; output includes reasoning)',
    labelNames: ['bot', 'provider', 'model', 'type'] as const,
    registers: [this.registry],
  })
  readonly cost = new Counter({
    name: 'llm_cost_usd_total',
    help: 'Cost of stored model calls in USD (priced or reported; unpriced calls add nothing)',
    labelNames: ['bot', 'provider', 'model'] as const,
    registers: [this.registry],
  })

  constructor(opts: MetricsOptions) {
    this.bots = new LabelCap(opts.maxBots)
    this.models = new LabelCap(opts.maxModels)
    collectDefaultMetrics({ register: this.registry })
  }

  observeGauges(sources: GaugeSources): void {
    new Gauge({
      name: 'usage_ingest_queue_events',
      help: 'Events waiting in the group-commit queue',
      registers: [this.registry],
      collect() {
        this.set(sources.queuedEvents())
      },
    })
    const rollupLag = sources.rollupLag
    if (rollupLag) {
      new Gauge({
        name: 'usage_rollup_lag_events',
        help: 'Committed events not yet folded into the rollups (reads add them from raw events), after the last fold',
        registers: [this.registry],
        collect() {
          this.set(rollupLag().rows)
        },
      })
      new Gauge({
        name: 'usage_rollup_lag_seconds',
        help: 'Age of the oldest committed event not yet folded into the rollups, after the last fold',
        registers: [this.registry],
        collect() {
          this.set(rollupLag().seconds)
        },
      })
    }
    const poolStats = sources.poolStats
    if (poolStats) {
      new Gauge({
        name: 'db_pool_connections',
        help: 'Database pool connections by state (in_use, idle) and requests waiting for one (waiting)',
        labelNames: ['state'] as const,
        registers: [this.registry],
        collect() {
          const s = poolStats()
          this.set({ state: 'in_use' }, s.total - s.idle)
          this.set({ state: 'idle' }, s.idle)
          this.set({ state: 'waiting' }, s.waiting)
        },
      })
    }
  }

  /** Gives bot labels to these bots first (at start: the top spenders), before first-come ones. */
  admitBots(botIds: string[]): void {
    this.bots.admit(botIds)
  }

  /** Business counters for events just committed (duplicates excluded). */
  readonly onCommitted = (events: readonly CountedEvent[]): void => {
    for (const e of events) {
      const labels = { bot: this.bots.label(e.botId), provider: this.providers.label(e.provider), model: this.models.label(e.model) }
      this.calls.inc(labels)
      const counts = [e.inputTokens, e.outputTokens, e.cacheReadTokens, e.cacheWriteTokens, e.reasoningTokens]
      TOKEN_TYPES.forEach((type, i) => {
        if (counts[i] > 0) this.tokens.inc({ ...labels, type }, counts[i])
      })
      if (e.cost !== null) this.cost.inc(labels, Number(e.cost))
      if (!e.priced) this.unpriced.inc({ provider: labels.provider })
    }
  }

  readonly onFlushed = (events: number, durationMs: number): void => {
    this.flushSize.observe(events)
    this.flushDuration.observe(durationMs / 1000)
  }

  /** One ingest request's outcome. */
  recordIngest(route: string, outcome: { created: number; duplicates: number; rejected: number; rejectedReason: string }): void {
    this.ingestBatches.inc({ route })
    if (outcome.created > 0) this.ingestEvents.inc({ route, outcome: 'created' }, outcome.created)
    if (outcome.duplicates > 0) this.ingestEvents.inc({ route, outcome: 'duplicate' }, outcome.duplicates)
    if (outcome.rejected > 0) {
      this.ingestEvents.inc({ route, outcome: 'rejected' }, outcome.rejected)
      this.ingestRejections.inc({ route, reason: outcome.rejectedReason }, outcome.rejected)
    }
  }

  readonly onAlertAttempt = (channel: string, status: 'delivered' | 'failed' | 'gave_up'): void => {
    this.alertDeliveries.inc({ channel, status })
  }
}

const INGEST_ROUTES = new Set(['/api/usage', '/api/usage/batch'])

declare module 'fastify' {
  interface FastifyReply {
    /** The error code of an error response, kept for the metrics. */
    errorCode?: string
  }
}

/**
 * Observes every request of `app`: duration by route and status, load shedding, and the outcome
 * of the usage ingest routes as their (documented) response bodies tell it.
 */
export function observeRequests(app: FastifyInstance, metrics: ServiceMetrics): void {
  app.addHook('preSerialization', async (request, reply, payload) => {
    const body = payload as Record<string, unknown> | null
    if (reply.statusCode >= 400 && body && typeof body.code === 'string') reply.errorCode = body.code
    const route = request.routeOptions.url
    if (request.method === 'POST' && route !== undefined && INGEST_ROUTES.has(route) && reply.statusCode < 300 && body) {
      if (route === '/api/usage') {
        metrics.recordIngest(route, { created: reply.statusCode === 201 ? 1 : 0, duplicates: reply.statusCode === 200 ? 1 : 0, rejected: 0, rejectedReason: '' })
      } else {
        metrics.recordIngest(route, {
          created: Number(body.created ?? 0),
          duplicates: Number(body.duplicates ?? 0),
          rejected: Number(body.invalid ?? 0),
          rejectedReason: 'invalid_event',
        })
      }
    }
    return payload
  })
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched'
    const status = reply.statusCode
    metrics.httpDuration.observe({ method: request.method, route, status: String(status) }, reply.elapsedTime / 1000)
    if (status >= 400 && request.method === 'POST' && (INGEST_ROUTES.has(route) || route === '/v1/traces')) {
      metrics.ingestRejections.inc({ route, reason: (reply.errorCode ?? `http_${status}`).toLowerCase() })
    }
    if (status === 503 && reply.errorCode === 'OVERLOADED') metrics.loadShed.inc({ route })
  })
}

/** GET /metrics on its own port (METRICS_PORT), for scrapers on a private network: no key. */
export async function listenMetrics(metrics: ServiceMetrics, port: number, host: string): Promise<{ server: Server; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('Not found: GET /metrics\n')
      return
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500).end(),
    )
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => resolve())
  })
  return { server, close: () => new Promise<void>((resolve) => server.close(() => resolve())) }
}

declare module 'fastify' {
  interface FastifyInstance {
    /** This app's metrics; server.ts serves them on METRICS_PORT when configured. */
    metrics: ServiceMetrics
  }
}

/** GET /metrics on the API port, for keys with the `metrics` scope (admin implies it). */
export async function metricsRoutes(app: FastifyInstance, opts: { metrics: ServiceMetrics }): Promise<void> {
  app.get(
    '/metrics',
    {
      config: { scope: 'metrics' },
      schema: {
        tags: ['metrics'],
        summary: 'Prometheus metrics (text exposition format)',
        description: 'Scrape with authorization: Bearer <key with the metrics scope>, or without a key on METRICS_PORT. See docs/metrics.md.',
        produces: ['text/plain'],
        response: { 200: { type: 'string', description: 'Prometheus text exposition format 0.0.4' } },
      },
    },
    async (_request, reply) => {
      const text = await opts.metrics.registry.metrics()
      return reply.type(opts.metrics.registry.contentType).send(text)
    },
  )
}
