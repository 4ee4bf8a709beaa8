import { randomBytes } from 'node:crypto'
import { canonicalTimeZone, timeZoneProblem } from '../lib/time-zone.js'
import type { StoredBudgetChannels } from '../db/schema.js'
import { Errors } from '../errors.js'
import { decimalFromNumber, parseDecimal, USD_FRACTION_DIGITS, usdFromNumber } from '../lib/money.js'
import type { BudgetPeriod } from './periods.js'
import type { Budget, BudgetScope } from './budget-store.js'
import { DEFAULT_THRESHOLDS, type CreateBudgetBody, type UpdateBudgetBody } from './schemas.js'

/** What a definition is checked against besides itself: the server's alert settings. */
export interface DefinitionContext {
  defaultTimeZone: string
  /** ALERT_TELEGRAM_BOT_TOKEN is set. */
  hasDefaultTelegramToken: boolean
  /** SMTP_URL is set. */
  emailConfigured: boolean
  /** ALERT_WEBHOOK_ALLOW_PRIVATE: webhook URLs may point at private, loopback and link-local addresses. */
  webhookAllowPrivate: boolean
}

export interface DefinedBudget {
  budget: Budget
  /** A webhook secret this request generated or set, returned in this response only. */
  revealedSecret: string | null
}

type WebhookInput = NonNullable<NonNullable<CreateBudgetBody['channels']>['webhook']>
type TelegramInput = NonNullable<NonNullable<CreateBudgetBody['channels']>['telegram']>

const CHAT_ID = /^(-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{3,63})$/
const BOT_TOKEN = /^\d{1,20}:[A-Za-z0-9_-]{10,}$/
const ADJECTIVE: Record<BudgetPeriod, string> = { day: 'daily', week: 'weekly', month: 'monthly' }

const invalid = (message: string) => new Errors.validation(message)

export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64url')}`
}

function toScope(s: CreateBudgetBody['scope']): BudgetScope {
  return { botId: s?.botId ?? null, provider: s?.provider ?? null, model: s?.model ?? null }
}

export function describeScope(s: BudgetScope): string {
  const parts = [
    s.botId === null ? null : `bot ${s.botId}`,
    s.provider === null ? null : `provider ${s.provider}`,
    s.model === null ? null : `model ${s.model}`,
  ].filter((p): p is string => p !== null)
  return parts.length === 0 ? 'all usage' : parts.join(', ')
}

function defaultName(scope: BudgetScope, period: BudgetPeriod): string {
  const what = describeScope(scope)
  return `${what.charAt(0).toUpperCase()}${what.slice(1)}, ${ADJECTIVE[period]}`
}

export function limitFrom(value: number, field: string): bigint {
  if (parseDecimal(decimalFromNumber(value)).scale > USD_FRACTION_DIGITS) {
    throw invalid(`${field} has more than ${USD_FRACTION_DIGITS} decimal places`)
  }
  return usdFromNumber(value)
}

function thresholdsFrom(values: number[], field: string): number[] {
  const seen = new Set<number>()
  values.forEach((v, i) => {
    if (seen.has(v)) throw invalid(`${field}[${i}] repeats the threshold ${v}`)
    seen.add(v)
  })
  return [...values].sort((a, b) => a - b)
}

export function timeZoneFrom(value: string, field: string): string {
  const zone = canonicalTimeZone(value)
  if (zone === null) throw invalid(timeZoneProblem(field, value))
  return zone
}

function webhookFrom(input: WebhookInput, previousSecret: string | null, field: string): { url: string; secret: string; revealed: string | null } {
  let url: URL
  try {
    url = new URL(input.url)
  } catch {
    throw invalid(`${field}.url must be an http or https URL`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(`${field}.url must be an http or https URL`)
  if (input.secret !== undefined) return { url: input.url, secret: input.secret, revealed: input.secret }
  if (previousSecret !== null) return { url: input.url, secret: previousSecret, revealed: null }
  const secret = generateWebhookSecret()
  return { url: input.url, secret, revealed: secret }
}

function telegramFrom(input: TelegramInput, previousToken: string | null, ctx: DefinitionContext, field: string) {
  const chatId = String(input.chatId)
  if (!CHAT_ID.test(chatId)) throw invalid(`${field}.chatId must be a numeric chat id or @channelusername`)
  // The token is a secret: messages describe it, never echo it.
  const botToken = input.botToken === undefined ? previousToken : input.botToken
  if (botToken !== null && !BOT_TOKEN.test(botToken)) throw invalid(`${field}.botToken must be a Bot API token like 123456:ABC-DEF...`)
  if (botToken === null && !ctx.hasDefaultTelegramToken) {
    throw invalid(`${field}.botToken is required: the server has no ALERT_TELEGRAM_BOT_TOKEN`)
  }
  return { chatId, botToken }
}

type SlackInput = NonNullable<NonNullable<CreateBudgetBody['channels']>['slack']>

/** The URL is the secret: messages say what is wrong with it, never echo it. */
function slackFrom(input: SlackInput, field: string): { url: string } {
  let url: URL
  try {
    url = new URL(input.webhookUrl)
  } catch {
    throw invalid(`${field}.webhookUrl must be an http or https URL (a Slack incoming-webhook URL)`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(`${field}.webhookUrl must be an http or https URL (a Slack incoming-webhook URL)`)
  return { url: input.webhookUrl }
}

function checkEmail(ctx: DefinitionContext, field: string): void {
  if (!ctx.emailConfigured) throw invalid(`${field} cannot be used: the server has no SMTP_URL configured`)
}

/** A per-user limit counts one bot's users: user ids of different bots are different people. */
function checkPerUser(budget: Budget, field: string): Budget {
  if (budget.perUser !== null && budget.scope.botId === null) {
    throw invalid(`${field} needs scope.botId: a per-user limit counts the users of one bot`)
  }
  return budget
}

/**
 * New channels from a create body's `channels` (budgets, spend alerts, report schedules alike);
 * 400 naming the field. A generated or given webhook secret is returned to show once.
 */
export function defineChannels(
  input: CreateBudgetBody['channels'],
  ctx: DefinitionContext,
): { channels: StoredBudgetChannels; revealedSecret: string | null } {
  const channels: StoredBudgetChannels = {}
  let revealedSecret: string | null = null
  if (input?.webhook) {
    const w = webhookFrom(input.webhook, null, 'body.channels.webhook')
    channels.webhook = { url: w.url, secret: w.secret }
    revealedSecret = w.revealed
  }
  if (input?.email) {
    checkEmail(ctx, 'body.channels.email')
    channels.email = { to: input.email.to }
  }
  if (input?.telegram) channels.telegram = telegramFrom(input.telegram, null, ctx, 'body.channels.telegram')
  if (input?.slack) channels.slack = slackFrom(input.slack, 'body.channels.slack')
  return { channels, revealedSecret }
}

/** A new budget from a POST body; 400 naming the field for anything the schema cannot check. */
export function defineBudget(id: string, body: CreateBudgetBody, ctx: DefinitionContext, now: Date): DefinedBudget {
  const scope = toScope(body.scope)
  const { channels, revealedSecret } = defineChannels(body.channels, ctx)
  return {
    budget: checkPerUser({
      id,
      name: body.name ?? defaultName(scope, body.period),
      scope,
      period: body.period,
      timeZone: timeZoneFrom(body.timeZone ?? ctx.defaultTimeZone, 'body.timeZone'),
      limit: limitFrom(body.limitUsd, 'body.limitUsd'),
      thresholds: thresholdsFrom(body.thresholds ?? DEFAULT_THRESHOLDS, 'body.thresholds'),
      notifyProjected: body.notifyProjected ?? true,
      channels,
      enabled: body.enabled ?? true,
      createdAt: now,
      updatedAt: now,
      action: body.action ?? 'alert',
      perUser: body.perUser === undefined ? null : { key: body.perUser.key },
    }, 'body.perUser'),
    revealedSecret,
  }
}

/** `existing` changed by a PATCH body: given fields replace, omitted ones stay. */
export function redefineBudget(existing: Budget, body: UpdateBudgetBody, ctx: DefinitionContext, now: Date): DefinedBudget {
  const channels: StoredBudgetChannels = { ...existing.channels }
  let revealedSecret: string | null = null
  const c = body.channels
  if (c?.webhook === null) delete channels.webhook
  else if (c?.webhook) {
    const w = webhookFrom(c.webhook, existing.channels.webhook?.secret ?? null, 'body.channels.webhook')
    channels.webhook = { url: w.url, secret: w.secret }
    revealedSecret = w.revealed
  }
  if (c?.email === null) delete channels.email
  else if (c?.email) {
    checkEmail(ctx, 'body.channels.email')
    channels.email = { to: c.email.to }
  }
  if (c?.telegram === null) delete channels.telegram
  else if (c?.telegram) channels.telegram = telegramFrom(c.telegram, existing.channels.telegram?.botToken ?? null, ctx, 'body.channels.telegram')
  if (c?.slack === null) delete channels.slack
  else if (c?.slack) channels.slack = slackFrom(c.slack, 'body.channels.slack')

  return {
    budget: checkPerUser({
      ...existing,
      name: body.name ?? existing.name,
      scope: body.scope === undefined ? existing.scope : toScope(body.scope),
      period: body.period ?? existing.period,
      timeZone: body.timeZone === undefined ? existing.timeZone : timeZoneFrom(body.timeZone, 'body.timeZone'),
      limit: body.limitUsd === undefined ? existing.limit : limitFrom(body.limitUsd, 'body.limitUsd'),
      thresholds: body.thresholds === undefined ? existing.thresholds : thresholdsFrom(body.thresholds, 'body.thresholds'),
      notifyProjected: body.notifyProjected ?? existing.notifyProjected,
      channels,
      enabled: body.enabled ?? existing.enabled,
      updatedAt: now,
      action: body.action ?? existing.action,
      perUser: body.perUser === undefined ? existing.perUser : body.perUser === null ? null : { key: body.perUser.key },
    }, 'body.perUser'),
    revealedSecret,
  }
}
