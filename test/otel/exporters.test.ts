import t, { type Test } from 'tap'
import { createRequire } from 'node:module'
import { metrics } from '@opentelemetry/api'
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { OTLPTraceExporter as ProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { OTLPTraceExporter as JsonExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { resourceFromAttributes } from '@opentelemetry/resources'
import { BasicTracerProvider, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base'
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import { OpenAIInstrumentation as TraceloopOpenAI } from '@traceloop/instrumentation-openai'
import { AnthropicInstrumentation as TraceloopAnthropic } from '@traceloop/instrumentation-anthropic'
import { OpenAIInstrumentation as ContribOpenAI } from '@opentelemetry/instrumentation-openai'
import type { FastifyInstance } from 'fastify'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { startFakeAnthropic, startFakeOpenAI } from '../helpers/fake-providers.js'

/**
 * The real OTLP exporters and the real GenAI instrumentations, wrapping the real SDKs pointed at
 * the fake providers, export to the service: the events arrive as our client would report them.
 */

interface StoredEvent {
  id: string
  botId: string
  model: string
  provider: string
  success: boolean
  errorMessage: string | null
  inputTokens: number
  outputTokens: number
  cacheReadTokens: number
  cacheWriteTokens: number
  reasoningTokens: number
  latencyMs: number | null
  estimatedCost: number | null
  metadata: Record<string, unknown> | null
}

async function eventsOf(app: FastifyInstance, botId: string): Promise<StoredEvent[]> {
  const res = await app.inject({ url: `/api/usage?botId=${botId}&limit=100`, headers: bearer(ADMIN_KEY) })
  return (res.json() as { recentUsage: StoredEvent[] }).recentUsage
}

/** The cost the service computes for the same numbers sent through POST /api/usage. */
async function costThroughApi(app: FastifyInstance, event: Record<string, unknown>): Promise<number | null> {
  const res = await app.inject({ method: 'POST', url: '/api/usage', headers: bearer(ADMIN_KEY), payload: { botId: 'reference', ...event } })
  return (res.json() as StoredEvent).estimatedCost
}

async function createKey(app: FastifyInstance, body: Record<string, unknown>): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/api/keys', headers: bearer(ADMIN_KEY), payload: body })
  return (res.json() as { key: string }).key
}

function tracer(t: Test, exporter: SpanExporter, serviceName: string, extra: Record<string, string> = {}): BasicTracerProvider {
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': serviceName, ...extra }),
    spanProcessors: [new SimpleSpanProcessor(exporter)],
  })
  t.teardown(() => provider.shutdown())
  return provider
}

t.test('real exporters and instrumentations', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database)
  const base = await app.listen({ port: 0, host: '127.0.0.1' })
  const ingestKey = await createKey(app, { name: 'otel', scopes: ['ingest'] })
  const openaiFake = await startFakeOpenAI()
  const anthropicFake = await startFakeAnthropic()
  t.teardown(() => openaiFake.close())
  t.teardown(() => anthropicFake.close())

  await t.test('protobuf exporter configured by the two environment variables + Traceloop OpenAI', async (t) => {
    process.env.OTEL_EXPORTER_OTLP_ENDPOINT = base
    process.env.OTEL_EXPORTER_OTLP_HEADERS = `authorization=Bearer ${ingestKey}`
    t.teardown(() => {
      delete process.env.OTEL_EXPORTER_OTLP_ENDPOINT
      delete process.env.OTEL_EXPORTER_OTLP_HEADERS
    })
    const provider = tracer(t, new ProtoExporter(), 'chat-bot')
    const instrumentation = new TraceloopOpenAI()
    instrumentation.setTracerProvider(provider)
    instrumentation.manuallyInstrument(OpenAI)
    t.teardown(() => instrumentation.disable())
    const openai = new OpenAI({ apiKey: 'test', baseURL: `${openaiFake.url}/v1`, maxRetries: 0 })

    openaiFake.enqueue({
      model: 'gpt-4o-mini-2024-07-18',
      latencyMs: 40,
      usage: { prompt_tokens: 1200, completion_tokens: 300, prompt_tokens_details: { cached_tokens: 1024 } },
    })
    await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
    // (This instrumentation never ends the span of a failed non-streaming call, so failures are
    // checked with the other two.)
    await provider.forceFlush()

    const events = await eventsOf(app, 'chat-bot')
    t.equal(events.length, 1, 'one event per LLM call')
    const ok = events[0]
    t.match(ok, { model: 'gpt-4o-mini-2024-07-18', provider: 'openai', inputTokens: 1200, outputTokens: 300 })
    t.ok((ok?.latencyMs ?? 0) >= 40, 'latency is the span duration, which includes the provider wait')
    t.match(ok?.metadata, { instrumentation: /^@traceloop\/instrumentation-openai/, traceId: /^[0-9a-f]{32}$/ })
    t.match(ok?.id, /^otel-[0-9a-f]{32}-[0-9a-f]{16}$/)
    t.equal(ok?.estimatedCost, await costThroughApi(app, { model: 'gpt-4o-mini-2024-07-18', provider: 'openai', inputTokens: 1200, outputTokens: 300 }))
    t.ok((ok?.estimatedCost ?? 0) > 0, 'priced')
  })

  await t.test('JSON exporter + Traceloop Anthropic: cache tokens added to input, bot from usage.bot_id', async (t) => {
    const exporter = new JsonExporter({ url: `${base}/v1/traces`, headers: { authorization: `Bearer ${ingestKey}` } })
    const provider = tracer(t, exporter, 'ignored-service-name', { 'usage.bot_id': 'support-bot' })
    const instrumentation = new TraceloopAnthropic()
    instrumentation.setTracerProvider(provider)
    // Its manual patch also wraps the legacy Completions API, which SDK 1.x no longer has.
    const LegacyCompletions = class { create() {} }
    instrumentation.manuallyInstrument({ Anthropic: { Messages: Anthropic.Messages, Beta: Anthropic.Beta, Completions: LegacyCompletions } } as never)
    t.teardown(() => instrumentation.disable())
    const anthropic = new Anthropic({ apiKey: 'test', baseURL: anthropicFake.url, maxRetries: 0 })

    anthropicFake.enqueue({
      model: 'claude-sonnet-4-5-20250929',
      usage: { input_tokens: 100, output_tokens: 50, cache_read_input_tokens: 2000, cache_creation_input_tokens: 300 },
    })
    await anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] })
    anthropicFake.enqueue({ error: { status: 529 } })
    await t.rejects(anthropic.messages.create({ model: 'claude-sonnet-4-5', max_tokens: 100, messages: [{ role: 'user', content: 'hi' }] }))
    await provider.forceFlush()

    const events = await eventsOf(app, 'support-bot')
    t.equal(events.length, 2)
    t.match(
      events.find((e) => !e.success),
      { success: false, provider: 'anthropic', model: 'claude-sonnet-4-5', inputTokens: 0, errorMessage: /Overloaded|529/ },
      'a failed call is a failed event',
    )
    const event = events.find((e) => e.success) as StoredEvent
    // Anthropic's input_tokens leaves the cache out; our inputTokens counts every prompt token.
    t.match(event, { provider: 'anthropic', model: 'claude-sonnet-4-5-20250929', inputTokens: 2400, outputTokens: 50, cacheReadTokens: 2000, cacheWriteTokens: 300, success: true })
    t.equal(
      event.estimatedCost,
      await costThroughApi(app, { model: 'claude-sonnet-4-5-20250929', provider: 'anthropic', inputTokens: 2400, outputTokens: 50, cacheReadTokens: 2000, cacheWriteTokens: 300 }),
    )
  })

  await t.test('contrib OpenAI instrumentation, bot-bound key: the key decides the bot', async (t) => {
    const boundKey = await createKey(app, { name: 'bound', scopes: ['ingest'], botId: 'bound-bot' })
    const provider = tracer(t, new ProtoExporter({ url: `${base}/v1/traces`, headers: { authorization: `Bearer ${boundKey}` } }), 'other', {
      'usage.bot_id': 'someone-else',
    })
    const instrumentation = new ContribOpenAI()
    instrumentation.setTracerProvider(provider)
    // Its duration histogram is a class field reset after the base constructor created it;
    // setting a meter provider creates it again (without it, a failed call throws inside the patch).
    instrumentation.setMeterProvider(metrics.getMeterProvider())
    instrumentation.enable()
    t.teardown(() => instrumentation.disable())
    // The contrib instrumentation patches at require time: a fresh CommonJS load of the SDK.
    const { OpenAI: PatchedOpenAI } = createRequire(import.meta.url)('openai') as { OpenAI: typeof OpenAI }
    const openai = new PatchedOpenAI({ apiKey: 'test', baseURL: `${openaiFake.url}/v1`, maxRetries: 0 })
    openaiFake.enqueue({ usage: { prompt_tokens: 10, completion_tokens: 5 } })
    await openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })
    openaiFake.enqueue({ error: { status: 400, message: 'bad request' } })
    await t.rejects(openai.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }))
    await provider.forceFlush()

    const events = await eventsOf(app, 'bound-bot')
    t.equal(events.length, 2)
    t.match(events.find((e) => e.success), { provider: 'openai', inputTokens: 10, outputTokens: 5, metadata: { instrumentation: /^@opentelemetry\/instrumentation-openai/ } })
    t.match(events.find((e) => !e.success), { provider: 'openai', model: 'gpt-4o-mini', success: false, errorMessage: /./ })
    t.same(await eventsOf(app, 'someone-else'), [])
  })
})
