import type { FastifyBaseLogger } from 'fastify'
import type { Database } from '../db/connect.js'
import type { StoredBudgetChannels } from '../db/schema.js'
import { AlertChannels, composeAlert, type AlertMessage, type ChannelSettings } from './channels.js'
import {
  claimDueDeliveries,
  claimDueOutboxDeliveries,
  markAttemptFailed,
  markCancelled,
  markDelivered,
  msUntilNextDelivery,
  releaseClaim,
  type ClaimedDelivery,
  type ClaimedOutboxDelivery,
} from './delivery-store.js'

export interface DeliveryOptions extends ChannelSettings {
  maxAttempts: number
  retryBaseMs: number
  log: FastifyBaseLogger
  /** Told the outcome of every attempt (metrics). Must be cheap and not throw. */
  onAttempt?: (channel: string, status: 'delivered' | 'failed' | 'gave_up') => void
}

const CLAIM_BATCH = 20

/** What one alert of another source (a spend alert, a report) sends, and where. */
export interface OutboxMessage {
  /** The channels of its rule or schedule as they are now. */
  channels: StoredBudgetChannels
  message: AlertMessage
  /** Fields of the delivery's log lines (ids, never secrets). */
  log: Record<string, string>
}

/** Another feature's alerts delivered through the same table, channels and retries as budget alerts. */
export interface OutboxSource {
  source: 'spend' | 'report'
  /** The message of each alert id; an id left out is cancelled (its rule or schedule was deleted). */
  resolve(alertIds: string[]): Promise<Map<string, OutboxMessage>>
}

export function redact(message: string, secrets: string[]): string {
  return secrets.reduce((m, s) => m.split(s).join('[redacted]'), message)
}

/**
 * Sends what budget_deliveries says is due, on any instance: each attempt first claims its row
 * (FOR UPDATE SKIP LOCKED, with a lease), so one delivery is sent by one instance at a time and
 * resumes after a restart from the table. Channels of an alert are sent concurrently: a slow or
 * failing one does not hold up the others. Failures retry with exponential backoff.
 */
export class DeliveryWorker {
  private readonly channels: AlertChannels
  private readonly abort = new AbortController()
  private running: Promise<void> | null = null
  private again = false
  private wakeTimer: NodeJS.Timeout | null = null
  private closed = false
  private readonly sources: OutboxSource[] = []
  /** A claim outlives the slowest attempt, so only a dead instance's claims are taken over. */
  private readonly leaseMs: number

  constructor(
    private readonly database: Database,
    private readonly opts: DeliveryOptions,
  ) {
    this.channels = new AlertChannels(opts)
    this.leaseMs = opts.timeoutMs * 3 + 60_000
  }

  /** Delivers `source`'s alerts too (see OutboxSource). */
  addSource(source: OutboxSource): void {
    this.sources.push(source)
  }

  /** Sends whatever is due now, then sleeps until the next pending delivery is due. */
  kick(): void {
    if (this.closed) return
    if (this.running) {
      this.again = true
      return
    }
    this.running = this.drain()
      .catch((err: unknown) => this.opts.log.warn({ err }, 'sending budget alerts failed; will retry'))
      .finally(() => {
        this.running = null
        if (this.again) {
          this.again = false
          this.kick()
        }
      })
  }

  private async drain(): Promise<void> {
    for (;;) {
      this.again = false
      const claimed = await claimDueDeliveries(this.database, CLAIM_BATCH, this.leaseMs)
      let more = claimed.length > 0
      await Promise.all(claimed.map((d) => this.attempt(d)))
      for (const source of this.sources) {
        if (this.closed) return
        const outbox = await claimDueOutboxDeliveries(this.database, source.source, CLAIM_BATCH, this.leaseMs)
        if (outbox.length === 0) continue
        more = true
        const messages = await source.resolve([...new Set(outbox.map((d) => d.alertId))])
        await Promise.all(outbox.map((d) => this.attemptOutbox(d, messages.get(d.alertId))))
      }
      if (this.closed) return
      if (!more) break
    }
    const wait = await msUntilNextDelivery(this.database)
    if (wait !== null && !this.closed) this.wakeIn(Math.max(wait, 25))
  }

  private wakeIn(ms: number): void {
    if (this.wakeTimer) clearTimeout(this.wakeTimer)
    this.wakeTimer = setTimeout(() => {
      this.wakeTimer = null
      this.kick()
    }, Math.min(ms, 2_147_000_000))
    this.wakeTimer.unref()
  }

  private async attempt(d: ClaimedDelivery): Promise<void> {
    const budget = d.budget
    if (budget === null) return markCancelled(this.database, d.id, 'the budget was deleted')
    const log = this.opts.log.child({ alertId: d.alert.id, budgetId: budget.id, channel: d.channel, attempt: d.attempt })
    await this.send(d, budget.channels, () => composeAlert(d, budget), log, 'budget')
  }

  private async attemptOutbox(d: ClaimedOutboxDelivery, found: OutboxMessage | undefined): Promise<void> {
    if (found === undefined) return markCancelled(this.database, d.id, 'its spend-alert rule or report schedule was deleted')
    const log = this.opts.log.child({ alertId: d.alertId, ...found.log, channel: d.channel, attempt: d.attempt })
    await this.send(d, found.channels, () => found.message, log, 'rule')
  }

  /** One attempt of one delivery on its channel; the outcome is recorded in the table. */
  private async send(
    d: { id: string; channel: ClaimedDelivery['channel']; attempt: number },
    channels: StoredBudgetChannels,
    compose: () => AlertMessage,
    log: FastifyBaseLogger,
    owner: 'budget' | 'rule',
  ): Promise<void> {
    const secrets = this.channels.secrets([channels.webhook?.secret, channels.telegram?.botToken, channels.slack?.url])
    try {
      const message = compose()
      const signal = this.abort.signal
      const removed = (name: string) => markCancelled(this.database, d.id, `the ${name} channel was removed from the ${owner}`)
      if (d.channel === 'webhook') {
        const c = channels.webhook
        if (!c) return await removed('webhook')
        await this.channels.webhook(c, message, d.attempt, signal)
      } else if (d.channel === 'email') {
        const c = channels.email
        if (!c) return await removed('email')
        await this.channels.email(c, message)
      } else if (d.channel === 'slack') {
        const c = channels.slack
        if (!c) return await removed('slack')
        await this.channels.slack(c, message, signal)
      } else {
        const c = channels.telegram
        if (!c) return await removed('telegram')
        await this.channels.telegram(c, message, signal)
      }
      await markDelivered(this.database, d.id)
      this.opts.onAttempt?.(d.channel, 'delivered')
      log.info('budget alert delivered')
    } catch (err) {
      if (this.closed) {
        await releaseClaim(this.database, d.id)
        return
      }
      const error = redact(err instanceof Error ? err.message : String(err), secrets).slice(0, 1000)
      const retryIn = d.attempt >= this.opts.maxAttempts ? null : this.opts.retryBaseMs * 2 ** (d.attempt - 1)
      await markAttemptFailed(this.database, d.id, error, retryIn)
      this.opts.onAttempt?.(d.channel, retryIn === null ? 'gave_up' : 'failed')
      log.warn({ error, retryInMs: retryIn }, retryIn === null ? 'budget alert delivery failed for good' : 'budget alert delivery failed; will retry')
    }
  }

  /** Stops sending: attempts in flight are aborted and given back to the table for the next start. */
  async stop(): Promise<void> {
    this.closed = true
    if (this.wakeTimer) clearTimeout(this.wakeTimer)
    this.abort.abort()
    await this.running
    await this.channels.close()
  }
}
