// The end-to-end case: a per-user daily hard budget; a Telegram user spends until blocked;
// the provider gets no further call and no usage is recorded; the next day (a moved clock, on the
// service and the bot) the user is answered again. Real bot, real service, fake Telegram and Anthropic.
import t, { type Test } from 'tap'
import { backAt } from '../../bots/telegram/handlers/budget.js'
import { ADMIN_KEY, bearer } from '../helpers/app.js'
import { waitFor } from '../helpers/wait.js'
import { converse, startBot, startUsageService, USER, type RunningBot, type UsageService } from './harness.js'

/** Real time plus an offset the test moves: events stamped by the client stay inside the clock's day. */
let offsetMs = 0
const now = () => new Date(Date.now() + offsetMs)
const service = await startUsageService(t, { budgetClock: now, env: { BUDGET_DEBOUNCE_MS: '5' } })
t.afterEach(() => {
  offsetMs = 0
})

/** Every call costs $0.10: 100k input tokens of claude-haiku-4-5 at $1 per million. */
const CALL = { text: 'An answer.', usage: { input_tokens: 100_000, output_tokens: 0 } }

async function createBudget(s: UsageService, body: Record<string, unknown>): Promise<{ id: string }> {
  const res = await s.app.inject({ method: 'POST', url: '/api/budgets', headers: bearer(ADMIN_KEY), payload: body })
  if (res.statusCode !== 201) throw new Error(`budget: ${res.statusCode} ${res.body}`)
  return res.json() as { id: string }
}

async function storedCalls(s: UsageService, botId: string): Promise<number> {
  const usage = await s.usage({ botId, startDate: '2000-01-01', endDate: '2100-01-01' })
  return usage.stats.reduce((n, row) => n + row._count.id, 0)
}

/** One message answered by the model; waits until the service stored its usage (the next check must see it). */
async function answered(t: Test, running: RunningBot, text: string, chatId = USER.id): Promise<void> {
  const before = await storedCalls(service, running.botId)
  const calls = running.provider.requests.length
  running.provider.enqueue(CALL)
  t.same(await converse(running, text, { chatId }), ['An answer.'], `"${text}" is answered by the model`)
  t.equal(running.provider.requests.length, calls + 1)
  await waitFor(async () => (await storedCalls(service, running.botId)) === before + 1, 'the call stored')
}

t.test('a user who spent the daily allowance is told when they are back, the model is not called; the next day they are answered', async (t) => {
  const botId = 'tg_budget'
  await createBudget(service, { name: 'each user 25c a day', scope: { botId }, period: 'day', timeZone: 'UTC', limitUsd: 0.25, action: 'block', perUser: { key: 'userId' }, thresholds: [100] })
  const running = await startBot(t, service, { provider: 'anthropic', botId, now, env: { USAGE_CLIENT_ALLOWANCE_CACHE_MS: '0' } })

  await answered(t, running, 'one')
  await answered(t, running, 'two')
  await answered(t, running, 'three')

  const calls = running.provider.requests.length
  const stored = await storedCalls(service, botId)
  const [reply] = await converse(running, 'four')
  t.match(reply, /^You have used up your allowance for now\. I can answer again on \w{3} \d{1,2} \w{3}, 00:00 UTC \(in (about \d+ hours?|\d+ minutes?)\)\.$/, 'a polite answer with when')
  t.equal(running.provider.requests.length, calls, 'the provider received no call')
  await converse(running, 'five')
  t.equal(running.provider.requests.length, calls, 'nor for the next message')
  await running.usage.flush({ timeoutMs: 2000 })
  t.equal(await storedCalls(service, botId), stored, 'no usage was recorded for the refused messages')
  t.match(running.log(), /a budget is spent; the model was not called/)

  // Another Telegram user of the same bot has their own allowance.
  await answered(t, running, 'hello from someone else', 777)

  // The next day, UTC.
  const tomorrow = new Date(now())
  tomorrow.setUTCHours(24, 0, 1, 0)
  offsetMs += tomorrow.getTime() - now().getTime()
  await answered(t, running, 'good morning')
})

t.test('the bot as a whole: a whole-bot block budget stops every user', async (t) => {
  const botId = 'tg_budget_bot'
  await createBudget(service, { scope: { botId }, period: 'month', limitUsd: 0.15, action: 'block' })
  const running = await startBot(t, service, { provider: 'anthropic', botId, now, env: { USAGE_CLIENT_ALLOWANCE_CACHE_MS: '0' } })
  await answered(t, running, 'one')
  await answered(t, running, 'two')
  const calls = running.provider.requests.length
  const [reply] = await converse(running, 'three', { chatId: 999 })
  t.match(reply, /^This bot has used up its budget for now\. I can answer again on /)
  t.equal(running.provider.requests.length, calls, 'the provider received no call')
})

t.test('BOT_BUDGET_CHECK=off: the bot does not ask', async (t) => {
  const botId = 'tg_budget_off'
  await createBudget(service, { scope: { botId }, period: 'month', limitUsd: 0.05, action: 'block' })
  const running = await startBot(t, service, { provider: 'anthropic', botId, now, env: { BOT_BUDGET_CHECK: 'off', USAGE_CLIENT_ALLOWANCE_CACHE_MS: '0' } })
  await answered(t, running, 'one')
  await answered(t, running, 'two, over the budget, answered anyway')
})

t.test('the usage service is unreachable: the bot fails open and answers', async (t) => {
  const running = await startBot(t, service, { provider: 'anthropic', botId: 'tg_budget_down', usageUrl: 'http://127.0.0.1:9', env: { USAGE_CLIENT_ALLOWANCE_TIMEOUT_MS: '300' } })
  running.provider.enqueue(CALL)
  t.same(await converse(running, 'hello'), ['An answer.'])
  t.equal(running.provider.requests.length, 1)
})

t.test('when the bot is back, in words', async (t) => {
  const at = new Date('2025-03-21T00:00:00Z')
  t.equal(backAt(at, new Date('2025-03-20T23:59:30Z')), 'on Fri 21 Mar, 00:00 UTC (in 1 minute)')
  t.equal(backAt(at, new Date('2025-03-20T23:15:00Z')), 'on Fri 21 Mar, 00:00 UTC (in 45 minutes)')
  t.equal(backAt(at, new Date('2025-03-20T19:10:00Z')), 'on Fri 21 Mar, 00:00 UTC (in about 5 hours)')
  t.equal(backAt(new Date('2025-04-01T00:00:00Z'), new Date('2025-03-20T12:00:00Z')), 'on Tue 1 Apr, 00:00 UTC (in about 12 days)')
})
