import { timingSafeEqual } from 'node:crypto'
import { once } from 'node:events'
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Telegraf, TelegramError, type Context } from 'telegraf'
import { message } from 'telegraf/filters'
import type { Update } from 'telegraf/types'
import { UsageClient } from '../../src/client/index.js'
import type { BotConfig, WebhookConfig } from './config.js'
import { ConversationStore } from './conversations.js'
import { classifyProviderError, createChatModel, friendlyFailureReplies, type ChatModel } from './llm.js'
import { createBotLogger, type BotLogger } from './logger.js'
import { sendReply } from './send-reply.js'
import { formatUsageReport, UsageQueryError, UsageReader, usagePeriods } from './usage-report.js'

export interface BotDeps {
  /** Reports every model call. Default: a client built from `config.usage.client`, closed by `stop()`. */
  usage?: UsageClient
  logger?: BotLogger
  /** Default: the configured provider's SDK, instrumented with `usage`. */
  chatModel?: ChatModel
}

export interface TelegramBot {
  /** The Telegraf instance (not launched by createBot). */
  readonly bot: Telegraf
  readonly usage: UsageClient
  readonly conversations: ConversationStore
  /**
   * Checks the token (getMe), then receives updates: long polling, or the webhook listener and
   * setWebhook when configured. Resolves once receiving has started.
   */
  launch(): Promise<void>
  /** Where the webhook listener listens (webhook mode, after launch). */
  webhookAddress(): AddressInfo | undefined
  /** Settles when receiving stops: resolves after `stop()`, rejects when polling fails for good (bad token, another instance). */
  untilStopped(): Promise<void>
  /**
   * Stops receiving, lets replies in progress finish (up to `drainDeadlineMs`), closes the usage
   * reader, and closes the usage client when createBot made it. Idempotent.
   */
  stop(reason?: string): Promise<void>
}

const commands = [
  { command: 'help', description: 'What I can do' },
  { command: 'reset', description: 'Forget this conversation' },
  { command: 'usage', description: "This bot's calls, tokens and cost today and this month" },
]

const drainDeadlineMs = 10_000
/** Telegram shows "typing…" for about 5 s; refreshed while the model thinks. */
const typingRefreshMs = 4500

/** Builds the bot without launching it: nothing is received or sent until `launch()`. */
export function createBot(config: BotConfig, deps: BotDeps = {}): TelegramBot {
  const log = deps.logger ?? createBotLogger(config.logLevel)
  const ownsUsage = deps.usage === undefined
  const usage = deps.usage ?? new UsageClient({ ...config.usage.client, logger: log.child({ component: 'usage-client' }) })
  const chatModel = deps.chatModel ?? createChatModel(config.llm, usage)
  const conversations = new ConversationStore(config.history)
  const usageReader = new UsageReader({
    baseUrl: config.usage.client.baseUrl,
    apiKey: config.usage.client.apiKey,
    botId: config.botId,
    timeoutMs: config.usage.queryTimeoutMs,
  })
  const chatQueue = new ChatQueue()
  const inflight = new Set<Promise<unknown>>()

  const bot = new Telegraf(config.telegram.token, {
    telegram: {
      apiRoot: config.telegram.apiRoot,
      // Replies through the webhook response cannot report errors, which the Markdown fallback needs.
      webhookReply: false,
    },
    // The model call may take its timeout once per retry; the send loop below has its own bounds.
    handlerTimeout: config.llm.timeoutMs * (config.llm.maxRetries + 1) + 60_000,
  })

  bot.catch((error, ctx) => {
    log.error({ err: describeError(error), updateId: ctx.update.update_id }, 'update handling failed')
  })

  const reply = (ctx: Context, text: string): Promise<number> => {
    const chatId = ctx.chat?.id
    if (chatId === undefined) return Promise.resolve(0)
    return sendReply(ctx.telegram, chatId, text, { format: 'plain' }, log)
  }

  bot.start((ctx) =>
    reply(
      ctx,
      `Hi! I answer with ${config.llm.model} (${config.llm.provider}). Send me a message.\n\n` +
        commands.map((command) => `/${command.command} - ${command.description}`).join('\n'),
    ),
  )

  bot.help((ctx) =>
    reply(
      ctx,
      'Send me any text and I answer it, remembering our recent conversation ' +
        `(the last ${config.history.maxMessages} messages at most).\n\n` +
        commands.map((command) => `/${command.command} - ${command.description}`).join('\n'),
    ),
  )

  bot.command('reset', (ctx) => {
    conversations.forget(ctx.chat.id)
    return reply(ctx, 'Done: I have forgotten this conversation.')
  })

  bot.command('usage', async (ctx) => {
    // Include the calls this process has not yet sent; a short wait, the service may be down.
    await usage.flush({ timeoutMs: 1000 })
    const { today, monthStart } = usagePeriods()
    try {
      const [todayTotals, monthTotals] = await Promise.all([usageReader.totalsSince(today), usageReader.totalsSince(monthStart)])
      await reply(ctx, formatUsageReport(config.botId, todayTotals, monthTotals))
    } catch (error) {
      if (!(error instanceof UsageQueryError)) throw error
      log.warn({ failure: error.failure, err: describeError(error) }, '/usage could not read the usage service')
      await reply(
        ctx,
        error.failure === 'rejected'
          ? `The usage service refused this bot's key: it needs the read scope for ${config.botId}.`
          : 'The usage service is unreachable, try later.',
      )
    }
  })

  bot.on(message('text'), async (ctx) => {
    const entity = ctx.message.entities?.[0]
    if (entity?.type === 'bot_command' && entity.offset === 0) {
      await reply(ctx, 'I do not know that command. /help lists what I can do.')
      return
    }
    const chatId = ctx.chat.id
    const text = ctx.message.text
    const replyToMessageId = ctx.chat.type === 'private' ? undefined : ctx.message.message_id
    await chatQueue.run(chatId, () => answer(ctx, chatId, ctx.from.id, text, replyToMessageId))
  })

  // Only in private chats: in a group, joins, pins and photos are not addressed to the bot.
  bot.on('message', (ctx) => (ctx.chat.type === 'private' ? reply(ctx, 'I can only read text messages.') : undefined))

  async function answer(ctx: Context, chatId: number, userId: number, text: string, replyToMessageId: number | undefined): Promise<void> {
    let outcome: { answer: string } | { error: unknown }
    const stopTyping = keepTyping(ctx, chatId, log)
    try {
      outcome = { answer: await usage.withMetadata({ chatId, userId }, () => chatModel.answer(conversations.prompt(chatId, text))) }
    } catch (error) {
      outcome = { error }
    } finally {
      stopTyping()
    }
    if ('error' in outcome) {
      const failure = classifyProviderError(outcome.error)
      log[failure === 'rejected_key' ? 'error' : 'warn']({ chatId, failure, err: describeError(outcome.error) }, 'model call failed')
      await sendReply(ctx.telegram, chatId, friendlyFailureReplies[failure], { format: 'plain', replyToMessageId }, log)
      return
    }
    if (outcome.answer.trim() === '') {
      await sendReply(ctx.telegram, chatId, 'The model returned no text for this message. Try rephrasing it.', { format: 'plain', replyToMessageId }, log)
      return
    }
    conversations.recordExchange(chatId, text, outcome.answer)
    const sent = await sendReply(ctx.telegram, chatId, outcome.answer, { format: 'markdown', replyToMessageId }, log)
    log.debug({ chatId, messages: sent, chars: outcome.answer.length }, 'answered')
  }

  let running: Promise<void> | undefined
  let webhookServer: Server | undefined
  let stopping: Promise<void> | undefined
  let resolveStopped: () => void = () => undefined
  let rejectStopped: (error: unknown) => void = () => undefined
  const stopped = new Promise<void>((resolve, reject) => {
    resolveStopped = resolve
    rejectStopped = reject
  })
  stopped.catch(() => undefined)

  async function launch(): Promise<void> {
    if (running !== undefined || webhookServer !== undefined) throw new Error('the bot is already launched')
    try {
      bot.botInfo = await bot.telegram.getMe()
    } catch (error) {
      if (error instanceof TelegramError && error.code === 401) {
        throw new Error('Telegram refused TELEGRAM_BOT_TOKEN (401 Unauthorized): check the token', { cause: error })
      }
      throw error
    }
    await bot.telegram.setMyCommands(commands).catch((error: unknown) => {
      log.warn({ err: describeError(error) }, 'could not register the command list with Telegram')
    })
    const webhook = config.telegram.webhook
    if (webhook === undefined) {
      await new Promise<void>((resolve, reject) => {
        running = bot.launch({ allowedUpdates: ['message'] }, resolve)
        running.then(resolveStopped, (error: unknown) => {
          reject(error)
          rejectStopped(error)
        })
      })
      log.info({ username: bot.botInfo.username, mode: 'polling', provider: config.llm.provider, model: config.llm.model }, 'bot started')
      return
    }
    webhookServer = await listenForWebhook(webhook)
    await bot.telegram.setWebhook(webhook.url, { secret_token: webhook.secretToken, allowed_updates: ['message'] })
    log.info({ username: bot.botInfo.username, mode: 'webhook', port: webhookAddress()?.port, provider: config.llm.provider, model: config.llm.model }, 'bot started')
  }

  /**
   * Acknowledges each update at once and handles it in the background: Telegram re-sends an
   * update whose webhook call has not answered in time, and a model call can take a minute.
   */
  async function listenForWebhook(webhook: WebhookConfig): Promise<Server> {
    const expectedSecret = Buffer.from(webhook.secretToken)
    const server = createServer((request: IncomingMessage, response: ServerResponse) => {
      const secret = Buffer.from(String(request.headers['x-telegram-bot-api-secret-token'] ?? ''))
      const authorized = secret.length === expectedSecret.length && timingSafeEqual(secret, expectedSecret)
      if (request.method !== 'POST' || request.url !== webhook.path || !authorized) {
        response.writeHead(request.method !== 'POST' || request.url !== webhook.path ? 404 : 403).end()
        request.resume()
        return
      }
      readJson(request, 1_000_000).then(
        (update) => {
          response.writeHead(200).end()
          const handling = bot.handleUpdate(update as Update)
          inflight.add(handling)
          handling
            .catch((error: unknown) => log.error({ err: describeError(error) }, 'webhook update failed'))
            .finally(() => inflight.delete(handling))
        },
        () => response.writeHead(400).end(),
      )
    })
    server.listen(webhook.port, webhook.host)
    await once(server, 'listening')
    return server
  }

  /** Between getMe and the first getUpdates, Telegraf's stop() throws "Bot is not running!": try again shortly. */
  async function stopPolling(polling: Promise<void>, reason: string): Promise<void> {
    let settled = false
    void polling.finally(() => (settled = true)).catch(() => undefined)
    const deadline = Date.now() + drainDeadlineMs
    while (!settled && Date.now() < deadline) {
      try {
        bot.stop(reason)
        return
      } catch {
        await sleep(10)
      }
    }
  }

  function webhookAddress(): AddressInfo | undefined {
    const address = webhookServer?.address()
    return address !== null && typeof address === 'object' ? address : undefined
  }

  async function stop(reason = 'stop'): Promise<void> {
    stopping ??= (async () => {
      log.info({ reason }, 'stopping the bot')
      if (running !== undefined) {
        await stopPolling(running, reason)
        await withDeadline(running.catch(() => undefined), drainDeadlineMs)
      }
      if (webhookServer !== undefined) {
        const closed = once(webhookServer, 'close')
        webhookServer.close()
        webhookServer.closeIdleConnections()
        await closed
      }
      await withDeadline(Promise.allSettled([...inflight]), drainDeadlineMs)
      await usageReader.close()
      if (ownsUsage) await usage.close()
      resolveStopped()
    })()
    return stopping
  }

  return {
    bot,
    usage,
    conversations,
    launch,
    webhookAddress,
    untilStopped: () => stopped,
    stop,
  }
}

/** Runs tasks one at a time per chat, so that two quick messages see each other's history. */
class ChatQueue {
  readonly #tails = new Map<number, Promise<void>>()

  run(chatId: number, task: () => Promise<void>): Promise<void> {
    const previous = this.#tails.get(chatId) ?? Promise.resolve()
    const current = previous.then(task, task)
    const tail = current.catch(() => undefined)
    this.#tails.set(chatId, tail)
    void tail.then(() => {
      if (this.#tails.get(chatId) === tail) this.#tails.delete(chatId)
    })
    return current
  }
}

function keepTyping(ctx: Context, chatId: number, log: BotLogger): () => void {
  const send = (): void => {
    ctx.telegram.sendChatAction(chatId, 'typing').catch((error: unknown) => {
      log.debug({ err: describeError(error) }, 'sendChatAction failed')
    })
  }
  send()
  const timer = setInterval(send, typingRefreshMs)
  return () => clearInterval(timer)
}

async function readJson(request: IncomingMessage, limitBytes: number): Promise<unknown> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length
    if (size > limitBytes) throw new Error('body too large')
    chunks.push(chunk)
  }
  return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown
}

async function withDeadline(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))])
  clearTimeout(timer)
}

/** What an error log line carries: never request options, headers or payloads (they hold keys and user text). */
function describeError(error: unknown): Record<string, unknown> {
  if (!(error instanceof Error)) return { message: String(error) }
  const status = (error as { status?: unknown }).status
  const code = (error as { code?: unknown }).code
  return {
    type: error.constructor.name,
    message: error.message,
    ...(typeof status === 'number' ? { status } : {}),
    ...(typeof code === 'number' || typeof code === 'string' ? { code } : {}),
  }
}
