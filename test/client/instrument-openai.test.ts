import t, { type Test } from 'tap'
import OpenAI from 'openai'
import { instrumentOpenAI } from '../../src/client/index.js'
import { startFakeOpenAI, type FakeProviderServer } from '../helpers/fake-providers.js'
import { recordingTracker, type RecordingTracker } from './support.js'

const chatUsage = {
  prompt_tokens: 1200,
  completion_tokens: 300,
  prompt_tokens_details: { cached_tokens: 1024, audio_tokens: 0 },
  completion_tokens_details: { reasoning_tokens: 256, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
}
const chatNormalized = { inputTokens: 1200, outputTokens: 300, cacheReadTokens: 1024, reasoningTokens: 256 }
const responsesUsage = {
  input_tokens: 900,
  input_tokens_details: { cached_tokens: 512 },
  output_tokens: 200,
  output_tokens_details: { reasoning_tokens: 128 },
}
const responsesNormalized = { inputTokens: 900, outputTokens: 200, cacheReadTokens: 512, reasoningTokens: 128 }
const chatParams = { model: 'gpt-5-mini', messages: [{ role: 'user' as const, content: 'hi' }] }

async function setup(t: Test): Promise<{ fake: FakeProviderServer; openai: OpenAI; tracker: RecordingTracker }> {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  const tracker = recordingTracker()
  const openai = instrumentOpenAI(new OpenAI({ apiKey: 'test', baseURL: `${fake.url}/v1`, maxRetries: 0 }), tracker, {
    metadata: { userId: 5 },
  })
  return { fake, openai, tracker }
}

t.test('chat non-streaming: cached and reasoning tokens, model from the response', async (t) => {
  const { fake, openai, tracker } = await setup(t)
  fake.enqueue({ usage: chatUsage, model: 'gpt-5-mini-2025-08-07', text: 'Hey' })
  const completion = await openai.chat.completions.create(chatParams)
  t.equal(completion.choices[0].message.content, 'Hey')
  t.match(tracker.events, [{ model: 'gpt-5-mini-2025-08-07', provider: 'openai', ...chatNormalized, success: true, metadata: { userId: 5 } }])
})

t.test('chat streaming: include_usage is added, the extra usage chunk is hidden, usage reported', async (t) => {
  const { fake, openai, tracker } = await setup(t)
  fake.enqueue({ usage: chatUsage, text: 'one two' })
  const stream = await openai.chat.completions.create({ ...chatParams, stream: true })
  let text = ''
  for await (const chunk of stream) {
    // Code written for streams without usage indexes choices[0] unconditionally.
    text += chunk.choices[0].delta.content ?? ''
  }
  t.equal(text, 'one two')
  t.same(fake.requests[0].body.stream_options, { include_usage: true })
  t.match(tracker.events, [{ model: 'gpt-5-mini', ...chatNormalized, success: true }])
})

t.test('chat streaming: a caller that asked for usage still sees the usage chunk', async (t) => {
  const { fake, openai, tracker } = await setup(t)
  fake.enqueue({ usage: chatUsage })
  const stream = await openai.chat.completions.create({ ...chatParams, stream: true, stream_options: { include_usage: true } })
  let seenUsage = 0
  for await (const chunk of stream) if (chunk.usage) seenUsage = chunk.usage.prompt_tokens
  t.equal(seenUsage, 1200)
  t.match(tracker.events, [chatNormalized])
})

t.test('chat streaming: early break reports a call with incomplete usage', async (t) => {
  const { fake, openai, tracker } = await setup(t)
  fake.enqueue({ usage: chatUsage, text: 'a b c d e f' })
  const stream = await openai.chat.completions.create({ ...chatParams, stream: true })
  for await (const chunk of stream) {
    if (chunk.choices[0].delta.content) break
  }
  t.match(tracker.events, [{ success: true, inputTokens: 0, outputTokens: 0, metadata: { usageIncomplete: true } }])
})

t.test('chat streaming: a dropped connection is re-thrown and reported as failed', async (t) => {
  const { fake, openai, tracker } = await setup(t)
  fake.enqueue({ dropAfterEvents: 2 })
  const stream = await openai.chat.completions.create({ ...chatParams, stream: true })
  const caught = await (async () => {
    for await (const _chunk of stream) {
      // consume
    }
  })().catch((error: unknown) => error)
  t.ok(caught instanceof Error)
  t.match(tracker.events, [{ success: false, errorMessage: (caught as Error).message }])
})

t.test('responses.create: non-streaming and streaming', async (t) => {
  const { fake, openai, tracker } = await setup(t)
  fake.enqueue({ usage: responsesUsage, text: 'R1' }, { usage: responsesUsage, text: 'R2 streamed' })
  const response = await openai.responses.create({ model: 'gpt-5', input: 'hi' })
  t.equal(response.output_text, 'R1', 'SDK helpers still applied')
  const stream = await openai.responses.create({ model: 'gpt-5', input: 'hi', stream: true })
  let text = ''
  for await (const event of stream) if (event.type === 'response.output_text.delta') text += event.delta
  t.equal(text, 'R2 streamed')
  t.match(tracker.events, [
    { model: 'gpt-5', provider: 'openai', ...responsesNormalized, success: true },
    { model: 'gpt-5', ...responsesNormalized, success: true },
  ])
})

for (const status of [401, 429, 500]) {
  t.test(`provider error ${status} is re-thrown unchanged and reported as failed`, async (t) => {
    const { fake, openai, tracker } = await setup(t)
    fake.enqueue({ error: { status } }, { error: { status } })
    const chatError = await openai.chat.completions.create(chatParams).catch((error: unknown) => error)
    const responsesError = await openai.responses.create({ model: 'gpt-5', input: 'x' }).catch((error: unknown) => error)
    for (const caught of [chatError, responsesError]) {
      t.ok(caught instanceof OpenAI.APIError)
      t.equal((caught as InstanceType<typeof OpenAI.APIError>).status, status)
    }
    if (status === 429) t.ok(chatError instanceof OpenAI.RateLimitError)
    t.equal(tracker.events.length, 2)
    t.match(tracker.events[0], {
      success: false,
      errorMessage: (chatError as Error).message,
      metadata: { userId: 5, errorStatus: status, errorType: (chatError as Error).constructor.name },
    })
  })
}

t.test('chat.completions.parse goes through the instrumented create', async (t) => {
  const { fake, openai, tracker } = await setup(t)
  fake.enqueue({ usage: chatUsage })
  const parsed = await openai.chat.completions.parse(chatParams)
  t.equal(parsed.choices.length, 1)
  t.match(tracker.events, [chatNormalized])
})
