import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { once } from 'node:events'

/**
 * Fake Anthropic, OpenAI and Gemini HTTP APIs on 127.0.0.1 speaking the providers' real wire formats
 * (JSON bodies, SSE streams, error bodies), so the official SDKs can be pointed at them:
 *   new Anthropic({ apiKey: 'k', baseURL: fake.url, maxRetries: 0 })
 *   new OpenAI({ apiKey: 'k', baseURL: `${fake.url}/v1`, maxRetries: 0 })
 *   genAI.getGenerativeModel({ model: 'gemini-2.5-flash' }, { baseUrl: fake.url })
 * Each test scripts the next replies with `fake.enqueue({...})` (or sets `fake.defaultReply`).
 */
export interface ScriptedReply {
  text?: string
  /** Model name the reply reports (default: the requested model). */
  model?: string
  /** The provider's raw usage object, merged over the defaults (Anthropic `usage`, OpenAI `usage`, Gemini `usageMetadata`). */
  usage?: Record<string, unknown>
  /** Answer with this HTTP error and the provider's real error body. */
  error?: { status: number; message?: string; retryAfter?: string }
  latencyMs?: number
  /** Streams: destroy the socket after this many SSE events. */
  dropAfterEvents?: number
  /** Streams: send the provider's in-stream error event after this many events (Anthropic `event: error`, OpenAI `data: {"error":...}`). */
  errorEventAfter?: number
  /** OpenAI: the response's top-level service_tier (default 'default'). */
  serviceTier?: string
  /** OpenAI Responses: output items before the message (e.g. `{ type: 'web_search_call', ... }`). */
  extraOutput?: Record<string, unknown>[]
}

/** One request of a fake Anthropic Message Batch, as its results line will report it. */
export type FakeBatchResult =
  | { customId: string; type: 'succeeded'; reply?: ScriptedReply; model: string }
  | { customId: string; type: 'errored'; status: number; message?: string }
  | { customId: string; type: 'canceled' | 'expired' }

export interface RecordedRequest {
  readonly method: string
  readonly path: string
  readonly headers: IncomingMessage['headers']
  readonly body: Record<string, unknown>
}

type Provider = 'anthropic' | 'openai' | 'gemini'

export class FakeProviderServer {
  readonly provider: Provider
  readonly requests: RecordedRequest[] = []
  defaultReply: ScriptedReply = {}
  readonly #queue: ScriptedReply[] = []
  /** Anthropic Message Batches that have ended, by id (served by retrieve and results). */
  readonly batches = new Map<string, FakeBatchResult[]>()
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  #port = 0
  #ids = 0

  private constructor(provider: Provider) {
    this.provider = provider
    this.#server = createServer((request, response) => {
      this.#handle(request, response).catch(() => {
        if (!response.headersSent) response.writeHead(500).end()
        else response.destroy()
      })
    })
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket)
      socket.on('close', () => this.#sockets.delete(socket))
    })
  }

  static async start(provider: Provider): Promise<FakeProviderServer> {
    const fake = new FakeProviderServer(provider)
    fake.#server.listen(0, '127.0.0.1')
    await once(fake.#server, 'listening')
    const address = fake.#server.address()
    if (address && typeof address === 'object') fake.#port = address.port
    return fake
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`
  }

  /** Scripts the next replies, consumed in order; then `defaultReply` answers. */
  enqueue(...replies: ScriptedReply[]): void {
    this.#queue.push(...replies)
  }

  async close(): Promise<void> {
    const closed = once(this.#server, 'close')
    this.#server.close()
    for (const socket of this.#sockets) socket.destroy()
    await closed
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    for await (const chunk of request as AsyncIterable<Buffer>) chunks.push(chunk)
    const text = Buffer.concat(chunks).toString('utf8')
    const body = text ? (JSON.parse(text) as Record<string, unknown>) : {}
    const path = request.url ?? '/'
    this.requests.push({ method: request.method ?? 'GET', path, headers: request.headers, body })
    const batch = this.provider === 'anthropic' ? /\/v1\/messages\/batches\/([^/?]+)(\/results)?$/.exec(path) : null
    if (batch) return this.#batch(response, decodeURIComponent(batch[1]), batch[2] !== undefined)
    const reply = this.#queue.shift() ?? this.defaultReply
    if (reply.latencyMs) await new Promise((resolve) => setTimeout(resolve, reply.latencyMs))
    if (reply.error) return this.#error(response, reply.error)
    const id = ++this.#ids
    if (this.provider === 'anthropic') {
      if (!path.endsWith('/v1/messages')) return notFound(response)
      const model = reply.model ?? String(body.model)
      return body.stream === true ? anthropicStream(response, reply, model, id) : json(response, 200, anthropicMessage(reply, model, id))
    }
    if (this.provider === 'openai') {
      const model = reply.model ?? String(body.model)
      if (path.endsWith('/chat/completions')) {
        const includeUsage = (body.stream_options as { include_usage?: boolean } | undefined)?.include_usage === true
        return body.stream === true ? openAIChatStream(response, reply, model, id, includeUsage) : json(response, 200, openAIChatCompletion(reply, model, id))
      }
      if (path.endsWith('/responses')) {
        return body.stream === true ? openAIResponsesStream(response, reply, model, id) : json(response, 200, openAIResponse(reply, model, id, 'completed'))
      }
      return notFound(response)
    }
    const match = /\/models\/([^/:]+):(generateContent|streamGenerateContent)/.exec(path)
    if (!match) return notFound(response)
    const model = reply.model ?? match[1]
    return match[2] === 'streamGenerateContent' ? geminiStream(response, reply, model, id) : json(response, 200, geminiResponse(reply, model, id, true))
  }

  /** GET /v1/messages/batches/{id} (the batch, with its results_url) and its `.jsonl` results. */
  #batch(response: ServerResponse, id: string, results: boolean): void {
    const items = this.batches.get(id)
    if (!items) return json(response, 404, errorBody('anthropic', 404, `batch ${id} not found`))
    if (!results) return json(response, 200, anthropicBatch(id, items, `${this.url}/v1/messages/batches/${id}/results`))
    const lines = items.map((item) => JSON.stringify({ custom_id: item.customId, result: anthropicBatchResult(item, ++this.#ids) }) + '\n')
    response.writeHead(200, { 'content-type': 'application/binary' })
    response.end(lines.join(''))
  }

  #error(response: ServerResponse, error: NonNullable<ScriptedReply['error']>): void {
    const headers: Record<string, string> = error.retryAfter ? { 'retry-after': error.retryAfter } : {}
    json(response, error.status, errorBody(this.provider, error.status, error.message), headers)
  }
}

export function startFakeAnthropic(): Promise<FakeProviderServer> {
  return FakeProviderServer.start('anthropic')
}
export function startFakeOpenAI(): Promise<FakeProviderServer> {
  return FakeProviderServer.start('openai')
}
export function startFakeGemini(): Promise<FakeProviderServer> {
  return FakeProviderServer.start('gemini')
}

// ---- error bodies ---------------------------------------------------------------------------

const anthropicErrorTypes: Record<number, string> = {
  400: 'invalid_request_error', 401: 'authentication_error', 403: 'permission_error', 404: 'not_found_error',
  413: 'request_too_large', 429: 'rate_limit_error', 500: 'api_error', 529: 'overloaded_error',
}
const geminiStatuses: Record<number, string> = {
  400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED', 404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL', 503: 'UNAVAILABLE', 529: 'UNAVAILABLE',
}

export function errorBody(provider: Provider, status: number, message?: string): Record<string, unknown> {
  if (provider === 'anthropic') {
    const type = anthropicErrorTypes[status] ?? 'api_error'
    return { type: 'error', error: { type, message: message ?? (status === 529 ? 'Overloaded' : `fake ${type}`) }, request_id: 'req_fake' }
  }
  if (provider === 'openai') {
    const [type, code] =
      status === 401 ? ['invalid_request_error', 'invalid_api_key']
      : status === 429 ? ['requests', 'rate_limit_exceeded']
      : status >= 500 ? ['server_error', null]
      : ['invalid_request_error', null]
    return { error: { message: message ?? `fake ${type}`, type, param: null, code } }
  }
  const statusName = geminiStatuses[status] ?? 'UNKNOWN'
  return { error: { code: status, message: message ?? `fake ${statusName}`, status: statusName } }
}

// ---- Anthropic Messages API ------------------------------------------------------------------

function anthropicUsage(reply: ScriptedReply): Record<string, unknown> {
  return {
    input_tokens: 12, cache_creation_input_tokens: 0, cache_read_input_tokens: 0,
    cache_creation: { ephemeral_5m_input_tokens: 0, ephemeral_1h_input_tokens: 0 },
    output_tokens: 7, service_tier: 'standard', ...reply.usage,
  }
}

function anthropicMessage(reply: ScriptedReply, model: string, id: number): Record<string, unknown> {
  return {
    id: `msg_fake${id}`, type: 'message', role: 'assistant', model,
    content: [{ type: 'text', text: reply.text ?? 'Hello from fake Claude' }],
    stop_reason: 'end_turn', stop_sequence: null, usage: anthropicUsage(reply),
  }
}

async function anthropicStream(response: ServerResponse, reply: ScriptedReply, model: string, id: number): Promise<void> {
  const usage = anthropicUsage(reply)
  const words = splitWords(reply.text ?? 'Hello from fake Claude')
  const events: Array<[string, Record<string, unknown>]> = [
    ['message_start', { type: 'message_start', message: { ...anthropicMessage(reply, model, id), content: [], stop_reason: null, usage: { ...usage, output_tokens: 1 } } }],
    ['content_block_start', { type: 'content_block_start', index: 0, content_block: { type: 'text', text: '' } }],
    ['ping', { type: 'ping' }],
    ...words.map((word): [string, Record<string, unknown>] => ['content_block_delta', { type: 'content_block_delta', index: 0, delta: { type: 'text_delta', text: word } }]),
    ['content_block_stop', { type: 'content_block_stop', index: 0 }],
    ['message_delta', { type: 'message_delta', delta: { stop_reason: 'end_turn', stop_sequence: null }, usage: { output_tokens: usage.output_tokens } }],
    ['message_stop', { type: 'message_stop' }],
  ]
  await sse(response, reply, events.map(([name, data]) => `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`), () =>
    `event: error\ndata: ${JSON.stringify({ type: 'error', error: { type: 'overloaded_error', message: 'Overloaded' } })}\n\n`,
  )
}

function anthropicBatch(id: string, items: FakeBatchResult[], resultsUrl: string): Record<string, unknown> {
  const count = (type: FakeBatchResult['type']): number => items.filter((item) => item.type === type).length
  const now = new Date().toISOString()
  return {
    id, type: 'message_batch', processing_status: 'ended', archived_at: null, cancel_initiated_at: null,
    created_at: now, ended_at: now, expires_at: new Date(Date.now() + 86_400_000).toISOString(),
    request_counts: { processing: 0, succeeded: count('succeeded'), errored: count('errored'), canceled: count('canceled'), expired: count('expired') },
    results_url: resultsUrl,
  }
}

function anthropicBatchResult(item: FakeBatchResult, id: number): Record<string, unknown> {
  if (item.type === 'succeeded') return { type: 'succeeded', message: anthropicMessage(item.reply ?? {}, item.model, id) }
  if (item.type === 'errored') return { type: 'errored', error: errorBody('anthropic', item.status, item.message) }
  return { type: item.type }
}

// ---- OpenAI Chat Completions ----------------------------------------------------------------

function openAIUsage(reply: ScriptedReply): Record<string, unknown> {
  const usage: Record<string, unknown> = {
    prompt_tokens: 19, completion_tokens: 10,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
    ...reply.usage,
  }
  usage.total_tokens = Number(usage.prompt_tokens) + Number(usage.completion_tokens)
  return usage
}

function openAIChatCompletion(reply: ScriptedReply, model: string, id: number): Record<string, unknown> {
  return {
    id: `chatcmpl-fake${id}`, object: 'chat.completion', created: Math.floor(Date.now() / 1000), model,
    choices: [{ index: 0, message: { role: 'assistant', content: reply.text ?? 'Hello from fake GPT', refusal: null, annotations: [] }, logprobs: null, finish_reason: 'stop' }],
    usage: openAIUsage(reply), service_tier: reply.serviceTier ?? 'default', system_fingerprint: 'fp_fake',
  }
}

async function openAIChatStream(response: ServerResponse, reply: ScriptedReply, model: string, id: number, includeUsage: boolean): Promise<void> {
  const base = { id: `chatcmpl-fake${id}`, object: 'chat.completion.chunk', created: Math.floor(Date.now() / 1000), model, service_tier: reply.serviceTier ?? 'default', system_fingerprint: 'fp_fake' }
  const withUsage = (chunk: Record<string, unknown>): Record<string, unknown> => (includeUsage ? { ...chunk, usage: null } : chunk)
  const chunks: Record<string, unknown>[] = [
    withUsage({ ...base, choices: [{ index: 0, delta: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: null }] }),
    ...splitWords(reply.text ?? 'Hello from fake GPT').map((word) => withUsage({ ...base, choices: [{ index: 0, delta: { content: word }, logprobs: null, finish_reason: null }] })),
    withUsage({ ...base, choices: [{ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' }] }),
  ]
  if (includeUsage) chunks.push({ ...base, choices: [], usage: openAIUsage(reply) })
  const lines = chunks.map((chunk) => `data: ${JSON.stringify(chunk)}\n\n`)
  lines.push('data: [DONE]\n\n')
  await sse(response, reply, lines, () => `data: ${JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } })}\n\n`)
}

// ---- OpenAI Responses API -------------------------------------------------------------------

function responsesUsage(reply: ScriptedReply): Record<string, unknown> {
  const usage: Record<string, unknown> = {
    input_tokens: 21, input_tokens_details: { cached_tokens: 0 }, output_tokens: 9, output_tokens_details: { reasoning_tokens: 0 },
    ...reply.usage,
  }
  usage.total_tokens = Number(usage.input_tokens) + Number(usage.output_tokens)
  return usage
}

function openAIResponse(reply: ScriptedReply, model: string, id: number, status: 'in_progress' | 'completed'): Record<string, unknown> {
  const done = status === 'completed'
  return {
    id: `resp_fake${id}`, object: 'response', created_at: Math.floor(Date.now() / 1000), status, background: false,
    error: null, incomplete_details: null, instructions: null, max_output_tokens: null, model,
    output: done ? [...(reply.extraOutput ?? []), { type: 'message', id: `msg_fake${id}`, status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: reply.text ?? 'Hello from fake Responses', annotations: [], logprobs: [] }] }] : [],
    parallel_tool_calls: true, previous_response_id: null, reasoning: { effort: null, summary: null }, service_tier: reply.serviceTier ?? 'default',
    store: true, temperature: 1, text: { format: { type: 'text' }, verbosity: 'medium' }, tool_choice: 'auto', tools: [], top_p: 1,
    truncation: 'disabled', usage: done ? responsesUsage(reply) : null, user: null, metadata: {},
  }
}

async function openAIResponsesStream(response: ServerResponse, reply: ScriptedReply, model: string, id: number): Promise<void> {
  const text = reply.text ?? 'Hello from fake Responses'
  const itemId = `msg_fake${id}`
  const item = { id: itemId, type: 'message', status: 'in_progress', content: [], role: 'assistant' }
  const events: Record<string, unknown>[] = [
    { type: 'response.created', response: openAIResponse(reply, model, id, 'in_progress') },
    { type: 'response.in_progress', response: openAIResponse(reply, model, id, 'in_progress') },
    { type: 'response.output_item.added', output_index: 0, item },
    { type: 'response.content_part.added', item_id: itemId, output_index: 0, content_index: 0, part: { type: 'output_text', annotations: [], logprobs: [], text: '' } },
    ...splitWords(text).map((delta) => ({ type: 'response.output_text.delta', item_id: itemId, output_index: 0, content_index: 0, delta, logprobs: [] })),
    { type: 'response.output_text.done', item_id: itemId, output_index: 0, content_index: 0, text, logprobs: [] },
    { type: 'response.content_part.done', item_id: itemId, output_index: 0, content_index: 0, part: { type: 'output_text', annotations: [], logprobs: [], text } },
    { type: 'response.output_item.done', output_index: 0, item: { ...item, status: 'completed', content: [{ type: 'output_text', annotations: [], logprobs: [], text }] } },
    { type: 'response.completed', response: openAIResponse(reply, model, id, 'completed') },
  ]
  const lines = events.map((event, sequence) => `event: ${String(event.type)}\ndata: ${JSON.stringify({ ...event, sequence_number: sequence })}\n\n`)
  await sse(response, reply, lines, () => `event: error\ndata: ${JSON.stringify({ type: 'error', code: 'server_error', message: 'The server had an error', param: null, sequence_number: 99 })}\n\n`)
}

// ---- Gemini generateContent -----------------------------------------------------------------

function geminiUsage(reply: ScriptedReply): Record<string, unknown> {
  const usage: Record<string, unknown> = { promptTokenCount: 15, candidatesTokenCount: 8, ...reply.usage }
  usage.totalTokenCount = Number(usage.promptTokenCount) + Number(usage.candidatesTokenCount) + Number(usage.thoughtsTokenCount ?? 0)
  usage.promptTokensDetails ??= [{ modality: 'TEXT', tokenCount: usage.promptTokenCount }]
  return usage
}

function geminiResponse(reply: ScriptedReply, model: string, id: number, final: boolean, text?: string): Record<string, unknown> {
  const usage = geminiUsage(reply)
  return {
    candidates: [{ content: { parts: [{ text: text ?? reply.text ?? 'Hello from fake Gemini' }], role: 'model' }, ...(final ? { finishReason: 'STOP' } : {}), index: 0 }],
    // Intermediate chunks carry only the prompt count; the last one carries the full usage.
    usageMetadata: final ? usage : { promptTokenCount: usage.promptTokenCount, totalTokenCount: usage.promptTokenCount },
    modelVersion: model,
    responseId: `fakeResponse${id}`,
  }
}

async function geminiStream(response: ServerResponse, reply: ScriptedReply, model: string, id: number): Promise<void> {
  const words = splitWords(reply.text ?? 'Hello from fake Gemini')
  const lines = words.map((word, index) => `data: ${JSON.stringify(geminiResponse(reply, model, id, index === words.length - 1, word))}\r\n\r\n`)
  await sse(response, reply, lines, () => `data: ${JSON.stringify({ error: { code: 500, message: 'Internal error', status: 'INTERNAL' } })}\r\n\r\n`)
}

// ---- plumbing -------------------------------------------------------------------------------

async function sse(response: ServerResponse, reply: ScriptedReply, frames: string[], errorFrame: () => string): Promise<void> {
  response.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' })
  for (let i = 0; i < frames.length; i++) {
    if (reply.dropAfterEvents !== undefined && i >= reply.dropAfterEvents) {
      response.socket?.destroy()
      return
    }
    if (reply.errorEventAfter !== undefined && i >= reply.errorEventAfter) {
      response.end(errorFrame())
      return
    }
    if (!response.write(frames[i])) await once(response, 'drain')
    // Yield so that the client sees separate chunks, like a real token stream.
    await new Promise((resolve) => setImmediate(resolve))
  }
  response.end()
}

function splitWords(text: string): string[] {
  const words = text.split(/(?<= )/)
  return words.length > 0 ? words : ['']
}

function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  response.end(text)
}

function notFound(response: ServerResponse): void {
  json(response, 404, { error: { message: 'not found in fake provider' } })
}
