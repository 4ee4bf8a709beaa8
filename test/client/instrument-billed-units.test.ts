// The instrumentation fills the billed units beyond text tokens from what the real SDKs return:
// OpenAI audio tokens, service_tier and Responses web_search_call items; Anthropic
// server_tool_use.web_search_requests and service_tier; Gemini's per-modality prompt details.
import Anthropic from '@anthropic-ai/sdk'
import { GoogleGenerativeAI } from '@google/generative-ai'
import OpenAI from 'openai'
import t from 'tap'
import { instrumentAnthropic, instrumentGemini, instrumentOpenAI } from '../../src/client/index.js'
import { startFakeAnthropic, startFakeGemini, startFakeOpenAI } from '../helpers/fake-providers.js'
import { recordingTracker } from './support.js'

t.test('OpenAI chat: audio tokens and the service tier, streaming or not', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  const tracker = recordingTracker()
  const openai = instrumentOpenAI(new OpenAI({ apiKey: 'k', baseURL: `${fake.url}/v1`, maxRetries: 0 }), tracker)
  const usage = {
    prompt_tokens: 1000,
    completion_tokens: 500,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 800 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 400, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  }
  fake.enqueue({ usage, serviceTier: 'flex' }, { usage, serviceTier: 'priority' }, { serviceTier: 'scale' })
  const params = { model: 'gpt-4o-audio-preview', messages: [{ role: 'user' as const, content: 'hi' }] }
  await openai.chat.completions.create(params)
  for await (const _chunk of await openai.chat.completions.create({ ...params, stream: true })) {
    // read to the end
  }
  await openai.chat.completions.create(params)
  t.match(tracker.events, [
    { model: 'gpt-4o-audio-preview', inputTokens: 1000, inputAudioTokens: 800, outputTokens: 500, outputAudioTokens: 400, serviceTier: 'flex' },
    { inputAudioTokens: 800, outputAudioTokens: 400, serviceTier: 'priority' },
    { inputTokens: 19, outputTokens: 10 },
  ])
  t.notOk('inputAudioTokens' in tracker.events[2], 'audio_tokens: 0 is not sent')
  t.notOk('serviceTier' in tracker.events[2], "OpenAI's scale tier (a prepaid commitment) is left to the service's default")
})

t.test('OpenAI Responses: each web_search_call is a web search request', async (t) => {
  const fake = await startFakeOpenAI()
  t.teardown(() => fake.close())
  const tracker = recordingTracker()
  const openai = instrumentOpenAI(new OpenAI({ apiKey: 'k', baseURL: `${fake.url}/v1`, maxRetries: 0 }), tracker)
  const search = (n: number) => ({ type: 'web_search_call', id: `ws_${n}`, status: 'completed', action: { type: 'search', query: 'q' } })
  fake.enqueue({ extraOutput: [search(1), search(2)], serviceTier: 'default' }, { extraOutput: [search(3)] })
  await openai.responses.create({ model: 'gpt-4.1', input: 'news?', tools: [{ type: 'web_search' }] })
  for await (const _event of await openai.responses.create({ model: 'gpt-4.1', input: 'news?', stream: true })) {
    // read to the end
  }
  t.match(tracker.events, [
    { model: 'gpt-4.1', inputTokens: 21, outputTokens: 9, webSearchRequests: 2, serviceTier: 'standard' },
    { webSearchRequests: 1 },
  ])
})

t.test('Anthropic: server-side web searches and the service tier, streaming or not', async (t) => {
  const fake = await startFakeAnthropic()
  t.teardown(() => fake.close())
  const tracker = recordingTracker()
  const anthropic = instrumentAnthropic(new Anthropic({ apiKey: 'k', baseURL: fake.url, maxRetries: 0 }), tracker)
  const usage = { input_tokens: 2000, output_tokens: 300, server_tool_use: { web_search_requests: 3, web_fetch_requests: 1 }, service_tier: 'batch', inference_geo: 'us' }
  fake.enqueue({ usage }, { usage: { ...usage, service_tier: 'priority', inference_geo: 'global' } }, { usage: { inference_geo: 'not_available' } })
  const params = { model: 'claude-sonnet-4-5', max_tokens: 100, messages: [{ role: 'user' as const, content: 'search' }] }
  await anthropic.messages.create(params)
  for await (const _event of await anthropic.messages.create({ ...params, stream: true })) {
    // read to the end
  }
  await anthropic.messages.create(params)
  t.match(tracker.events, [
    { model: 'claude-sonnet-4-5', inputTokens: 2000, outputTokens: 300, webSearchRequests: 3, serviceTier: 'batch', inferenceGeo: 'us' },
    { webSearchRequests: 3, serviceTier: 'priority', inferenceGeo: 'global' },
    { inputTokens: 12, outputTokens: 7, serviceTier: 'standard' },
  ])
  t.notOk('webSearchRequests' in tracker.events[2], 'no searches, no field')
  t.notOk('inferenceGeo' in tracker.events[2], "'not_available' (a model without regions) is not reported")
})

t.test('Gemini: the audio part of the prompt and of the answer', async (t) => {
  const fake = await startFakeGemini()
  t.teardown(() => fake.close())
  const tracker = recordingTracker()
  const model = instrumentGemini(new GoogleGenerativeAI('k').getGenerativeModel({ model: 'gemini-2.5-flash' }, { baseUrl: fake.url }), tracker)
  fake.enqueue(
    {
      usage: {
        promptTokenCount: 1000,
        promptTokensDetails: [{ modality: 'TEXT', tokenCount: 200 }, { modality: 'AUDIO', tokenCount: 800 }],
        candidatesTokenCount: 50,
        thoughtsTokenCount: 20,
      },
    },
    { usage: { promptTokenCount: 100, candidatesTokenCount: 300, candidatesTokensDetails: [{ modality: 'AUDIO', tokenCount: 300 }] } },
  )
  await model.generateContent('listen')
  await model.generateContent('speak')
  t.match(tracker.events, [
    { inputTokens: 1000, inputAudioTokens: 800, outputTokens: 70, reasoningTokens: 20 },
    { inputTokens: 100, outputTokens: 300, outputAudioTokens: 300 },
  ])
  t.notOk('inputAudioTokens' in tracker.events[1], 'a text prompt has no audio part')
})
