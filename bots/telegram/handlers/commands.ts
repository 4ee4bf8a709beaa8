import type { Telegraf } from 'telegraf'
import { replyPlain, type HandlerDeps } from './deps.js'

/** The command list shown by /start and /help and registered with Telegram at launch. */
export const commands = [
  { command: 'help', description: 'What I can do' },
  { command: 'reset', description: 'Forget this conversation' },
  { command: 'usage', description: "This bot's calls, tokens and cost today and this month" },
]

const commandList = (): string => commands.map((command) => `/${command.command} - ${command.description}`).join('\n')

/** /start, /help and /reset. */
export function registerCommands(bot: Telegraf, { config, log, conversations }: HandlerDeps): void {
  bot.start((ctx) =>
    replyPlain(ctx, `Hi! I answer with ${config.llm.model} (${config.llm.provider}). Send me a message.\n\n` + commandList(), log),
  )

  bot.help((ctx) =>
    replyPlain(
      ctx,
      'Send me any text and I answer it, remembering our recent conversation ' +
        `(the last ${config.history.maxMessages} messages at most).\n\n` +
        commandList(),
      log,
    ),
  )

  bot.command('reset', (ctx) => {
    conversations.forget(ctx.chat.id)
    return replyPlain(ctx, 'Done: I have forgotten this conversation.', log)
  })
}
