import type { Context } from 'telegraf'
import type { UsageClient } from '../../../src/client/index.js'
import type { BotConfig } from '../config.js'
import type { ConversationStore } from '../conversations.js'
import type { ChatModel } from '../llm.js'
import type { BotLogger } from '../logger.js'
import { sendReply } from '../send-reply.js'
import type { UsageReader } from '../usage-report.js'

/** What the update handlers work with; built once by createBot. */
export interface HandlerDeps {
  readonly config: BotConfig
  readonly log: BotLogger
  readonly usage: UsageClient
  readonly chatModel: ChatModel
  readonly conversations: ConversationStore
  readonly usageReader: UsageReader
  /** The clock the "back at" of a budget reply is told against. */
  readonly now: () => Date
}

/** Sends `text` as plain text to the update's chat (nothing when the update has no chat). */
export function replyPlain(ctx: Context, text: string, log: BotLogger): Promise<number> {
  const chatId = ctx.chat?.id
  if (chatId === undefined) return Promise.resolve(0)
  return sendReply(ctx.telegram, chatId, text, { format: 'plain' }, log)
}
