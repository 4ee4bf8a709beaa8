import type { HandlerDeps } from './deps.js'

/**
 * The reply when the service's hard budgets say this user (or the whole bot) may not call the
 * model now; null to go ahead. Asked before every model call unless BOT_BUDGET_CHECK=off. The
 * client fails open: when the service cannot answer, the call goes ahead.
 */
export async function budgetRefusal({ config, usage, log, now }: HandlerDeps, userId: number): Promise<string | null> {
  if (!config.usage.budgetCheck) return null
  const allowance = await usage.allowance({ userId, provider: config.llm.provider, model: config.llm.model })
  if (allowance.allowed) return null
  log.info({ userId, resetsAt: allowance.resetsAt?.toISOString() ?? null, budgets: allowance.blockedBy.map((b) => b.budgetId) }, 'a budget is spent; the model was not called')
  const perUser = allowance.blockedBy.length > 0 && allowance.blockedBy.every((b) => b.userId !== undefined)
  const what = perUser ? 'You have used up your allowance for now' : 'This bot has used up its budget for now'
  return allowance.resetsAt === null ? `${what}. Please try again later.` : `${what}. I can answer again ${backAt(allowance.resetsAt, now())}.`
}

const dateFormat = new Intl.DateTimeFormat('en-GB', { timeZone: 'UTC', weekday: 'short', day: 'numeric', month: 'short', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })

/** "on Fri, 21 Mar, 00:00 UTC (in about 3 hours)": absolute in UTC, and how far from now. */
export function backAt(at: Date, now: Date): string {
  return `on ${dateFormat.format(at)} UTC (${fromNow(at.getTime() - now.getTime())})`
}

function fromNow(ms: number): string {
  const minutes = Math.max(1, Math.ceil(ms / 60_000))
  if (minutes < 60) return `in ${minutes} minute${minutes === 1 ? '' : 's'}`
  const hours = Math.round(minutes / 60)
  if (hours < 48) return `in about ${hours} hour${hours === 1 ? '' : 's'}`
  return `in about ${Math.round(hours / 24)} days`
}
