import type { FastifyInstance } from 'fastify'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { Writable } from 'node:stream'
import type { Test } from 'tap'
import type { Update } from 'telegraf/types'
import { createBot, type TelegramBot } from '../../bots/telegram/bot.js'
import { loadBotConfig, providerKeyVariable, type BotConfig, type LlmProvider } from '../../bots/telegram/config.js'
import { createBotLogger } from '../../bots/telegram/logger.js'
import { UsageClient } from '../../src/client/index.js'
import type { Database } from '../../src/db/connect.js'
import { ADMIN_KEY, bearer, buildTestApp } from '../helpers/app.js'
import { createTestDatabase } from '../helpers/db.js'
import { startFakeAnthropic, startFakeGemini, startFakeOpenAI, type FakeProviderServer } from '../helpers/fake-providers.js'
import { FAKE_BOT_TOKEN, FakeTelegram, type TelegramUpdate } from '../helpers/fake-telegram.js'
import { waitFor } from '../helpers/wait.js'

/** Provider keys the bots are configured with; a test checks that no log line contains one. */
export const PROVIDER_KEYS: Record<LlmProvider, string> = {
  anthropic: 'sk-ant-test-secret-key-0123456789',
  openai: 'sk-test-openai-secret-key-0123456789',
  google: 'AIzaTestGeminiSecretKey0123456789',
}

export const MODELS: Record<LlmProvider, string> = {
  anthropic: 'claude-haiku-4-5',
  openai: 'gpt-4o-mini',
  google: 'gemini-2.5-flash',
}

/** The user every test plays (a private chat, so chat id = user id). */
export const USER = { id: 4242, first_name: 'Ada', username: 'ada' }

export interface UsageService {
  readonly app: FastifyInstance
  readonly database: Database
  readonly url: string
  /** Creates a key with the ingest and read scopes bound to `botId`, as the README tells operators. */
  createBotKey(botId: string): Promise<string>
  /** `GET /api/usage` with the admin key. */
  usage(query: Record<string, string>): Promise<UsageResponse>
}

export interface UsageRow {
  model: string
  provider: string
  _sum: { inputTokens: number; outputTokens: number; totalTokens: number; cacheReadTokens: number; cacheWriteTokens: number; reasoningTokens: number; estimatedCost: number }
  _count: { id: number; failed: number }
  unpriced: { events: number }
}

export interface UsageResponse {
  stats: UsageRow[]
  recentUsage: Array<Record<string, unknown>>
  totalCost: number
}

/** The real usage service on a private database, listening on 127.0.0.1 (budgets on `budgetClock` when given). */
export async function startUsageService(t: Test, options: { budgetClock?: () => Date; env?: Record<string, string> } = {}): Promise<UsageService> {
  const database = await createTestDatabase(t)
  const { app } = await buildTestApp(t, database, { LOG_LEVEL: 'warn', ...options.env }, { budgetClock: options.budgetClock })
  const url = await app.listen({ port: 0, host: '127.0.0.1' })
  return {
    app,
    database,
    url,
    async createBotKey(botId) {
      const response = await app.inject({
        method: 'POST',
        url: '/api/keys',
        headers: bearer(ADMIN_KEY),
        payload: { name: `telegram ${botId}`, scopes: ['ingest', 'read'], botId },
      })
      if (response.statusCode !== 201) throw new Error(`create key: ${response.statusCode} ${response.body}`)
      return (response.json() as { key: string }).key
    },
    async usage(query) {
      const response = await app.inject({ method: 'GET', url: `/api/usage?${new URLSearchParams(query).toString()}`, headers: bearer(ADMIN_KEY) })
      if (response.statusCode !== 200) throw new Error(`GET /api/usage: ${response.statusCode} ${response.body}`)
      return response.json() as UsageResponse
    },
  }
}

/** One more instance of the service on `database`, listening on `port` (the "service is back" of outage tests). */
export async function startUsageServiceOn(t: Test, database: Database, port: number): Promise<FastifyInstance> {
  const { app } = await buildTestApp(t, database, { LOG_LEVEL: 'warn' })
  await app.listen({ port, host: '127.0.0.1' })
  return app
}

/** A port nothing listens on (taken from the OS, then released). */
export async function freePort(): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  const port = address !== null && typeof address === 'object' ? address.port : 0
  server.close()
  await once(server, 'close')
  return port
}

export async function startFakeProvider(t: Test, provider: LlmProvider): Promise<FakeProviderServer> {
  const fake = await (provider === 'anthropic' ? startFakeAnthropic() : provider === 'openai' ? startFakeOpenAI() : startFakeGemini())
  t.teardown(() => fake.close())
  return fake
}

export function providerBaseUrl(provider: LlmProvider, fake: FakeProviderServer): string {
  return provider === 'openai' ? `${fake.url}/v1` : fake.url
}

export interface RunningBot {
  readonly bot: TelegramBot
  readonly config: BotConfig
  readonly usage: UsageClient
  readonly telegram: FakeTelegram
  readonly provider: FakeProviderServer
  readonly botId: string
  readonly usageKey: string
  /** Everything the bot logged. */
  readonly log: () => string
  /** How updates reach the bot (see BotOptions.receive). */
  readonly receive: 'inject' | 'launch'
  /** Hands `update` to the bot (Telegraf's handleUpdate); resolves once its handlers are done. */
  inject(update: TelegramUpdate): Promise<void>
}

export interface BotOptions {
  provider: LlmProvider
  botId: string
  /** Default: the service's URL. */
  usageUrl?: string
  env?: Record<string, string>
  /**
   * `inject` (default): the bot is not launched; tests hand it updates with `inject()`, as
   * Telegraf's own tests use `bot.handleUpdate`. Its calls (getMe, sendMessage...) still go over
   * the wire to the fake. `launch`: `launch()` as main.ts does, receiving by long polling, or by
   * the webhook listener when TELEGRAM_WEBHOOK_URL is in `env`; for tests of how updates travel.
   */
  receive?: 'inject' | 'launch'
  /** The bot's clock (budget replies say when it answers again). */
  now?: () => Date
}

/**
 * The real bot (Telegraf against a fake Telegram API, the provider's SDK against its fake)
 * reporting to `service`, configured through the environment like main.ts. Receives updates as
 * `options.receive` says. Stopped, and its usage client closed, when the test ends.
 */
export async function startBot(t: Test, service: UsageService, options: BotOptions): Promise<RunningBot> {
  const telegram = await FakeTelegram.start()
  const provider = await startFakeProvider(t, options.provider)
  const usageKey = await service.createBotKey(options.botId)
  const config = loadBotConfig({
    TELEGRAM_BOT_TOKEN: FAKE_BOT_TOKEN,
    TELEGRAM_API_ROOT: telegram.apiRoot,
    BOT_ID: options.botId,
    USAGE_API_URL: options.usageUrl ?? service.url,
    USAGE_API_KEY: usageKey,
    LLM_PROVIDER: options.provider,
    LLM_MODEL: MODELS[options.provider],
    [providerKeyVariable[options.provider]]: PROVIDER_KEYS[options.provider],
    [`${options.provider === 'google' ? 'GEMINI' : options.provider.toUpperCase()}_BASE_URL`]: providerBaseUrl(options.provider, provider),
    LLM_TIMEOUT_MS: '1000',
    LLM_MAX_RETRIES: '0',
    USAGE_CLIENT_FLUSH_INTERVAL_MS: '20',
    USAGE_CLIENT_TIMEOUT_MS: '2000',
    USAGE_CLIENT_RETRY_BASE_MS: '20',
    USAGE_CLIENT_RETRY_MAX_MS: '200',
    USAGE_QUERY_TIMEOUT_MS: '2000',
    LOG_LEVEL: 'debug',
    ...options.env,
  })
  const lines: string[] = []
  const logger = createBotLogger(
    config.logLevel,
    new Writable({
      write(chunk, _encoding, callback) {
        lines.push(String(chunk))
        callback()
      },
    }),
  )
  const usage = new UsageClient({ ...config.usage.client, logger })
  const bot = createBot(config, { usage, logger, now: options.now })
  t.teardown(async () => {
    await bot.stop('test ended')
    await usage.close({ deadlineMs: 500 })
    await telegram.close()
  })
  const receive = options.receive ?? 'inject'
  if (receive === 'launch') await bot.launch()
  return {
    bot,
    config,
    usage,
    telegram,
    provider,
    botId: options.botId,
    usageKey,
    log: () => lines.join(''),
    receive,
    // The fake's update is the Bot API's JSON; Telegraf's Update type is that JSON's shape.
    inject: (update) => bot.bot.handleUpdate(update as unknown as Update),
  }
}

/**
 * The user sends `text`; resolves with the bot's messages to that chat that arrived after it:
 * once the bot has handled the update (`inject`), or once `expectMessages` arrived (`launch`).
 */
export async function converse(
  running: RunningBot,
  text: string,
  options: { expectMessages?: number; chatId?: number; timeoutMs?: number } = {},
): Promise<string[]> {
  const chatId = options.chatId ?? USER.id
  const before = running.telegram.messagesTo(chatId).length
  const from = { ...USER, id: chatId }
  const expected = options.expectMessages ?? 1
  const what = `${expected} bot message(s) answering "${text.slice(0, 40)}"`
  if (running.receive === 'inject') {
    await running.inject(running.telegram.textUpdate(text, { chatId, from }))
    if (running.telegram.messagesTo(chatId).length < before + expected) throw new Error(`the bot handled the update without sending ${what}`)
  } else {
    running.telegram.sendText(text, { chatId, from })
    await waitFor(() => running.telegram.messagesTo(chatId).length >= before + expected, what, options.timeoutMs)
  }
  return running.telegram.messagesTo(chatId).slice(before).map((message) => message.visibleText)
}
