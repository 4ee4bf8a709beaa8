import t from 'tap'
import { gzipSync } from 'node:zlib'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'

/** The OTLP/HTTP contract at the wire: encodings, responses, errors, and what each span becomes. */

type Attr = string | number | boolean
const kv = (attributes: Record<string, Attr>) =>
  Object.entries(attributes).map(([key, v]) => ({
    key,
    value: typeof v === 'string' ? { stringValue: v } : typeof v === 'boolean' ? { boolValue: v } : Number.isInteger(v) ? { intValue: String(v) } : { doubleValue: v },
  }))

const START = BigInt(Date.parse('2026-01-15T10:00:00.000Z')) * 1_000_000n
let spanCounter = 0

function span(attributes: Record<string, Attr>, extra: Record<string, unknown> = {}) {
  spanCounter++
  return {
    traceId: '5b8efff798038103d269b633813fc60c',
    spanId: spanCounter.toString(16).padStart(16, '0'),
    name: 'chat',
    kind: 3,
    startTimeUnixNano: String(START),
    endTimeUnixNano: String(START + 1_234_000_000n),
    attributes: kv(attributes),
    status: {},
    ...extra,
  }
}

function request(spans: unknown[], resource: Record<string, Attr> = { 'service.name': 'svc-bot' }, scope = 'my-emitter') {
  return { resourceSpans: [{ resource: { attributes: kv(resource) }, scopeSpans: [{ scope: { name: scope, version: '1.0.0' }, spans }] }] }
}

const chat = (extra: Record<string, Attr> = {}) => ({
  'gen_ai.provider.name': 'openai',
  'gen_ai.operation.name': 'chat',
  'gen_ai.request.model': 'gpt-4o-mini',
  'gen_ai.usage.input_tokens': 100,
  'gen_ai.usage.output_tokens': 20,
  ...extra,
})

t.test('OTLP/HTTP ingest', async (t) => {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database, { BODY_LIMIT_BYTES: '65536' })
  const post = (body: unknown, headers: Record<string, string> = {}, key = ADMIN_KEY) =>
    app.inject({
      method: 'POST',
      url: '/v1/traces',
      headers: { 'content-type': 'application/json', ...bearer(key), ...headers },
      payload: Buffer.isBuffer(body) ? body : JSON.stringify(body),
    })
  const eventsOf = async (botId: string) =>
    (
      (await app.inject({ url: `/api/usage?botId=${botId}&limit=100`, headers: bearer(ADMIN_KEY) })).json() as {
        recentUsage: Record<string, unknown>[]
      }
    ).recentUsage

  await t.test('a JSON export: the LLM span is stored, other spans are ignored, retries count once', async (t) => {
    const body = request([
      span(chat({ 'gen_ai.response.id': 'chatcmpl-1', 'gen_ai.conversation.id': 'conv-9', 'user.id': 'u-1', 'session.id': 's-1' })),
      span({ 'http.method': 'GET', 'http.route': '/x' }),
      span({ ...chat(), 'gen_ai.operation.name': 'invoke_agent' }),
    ])
    const first = await post(body)
    t.equal(first.statusCode, 200)
    t.match(first.headers['content-type'], /application\/json/)
    t.same(first.json(), {}, 'full success has no partialSuccess')
    const retried = await post(gzipSync(JSON.stringify(body)), { 'content-encoding': 'gzip' })
    t.equal(retried.statusCode, 200, 'gzip accepted')
    const events = await eventsOf('svc-bot')
    t.equal(events.length, 1, 'one event: retry and non-LLM spans add nothing')
    t.match(events[0], {
      id: /^otel-5b8efff798038103d269b633813fc60c-[0-9a-f]{16}$/,
      provider: 'openai',
      model: 'gpt-4o-mini',
      requestType: 'message',
      inputTokens: 100,
      outputTokens: 20,
      latencyMs: 1234,
      success: true,
      createdAt: '2026-01-15T10:00:00.000Z',
      metadata: { responseId: 'chatcmpl-1', conversationId: 'conv-9', userId: 'u-1', sessionId: 's-1', instrumentation: 'my-emitter@1.0.0' },
    })
  })

  await t.test('older attribute names, deprecated gen_ai.system, failures from status and error.type', async (t) => {
    const body = request(
      [
        span({ 'gen_ai.system': 'anthropic', 'gen_ai.request.model': 'claude-3-5-haiku', 'gen_ai.usage.prompt_tokens': 7, 'gen_ai.usage.completion_tokens': 3 }),
        span({ 'llm.vendor': 'openai', 'llm.request.model': 'gpt-4o', 'llm.usage.prompt_tokens': 5, 'llm.usage.completion_tokens': 4, 'llm.usage.reasoning_tokens': 2 }),
        span(chat({ 'error.type': 'rate_limit_exceeded' })),
        span(chat(), { status: { code: 2, message: 'upstream timed out' } }),
      ],
      { 'service.name': 'ignored', 'usage.bot_id': 'legacy-bot' },
    )
    t.equal((await post(body)).statusCode, 200)
    const events = await eventsOf('legacy-bot')
    t.equal(events.length, 4)
    t.match(
      events.find((e) => e.model === 'claude-3-5-haiku'),
      { provider: 'anthropic', inputTokens: 7, outputTokens: 3, success: true },
    )
    t.match(events.find((e) => e.model === 'gpt-4o'), { inputTokens: 5, outputTokens: 4, reasoningTokens: 2 })
    const failures = events.filter((e) => e.success === false).map((e) => e.errorMessage)
    t.same(failures.sort(), ['rate_limit_exceeded', 'upstream timed out'])
  })

  await t.test('cache tokens: per emitter, and by arithmetic for unknown emitters', async (t) => {
    const anthropic = { 'gen_ai.provider.name': 'anthropic', 'gen_ai.request.model': 'claude-sonnet-4-5', 'gen_ai.usage.input_tokens': 10, 'gen_ai.usage.output_tokens': 5, 'gen_ai.usage.cache_read.input_tokens': 4 }
    await post(request([span(anthropic)], { 'service.name': 'cache-known' }, '@traceloop/instrumentation-anthropic'))
    await post(request([span(anthropic)], { 'service.name': 'cache-conventional' }, 'some-emitter'))
    await post(request([span({ ...anthropic, 'gen_ai.usage.cache_read.input_tokens': 40 })], { 'service.name': 'cache-excluded' }, 'some-emitter'))
    t.match(await eventsOf('cache-known'), [{ inputTokens: 14, cacheReadTokens: 4 }], 'a known emitter that excludes cache')
    t.match(await eventsOf('cache-conventional'), [{ inputTokens: 10, cacheReadTokens: 4 }], 'the conventions: input includes cache')
    t.match(await eventsOf('cache-excluded'), [{ inputTokens: 50, cacheReadTokens: 40 }], 'more cache than input: input left it out')
  })

  await t.test('partial success: LLM spans that cannot be stored are counted, the rest is stored', async (t) => {
    const body = request([span(chat()), span(chat({ 'gen_ai.usage.input_tokens': -5 })), span(chat(), { spanId: '' })], { 'usage.bot_id': 'partial-bot' })
    const res = await post(body)
    t.equal(res.statusCode, 200)
    const partial = (res.json() as { partialSuccess: { rejectedSpans: string; errorMessage: string } }).partialSuccess
    t.equal(partial.rejectedSpans, '2')
    t.match(partial.errorMessage, /gen_ai\.usage\.input_tokens must be a non-negative integer/)
    t.match(partial.errorMessage, /spanId are required/)
    t.equal((await eventsOf('partial-bot')).length, 1)

    const noBot = await post(request([span(chat())], {}))
    t.match(noBot.json(), { partialSuccess: { rejectedSpans: '1', errorMessage: /no bot/ } })

    // Protobuf: the response is a protobuf ExportTraceServiceResponse. A protobuf request with
    // one LLM span missing its model is simply ignored; build one by hand whose token count is
    // out of range so it is rejected: field 1 (resource_spans) > 2 (scope_spans) > 2 (spans).
    const protoRes = await post(protobufRequestWithHugeTokens(), { 'content-type': 'application/x-protobuf' })
    t.equal(protoRes.statusCode, 200)
    t.equal(protoRes.headers['content-type'], 'application/x-protobuf')
    const bytes = protoRes.rawPayload
    t.equal(bytes[0], 0x0a, 'field 1 (partial_success), length-delimited')
    t.equal(bytes[2], 0x08, 'rejected_spans')
    t.equal(bytes[3], 1, 'one rejected span')
    t.match(bytes.toString('latin1'), /inputTokens/)
  })

  await t.test('malformed payloads are 4xx and store nothing', async (t) => {
    const cases: [string, () => Promise<{ statusCode: number; json: () => unknown }>, number, RegExp][] = [
      ['invalid JSON', () => post(Buffer.from('{"resourceSpans": [')), 400, /not valid JSON/],
      ['wrong shape', () => post({ resourceSpans: { nope: 1 } }), 400, /resourceSpans must be an array/],
      ['bad trace id', () => post(request([span(chat(), { traceId: 'xyz' })])), 400, /traceId must be 16 bytes/],
      ['bad timestamp', () => post(request([span(chat(), { startTimeUnixNano: '-1' })])), 400, /startTimeUnixNano/],
      ['not protobuf', () => post(Buffer.from([0x0a, 0xff, 0xff, 0xff]), { 'content-type': 'application/x-protobuf' }), 400, /protobuf/],
      ['not gzip', () => post(Buffer.from('plain'), { 'content-encoding': 'gzip' }), 400, /gzip/],
      ['unknown encoding', () => post(request([]), { 'content-encoding': 'br' }), 415, /Content-Encoding br/],
      ['gzip bomb', () => post(gzipSync(Buffer.alloc(200_000, 0x20)), { 'content-encoding': 'gzip' }), 413, /exceeds/],
      ['too large', () => post(Buffer.alloc(70_000, 0x20)), 413, /exceeds/],
    ]
    for (const [name, send, status, message] of cases) {
      const res = await send()
      t.equal(res.statusCode, status, name)
      t.match(res.json(), { message }, name)
    }
    t.equal((await post(request([span(chat())], { 'usage.bot_id': 'x' }), {}, 'usk_wrong')).statusCode, 401)
    const readKey = (
      (await app.inject({ method: 'POST', url: '/api/keys', headers: bearer(ADMIN_KEY), payload: { name: 'r', scopes: ['read'] } })).json() as { key: string }
    ).key
    t.equal((await post(request([span(chat())], { 'usage.bot_id': 'x' }), {}, readKey)).statusCode, 403)
    t.same(await eventsOf('x'), [])
  })
})

/** protobuf varint */
function varint(n: number): number[] {
  const out: number[] = []
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80)
    n >>>= 7
  }
  out.push(n)
  return out
}
const field = (num: number, bytes: number[] | Buffer) => [(num << 3) | 2, ...varint(bytes.length), ...bytes]
const str = (num: number, s: string) => field(num, Buffer.from(s))
const attrString = (key: string, value: string) => field(9, [...str(1, key), ...field(2, str(1, value))])
const attrInt = (key: string, value: number) => field(9, [...str(1, key), ...field(2, [3 << 3, ...varint(value)])])
function fixed64(num: number, value: bigint): number[] {
  const b = Buffer.alloc(8)
  b.writeBigUInt64LE(value)
  return [(num << 3) | 1, ...b]
}

function protobufRequestWithHugeTokens(): Buffer {
  const spanBytes = [
    ...field(1, Buffer.from('0123456789abcdef0123456789abcdef', 'hex')),
    ...field(2, Buffer.from('0123456789abcdef', 'hex')),
    ...str(5, 'chat'),
    ...fixed64(7, START),
    ...fixed64(8, START + 1_000_000n),
    ...attrString('gen_ai.provider.name', 'openai'),
    ...attrString('gen_ai.request.model', 'gpt-4o'),
    ...attrInt('gen_ai.usage.input_tokens', 3_000_000_000),
    ...attrInt('gen_ai.usage.output_tokens', 1),
  ]
  const resource = field(1, attrString('service.name', 'proto-bot').map((b, i) => (i === 0 ? (1 << 3) | 2 : b)))
  const scopeSpans = field(2, field(2, spanBytes))
  return Buffer.from(field(1, [...resource, ...scopeSpans]))
}
