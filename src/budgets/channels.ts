import { createHmac } from 'node:crypto'
import { STATUS_CODES } from 'node:http'
import nodemailer, { type Transporter } from 'nodemailer'
import { Agent, request } from 'undici'
import { formatUsd, PICO_PER_USD, usdToNumber } from '../lib/money.js'
import { describeScope } from './definition.js'
import { guardedAgent } from './outbound.js'
import type { ClaimedDelivery } from './delivery-store.js'

/** Header names of signed webhooks (documented in docs/budgets.md). */
export const SIGNATURE_HEADER = 'x-signature'
export const TIMESTAMP_HEADER = 'x-timestamp'

export interface ChannelSettings {
  smtpUrl: string | null
  emailFrom: string | null
  telegramBotToken: string | null
  telegramApiRoot: string
  /** Base URL of the service; Slack messages link to its /dashboard. null or absent: no link. */
  publicUrl?: string | null
  /** Per request: connect, headers and body each (webhook, Telegram, SMTP). */
  timeoutMs: number
  /** ALERT_WEBHOOK_ALLOW_PRIVATE: budget URLs may reach private, loopback and link-local addresses. */
  webhookAllowPrivate: boolean
}

type DeliveredBudget = NonNullable<ClaimedDelivery['budget']>

/** An alert as people and programs read it. */
export interface AlertMessage {
  subject: string
  text: string
  /** The webhook body, before `sentAt` is added. */
  payload: Record<string, unknown>
  /** The numbers, labelled, in the order people read them (Slack fields). */
  facts: { label: string; value: string }[]
}

const ADJECTIVE = { day: 'daily', week: 'weekly', month: 'monthly' } as const

/** "$41.20"; amounts under a cent keep their exact digits ("$0.0042"). */
export function dollars(pico: bigint): string {
  const cent = PICO_PER_USD / 100n
  const cents = (pico + cent / 2n) / cent
  if (cents === 0n && pico !== 0n) return `$${formatUsd(pico)}`
  return `$${cents / 100n}.${String(cents % 100n).padStart(2, '0')}`
}

/** Percent with two decimals, rounded down: 82.4 means 82.4 %. */
export function percentOf(spent: bigint, limit: bigint): number {
  return limit === 0n ? 0 : Number((spent * 10_000n) / limit) / 100
}

function localTime(at: Date, timeZone: string): string {
  return new Intl.DateTimeFormat('sv-SE', { timeZone, dateStyle: 'short', timeStyle: 'short' }).format(at)
}

export function composeAlert(d: ClaimedDelivery, budget: DeliveredBudget): AlertMessage {
  const a = d.alert
  const period = `${localTime(a.window.start, budget.timeZone)} to ${localTime(a.window.end, budget.timeZone)} (${budget.timeZone})`
  const percent = percentOf(a.spent, a.limit)
  const who = a.userId === null ? '' : ` for user ${a.userId}`
  const subject =
    a.kind === 'threshold'
      ? `Budget "${budget.name}" reached ${a.threshold}%${who}: ${dollars(a.spent)} of ${dollars(a.limit)} ${ADJECTIVE[budget.period]}`
      : `Budget "${budget.name}" is projected to overrun${who}: ${dollars(a.projected ?? 0n)} of ${dollars(a.limit)} by period end`
  const facts = [
    { label: 'Budget', value: `${budget.name} (${budget.id})` },
    { label: 'Scope', value: describeScope(budget.scope) },
    ...(a.userId === null || budget.perUser === null ? [] : [{ label: 'User', value: `${budget.perUser.key} ${a.userId}` }]),
    { label: 'Period', value: period },
    { label: 'Spent', value: `${dollars(a.spent)} of ${dollars(a.limit)} (${percent}%)` },
  ]
  if (a.projected !== null) facts.push({ label: 'Projected at period end', value: dollars(a.projected) })
  if (a.alsoCrossed.length > 0) facts.push({ label: 'Also crossed', value: a.alsoCrossed.map((t) => `${t}%`).join(', ') })
  return {
    subject,
    facts,
    text: [subject, '', ...facts.map((f) => `${f.label}: ${f.value}`)].join('\n'),
    payload: {
      id: a.id,
      type: a.kind === 'threshold' ? 'budget.threshold_reached' : 'budget.projected_overrun',
      budget: { id: budget.id, name: budget.name, scope: budget.scope, period: budget.period, timeZone: budget.timeZone },
      ...(a.userId === null ? {} : { userId: a.userId }),
      threshold: a.threshold,
      alsoCrossed: a.alsoCrossed,
      limitUsd: usdToNumber(a.limit),
      spentUsd: usdToNumber(a.spent),
      percent,
      projectedUsd: a.projected === null ? null : usdToNumber(a.projected),
      periodStart: a.window.start.toISOString(),
      periodEnd: a.window.end.toISOString(),
      createdAt: a.createdAt.toISOString(),
      message: subject,
    },
  }
}

export function signBody(body: string, secret: string): string {
  return `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`
}

/** Slack mrkdwn treats these three as control characters. */
function slackEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;')
}

/**
 * A Block Kit message: header, the numbers as fields, a button to the dashboard when the public
 * URL is known; `text` is the fallback notifications and old clients show.
 */
export function composeSlack(message: AlertMessage, publicUrl: string | null): Record<string, unknown> {
  const dashboard = publicUrl === null ? null : `${publicUrl}/dashboard`
  const blocks: Record<string, unknown>[] = [
    // Header text is plain_text of at most 150 characters.
    { type: 'header', text: { type: 'plain_text', text: message.subject.length > 150 ? `${message.subject.slice(0, 149)}…` : message.subject } },
    { type: 'section', fields: message.facts.map((f) => ({ type: 'mrkdwn', text: `*${slackEscape(f.label)}*\n${slackEscape(f.value)}` })) },
  ]
  if (dashboard !== null) {
    blocks.push({ type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: 'Open dashboard' }, url: dashboard }] })
  }
  blocks.push({ type: 'context', elements: [{ type: 'mrkdwn', text: `Alert ${slackEscape(String(message.payload.id))}` }] })
  const text = dashboard === null ? message.text : `${message.text}\n\nDashboard: ${dashboard}`
  return { text, blocks }
}

class DeliveryError extends Error {}

/** "HTTP 500 Internal Server Error": what a failed delivery records, never the receiver's body. */
function statusLine(status: number): string {
  return `HTTP ${status}${STATUS_CODES[status] ? ` ${STATUS_CODES[status]}` : ''}`
}

/** The three ways out. Clients are created here and closed with `close()`. */
export class AlertChannels {
  /**
   * Every request to a URL a budget supplies (webhook, and any channel that posts to a user's URL)
   * goes through this dispatcher: it refuses non-public destinations at connect time (outbound.ts).
   */
  private readonly agent: Agent
  /** Only for TELEGRAM_API_ROOT, a host the operator configured (a local Bot API server is common). */
  private readonly operatorAgent: Agent
  private mailer: Transporter | null = null

  constructor(private readonly settings: ChannelSettings) {
    this.agent = guardedAgent({ allowPrivate: settings.webhookAllowPrivate, timeoutMs: settings.timeoutMs })
    this.operatorAgent = new Agent({
      connect: { timeout: settings.timeoutMs },
      headersTimeout: settings.timeoutMs,
      bodyTimeout: settings.timeoutMs,
    })
  }

  async webhook(channel: { url: string; secret: string }, message: AlertMessage, attempt: number, signal: AbortSignal): Promise<void> {
    const sentAt = new Date()
    // The timestamp is inside the signed body too, so a receiver can refuse replays.
    const body = JSON.stringify({ ...message.payload, sentAt: sentAt.toISOString(), attempt })
    await this.postJson('webhook', channel.url, body, signal, {
      [SIGNATURE_HEADER]: signBody(body, channel.secret),
      [TIMESTAMP_HEADER]: String(Math.floor(sentAt.getTime() / 1000)),
      'x-alert-id': String(message.payload.id),
    })
  }

  /** Slack incoming webhook: Block Kit with a text fallback; Slack answers 200 "ok". */
  async slack(channel: { url: string }, message: AlertMessage, signal: AbortSignal): Promise<void> {
    await this.postJson('Slack', channel.url, JSON.stringify(composeSlack(message, this.settings.publicUrl ?? null)), signal)
  }

  /** The one way alerts POST JSON over HTTP (webhook and Slack); any non-2xx is a failed attempt. */
  private async postJson(what: string, url: string, body: string, signal: AbortSignal, headers: Record<string, string> = {}): Promise<void> {
    const res = await request(url, {
      method: 'POST',
      dispatcher: this.agent,
      signal,
      headers: { 'content-type': 'application/json', 'user-agent': 'llm-usage-tracker-alerts/1', ...headers },
      body,
    })
    // The receiver's body is never stored or logged: a URL a budget supplies must not become a
    // way to read what some internal service answers.
    await res.body.dump()
    if (res.statusCode < 200 || res.statusCode >= 300) throw new DeliveryError(`${what} answered ${statusLine(res.statusCode)}`)
  }

  async email(channel: { to: string[] }, message: AlertMessage): Promise<void> {
    const { smtpUrl, emailFrom } = this.settings
    if (smtpUrl === null || emailFrom === null) throw new DeliveryError('SMTP_URL is not configured')
    this.mailer ??= nodemailer.createTransport({
      url: smtpUrl,
      connectionTimeout: this.settings.timeoutMs,
      greetingTimeout: this.settings.timeoutMs,
      socketTimeout: this.settings.timeoutMs,
    })
    await this.mailer.sendMail({ from: emailFrom, to: channel.to, subject: message.subject, text: message.text })
  }

  async telegram(channel: { chatId: string; botToken: string | null }, message: AlertMessage, signal: AbortSignal): Promise<void> {
    const token = channel.botToken ?? this.settings.telegramBotToken
    if (token === null) throw new DeliveryError('no bot token: set botToken on the channel or ALERT_TELEGRAM_BOT_TOKEN')
    const res = await request(`${this.settings.telegramApiRoot}/bot${token}/sendMessage`, {
      method: 'POST',
      dispatcher: this.operatorAgent,
      signal,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ chat_id: channel.chatId, text: message.text, disable_web_page_preview: true }),
    })
    const text = await res.body.text()
    let reply: { ok?: unknown; description?: unknown } = {}
    try {
      reply = JSON.parse(text) as typeof reply
    } catch {
      // Not the Bot API's JSON: report the status below.
    }
    if (res.statusCode !== 200 || reply.ok !== true) {
      const description = typeof reply.description === 'string' ? `: ${reply.description.slice(0, 200)}` : ''
      throw new DeliveryError(`Telegram answered HTTP ${res.statusCode}${description}`)
    }
  }

  /** Secrets that must never reach a stored error or a log line. */
  secrets(extra: Array<string | null | undefined>): string[] {
    const all = [...extra, this.settings.telegramBotToken]
    if (this.settings.smtpUrl !== null) {
      try {
        const password = decodeURIComponent(new URL(this.settings.smtpUrl).password)
        if (password) all.push(password)
      } catch {
        // Validated at start; nothing to hide otherwise.
      }
    }
    return all.filter((s): s is string => typeof s === 'string' && s.length > 0)
  }

  async close(): Promise<void> {
    this.mailer?.close()
    await Promise.all([this.agent.close(), this.operatorAgent.close()])
  }
}
