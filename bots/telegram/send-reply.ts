import { setTimeout as sleep } from 'node:timers/promises'
import { TelegramError, type Telegram } from 'telegraf'
import type { BotLogger } from './logger.js'
import { splitMessage } from './split-message.js'
import { markdownToTelegramHtml } from './telegram-html.js'

export interface ReplyOptions {
  /** 'markdown': rendered as Telegram HTML (plain text if Telegram refuses it); 'plain': as is. */
  readonly format: 'markdown' | 'plain'
  /** The user's message the first piece answers (shown as a quote in groups). */
  readonly replyToMessageId?: number
}

/** A flood-control wait longer than this is not waited for: the send fails instead. */
const maxFloodWaitSeconds = 30
const maxFloodRetries = 3

/**
 * Sends a reply of any length: split at Telegram's limit, each piece sent in order. Returns how
 * many messages were sent. Throws only when Telegram refuses a piece for another reason than its
 * markup (the chat is gone, the bot was blocked, ...).
 */
export async function sendReply(telegram: Telegram, chatId: number, text: string, options: ReplyOptions, log: BotLogger): Promise<number> {
  const pieces = splitMessage(text)
  for (const [index, piece] of pieces.entries()) {
    const replyParameters =
      index === 0 && options.replyToMessageId !== undefined
        ? { reply_parameters: { message_id: options.replyToMessageId, allow_sending_without_reply: true } }
        : {}
    const plain = { ...replyParameters, link_preview_options: { is_disabled: true } }
    if (options.format === 'plain') {
      await withFloodRetry(() => telegram.sendMessage(chatId, piece, plain), log)
      continue
    }
    try {
      await withFloodRetry(() => telegram.sendMessage(chatId, markdownToTelegramHtml(piece), { ...plain, parse_mode: 'HTML' }), log)
    } catch (error) {
      if (!isEntityParseError(error)) throw error
      // Rare (the converter only emits balanced, escaped HTML), but a refused format must never
      // cost the user the answer: send the text as it came.
      log.warn({ chatId, telegramError: error.description }, 'Telegram refused the HTML reply; sent as plain text')
      await withFloodRetry(() => telegram.sendMessage(chatId, piece, plain), log)
    }
  }
  return pieces.length
}

/** Refusals of the formatted text itself: bad markup, or markup that leaves nothing to show (an empty code block). */
function isEntityParseError(error: unknown): error is TelegramError {
  return error instanceof TelegramError && error.code === 400 && /can't parse entities|text must be non-empty|message text is empty/i.test(error.description)
}

/** Telegram answers 429 with parameters.retry_after when a chat receives messages too fast. */
async function withFloodRetry<T>(send: () => Promise<T>, log: BotLogger): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await send()
    } catch (error) {
      const retryAfter = error instanceof TelegramError && error.code === 429 ? (error.parameters?.retry_after ?? 1) : undefined
      if (retryAfter === undefined || retryAfter > maxFloodWaitSeconds || attempt >= maxFloodRetries) throw error
      log.warn({ retryAfterSeconds: retryAfter }, 'Telegram flood control: waiting before sending again')
      await sleep(retryAfter * 1000)
    }
  }
}
