import t, { type Test } from 'tap'
import { GoogleGenerativeAI, GoogleGenerativeAIFetchError, type GenerativeModel } from '@google/generative-ai'
import { instrumentGemini } from '../../src/client/index.js'
import { startFakeGemini, type FakeProviderServer } from '../helpers/fake-providers.js'
import { recordingTracker, type RecordingTracker } from './support.js'

const usage = { promptTokenCount: 100, cachedContentTokenCount: 60, candidatesTokenCount: 20, thoughtsTokenCount: 30 }
const normalized = { inputTokens: 100, outputTokens: 50, cacheReadTokens: 60, reasoningTokens: 30 }

async function setup(t: Test): Promise<{ fake: FakeProviderServer; model: GenerativeModel; tracker: RecordingTracker }> {
  const fake = await startFakeGemini()
  t.teardown(() => fake.close())
  const tracker = recordingTracker()
  const genAI = new GoogleGenerativeAI('test')
  const model = instrumentGemini(genAI.getGenerativeModel({ model: 'gemini-2.5-flash' }, { baseUrl: fake.url }), tracker, {
    metadata: { chatId: 1 },
  })
  return { fake, model, tracker }
}

t.test('generateContent: thoughts count as output, cached tokens as a part of input', async (t) => {
  const { fake, model, tracker } = await setup(t)
  fake.enqueue({ usage, text: 'Gemini says hi', model: 'gemini-2.5-flash-preview-05-20' })
  const result = await model.generateContent('hi')
  t.equal(result.response.text(), 'Gemini says hi')
  t.match(tracker.events, [
    { model: 'gemini-2.5-flash-preview-05-20', provider: 'google', ...normalized, success: true, metadata: { chatId: 1 } },
  ])
})

t.test('generateContentStream: usage from the final chunk', async (t) => {
  const { fake, model, tracker } = await setup(t)
  fake.enqueue({ usage, text: 'one two three' })
  const result = await model.generateContentStream('hi')
  let text = ''
  for await (const chunk of result.stream) text += chunk.text()
  t.equal(text, 'one two three')
  await result.response
  t.match(tracker.events, [{ model: 'gemini-2.5-flash', ...normalized, success: true }])
})

t.test('generateContentStream: early break still reports the full usage', async (t) => {
  const { fake, model, tracker } = await setup(t)
  fake.enqueue({ usage, text: 'a b c d e f g' })
  const result = await model.generateContentStream('hi')
  for await (const _chunk of result.stream) break
  await result.response
  t.match(tracker.events, [{ ...normalized, success: true }])
})

t.test('provider errors are re-thrown unchanged and reported as failed', async (t) => {
  const { fake, model, tracker } = await setup(t)
  fake.enqueue({ error: { status: 429 } }, { error: { status: 500 } })
  const first = await model.generateContent('hi').catch((error: unknown) => error)
  const second = await model.generateContentStream('hi').catch((error: unknown) => error)
  t.ok(first instanceof GoogleGenerativeAIFetchError)
  t.equal((first as GoogleGenerativeAIFetchError).status, 429)
  t.ok(second instanceof GoogleGenerativeAIFetchError)
  t.match(tracker.events, [
    { success: false, errorMessage: (first as Error).message, metadata: { chatId: 1, errorType: 'GoogleGenerativeAIFetchError', errorStatus: 429 } },
    { success: false, metadata: { errorStatus: 500 } },
  ])
})

t.test('instrumenting the GoogleGenerativeAI client covers its models and chat sessions', async (t) => {
  const fake = await startFakeGemini()
  t.teardown(() => fake.close())
  const tracker = recordingTracker()
  const genAI = instrumentGemini(new GoogleGenerativeAI('test'), tracker, { requestType: 'chat' })
  const model = genAI.getGenerativeModel({ model: 'gemini-2.5-pro' }, { baseUrl: fake.url })
  fake.defaultReply = { usage }
  await model.generateContent('hi')
  const chat = model.startChat()
  await chat.sendMessage('hello')
  const streamed = await chat.sendMessageStream('again')
  for await (const _chunk of streamed.stream) {
    // consume
  }
  await streamed.response
  t.equal(tracker.events.length, 3)
  for (const event of tracker.events) t.match(event, { model: 'gemini-2.5-pro', requestType: 'chat', ...normalized })
})
