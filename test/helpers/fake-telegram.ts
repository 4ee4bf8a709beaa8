import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'

/**
 * A fake Telegram Bot API on 127.0.0.1 speaking the real wire format (`{ ok, result }` and
 * `{ ok: false, error_code, description, parameters? }`), for Telegraf pointed at it with
 * `telegram.apiRoot`. Implements what a chat bot calls: getMe, getUpdates (long polling that
 * honours `offset`, `limit` and `timeout`, and answers 409 to a second concurrent poller or while a
 * webhook is set), sendMessage (validates HTML parse mode like Telegram: bad markup is the real 400
 * "can't parse entities", text over 4096 characters after parsing is "message is too long"),
 * sendChatAction, setWebhook, deleteWebhook, getWebhookInfo, setMyCommands.
 * Tests play the users with `sendText()` (or hand `textUpdate()` to the bot's `handleUpdate`) and
 * read what the bot sent in `sent`.
 * Several bots may share one fake (`tokens`), as budget alerts with per-budget bot tokens do;
 * every call and message records the token it came with.
 */

export const FAKE_BOT_TOKEN = '123456789:AAFakeTelegramTokenForTests_0123456789'

export interface SentMessage {
  /** The bot token of the call, from the URL path. */
  readonly token: string
  readonly messageId: number
  /** A chat id, or a public channel's `@username`. */
  readonly chatId: number | string
  /** As sent, markup included. */
  readonly text: string
  readonly parseMode: string | undefined
  /** What the user sees: the text after Telegram parsed the markup. */
  readonly visibleText: string
  readonly replyToMessageId: number | undefined
}

export interface ApiCall {
  readonly token: string
  readonly method: string
  readonly params: Record<string, unknown>
  readonly at: number
}

export interface ApiError {
  readonly error_code: number
  readonly description: string
  readonly parameters?: { retry_after?: number; migrate_to_chat_id?: number }
}

export interface FakeUser {
  readonly id: number
  readonly first_name: string
  readonly username?: string
}

export interface TextOptions {
  readonly chatId?: number
  readonly from?: FakeUser
  readonly chatType?: 'private' | 'group'
}

export interface TelegramUpdate {
  readonly update_id: number
  readonly [kind: string]: unknown
}

interface Poller {
  readonly response: ServerResponse
  readonly offset: number
  readonly limit: number
  readonly allowed: readonly string[] | undefined
  readonly timer: NodeJS.Timeout
}

const maxMessageLength = 4096

export class FakeTelegram {
  /** The first of the accepted tokens, for a fake that plays one bot. */
  readonly token: string
  readonly #tokens: ReadonlySet<string>
  readonly botUser = { id: 123456789, is_bot: true, first_name: 'Usage Test Bot', username: 'usage_test_bot' }
  readonly calls: ApiCall[] = []
  readonly sent: SentMessage[] = []
  webhook: { url: string; secretToken: string | undefined } | null = null
  readonly #updates: TelegramUpdate[] = []
  readonly #failures = new Map<string, ApiError[]>()
  readonly #server: Server
  readonly #sockets = new Set<Socket>()
  #poller: Poller | null = null
  #nextUpdateId = 100_000
  #nextMessageId = 1
  #port = 0

  private constructor(tokens: readonly string[]) {
    this.token = tokens[0]
    this.#tokens = new Set(tokens)
    this.#server = createServer((request, response) => {
      this.#handle(request, response).catch((error: unknown) => {
        if (!response.headersSent) reply(response, 500, { ok: false, error_code: 500, description: `Internal Server Error: ${String(error)}` })
      })
    })
    this.#server.on('connection', (socket) => {
      this.#sockets.add(socket)
      socket.on('close', () => this.#sockets.delete(socket))
    })
  }

  /** Accepts `tokens` (default: FAKE_BOT_TOKEN); any other token gets the real 401. */
  static async start(options: { tokens?: readonly string[] } = {}): Promise<FakeTelegram> {
    const fake = new FakeTelegram(options.tokens ?? [FAKE_BOT_TOKEN])
    fake.#server.listen(0, '127.0.0.1')
    await once(fake.#server, 'listening')
    const address = fake.#server.address()
    if (address && typeof address === 'object') fake.#port = address.port
    return fake
  }

  /** For Telegraf's `telegram.apiRoot` (TELEGRAM_API_ROOT). */
  get apiRoot(): string {
    return `http://127.0.0.1:${this.#port}`
  }

  /** A user writes `text` in a private chat (chat id = user id). Commands get their bot_command entity, as on Telegram. */
  sendText(text: string, options: TextOptions = {}): TelegramUpdate {
    return this.#queue(this.textUpdate(text, options))
  }

  /** Queues any update (`{ message: ... }`, `{ edited_message: ... }`); an update_id is assigned. */
  pushUpdate(content: Record<string, unknown>): TelegramUpdate {
    return this.#queue(this.update(content))
  }

  /**
   * The update `sendText` would queue, not queued: for a test that hands it to the bot itself
   * (Telegraf's `bot.handleUpdate`) when how updates travel is not what it tests.
   */
  textUpdate(text: string, options: TextOptions = {}): TelegramUpdate {
    const from = options.from ?? { id: 4242, first_name: 'Ada', username: 'ada' }
    const chatId = options.chatId ?? from.id
    const command = /^\/[A-Za-z0-9_]+(@[A-Za-z0-9_]+)?/.exec(text)
    const chat =
      (options.chatType ?? 'private') === 'private'
        ? { id: chatId, type: 'private', first_name: from.first_name, username: from.username }
        : { id: chatId, type: 'group', title: 'Test group', all_members_are_administrators: true }
    const message = {
      message_id: this.#nextMessageId++,
      from: { ...from, is_bot: false, language_code: 'en' },
      chat,
      date: Math.floor(Date.now() / 1000),
      text,
      ...(command ? { entities: [{ type: 'bot_command', offset: 0, length: command[0].length }] } : {}),
    }
    return this.update({ message })
  }

  /** Any update (`{ message: ... }`) with the next update_id, not queued (see `textUpdate`). */
  update(content: Record<string, unknown>): TelegramUpdate {
    return { update_id: this.#nextUpdateId++, ...content }
  }

  #queue(update: TelegramUpdate): TelegramUpdate {
    this.#updates.push(update)
    this.#answerPoller()
    return update
  }

  /** Updates not yet confirmed by a getUpdates with a higher offset. */
  get pendingUpdates(): number {
    return this.#updates.length
  }

  /** The next `count` calls of `method` fail with `error` (e.g. 429 with retry_after, or 400). */
  failNext(method: string, error: ApiError, count = 1): void {
    const queue = this.#failures.get(method) ?? []
    for (let i = 0; i < count; i++) queue.push(error)
    this.#failures.set(method, queue)
  }

  messagesTo(chatId: number | string): SentMessage[] {
    return this.sent.filter((message) => message.chatId === chatId)
  }

  callsOf(method: string): ApiCall[] {
    return this.calls.filter((call) => call.method === method)
  }

  async close(): Promise<void> {
    if (this.#poller) clearTimeout(this.#poller.timer)
    this.#poller = null
    const closed = once(this.#server, 'close')
    this.#server.close()
    for (const socket of this.#sockets) socket.destroy()
    await closed
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const match = /^\/bot([^/]+)\/([A-Za-z]+)$/.exec((request.url ?? '').split('?')[0])
    const params = { ...queryParams(request.url ?? ''), ...(await readParams(request)) }
    if (!match) return reply(response, 404, { ok: false, error_code: 404, description: 'Not Found' })
    const [, token, method] = match
    this.calls.push({ token, method, params, at: Date.now() })
    if (!this.#tokens.has(token)) return reply(response, 401, { ok: false, error_code: 401, description: 'Unauthorized' })
    const failure = this.#failures.get(method)?.shift()
    if (failure) return reply(response, failure.error_code, { ok: false, ...failure })
    switch (method) {
      case 'getMe':
        return ok(response, { ...this.botUser, can_join_groups: true, can_read_all_group_messages: false, supports_inline_queries: false })
      case 'getUpdates':
        return this.#getUpdates(response, params)
      case 'sendMessage':
        return this.#sendMessage(response, token, params)
      case 'sendChatAction':
        if (params.chat_id === undefined || typeof params.action !== 'string') return badRequest(response, 'Bad Request: chat_id and action are required')
        return ok(response, true)
      case 'setWebhook': {
        const url = typeof params.url === 'string' ? params.url : ''
        if (url !== '' && !url.startsWith('https://')) return badRequest(response, 'Bad Request: bad webhook: An HTTPS URL must be provided for webhook')
        this.webhook = url === '' ? null : { url, secretToken: typeof params.secret_token === 'string' ? params.secret_token : undefined }
        if (this.webhook && this.#poller) this.#endPoller(409, "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first")
        return ok(response, true, url === '' ? 'Webhook was deleted' : 'Webhook was set')
      }
      case 'deleteWebhook':
        if (params.drop_pending_updates === true) this.#updates.length = 0
        this.webhook = null
        return ok(response, true, 'Webhook is already deleted')
      case 'getWebhookInfo':
        return ok(response, { url: this.webhook?.url ?? '', has_custom_certificate: false, pending_update_count: this.#updates.length })
      case 'setMyCommands':
        if (!Array.isArray(params.commands)) return badRequest(response, 'Bad Request: parameter "commands" is required')
        return ok(response, true)
      default:
        return reply(response, 404, { ok: false, error_code: 404, description: 'Not Found: method not found' })
    }
  }

  #getUpdates(response: ServerResponse, params: Record<string, unknown>): void {
    if (this.webhook) {
      return reply(response, 409, {
        ok: false,
        error_code: 409,
        description: "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to delete the webhook first",
      })
    }
    const offset = integerParam(params.offset) ?? 0
    const limit = Math.min(100, Math.max(1, integerParam(params.limit) ?? 100))
    const timeoutSeconds = Math.max(0, integerParam(params.timeout) ?? 0)
    const allowed = Array.isArray(params.allowed_updates) && params.allowed_updates.length > 0 ? params.allowed_updates.map(String) : undefined
    // Confirming: every update below the offset is forgotten; a negative offset keeps the last -offset.
    if (offset > 0) this.#dropBelow(offset)
    else if (offset < 0) this.#updates.splice(0, Math.max(0, this.#updates.length + offset))
    if (this.#poller) this.#endPoller(409, 'Conflict: terminated by other getUpdates request; make sure that only one bot instance is running')
    const ready = this.#deliverable(allowed, limit)
    if (ready.length > 0 || timeoutSeconds === 0) return ok(response, ready)
    const poller: Poller = {
      response,
      offset,
      limit,
      allowed,
      timer: setTimeout(() => {
        if (this.#poller === poller) this.#poller = null
        ok(response, [])
      }, timeoutSeconds * 1000),
    }
    this.#poller = poller
    response.on('close', () => {
      clearTimeout(poller.timer)
      if (this.#poller === poller) this.#poller = null
    })
  }

  #deliverable(allowed: readonly string[] | undefined, limit: number): TelegramUpdate[] {
    const matching = allowed === undefined ? this.#updates : this.#updates.filter((update) => allowed.some((kind) => kind in update))
    return matching.slice(0, limit)
  }

  #dropBelow(offset: number): void {
    const keep = this.#updates.filter((update) => update.update_id >= offset)
    this.#updates.length = 0
    this.#updates.push(...keep)
  }

  #answerPoller(): void {
    const poller = this.#poller
    if (!poller) return
    const ready = this.#deliverable(poller.allowed, poller.limit)
    if (ready.length === 0) return
    clearTimeout(poller.timer)
    this.#poller = null
    ok(poller.response, ready)
  }

  #endPoller(status: number, description: string): void {
    const poller = this.#poller
    if (!poller) return
    clearTimeout(poller.timer)
    this.#poller = null
    reply(poller.response, status, { ok: false, error_code: status, description })
  }

  #sendMessage(response: ServerResponse, token: string, params: Record<string, unknown>): void {
    const chatId = integerParam(params.chat_id) ?? channelUsername(params.chat_id)
    if (chatId === undefined) return badRequest(response, 'Bad Request: chat not found')
    if (typeof params.text !== 'string' || params.text.trim() === '') return badRequest(response, 'Bad Request: message text is empty')
    const parseMode = typeof params.parse_mode === 'string' && params.parse_mode !== '' ? params.parse_mode : undefined
    let visibleText = params.text.trim()
    if (parseMode !== undefined) {
      if (parseMode.toUpperCase() !== 'HTML') return badRequest(response, `Bad Request: the fake Telegram API implements only the HTML parse mode, not ${parseMode}`)
      const parsed = parseTelegramHtml(params.text)
      if ('error' in parsed) return badRequest(response, `Bad Request: can't parse entities: ${parsed.error}`)
      visibleText = parsed.text
      if (visibleText === '') return badRequest(response, 'Bad Request: text must be non-empty')
    }
    if (visibleText.length > maxMessageLength) return badRequest(response, 'Bad Request: message is too long')
    const replyParameters = params.reply_parameters
    const replyToMessageId =
      typeof replyParameters === 'object' && replyParameters !== null
        ? integerParam((replyParameters as Record<string, unknown>).message_id)
        : integerParam(params.reply_to_message_id)
    const message: SentMessage = { token, messageId: this.#nextMessageId++, chatId, text: params.text, parseMode, visibleText, replyToMessageId }
    this.sent.push(message)
    ok(response, {
      message_id: message.messageId,
      from: this.botUser,
      chat:
        typeof chatId === 'string'
          ? { id: -1_001_000_000_000, type: 'channel', username: chatId.slice(1) }
          : { id: chatId, type: chatId < 0 ? 'group' : 'private' },
      date: Math.floor(Date.now() / 1000),
      text: visibleText,
    })
  }
}

// ---- Telegram's HTML parse mode -------------------------------------------------------------

const supportedTags = new Set(['b', 'strong', 'i', 'em', 'u', 'ins', 's', 'strike', 'del', 'span', 'tg-spoiler', 'a', 'code', 'pre', 'blockquote', 'tg-emoji'])
const namedEntities: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"' }

/**
 * Parses text in Telegram's HTML style the way the Bot API does (https://core.telegram.org/bots/api#html-style):
 * only the supported tags, properly nested, `span` only with class "tg-spoiler", the four named
 * entities and numeric ones (an `&` that starts none is a literal). Returns the visible text, or
 * the error Telegram reports after "can't parse entities: ".
 */
export function parseTelegramHtml(html: string): { text: string } | { error: string } {
  const source = html.trim()
  const open: string[] = []
  let text = ''
  let i = 0
  const byteOffset = (index: number): number => Buffer.byteLength(source.slice(0, index))
  while (i < source.length) {
    const char = source[i]
    if (char === '&') {
      const entity = /^&(?:(lt|gt|amp|quot)|#(\d{1,7})|#x([0-9a-fA-F]{1,6}));/.exec(source.slice(i, i + 12))
      if (entity) {
        text += entity[1] ? namedEntities[entity[1]] : String.fromCodePoint(entity[2] ? Number(entity[2]) : parseInt(entity[3], 16))
        i += entity[0].length
        continue
      }
    }
    if (char !== '<') {
      text += char
      i++
      continue
    }
    const tagStart = i
    const end = source.indexOf('>', i)
    if (source[i + 1] === '/') {
      if (open.length === 0) return { error: `Unexpected end tag at byte offset ${byteOffset(tagStart)}` }
      if (end === -1) return { error: `Unclosed end tag at byte offset ${byteOffset(tagStart)}` }
      const name = source.slice(i + 2, end).trim().toLowerCase()
      const expected = open[open.length - 1]
      if (name !== '' && name !== expected) {
        return { error: `Unmatched end tag at byte offset ${byteOffset(tagStart)}, expected "</${expected}>", found "</${name}>"` }
      }
      open.pop()
      i = end + 1
      continue
    }
    const name = /^[^\s>]*/.exec(source.slice(i + 1))?.[0].toLowerCase() ?? ''
    if (end === -1) return { error: `Unclosed start tag at byte offset ${byteOffset(tagStart)}` }
    if (!supportedTags.has(name)) return { error: `Unsupported start tag "${name}" at byte offset ${byteOffset(tagStart)}` }
    const attributes = source.slice(i + 1 + name.length, end)
    if (name === 'span' && !/class\s*=\s*["']?tg-spoiler["']?/.test(attributes)) {
      return { error: `Tag "span" must have class "tg-spoiler" at byte offset ${byteOffset(tagStart)}` }
    }
    open.push(name)
    i = end + 1
  }
  if (open.length > 0) return { error: `Can't find end tag corresponding to start tag "${open[open.length - 1]}"` }
  return { text: text.trim() }
}

// ---- plumbing -------------------------------------------------------------------------------

function ok(response: ServerResponse, result: unknown, description?: string): void {
  reply(response, 200, { ok: true, result, ...(description ? { description } : {}) })
}

function badRequest(response: ServerResponse, description: string): void {
  reply(response, 400, { ok: false, error_code: 400, description })
}

function reply(response: ServerResponse, status: number, body: unknown): void {
  if (response.headersSent || response.destroyed) return
  const text = JSON.stringify(body)
  response.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) })
  response.end(text)
}

async function readParams(request: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = []
  for await (const chunk of request as AsyncIterable<Buffer>) chunks.push(chunk)
  const body = Buffer.concat(chunks).toString('utf8')
  if (body === '') return {}
  const type = request.headers['content-type'] ?? ''
  if (type.includes('application/json')) return JSON.parse(body) as Record<string, unknown>
  if (type.includes('application/x-www-form-urlencoded')) return Object.fromEntries(new URLSearchParams(body))
  throw new Error(`the fake Telegram API does not read ${type} bodies`)
}

function queryParams(url: string): Record<string, unknown> {
  const query = url.split('?')[1]
  return query ? Object.fromEntries(new URLSearchParams(query)) : {}
}

function integerParam(value: unknown): number | undefined {
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value
  return typeof number === 'number' && Number.isInteger(number) ? number : undefined
}

/** `@channelusername`, which sendMessage accepts for public channels. */
function channelUsername(value: unknown): string | undefined {
  return typeof value === 'string' && /^@[A-Za-z][A-Za-z0-9_]{3,31}$/.test(value) ? value : undefined
}
