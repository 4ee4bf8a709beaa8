import t from 'tap'
import type { LlmProvider } from '../../bots/telegram/config.js'
import { friendlyFailureReplies } from '../../bots/telegram/llm.js'
import { formatCount, formatUsd, usagePeriods } from '../../bots/telegram/usage-report.js'
import type { ScriptedReply } from '../helpers/fake-providers.js'
import { ADMIN_KEY, bearer } from '../helpers/app.js'
import { waitFor } from '../helpers/wait.js'
import {
  converse,
  freePort,
  MODELS,
  startBot,
  startUsageService,
  startUsageServiceOn,
  USER,
  type UsageResponse,
  type UsageService,
} from './harness.js'

const service = await startUsageService(t)

/** Each provider's raw usage as its API reports it, and what the service must store (the README's token conventions). */
const usageCases: Record<LlmProvider, { raw: Record<string, unknown>; normalized: Record<string, number> }> = {
  anthropic: {
    // input_tokens excludes the cache: 30 + 100 read + 20 written = 150 prompt tokens.
    raw: { input_tokens: 30, cache_read_input_tokens: 100, cache_creation_input_tokens: 20, output_tokens: 15 },
    normalized: { inputTokens: 150, outputTokens: 15, totalTokens: 165, cacheReadTokens: 100, cacheWriteTokens: 20, reasoningTokens: 0 },
  },
  openai: {
    raw: { prompt_tokens: 120, completion_tokens: 40, prompt_tokens_details: { cached_tokens: 64 }, completion_tokens_details: { reasoning_tokens: 10 } },
    normalized: { inputTokens: 120, outputTokens: 40, totalTokens: 160, cacheReadTokens: 64, cacheWriteTokens: 0, reasoningTokens: 10 },
  },
  google: {
    // Thoughts are billed as output on top of candidatesTokenCount.
    raw: { promptTokenCount: 90, candidatesTokenCount: 20, thoughtsTokenCount: 12, cachedContentTokenCount: 30 },
    normalized: { inputTokens: 90, outputTokens: 32, totalTokens: 122, cacheReadTokens: 30, cacheWriteTokens: 0, reasoningTokens: 12 },
  },
}

/** The failures the issue names, and how the fake produces each. */
const failures: Array<{ name: string; reply: ScriptedReply; friendly: string; errorIncludes: string | RegExp }> = [
  { name: '429', reply: { error: { status: 429, message: 'Rate limit reached (fake)' } }, friendly: friendlyFailureReplies.rate_limited, errorIncludes: 'Rate limit reached (fake)' },
  { name: '5xx', reply: { error: { status: 500, message: 'Internal failure (fake)' } }, friendly: friendlyFailureReplies.unavailable, errorIncludes: 'Internal failure (fake)' },
  { name: 'invalid key', reply: { error: { status: 401, message: 'Invalid API key (fake)' } }, friendly: friendlyFailureReplies.rejected_key, errorIncludes: 'Invalid API key (fake)' },
  // LLM_TIMEOUT_MS is 1000 in the harness.
  { name: 'timeout', reply: { latencyMs: 2500 }, friendly: friendlyFailureReplies.timeout, errorIncludes: /time|abort/i },
]

async function quote(provider: LlmProvider, tokens: Record<string, number>): Promise<number> {
  const response = await service.app.inject({
    method: 'POST',
    url: '/api/prices/quote',
    headers: bearer(ADMIN_KEY),
    payload: {
      provider,
      model: MODELS[provider],
      inputTokens: tokens.inputTokens,
      outputTokens: tokens.outputTokens,
      cacheReadTokens: tokens.cacheReadTokens,
      cacheWriteTokens: tokens.cacheWriteTokens,
      reasoningTokens: tokens.reasoningTokens,
    },
  })
  const body = response.json() as { priced: boolean; cost: number }
  if (!body.priced) throw new Error(`${provider} ${MODELS[provider]} is not priced by the catalog: ${response.body}`)
  return body.cost
}

async function eventsOf(usageService: UsageService, botId: string): Promise<UsageResponse> {
  return usageService.usage({ botId, limit: '50' })
}

function totalCalls(response: UsageResponse): number {
  return response.stats.reduce((sum, row) => sum + row._count.id, 0)
}

for (const provider of ['anthropic', 'openai', 'google'] as const) {
  t.test(`${provider}: answers, reports, fails gracefully, /usage`, async (t) => {
    const running = await startBot(t, service, { provider, botId: `tg_${provider}` })
    const { botId } = running

    await t.test('a message is answered with the model text and stored as one priced event', async (t) => {
      running.provider.enqueue({ text: `The answer from ${provider}.`, usage: usageCases[provider].raw })
      const replies = await converse(running, 'What is the answer?')
      t.same(replies, [`The answer from ${provider}.`], 'the model answer is sent to the chat')
      await waitFor(() => running.telegram.callsOf('sendChatAction').some((call) => call.params.action === 'typing'), '"typing" shown while the model works')

      const modelRequest = running.provider.requests.at(-1)
      t.ok(modelRequest, 'the provider SDK called the fake provider')
      t.match(JSON.stringify(modelRequest?.body), 'What is the answer?', 'the user message reached the model')

      await waitFor(async () => totalCalls(await eventsOf(service, botId)) === 1, 'the usage event in the service')
      const stored = await eventsOf(service, botId)
      const expectedCost = await quote(provider, usageCases[provider].normalized)
      t.equal(stored.stats.length, 1)
      t.match(stored.stats[0], {
        model: MODELS[provider],
        provider,
        _sum: { ...usageCases[provider].normalized, estimatedCost: expectedCost },
        _count: { id: 1, failed: 0 },
        unpriced: { events: 0 },
      })
      t.equal(stored.totalCost, expectedCost, 'cost computed by the service from its catalog')
      t.match(stored.recentUsage[0], {
        botId,
        model: MODELS[provider],
        provider,
        success: true,
        priced: true,
        requestType: 'message',
        metadata: { chatId: USER.id, userId: USER.id },
      })
      t.type(stored.recentUsage[0].latencyMs, 'number')
    })

    await t.test('provider failures: a friendly reply, a failed event with the error, the bot keeps answering', async (t) => {
      for (const failure of failures) {
        running.provider.enqueue(failure.reply)
        const replies = await converse(running, `question that fails with ${failure.name}`)
        t.same(replies, [failure.friendly], `${failure.name}: friendly reply`)
      }
      running.provider.enqueue({ text: 'Still here.' })
      t.same(await converse(running, 'are you alive?'), ['Still here.'], 'the bot keeps running after failures')

      await waitFor(async () => totalCalls(await eventsOf(service, botId)) === 1 + failures.length + 1, 'the failed events in the service')
      const failed = await service.usage({ botId, success: 'false', limit: '50' })
      t.equal(failed.recentUsage.length, failures.length, 'one failed event per failed call')
      // recentUsage is newest first.
      const oldestFirst = [...failed.recentUsage].reverse()
      failures.forEach((failure, index) => {
        const event = oldestFirst[index]
        t.match(event, { success: false, provider, model: MODELS[provider], metadata: { chatId: USER.id } }, `${failure.name}: failed event`)
        t.match(String(event.errorMessage), failure.errorIncludes, `${failure.name}: the error message is stored`)
      })
      const aliveRequest = JSON.stringify(running.provider.requests.find((request) => JSON.stringify(request.body).includes('are you alive?'))?.body)
      t.match(aliveRequest, 'What is the answer?', 'the answered exchange is in the conversation')
      t.notMatch(aliveRequest, 'question that fails', 'failed exchanges are not')
    })

    await t.test('/usage shows the numbers the service holds', async (t) => {
      const [report] = await converse(running, '/usage')
      const { today, monthStart } = usagePeriods()
      for (const [label, since] of [['Today (UTC)', today], ['This month', monthStart]] as const) {
        const stored = await service.usage({ botId, startDate: since })
        const calls = totalCalls(stored)
        const failedCalls = stored.stats.reduce((sum, row) => sum + row._count.failed, 0)
        const tokens = stored.stats.reduce((sum, row) => sum + row._sum.totalTokens, 0)
        t.equal(calls, 1 + failures.length + 1)
        t.ok(stored.totalCost > 0)
        t.match(
          report,
          `${label}: ${formatCount(calls)} calls (${formatCount(failedCalls)} failed), ${formatCount(tokens)} tokens, ${formatUsd(stored.totalCost)}`,
          `${label} line matches the service`,
        )
      }
      t.match(report, `Usage of ${botId}`)
    })
  })

  t.test(`${provider}: usage service down while answering; events arrive once it is back, exactly once`, async (t) => {
    const port = await freePort()
    const spoolDir = t.testdir()
    const running = await startBot(t, service, {
      provider,
      botId: `tg_${provider}_outage`,
      usageUrl: `http://127.0.0.1:${port}`,
      env: { USAGE_CLIENT_SPOOL_DIR: spoolDir },
    })
    const { botId } = running

    running.provider.enqueue({ text: 'First answer.' }, { text: 'Second answer.' })
    t.same(await converse(running, 'first'), ['First answer.'], 'replies go out while the service is down')
    t.same(await converse(running, 'second'), ['Second answer.'])
    await waitFor(() => running.usage.stats().spooled === 2, 'the events kept in the spool while the service is down')
    t.equal(running.usage.stats().sent, 0, 'nothing could be delivered yet')

    const [usageReply] = await converse(running, '/usage')
    t.equal(usageReply, 'The usage service is unreachable, try later.', '/usage says the service is unreachable')

    await startUsageServiceOn(t, service.database, port)
    await waitFor(async () => totalCalls(await eventsOf(service, botId)) === 2, 'the events once the service is back')
    // Replayed from the spool: acknowledged once the service's answer reaches the client.
    await waitFor(() => running.usage.stats().sent === 2, 'the client to see both events acknowledged')
    t.equal(running.usage.stats().queued, 0, 'nothing left to send')
    const stored = await eventsOf(service, botId)
    t.equal(totalCalls(stored), 2, 'each call stored exactly once')
    t.equal(new Set(stored.recentUsage.map((event) => event.id)).size, 2)
    t.match(stored.stats[0], { model: MODELS[provider], provider, _count: { id: 2, failed: 0 } })

    const [report] = await converse(running, '/usage')
    t.match(report, `Today (UTC): 2 calls, ${formatCount(stored.stats[0]._sum.totalTokens)} tokens, ${formatUsd(stored.totalCost)}`, '/usage works again')
  })
}

t.test('without a spool, events held during an outage are sent once the service is back', async (t) => {
  const port = await freePort()
  const running = await startBot(t, service, { provider: 'openai', botId: 'tg_outage_nospool', usageUrl: `http://127.0.0.1:${port}` })
  running.provider.enqueue({ text: 'Answer.' })
  t.same(await converse(running, 'hello'), ['Answer.'])
  await waitFor(() => running.usage.stats().retried > 0, 'the client retrying')
  await startUsageServiceOn(t, service.database, port)
  await waitFor(async () => totalCalls(await eventsOf(service, 'tg_outage_nospool')) === 1, 'the event once the service is back', 5000)
  t.pass('delivered without any further track(), flush() or close()')
})
