import type { FastifyBaseLogger } from 'fastify'
import type { Database } from '../db/connect.js'
import { AlertChannels, composeAlert, type ChannelSettings } from './channels.js'
import {
  claimDueDeliveries,
  markAttemptFailed,
  markCancelled,
  markDelivered,
  msUntilNextDelivery,
  releaseClaim,
  type ClaimedDelivery,
} from './delivery-store.js'

export interface DeliveryOptions extends ChannelSettings {
  maxAttempts: number
  retryBaseMs: number
  log: FastifyBaseLogger
  /** Told the outcome of every attempt (metrics). Must be cheap and not throw. */
  onAttempt?: (channel: string, status: 'delivered' | 'failed' | 'gave_up') => void
}

const CLAIM_BATCH = 20

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
  /** A claim outlives the slowest attempt, so only a dead instance's claims are taken over. */
  private readonly leaseMs: number

  constructor(
    private readonly database: Database,
    private readonly opts: DeliveryOptions,
  ) {
    this.channels = new AlertChannels(opts)
    this.leaseMs = opts.timeoutMs * 3 + 60_000
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
      if (claimed.length === 0) break
      await Promise.all(claimed.map((d) => this.attempt(d)))
      if (this.closed) return
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
    const secrets = this.channels.secrets([budget.channels.webhook?.secret, budget.channels.telegram?.botToken, budget.channels.slack?.url])
    try {
      const message = composeAlert(d, budget)
      const signal = this.abort.signal
      if (d.channel === 'webhook') {
        const c = budget.channels.webhook
        if (!c) return await markCancelled(this.database, d.id, 'the webhook channel was removed from the budget')
        await this.channels.webhook(c, message, d.attempt, signal)
      } else if (d.channel === 'email') {
        const c = budget.channels.email
        if (!c) return await markCancelled(this.database, d.id, 'the email channel was removed from the budget')
        await this.channels.email(c, message)
      } else if (d.channel === 'slack') {
        const c = budget.channels.slack
        if (!c) return await markCancelled(this.database, d.id, 'the slack channel was removed from the budget')
        await this.channels.slack(c, message, signal)
      } else {
        const c = budget.channels.telegram
        if (!c) return await markCancelled(this.database, d.id, 'the telegram channel was removed from the budget')
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
