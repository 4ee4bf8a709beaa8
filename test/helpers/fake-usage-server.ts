import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import { once } from 'node:events'

/**
 * A stand-in for the usage service's `POST /api/usage/batch`, faithful to its contract (auth,
 * per-item validation, dedupe by botId+id, whole-request errors), with fault controls for client
 * tests: go down (connections refused), 503 + Retry-After, 500, socket killed mid-request, delay.
 */
export interface StoredEvent {
  readonly botId: string
  readonly id: string
  readonly event: Record<string, unknown>
}

export interface ReceivedRequest {
  readonly at: number
  readonly status: number | 'killed' | 'hung'
  readonly eventCount: number
}

type Fault =
  | { kind: 'status'; status: number; retryAfter?: string }
  | { kind: 'kill'; when: 'before-store' | 'after-store' }
  | { kind: 'hang' }

export interface FakeUsageServerOptions {
  /** apiKey -> botId. Default: { 'test-key': 'test-bot' }. */
  apiKeys?: Record<string, string>
  bodyLimit?: number
}

const allowed = new Set([
  'id', 'botId', 'model', 'provider', 'inputTokens', 'outputTokens', 'totalTokens', 'cacheReadTokens',
  'cacheWriteTokens', 'cacheWrite1hTokens', 'reasoningTokens', 'inputAudioTokens', 'outputAudioTokens', 'webSearchRequests',
  'serviceTier', 'inferenceGeo', 'estimatedCost', 'requestType', 'success', 'errorMessage', 'latencyMs', 'metadata', 'createdAt',
])
const counts = [
  'inputTokens', 'outputTokens', 'totalTokens', 'cacheReadTokens', 'cacheWriteTokens', 'cacheWrite1hTokens', 'reasoningTokens',
  'inputAudioTokens', 'outputAudioTokens', 'webSearchRequests', 'latencyMs',
]

export class FakeUsageServer {
  readonly stored: StoredEvent[] = []
  readonly requests: ReceivedRequest[] = []
  duplicatesReceived = 0
  invalidReceived = 0
  /** Delay before answering each request. */
  delayMs = 0
  readonly #keys: Map<string, string>
  readonly #bodyLimit: number
  readonly #seen = new Set<string>()
  readonly #faults: Fault[] = []
  readonly #sockets = new Set<Socket>()
  #server: Server
  #port = 0

  private constructor(options: FakeUsageServerOptions) {
    this.#keys = new Map(Object.entries(options.apiKeys ?? { 'test-key': 'test-bot' }))
    this.#bodyLimit = options.bodyLimit ?? 1024 * 1024
    this.#server = this.#createServer()
  }

  static async start(options: FakeUsageServerOptions = {}): Promise<FakeUsageServer> {
    const server = new FakeUsageServer(options)
    await server.up()
    return server
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`
  }

  get port(): number {
    return this.#port
  }

  /** Ids stored for a bot, in arrival order. */
  ids(botId = 'test-bot'): string[] {
    return this.stored.filter((event) => event.botId === botId).map((event) => event.id)
  }

  /** The next `count` requests get `status` (with Retry-After when given). */
  failNext(count: number, status: number, retryAfter?: string): void {
    for (let i = 0; i < count; i++) this.#faults.push({ kind: 'status', status, retryAfter })
  }

  /** The next `count` requests have their socket destroyed, before or after storing the events. */
  killNext(count: number, when: 'before-store' | 'after-store'): void {
    for (let i = 0; i < count; i++) this.#faults.push({ kind: 'kill', when })
  }

  /** The next `count` requests are read but never answered. */
  hangNext(count: number): void {
    for (let i = 0; i < count; i++) this.#faults.push({ kind: 'hang' })
  }

  /** Stops listening and drops every connection: clients get ECONNREFUSED. */
  async down(): Promise<void> {
    if (!this.#server.listening) return
    const closed = once(this.#server, 'close')
    this.#server.close()
    for (const socket of this.#sockets) socket.destroy()
    await closed
    this.#server = this.#createServer()
  }

  /** Listens again, on the same port as before when there was one. */
  async up(): Promise<void> {
    if (this.#server.listening) return
    this.#server.listen(this.#port, '127.0.0.1')
    await once(this.#server, 'listening')
    const address = this.#server.address()
    if (address && typeof address === 'object') this.#port = address.port
  }

  async close(): Promise<void> {
    this.#faults.length = 0
    await this.down()
  }

  #createServer(): Server {
    const server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => {
        if (!response.headersSent) reply(response, 500, { statusCode: 500, code: 'INTERNAL', error: 'Internal Server Error', message: String(error) })
      })
    })
    server.keepAliveTimeout = 60_000
    server.on('connection', (socket) => {
      this.#sockets.add(socket)
      socket.on('close', () => this.#sockets.delete(socket))
    })
    return server
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = []
    let size = 0
    for await (const chunk of request as AsyncIterable<Buffer>) {
      size += chunk.length
      chunks.push(chunk)
    }
    const log = (status: ReceivedRequest['status'], eventCount: number): void => {
      this.requests.push({ at: Date.now(), status, eventCount })
    }
    if (request.method !== 'POST' || request.url !== '/api/usage/batch') {
      reply(response, 404, { statusCode: 404, code: 'NOT_FOUND', error: 'Not Found', message: `${request.method} ${request.url}` })
      return log(404, 0)
    }
    if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs))
    const fault = this.#faults.shift()
    if (fault?.kind === 'hang') return log('hung', 0)
    if (fault?.kind === 'status') {
      const headers: Record<string, string> = fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {}
      reply(response, fault.status, { statusCode: fault.status, code: 'FAULT', error: 'Injected', message: 'injected fault' }, headers)
      return log(fault.status, 0)
    }
    if (fault?.kind === 'kill' && fault.when === 'before-store') {
      request.socket.destroy()
      return log('killed', 0)
    }
    const botId = this.#keys.get((request.headers.authorization ?? '').replace(/^Bearer /, ''))
    if (botId === undefined) {
      reply(response, 401, { statusCode: 401, code: 'UNAUTHORIZED', error: 'Unauthorized', message: 'invalid api key' })
      return log(401, 0)
    }
    if (size > this.#bodyLimit) {
      reply(response, 413, { statusCode: 413, code: 'FST_ERR_CTP_BODY_TOO_LARGE', error: 'Payload Too Large', message: 'body too large' })
      return log(413, 0)
    }
    let body: unknown
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    } catch {
      reply(response, 400, { statusCode: 400, code: 'BAD_JSON', error: 'Bad Request', message: 'body is not JSON' })
      return log(400, 0)
    }
    const events = (body as { events?: unknown }).events
    if (!Array.isArray(events) || events.length < 1 || events.length > 1000 || Object.keys(body as object).length !== 1) {
      reply(response, 400, { statusCode: 400, code: 'VALIDATION', error: 'Bad Request', message: 'body must be { events: [1..1000] }' })
      return log(400, 0)
    }
    if (events.some((event) => typeof event === 'object' && event !== null && 'botId' in event && event.botId !== botId)) {
      reply(response, 403, { statusCode: 403, code: 'FORBIDDEN_BOT', error: 'Forbidden', message: `key is bound to ${botId}` })
      return log(403, events.length)
    }
    const results = events.map((event: unknown, index) => {
      const problem = validate(event)
      const id = typeof event === 'object' && event !== null && 'id' in event ? String(event.id) : ''
      if (problem) {
        this.invalidReceived++
        return { index, status: 'invalid', id, error: { code: 'INVALID_EVENT', message: problem } }
      }
      const key = `${botId}\u0000${id}`
      if (this.#seen.has(key)) {
        this.duplicatesReceived++
        return { index, status: 'duplicate', id }
      }
      this.#seen.add(key)
      this.stored.push({ botId, id, event: event as Record<string, unknown> })
      return { index, status: 'created', id }
    })
    if (fault?.kind === 'kill') {
      request.socket.destroy()
      return log('killed', events.length)
    }
    const tally = (status: string): number => results.filter((result) => result.status === status).length
    reply(response, 200, { results, created: tally('created'), duplicates: tally('duplicate'), invalid: tally('invalid') })
    log(200, events.length)
  }
}

function validate(value: unknown): string | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'event must be an object'
  const event = value as Record<string, unknown>
  for (const key of Object.keys(event)) if (!allowed.has(key)) return `unknown field ${key}`
  if (typeof event.id !== 'string' || !/^[A-Za-z0-9_.:-]{1,128}$/.test(event.id)) return 'id is invalid'
  for (const [field, max] of [['botId', 128], ['model', 200], ['provider', 64]] as const) {
    const text = event[field]
    if (typeof text !== 'string' || text.length < 1 || text.length > max) return `${field} is invalid`
  }
  for (const field of counts) {
    const count = event[field]
    if (count === undefined && field !== 'inputTokens' && field !== 'outputTokens') continue
    if (typeof count !== 'number' || !Number.isInteger(count) || count < 0) return `${field} must be a non-negative integer`
  }
  if (event.totalTokens !== undefined && event.totalTokens !== Number(event.inputTokens) + Number(event.outputTokens)) {
    return 'totalTokens must equal inputTokens + outputTokens'
  }
  if (event.serviceTier !== undefined && !['standard', 'flex', 'priority', 'batch'].includes(String(event.serviceTier))) return 'serviceTier is invalid'
  if (event.success !== undefined && typeof event.success !== 'boolean') return 'success must be a boolean'
  if (event.errorMessage !== undefined && (typeof event.errorMessage !== 'string' || event.errorMessage.length > 4000)) {
    return 'errorMessage is invalid'
  }
  if (event.metadata !== undefined && (typeof event.metadata !== 'object' || event.metadata === null || Array.isArray(event.metadata))) {
    return 'metadata must be an object'
  }
  if (event.createdAt !== undefined) {
    const time = typeof event.createdAt === 'string' ? Date.parse(event.createdAt) : NaN
    if (Number.isNaN(time)) return 'createdAt must be an ISO date'
    if (time > Date.now() + 5 * 60_000) return 'createdAt is in the future'
  }
  return null
}

function reply(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body)
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers })
  response.end(text)
}
