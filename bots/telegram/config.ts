import { randomBytes } from 'node:crypto'
import { usageClientOptionsFromEnv, UsageClientConfigError, type UsageClientOptions } from '../../src/client/index.js'
import { BOT_ID_PATTERN } from '../../src/lib/schemas.js'

export type Env = Readonly<Record<string, string | undefined>>

export const providers = ['anthropic', 'openai', 'google'] as const
export type LlmProvider = (typeof providers)[number]

/** The environment variable holding each provider's API key. */
export const providerKeyVariable: Record<LlmProvider, string> = {
  anthropic: 'ANTHROPIC_API_KEY',
  openai: 'OPENAI_API_KEY',
  google: 'GEMINI_API_KEY',
}

const providerBaseUrlVariable: Record<LlmProvider, string> = {
  anthropic: 'ANTHROPIC_BASE_URL',
  openai: 'OPENAI_BASE_URL',
  google: 'GEMINI_BASE_URL',
}

export interface WebhookConfig {
  /** The public HTTPS URL registered with Telegram (setWebhook). */
  readonly url: string
  /** Where the local HTTP listener accepts Telegram's POSTs. */
  readonly host: string
  readonly port: number
  /** Path the listener answers on; the URL's path unless a proxy rewrites it. */
  readonly path: string
  /** Sent back by Telegram in X-Telegram-Bot-Api-Secret-Token; other requests are refused. */
  readonly secretToken: string
}

export interface LlmConfig {
  readonly provider: LlmProvider
  readonly model: string
  readonly apiKey: string
  /** Unset: the SDK's default endpoint. */
  readonly baseUrl: string | undefined
  readonly systemPrompt: string
  readonly maxOutputTokens: number
  readonly timeoutMs: number
  /** Retries inside the SDK (Anthropic, OpenAI); Gemini's SDK does not retry. */
  readonly maxRetries: number
}

export interface HistoryLimits {
  /** Messages (user and assistant) kept per chat. */
  readonly maxMessages: number
  /** Approximate tokens kept per chat (about 4 characters per token). */
  readonly maxTokens: number
  /** Chats remembered at once; the least recently active is forgotten first. */
  readonly maxChats: number
}

export interface BotConfig {
  readonly botId: string
  readonly telegram: {
    readonly token: string
    readonly apiRoot: string
    /** Unset: long polling. */
    readonly webhook: WebhookConfig | undefined
  }
  readonly usage: {
    /** Options for the UsageClient that reports every model call. */
    readonly client: UsageClientOptions
    /** Timeout of the `/usage` command's query to the service. */
    readonly queryTimeoutMs: number
    /** Ask the service's allowance (hard budgets, per Telegram user) before every model call. */
    readonly budgetCheck: boolean
  }
  readonly llm: LlmConfig
  readonly history: HistoryLimits
  readonly logLevel: string
}

export class BotConfigError extends Error {
  readonly problems: readonly string[]

  constructor(problems: readonly string[]) {
    super(`invalid bot configuration:\n${problems.map((problem) => `  - ${problem}`).join('\n')}`)
    this.name = 'BotConfigError'
    this.problems = problems
  }
}

export const defaults = {
  telegramApiRoot: 'https://api.telegram.org',
  webhookHost: '0.0.0.0',
  webhookPort: 8443,
  systemPrompt: 'You are a helpful assistant in a Telegram chat. Answer concisely. You may use Markdown.',
  maxOutputTokens: 1024,
  llmTimeoutMs: 60_000,
  llmMaxRetries: 2,
  maxHistory: 20,
  maxHistoryTokens: 8000,
  maxChats: 1000,
  usageQueryTimeoutMs: 5000,
  logLevel: 'info',
} as const

const logLevels = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']

/**
 * Reads and validates the bot's environment. Throws one BotConfigError listing every missing or
 * bad variable. Messages name variables, never print secret values.
 */
export function loadBotConfig(env: Env = process.env): BotConfig {
  const problems: string[] = []
  const read = (name: string): string | undefined => {
    const value = env[name]?.trim()
    return value === undefined || value === '' ? undefined : value
  }
  const required = (name: string, hint = ''): string => {
    const value = read(name)
    if (value === undefined) problems.push(`${name} is not set${hint}`)
    return value ?? ''
  }
  const integer = (name: string, fallback: number, min: number, max: number): number => {
    const raw = read(name)
    if (raw === undefined) return fallback
    const value = Number(raw)
    if (!Number.isInteger(value) || value < min || value > max) {
      problems.push(`${name} must be an integer from ${min} to ${max}, got "${raw}"`)
      return fallback
    }
    return value
  }
  const httpUrl = (name: string, value: string | undefined): string | undefined => {
    if (value === undefined) return undefined
    if (!isHttpUrl(value)) problems.push(`${name} must be an http(s) URL, got "${value}"`)
    return value.replace(/\/+$/, '')
  }

  const token = required('TELEGRAM_BOT_TOKEN', ' (the token @BotFather gave you)')
  if (token !== '' && !/^\d+:[A-Za-z0-9_-]+$/.test(token)) {
    problems.push('TELEGRAM_BOT_TOKEN does not look like a bot token (<digits>:<secret>)')
  }
  const apiRoot = httpUrl('TELEGRAM_API_ROOT', read('TELEGRAM_API_ROOT')) ?? defaults.telegramApiRoot

  const botId = required('BOT_ID')
  if (botId !== '' && (botId.length > 128 || !new RegExp(BOT_ID_PATTERN).test(botId))) {
    problems.push(`BOT_ID must be 1-128 characters of A-Z a-z 0-9 _ . : @ / - starting with a letter or digit, got "${botId}"`)
  }

  const usageUrlName = read('USAGE_API_URL') !== undefined ? 'USAGE_API_URL' : 'PLATFORM_URL'
  const usageUrl = read('USAGE_API_URL') ?? read('PLATFORM_URL')
  if (usageUrl === undefined) problems.push('USAGE_API_URL (or PLATFORM_URL) is not set: the usage service root, e.g. http://localhost:3000')
  const usageBaseUrl = httpUrl(usageUrlName, usageUrl) ?? ''
  const usageApiKey = required('USAGE_API_KEY', ' (a key with the ingest and read scopes bound to BOT_ID)')
  const queryTimeoutMs = integer('USAGE_QUERY_TIMEOUT_MS', defaults.usageQueryTimeoutMs, 100, 120_000)
  const budgetCheckRaw = (read('BOT_BUDGET_CHECK') ?? 'on').toLowerCase()
  if (!['on', 'off', 'true', 'false'].includes(budgetCheckRaw)) problems.push(`BOT_BUDGET_CHECK must be on or off, got "${budgetCheckRaw}"`)
  const budgetCheck = budgetCheckRaw === 'on' || budgetCheckRaw === 'true'

  const providerName = required('LLM_PROVIDER', ` (${providers.join(' | ')})`)
  const provider = providers.find((candidate) => candidate === providerName.toLowerCase())
  if (providerName !== '' && provider === undefined) {
    problems.push(`LLM_PROVIDER must be one of ${providers.join(', ')}, got "${providerName}"`)
  }
  const model = required('LLM_MODEL', ' (e.g. claude-sonnet-4-5, gpt-4o-mini, gemini-2.5-flash)')
  const apiKey = provider === undefined ? '' : required(providerKeyVariable[provider], ` (LLM_PROVIDER is ${provider})`)
  const baseUrl = provider === undefined ? undefined : httpUrl(providerBaseUrlVariable[provider], read(providerBaseUrlVariable[provider]))

  const llmTimeoutMs = integer('LLM_TIMEOUT_MS', defaults.llmTimeoutMs, 1, 600_000)
  const llmMaxRetries = integer('LLM_MAX_RETRIES', defaults.llmMaxRetries, 0, 10)
  const maxOutputTokens = integer('MAX_OUTPUT_TOKENS', defaults.maxOutputTokens, 1, 1_000_000)
  const history: HistoryLimits = {
    maxMessages: integer('MAX_HISTORY', defaults.maxHistory, 1, 1000),
    maxTokens: integer('MAX_HISTORY_TOKENS', defaults.maxHistoryTokens, 100, 2_000_000),
    maxChats: integer('MAX_CHATS', defaults.maxChats, 1, 10_000_000),
  }

  const webhook = readWebhook(read, integer, problems)

  const logLevel = read('LOG_LEVEL') ?? defaults.logLevel
  if (!logLevels.includes(logLevel)) problems.push(`LOG_LEVEL must be one of ${logLevels.join(', ')}, got "${logLevel}"`)

  let client: UsageClientOptions | undefined
  try {
    // The client's own tuning variables (USAGE_CLIENT_*); the required ones were checked above.
    client = usageClientOptionsFromEnv(env, { baseUrl: usageBaseUrl || 'http://unset', apiKey: usageApiKey || 'unset', botId: botId || 'unset' })
  } catch (error) {
    if (!(error instanceof UsageClientConfigError)) throw error
    problems.push(error.message)
  }

  if (problems.length > 0 || client === undefined || provider === undefined) throw new BotConfigError(problems)
  return {
    botId,
    telegram: { token, apiRoot, webhook },
    usage: { client, queryTimeoutMs, budgetCheck },
    llm: {
      provider,
      model,
      apiKey,
      baseUrl,
      systemPrompt: read('SYSTEM_PROMPT') ?? defaults.systemPrompt,
      maxOutputTokens,
      timeoutMs: llmTimeoutMs,
      maxRetries: llmMaxRetries,
    },
    history,
    logLevel,
  }
}

function readWebhook(
  read: (name: string) => string | undefined,
  integer: (name: string, fallback: number, min: number, max: number) => number,
  problems: string[],
): WebhookConfig | undefined {
  const url = read('TELEGRAM_WEBHOOK_URL')
  if (url === undefined) return undefined
  let path = '/'
  try {
    const parsed = new URL(url)
    if (parsed.protocol !== 'https:') problems.push(`TELEGRAM_WEBHOOK_URL must be an https URL (Telegram only calls https), got "${url}"`)
    path = parsed.pathname
  } catch {
    problems.push(`TELEGRAM_WEBHOOK_URL is not a URL: "${url}"`)
  }
  const localPath = read('TELEGRAM_WEBHOOK_PATH') ?? path
  if (!localPath.startsWith('/')) problems.push(`TELEGRAM_WEBHOOK_PATH must start with "/", got "${localPath}"`)
  const secretToken = read('TELEGRAM_WEBHOOK_SECRET') ?? randomBytes(32).toString('hex')
  if (!/^[A-Za-z0-9_-]{1,256}$/.test(secretToken)) {
    problems.push('TELEGRAM_WEBHOOK_SECRET must be 1-256 characters of A-Z a-z 0-9 _ -')
  }
  return {
    url,
    host: read('TELEGRAM_WEBHOOK_HOST') ?? defaults.webhookHost,
    port: integer('TELEGRAM_WEBHOOK_PORT', defaults.webhookPort, 0, 65_535),
    path: localPath,
    secretToken,
  }
}

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value)
    return url.protocol === 'http:' || url.protocol === 'https:'
  } catch {
    return false
  }
}
