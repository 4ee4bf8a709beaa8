import { UsageClientConfigError } from './errors.js'
import type { UsageClientOptions } from './options.js'
import { UsageClient } from './usage-client.js'

export type Env = Readonly<Record<string, string | undefined>>

/**
 * Builds client options from the environment. Required: `USAGE_API_URL` (or `PLATFORM_URL`, the
 * name existing bots use), `USAGE_API_KEY`, `BOT_ID`. Every problem is listed in one error.
 * `overrides` win over the environment (e.g. `onError`, `logger`).
 */
export function usageClientOptionsFromEnv(
  env: Env = process.env,
  overrides: Partial<UsageClientOptions> = {},
): UsageClientOptions {
  const problems: string[] = []
  const baseUrl = overrides.baseUrl ?? nonEmpty(env.USAGE_API_URL) ?? nonEmpty(env.PLATFORM_URL)
  const apiKey = overrides.apiKey ?? nonEmpty(env.USAGE_API_KEY)
  const botId = overrides.botId ?? nonEmpty(env.BOT_ID)
  if (baseUrl === undefined) problems.push('USAGE_API_URL (or PLATFORM_URL) is not set')
  if (apiKey === undefined) problems.push('USAGE_API_KEY is not set')
  if (botId === undefined) problems.push('BOT_ID is not set')

  const integer = (name: string): number | undefined => {
    const raw = nonEmpty(env[name])
    if (raw === undefined) return undefined
    const value = Number(raw)
    if (!Number.isInteger(value) || value < 0) {
      problems.push(`${name} must be a non-negative integer, got "${raw}"`)
      return undefined
    }
    return value
  }
  const fromEnv: Partial<UsageClientOptions> = {
    batchSize: integer('USAGE_CLIENT_BATCH_SIZE'),
    flushIntervalMs: integer('USAGE_CLIENT_FLUSH_INTERVAL_MS'),
    maxQueue: integer('USAGE_CLIENT_MAX_QUEUE'),
    timeoutMs: integer('USAGE_CLIENT_TIMEOUT_MS'),
    maxRetries: integer('USAGE_CLIENT_MAX_RETRIES'),
    closeDeadlineMs: integer('USAGE_CLIENT_CLOSE_DEADLINE_MS'),
    spoolDir: nonEmpty(env.USAGE_CLIENT_SPOOL_DIR),
  }
  const cacheMs = integer('USAGE_CLIENT_ALLOWANCE_CACHE_MS')
  const allowanceTimeoutMs = integer('USAGE_CLIENT_ALLOWANCE_TIMEOUT_MS')
  const failOpenRaw = nonEmpty(env.USAGE_CLIENT_ALLOWANCE_FAIL_OPEN)?.toLowerCase()
  if (failOpenRaw !== undefined && failOpenRaw !== 'true' && failOpenRaw !== 'false') {
    problems.push(`USAGE_CLIENT_ALLOWANCE_FAIL_OPEN must be true or false, got "${failOpenRaw}"`)
  }
  const baseDelayMs = integer('USAGE_CLIENT_RETRY_BASE_MS')
  const maxDelayMs = integer('USAGE_CLIENT_RETRY_MAX_MS')
  if (problems.length > 0) throw new UsageClientConfigError(`usage client environment: ${problems.join('; ')}`)

  const options: UsageClientOptions = { baseUrl: baseUrl ?? '', apiKey: apiKey ?? '', botId: botId ?? '' }
  for (const [key, value] of Object.entries(fromEnv)) {
    if (value !== undefined) Object.assign(options, { [key]: value })
  }
  if (baseDelayMs !== undefined || maxDelayMs !== undefined) {
    options.retry = {
      ...(baseDelayMs !== undefined ? { baseDelayMs } : {}),
      ...(maxDelayMs !== undefined ? { maxDelayMs } : {}),
    }
  }
  const allowance = {
    ...(cacheMs !== undefined ? { cacheMs } : {}),
    ...(allowanceTimeoutMs !== undefined ? { timeoutMs: allowanceTimeoutMs } : {}),
    ...(failOpenRaw === 'true' || failOpenRaw === 'false' ? { failOpen: failOpenRaw === 'true' } : {}),
  }
  return { ...options, ...overrides, retry: { ...options.retry, ...overrides.retry }, allowance: { ...allowance, ...overrides.allowance } }
}

/** `new UsageClient(usageClientOptionsFromEnv(env, overrides))`. */
export function fromEnv(env: Env = process.env, overrides: Partial<UsageClientOptions> = {}): UsageClient {
  return new UsageClient(usageClientOptionsFromEnv(env, overrides))
}

function nonEmpty(value: string | undefined): string | undefined {
  const trimmed = value?.trim()
  return trimmed === undefined || trimmed === '' ? undefined : trimmed
}
