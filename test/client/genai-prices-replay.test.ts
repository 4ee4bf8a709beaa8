// Real provider usage recorded in the genai-prices repository (test/fixtures/genai-prices/),
// replayed end to end: a fake provider server answers with the recorded usage, the official SDK
// parses it, the instrumented client reports it to the real service, which prices and stores it.
// The stored cost is compared with the one computed by hand from the published prices.
import { readFileSync } from 'node:fs'
import Anthropic from '@anthropic-ai/sdk'
import { GoogleGenerativeAI } from '@google/generative-ai'
import { sql } from 'drizzle-orm'
import OpenAI from 'openai'
import t from 'tap'
import { instrumentAnthropic, instrumentGemini, instrumentOpenAI, UsageClient } from '../../src/client/index.js'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { startFakeAnthropic, startFakeGemini, startFakeOpenAI } from '../helpers/fake-providers.js'
import { fastRetry } from './support.js'

interface Fixture {
  source: { repository: string; commit: string; path: string; cassette: string }
  model: string
  body: { usage?: Record<string, unknown>; usageMetadata?: Record<string, unknown> }
  genaiPricesExtracted: { extractors: { input_price?: string; output_price?: string; total_price?: string }[] }[]
}
const fixture = (name: string): Fixture => JSON.parse(readFileSync(new URL(`../fixtures/genai-prices/${name}.json`, import.meta.url), 'utf8')) as Fixture

const database = await createTestDatabase(t)
const { app } = await buildTestApp(t, database)
await app.listen({ port: 0, host: '127.0.0.1' })
const address = app.server.address()
const serviceUrl = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`
const keyRes = await app.inject({ method: 'POST', url: '/api/keys', headers: bearer(ADMIN_KEY), payload: { name: 'replay', scopes: ['ingest'], botId: 'bot_replay' } })
const usage = new UsageClient({ baseUrl: serviceUrl, apiKey: (keyRes.json() as { key: string }).key, botId: 'bot_replay', flushIntervalMs: 20, retry: fastRetry })
t.teardown(() => usage.close({ deadlineMs: 1000 }))

const [anthropicFake, openaiFake, geminiFake] = await Promise.all([startFakeAnthropic(), startFakeOpenAI(), startFakeGemini()])
t.teardown(() => Promise.all([anthropicFake.close(), openaiFake.close(), geminiFake.close()]))
const anthropic = instrumentAnthropic(new Anthropic({ apiKey: 'k', baseURL: anthropicFake.url, maxRetries: 0 }), usage)
const openai = instrumentOpenAI(new OpenAI({ apiKey: 'k', baseURL: `${openaiFake.url}/v1`, maxRetries: 0 }), usage)
const gemini = new GoogleGenerativeAI('k')

/** Sends one call through `call` tagged with `id`, waits until it is stored, returns the row. */
async function replay(id: string, call: () => Promise<unknown>): Promise<Record<string, unknown>> {
  await usage.withMetadata({ replay: id }, call)
  t.equal(await usage.flush({ timeoutMs: 10_000 }), true)
  const [row] = await database.rows<Record<string, unknown>>(sql`
    SELECT model, input_tokens, output_tokens, cache_read_tokens, reasoning_tokens, input_audio_tokens, output_audio_tokens,
      web_search_requests, service_tier, cost::text AS cost, priced, price_source
    FROM usage_events WHERE metadata ->> 'replay' = ${id}`)
  return row
}

const exact = (v: unknown) => (typeof v === 'string' ? v.replace(/\.?0+$/, '') : v)
/** The total genai-prices' own calculator gave for the provider (input + output, or its total). */
const theirTotal = (f: Fixture): string => {
  const e = f.genaiPricesExtracted.flatMap((x) => x.extractors).find((x) => x.input_price !== undefined)
  if (e === undefined) throw new Error('no extracted price')
  return e.total_price ?? String(Math.round((Number(e.input_price) + Number(e.output_price)) * 1e12) / 1e12)
}

t.test('Anthropic: 10 server-side web searches on a 401k-token prompt (long-context tier)', async (t) => {
  const f = fixture('anthropic-web-search-long-context')
  anthropicFake.enqueue({ model: f.model, usage: f.body.usage })
  const row = await replay('a-search', () => anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'q' }] }))
  // https://docs.anthropic.com/en/docs/about-claude/pricing: above 200k 6 / 22.5; web search $10 per 1,000
  // 401468*6/1e6 + 792*22.5/1e6 + 10*10/1000 = 2.408808 + 0.01782 + 0.1
  t.match(row, { model: 'claude-sonnet-4-5-20250929', input_tokens: 401_468, output_tokens: 792, web_search_requests: 10, service_tier: 'standard', priced: true })
  t.equal(exact(row.cost), '2.526628')
  t.equal(theirTotal(f), '2.526628', "the same as genai-prices' own calculation of this response")
})

t.test('Anthropic: a cache read', async (t) => {
  const f = fixture('anthropic-cache-read')
  anthropicFake.enqueue({ model: f.model, usage: f.body.usage })
  const row = await replay('a-cache', () => anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 10, messages: [{ role: 'user', content: 'q' }] }))
  // 3*3/1e6 + 1111*0.3/1e6 + 406*15/1e6 (https://docs.anthropic.com/en/docs/about-claude/pricing)
  t.match(row, { input_tokens: 1114, cache_read_tokens: 1111, output_tokens: 406 })
  t.equal(exact(row.cost), '0.0064323')
  t.equal(theirTotal(f), '0.0064323')
})

t.test('OpenAI chat: an audio prompt to gpt-4o-audio-preview is billed at the audio price', async (t) => {
  const f = fixture('openai-audio-input')
  openaiFake.enqueue({ model: f.model, usage: f.body.usage })
  const row = await replay('o-audio', () => openai.chat.completions.create({ model: 'gpt-4o-audio-preview', messages: [{ role: 'user', content: 'q' }] }))
  // https://platform.openai.com/docs/pricing#audio-tokens: text 2.5 / 10, audio input 40
  // 12*2.5/1e6 + 69*40/1e6 + 72*10/1e6
  t.match(row, { input_tokens: 81, input_audio_tokens: 69, output_tokens: 72, output_audio_tokens: 0 })
  t.equal(exact(row.cost), '0.00351')
  t.equal(theirTotal(f), '0.0009225', 'genai-prices (0.1.8 data) bills the audio at the text rate: the under-billing the correction fixes')
  t.match(row.price_source, /\+corrections:openai-gpt-4o-audio-preview-audio$/)
})

t.test('OpenAI Responses: reasoning tokens are output', async (t) => {
  const f = fixture('openai-responses-reasoning')
  openaiFake.enqueue({ model: f.model, usage: f.body.usage })
  const row = await replay('o-reason', () => openai.responses.create({ model: 'gpt-5', input: 'q' }))
  // https://platform.openai.com/docs/pricing: gpt-5 1.25 / 10; 45*1.25/1e6 + 1719*10/1e6
  t.match(row, { input_tokens: 45, output_tokens: 1719, reasoning_tokens: 1408 })
  t.equal(exact(row.cost), '0.01724625')
  t.equal(theirTotal(f), '0.01724625')
})

t.test('Gemini: a video with an audio track, and thinking', async (t) => {
  const f = fixture('gemini-video-audio-thinking')
  geminiFake.enqueue({ model: f.model, usage: f.body.usageMetadata })
  const model = instrumentGemini(gemini.getGenerativeModel({ model: 'gemini-2.5-flash' }, { baseUrl: geminiFake.url }), usage)
  const row = await replay('g-video', () => model.generateContent('q'))
  // https://ai.google.dev/gemini-api/docs/pricing#gemini-2.5-flash: text/image/video 0.3, audio 1.0, output 2.5
  // (16+15780)*0.3/1e6 + 1917*1/1e6 + (100+1176)*2.5/1e6
  t.match(row, { input_tokens: 17_713, input_audio_tokens: 1917, output_tokens: 1276, reasoning_tokens: 1176 })
  t.equal(exact(row.cost), '0.0098458')
  t.equal(theirTotal(f), '0.0098458')
})

t.test('Gemini: an audio prompt', async (t) => {
  const f = fixture('gemini-audio-input')
  geminiFake.enqueue({ model: f.model, usage: f.body.usageMetadata })
  const model = instrumentGemini(gemini.getGenerativeModel({ model: 'gemini-2.5-flash' }, { baseUrl: geminiFake.url }), usage)
  const row = await replay('g-audio', () => model.generateContent('q'))
  // 85*0.3/1e6 + 144*1/1e6 + 17*2.5/1e6
  t.match(row, { input_tokens: 229, input_audio_tokens: 144, output_tokens: 17 })
  t.equal(exact(row.cost), '0.000212')
  t.equal(theirTotal(f), '0.000212')
})
