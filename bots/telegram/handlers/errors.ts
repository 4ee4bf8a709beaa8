import type { Telegraf } from 'telegraf'
import { describeError, type BotLogger } from '../logger.js'

/** A handler that throws is logged (without payloads) and the bot goes on with the next update. */
export function registerErrorHandler(bot: Telegraf, log: BotLogger): void {
  bot.catch((error, ctx) => {
    log.error({ err: describeError(error), updateId: ctx.update.update_id }, 'update handling failed')
  })
}
