import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { FAKE_BOT_TOKEN, FakeTelegram } from '../helpers/fake-telegram.js'
import { waitFor } from '../helpers/wait.js'
import { MODELS, PROVIDER_KEYS, startFakeProvider, startUsageService, USER } from './harness.js'

const repoRoot = fileURLToPath(new URL('../..', import.meta.url))

interface BotProcess {
  readonly child: ChildProcess
  readonly output: () => { stdout: string; stderr: string }
  readonly exited: Promise<number | null>
}

/** `tsx bots/telegram/main.ts` (what `npm run bot` runs) with exactly `env` (plus PATH). */
function spawnBot(t: Test, env: Record<string, string>): BotProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'bots/telegram/main.ts'], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString()))
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  const exited = once(child, 'exit').then(([code]) => code as number | null)
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL')
      await exited
    }
  })
  return { child, output: () => ({ stdout, stderr }), exited }
}

t.test('refuses to start without its configuration and names every missing variable', async (t) => {
  const bot = spawnBot(t, {})
  t.equal(await bot.exited, 1, 'exit code 1')
  const { stderr, stdout } = bot.output()
  for (const name of ['TELEGRAM_BOT_TOKEN', 'BOT_ID', 'USAGE_API_URL (or PLATFORM_URL)', 'USAGE_API_KEY', 'LLM_PROVIDER', 'LLM_MODEL']) {
    t.match(stderr, `${name} is not set`, `names ${name}`)
  }
  t.equal(stdout, '', 'nothing else happened')
})

t.test('names a missing provider key and bad values, without printing secrets', async (t) => {
  const bot = spawnBot(t, {
    TELEGRAM_BOT_TOKEN: FAKE_BOT_TOKEN,
    BOT_ID: 'tg_main',
    USAGE_API_URL: 'http://127.0.0.1:9',
    USAGE_API_KEY: 'usk_secret_usage_key_for_main_test',
    LLM_PROVIDER: 'google',
    LLM_MODEL: 'gemini-2.5-flash',
    MAX_HISTORY: 'lots',
    TELEGRAM_WEBHOOK_URL: 'http://insecure.example/hook',
  })
  t.equal(await bot.exited, 1)
  const { stderr } = bot.output()
  t.match(stderr, 'GEMINI_API_KEY is not set (LLM_PROVIDER is google)')
  t.match(stderr, 'MAX_HISTORY must be an integer from 1 to 1000, got "lots"')
  t.match(stderr, 'TELEGRAM_WEBHOOK_URL must be an https URL')
  t.notMatch(stderr, FAKE_BOT_TOKEN.split(':')[1], 'the bot token is not printed')
  t.notMatch(stderr, 'usk_secret_usage_key_for_main_test', 'the usage key is not printed')
})

t.test('a token Telegram refuses stops the bot with a clear message', async (t) => {
  const telegram = await FakeTelegram.start({ tokens: ['999:AnotherToken'] })
  t.teardown(() => telegram.close())
  const bot = spawnBot(t, {
    TELEGRAM_BOT_TOKEN: FAKE_BOT_TOKEN,
    TELEGRAM_API_ROOT: telegram.apiRoot,
    BOT_ID: 'tg_main',
    USAGE_API_URL: 'http://127.0.0.1:9',
    USAGE_API_KEY: 'usk_unused',
    LLM_PROVIDER: 'openai',
    LLM_MODEL: 'gpt-4o-mini',
    OPENAI_API_KEY: PROVIDER_KEYS.openai,
    USAGE_CLIENT_CLOSE_DEADLINE_MS: '200',
  })
  t.equal(await bot.exited, 1)
  t.match(bot.output().stdout, 'Telegram refused TELEGRAM_BOT_TOKEN (401 Unauthorized)')
})

t.test('npm run bot: answers, and SIGTERM stops it after flushing the usage it holds', async (t) => {
  const service = await startUsageService(t)
  const telegram = await FakeTelegram.start()
  t.teardown(() => telegram.close())
  const provider = await startFakeProvider(t, 'anthropic')
  const usageKey = await service.createBotKey('tg_main')
  const bot = spawnBot(t, {
    TELEGRAM_BOT_TOKEN: FAKE_BOT_TOKEN,
    TELEGRAM_API_ROOT: telegram.apiRoot,
    BOT_ID: 'tg_main',
    PLATFORM_URL: service.url,
    USAGE_API_KEY: usageKey,
    LLM_PROVIDER: 'anthropic',
    LLM_MODEL: MODELS.anthropic,
    ANTHROPIC_API_KEY: PROVIDER_KEYS.anthropic,
    ANTHROPIC_BASE_URL: provider.url,
    // Nothing is sent before the stop: the event can only arrive through close()'s flush.
    USAGE_CLIENT_FLUSH_INTERVAL_MS: '600000',
  })
  // A cold tsx start of the process; generous, CI is a loaded machine.
  await waitFor(() => bot.output().stdout.includes('"msg":"bot started"'), 'the bot to start', 60_000)

  provider.enqueue({ text: 'Hello from the process.' })
  telegram.sendText('hi', { from: USER })
  await waitFor(() => telegram.messagesTo(USER.id).length === 1, 'the answer')
  t.equal(telegram.messagesTo(USER.id)[0].visibleText, 'Hello from the process.')
  t.equal((await service.usage({ botId: 'tg_main' })).recentUsage.length, 0, 'the event is still held by the client')

  bot.child.kill('SIGTERM')
  t.equal(await bot.exited, 0, 'a clean exit')
  const stored = await service.usage({ botId: 'tg_main' })
  t.equal(stored.recentUsage.length, 1, 'the usage was flushed on the way out')
  t.match(stored.recentUsage[0], { provider: 'anthropic', model: MODELS.anthropic, success: true, metadata: { chatId: USER.id, userId: USER.id } })

  const { stdout, stderr } = bot.output()
  t.match(stdout, '"msg":"bot stopped; usage client flushed"')
  for (const secret of [FAKE_BOT_TOKEN.split(':')[1], usageKey, PROVIDER_KEYS.anthropic]) {
    t.notMatch(stdout + stderr, secret, 'no secret in the output')
  }
})
