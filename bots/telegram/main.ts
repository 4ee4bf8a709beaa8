/**
 * Process entry of the Telegram bot: validate the environment, launch, stop gracefully on
 * SIGINT/SIGTERM (replies in progress finish, then the usage client flushes). Nothing else.
 */
import { UsageClient } from '../../src/client/index.js'
import { createBot } from './bot.js'
import { BotConfigError, loadBotConfig, type BotConfig } from './config.js'
import { createBotLogger } from './logger.js'

function configOrExit(): BotConfig {
  try {
    return loadBotConfig(process.env)
  } catch (error) {
    if (!(error instanceof BotConfigError)) throw error
    console.error(`${error.message}\nSee bots/telegram/README.md for every variable.`)
    process.exit(1)
  }
}

const config = configOrExit()
const log = createBotLogger(config.logLevel)
const usage = new UsageClient({ ...config.usage.client, logger: log.child({ component: 'usage-client' }) })
const telegramBot = createBot(config, { usage, logger: log })

let shuttingDown: Promise<void> | undefined
function shutdown(reason: string, exitCode: number): Promise<void> {
  shuttingDown ??= (async () => {
    await telegramBot.stop(reason)
    await usage.close()
    const stats = usage.stats()
    log.info({ sent: stats.sent, spooled: stats.spooled, dropped: stats.dropped }, 'bot stopped; usage client flushed')
    process.exit(exitCode)
  })()
  return shuttingDown
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void shutdown(signal, 0))
}

try {
  await telegramBot.launch()
} catch (error) {
  log.fatal({ err: { message: error instanceof Error ? error.message : String(error) } }, 'the bot could not start')
  await shutdown('launch failed', 1)
}

telegramBot.untilStopped().catch((error: unknown) => {
  log.fatal({ err: { message: error instanceof Error ? error.message : String(error) } }, 'receiving updates failed')
  void shutdown('polling failed', 1)
})
