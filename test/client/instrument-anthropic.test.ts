import t, { type Test } from 'tap'
import Anthropic from '@anthropic-ai/sdk'
import { instrumentAnthropic } from '../../src/client/index.js'
import { startFakeAnthropic, type FakeProviderServer } from '../helpers/fake-providers.js'
import { clientFor, recordingTracker, startUsageServer } from './support.js'
import { waitFor } from '../helpers/wait.js'

const cacheUsage = {
  input_tokens: 10,
  cache_read_input_tokens: 100,
  cache_creation_input_tokens: 50,
  cache_creation: { ephemeral_5m_input_tokens: 20, ephemeral_1h_input_tokens: 30 },
  output_tokens: 40,
  output_tokens_details: { thinking_tokens: 15 },
}
const normalized = {
  inputTokens: 160,
  outputTokens: 40,
  cacheReadTokens: 100,
  cacheWriteTokens: 50,
  cacheWrite1hTokens: 30,
  reasoningTokens: 15,
}
const params = { model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user' as const, content: 'hi' }] }

async function setup(t: Test): Promise<{ fake: FakeProviderServer; anthropic: Anthropic; tracker: ReturnType<typeof recordingTracker> }> {
  const fake = await startFakeAnthropic()
  t.teardown(() => fake.close())
  const tracker = recordingTracker()
  const anthropic = instrumentAnthropic(new Anthropic({ apiKey: 'test', baseURL: fake.url, maxRetries: 0 }), tracker, {
    metadata: { chatId: 42 },
  })
  return { fake, anthropic, tracker }
}

t.test('non-streaming: normalized tokens incl. cache and thinking, model from the response', async (t) => {
  const { fake, anthropic, tracker } = await setup(t)
  fake.enqueue({ usage: cacheUsage, model: 'claude-sonnet-4-6-20260101', text: 'Hi there' })
  const message = await anthropic.messages.create(params)
  t.equal(message.content[0].type === 'text' ? message.content[0].text : '', 'Hi there', 'caller sees the SDK result')
  t.equal(tracker.events.length, 1)
  t.match(tracker.events[0], {
    model: 'claude-sonnet-4-6-20260101',
    provider: 'anthropic',
    ...normalized,
    success: true,
    requestType: 'message',
    metadata: { chatId: 42 },
  })
  t.type(tracker.events[0].latencyMs, 'number')
})

t.test('streaming: input usage from message_start, output from message_delta', async (t) => {
  const { fake, anthropic, tracker } = await setup(t)
  fake.enqueue({ usage: cacheUsage, text: 'one two three' })
  const stream = await anthropic.messages.create({ ...params, stream: true })
  let text = ''
  for await (const event of stream) {
    if (event.type === 'content_block_delta' && event.delta.type === 'text_delta') text += event.delta.text
  }
  t.equal(text, 'one two three')
  t.equal(tracker.events.length, 1)
  t.match(tracker.events[0], { model: 'claude-sonnet-4-6', ...normalized, success: true })
  t.notOk(tracker.events[0].metadata && 'usageIncomplete' in tracker.events[0].metadata)
})

t.test('messages.stream(), .withResponse() and .parse() are reported once each', async (t) => {
  const { fake, anthropic, tracker } = await setup(t)
  fake.defaultReply = { usage: cacheUsage }
  const final = await anthropic.messages.stream(params).finalMessage()
  t.equal(final.usage.output_tokens, 40)
  const { data, response } = await anthropic.messages.create(params).withResponse()
  t.equal(response.status, 200)
  t.equal(data.type, 'message')
  await anthropic.messages.parse(params)
  t.equal(tracker.events.length, 3)
  for (const event of tracker.events) t.match(event, normalized)
})

t.test('early break out of the stream reports the usage seen so far', async (t) => {
  const { fake, anthropic, tracker } = await setup(t)
  fake.enqueue({ usage: cacheUsage, text: 'a b c d e f g h' })
  const stream = await anthropic.messages.create({ ...params, stream: true })
  for await (const event of stream) {
    if (event.type === 'content_block_delta') break
  }
  t.equal(tracker.events.length, 1)
  t.match(tracker.events[0], { inputTokens: 160, cacheReadTokens: 100, outputTokens: 1, success: true, metadata: { usageIncomplete: true } })
})

for (const status of [401, 429, 500, 529]) {
  t.test(`provider error ${status} is re-thrown unchanged and reported as failed`, async (t) => {
    const { fake, anthropic, tracker } = await setup(t)
    fake.enqueue({ error: { status, message: `boom ${status}` } })
    const caught = await anthropic.messages.create(params).catch((error: unknown) => error)
    t.ok(caught instanceof Anthropic.APIError)
    const apiError = caught as InstanceType<typeof Anthropic.APIError>
    t.equal(apiError.status, status)
    if (status === 429) t.ok(caught instanceof Anthropic.RateLimitError)
    t.equal(tracker.events.length, 1)
    t.match(tracker.events[0], {
      success: false,
      inputTokens: 0,
      outputTokens: 0,
      errorMessage: apiError.message,
      metadata: { chatId: 42, errorType: apiError.constructor.name, errorStatus: status },
    })
  })
}

t.test('an error event mid-stream is re-thrown and reported with the partial usage', async (t) => {
  const { fake, anthropic, tracker } = await setup(t)
  fake.enqueue({ usage: cacheUsage, errorEventAfter: 3 })
  const stream = await anthropic.messages.create({ ...params, stream: true })
  const caught = await (async () => {
    for await (const _event of stream) {
      // consume
    }
  })().catch((error: unknown) => error)
  t.ok(caught instanceof Anthropic.APIError)
  t.match(tracker.events[0], { success: false, inputTokens: 160, errorMessage: /Overloaded/, metadata: { usageIncomplete: true } })
})

t.test('per-call metadata and requestType, instrumenting twice reports once', async (t) => {
  const fake = await startFakeAnthropic()
  t.teardown(() => fake.close())
  const tracker = recordingTracker()
  const client = new Anthropic({ apiKey: 'test', baseURL: fake.url, maxRetries: 0 })
  const options = {
    metadata: (p: { max_tokens?: number }) => ({ maxTokens: p.max_tokens }),
    requestType: 'summary',
  }
  instrumentAnthropic(client, tracker, options)
  instrumentAnthropic(client, tracker, options)
  await client.messages.create(params)
  t.equal(tracker.events.length, 1)
  t.match(tracker.events[0], { requestType: 'summary', metadata: { maxTokens: 100 } })
})

t.test('a throwing tracker never breaks the call', async (t) => {
  const fake = await startFakeAnthropic()
  t.teardown(() => fake.close())
  const client = instrumentAnthropic(new Anthropic({ apiKey: 'test', baseURL: fake.url, maxRetries: 0 }), {
    track: () => {
      throw new Error('tracker bug')
    },
  })
  const message = await client.messages.create(params)
  t.equal(message.type, 'message')
})

t.test('end to end through UsageClient to the usage service', async (t) => {
  const server = await startUsageServer(t)
  const { client } = clientFor(t, server)
  const fake = await startFakeAnthropic()
  t.teardown(() => fake.close())
  fake.enqueue({ usage: cacheUsage })
  const anthropic = instrumentAnthropic(new Anthropic({ apiKey: 'test', baseURL: fake.url, maxRetries: 0 }), client)
  await client.withMetadata({ chatId: 7, userId: 9 }, () => anthropic.messages.create(params))
  await client.flush()
  await waitFor(() => server.stored.length === 1, 'the stored event')
  t.match(server.stored[0].event, { botId: 'test-bot', provider: 'anthropic', ...normalized, success: true, metadata: { chatId: 7, userId: 9 } })
})
