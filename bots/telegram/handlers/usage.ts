import type { Telegraf } from 'telegraf'
import { describeError } from '../logger.js'
import { formatUsageReport, UsageQueryError, usagePeriods } from '../usage-report.js'
import { replyPlain, type HandlerDeps } from './deps.js'

/** /usage: this bot's totals today and this month, as the usage service holds them. */
export function registerUsageCommand(bot: Telegraf, { config, log, usage, usageReader }: HandlerDeps): void {
  bot.command('usage', async (ctx) => {
    // Include the calls this process has not yet sent; a short wait, the service may be down.
    await usage.flush({ timeoutMs: 1000 })
    const { today, monthStart } = usagePeriods()
    try {
      const [todayTotals, monthTotals] = await Promise.all([usageReader.totalsSince(today), usageReader.totalsSince(monthStart)])
      await replyPlain(ctx, formatUsageReport(config.botId, todayTotals, monthTotals), log)
    } catch (error) {
      if (!(error instanceof UsageQueryError)) throw error
      log.warn({ failure: error.failure, err: describeError(error) }, '/usage could not read the usage service')
      await replyPlain(
        ctx,
        error.failure === 'rejected'
          ? `The usage service refused this bot's key: it needs the read scope for ${config.botId}.`
          : 'The usage service is unreachable, try later.',
        log,
      )
    }
  })
}
