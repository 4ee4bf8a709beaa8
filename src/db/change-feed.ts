import { sql } from 'drizzle-orm'
import type { FastifyBaseLogger } from 'fastify'
import { randomUUID } from 'node:crypto'
import pg from 'pg'
import type { Database } from './connect.js'

/** What changed: API keys (created, revoked), price overrides, budgets. */
export type ChangeTopic = 'keys' | 'prices' | 'budgets'

/**
 * One channel for every deployment on the server; a message names its schema, so deployments
 * (and test runs) sharing one database ignore each other's changes.
 */
const CHANNEL = 'llm_usage_changes'
const RECONNECT_MIN_MS = 100
const RECONNECT_MAX_MS = 5000

interface ChangeMessage {
  schema: string
  topic: ChangeTopic
  /** The changed row (a budget's id), when the receivers can use it. */
  id: string | null
  /** The instance that made the change: it has applied the change itself already. */
  origin: string
}

/**
 * Tells every other instance at once that keys, prices or budgets changed, through Postgres
 * LISTEN/NOTIFY: each instance holds one dedicated listening connection, outside the pool. The
 * instance that made a change applies it itself before answering; the others drop their caches
 * when the notification arrives. Their TTL caches stay the fallback: a notification lost while
 * a listener was disconnected is covered by a full refresh when it reconnects.
 *
 * On the embedded engine there is only ever one process, so nothing is sent.
 */
export class ChangeFeed {
  private readonly origin = randomUUID()
  private readonly handlers = new Map<ChangeTopic, ((id: string | null) => void)[]>()
  private listener: pg.Client | null = null
  private reconnectTimer: NodeJS.Timeout | null = null
  private failures = 0
  private connectedOnce = false
  private closed = false

  constructor(
    private readonly database: Database,
    private readonly opts: {
      /** The primary's URL; null (embedded engine, or a database handed in by a test): in-process only. */
      connectionString: string | null
      log: FastifyBaseLogger
    },
  ) {}

  private get shared(): boolean {
    return this.database.engine === 'postgres' && this.opts.connectionString !== null
  }

  /** `handler(id)` runs for changes made by other instances; `id` is null for "anything may have changed". */
  on(topic: ChangeTopic, handler: (id: string | null) => void): void {
    this.handlers.set(topic, [...(this.handlers.get(topic) ?? []), handler])
  }

  /** Starts listening. A failure is logged and retried: instances still converge through their TTLs. */
  async start(): Promise<void> {
    if (this.shared) await this.connect()
  }

  /** After a change committed through this instance. Never throws: a lost message costs one TTL. */
  publish(topic: ChangeTopic, id: string | null = null): void {
    if (!this.shared || this.closed) return
    const message: ChangeMessage = { schema: this.database.schema, topic, id, origin: this.origin }
    this.database
      .rows(sql`SELECT pg_notify(${CHANNEL}, ${JSON.stringify(message)})`)
      .catch((err: unknown) => this.opts.log.warn({ err }, `announcing a change of ${topic} to other instances failed; they see it within their cache TTL`))
  }

  async close(): Promise<void> {
    this.closed = true
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer)
    const listener = this.listener
    this.listener = null
    await listener?.end().catch(() => undefined)
  }

  private async connect(): Promise<void> {
    const client = new pg.Client({
      connectionString: this.opts.connectionString ?? undefined,
      // Named so an operator (or a test) can tell this connection from the pool's.
      application_name: `llm-usage-listener:${this.database.schema}`.slice(0, 63),
      connectionTimeoutMillis: 5000,
      keepAlive: true,
    })
    client.on('notification', (n) => this.receive(n.payload))
    client.on('error', (err) => this.dropped(client, err))
    client.on('end', () => this.dropped(client, new Error('listening connection ended')))
    this.listener = client
    try {
      await client.connect()
      await client.query(`LISTEN ${CHANNEL}`)
    } catch (err) {
      this.dropped(client, err instanceof Error ? err : new Error(String(err)))
      return
    }
    if (this.listener !== client) return
    this.failures = 0
    if (this.connectedOnce) {
      this.opts.log.info('change listener reconnected; refreshing keys, prices and budgets')
      // Whatever was announced while disconnected is lost: refresh everything.
      for (const topic of this.handlers.keys()) this.deliver(topic, null)
    }
    this.connectedOnce = true
  }

  private dropped(client: pg.Client, err: Error): void {
    // Only the current connection's first failure counts (a failing client reports it more than once).
    if (this.closed || this.listener !== client) return
    this.listener = null
    client.end().catch(() => undefined)
    this.failures++
    const delay = Math.min(RECONNECT_MIN_MS * 2 ** (this.failures - 1), RECONNECT_MAX_MS)
    this.opts.log.warn({ err: { message: err.message }, retryInMs: delay }, 'change listener disconnected; other instances changes arrive within their cache TTL until it reconnects')
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null
      void this.connect()
    }, delay)
    this.reconnectTimer.unref()
  }

  private receive(payload: string | undefined): void {
    let message: ChangeMessage
    try {
      message = JSON.parse(payload ?? '') as ChangeMessage
    } catch {
      return
    }
    if (message.schema !== this.database.schema || message.origin === this.origin) return
    this.deliver(message.topic, typeof message.id === 'string' ? message.id : null)
  }

  private deliver(topic: ChangeTopic, id: string | null): void {
    for (const handler of this.handlers.get(topic) ?? []) {
      try {
        handler(id)
      } catch (err) {
        this.opts.log.warn({ err }, `applying a change of ${topic} from another instance failed`)
      }
    }
  }
}
