import { once } from 'node:events'
import type { Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Telegraf, TelegramError } from 'telegraf'
import { UsageClient } from '../../src/client/index.js'
import type { BotConfig } from './config.js'
import { ConversationStore } from './conversations.js'
import { commands, registerCommands } from './handlers/commands.js'
import type { HandlerDeps } from './handlers/deps.js'
import { registerErrorHandler } from './handlers/errors.js'
import { registerMessageHandlers } from './handlers/messages.js'
import { registerUsageCommand } from './handlers/usage.js'
import { createChatModel, type ChatModel } from './llm.js'
import { createBotLogger, describeError, type BotLogger } from './logger.js'
import { UsageReader } from './usage-report.js'
import { listenForWebhook } from './webhook.js'

export interface BotDeps {
  /** Reports every model call. Default: a client built from `config.usage.client`, closed by `stop()`. */
  usage?: UsageClient
  logger?: BotLogger
  /** Default: the configured provider's SDK, instrumented with `usage`. */
  chatModel?: ChatModel
  /** Default: real time. What "back in 3 hours" is measured from when a budget blocks a user. */
  now?: () => Date
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

const drainDeadlineMs = 10_000

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
  const inflight = new Set<Promise<unknown>>()

  const bot = new Telegraf(config.telegram.token, {
    telegram: {
      apiRoot: config.telegram.apiRoot,
      // Replies through the webhook response cannot report errors, which the Markdown fallback needs.
      webhookReply: false,
    },
    // The model call may take its timeout once per retry; sendReply has its own bounds.
    handlerTimeout: config.llm.timeoutMs * (config.llm.maxRetries + 1) + 60_000,
  })

  const handlerDeps: HandlerDeps = { config, log, usage, chatModel, conversations, usageReader, now: deps.now ?? (() => new Date()) }
  // Order matters: commands before the catch-all message handlers.
  registerErrorHandler(bot, log)
  registerCommands(bot, handlerDeps)
  registerUsageCommand(bot, handlerDeps)
  registerMessageHandlers(bot, handlerDeps)

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
    webhookServer = await listenForWebhook(webhook, (update) => {
      const handling = bot.handleUpdate(update)
      inflight.add(handling)
      handling
        .catch((error: unknown) => log.error({ err: describeError(error) }, 'webhook update failed'))
        .finally(() => inflight.delete(handling))
    })
    await bot.telegram.setWebhook(webhook.url, { secret_token: webhook.secretToken, allowed_updates: ['message'] })
    log.info({ username: bot.botInfo.username, mode: 'webhook', port: webhookAddress()?.port, provider: config.llm.provider, model: config.llm.model }, 'bot started')
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

async function withDeadline(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined
  await Promise.race([promise, new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))])
  clearTimeout(timer)
}
