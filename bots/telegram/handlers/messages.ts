import type { Context, Telegraf } from 'telegraf'
import { message } from 'telegraf/filters'
import { classifyProviderError, friendlyFailureReplies } from '../llm.js'
import { describeError, type BotLogger } from '../logger.js'
import { sendReply } from '../send-reply.js'
import { budgetRefusal } from './budget.js'
import { replyPlain, type HandlerDeps } from './deps.js'

/** Telegram shows "typing…" for about 5 s; refreshed while the model thinks. */
const typingRefreshMs = 4500

/**
 * Text is answered by the model, one message at a time per chat; an unknown command and (in a
 * private chat) anything but text get a short reply. Registered after the commands.
 */
export function registerMessageHandlers(bot: Telegraf, deps: HandlerDeps): void {
  const { log } = deps
  const chatQueue = new ChatQueue()

  bot.on(message('text'), async (ctx) => {
    const entity = ctx.message.entities?.[0]
    if (entity?.type === 'bot_command' && entity.offset === 0) {
      await replyPlain(ctx, 'I do not know that command. /help lists what I can do.', log)
      return
    }
    const chatId = ctx.chat.id
    const text = ctx.message.text
    const replyToMessageId = ctx.chat.type === 'private' ? undefined : ctx.message.message_id
    await chatQueue.run(chatId, () => answer(deps, ctx, chatId, ctx.from.id, text, replyToMessageId))
  })

  // Only in private chats: in a group, joins, pins and photos are not addressed to the bot.
  bot.on('message', (ctx) => (ctx.chat.type === 'private' ? replyPlain(ctx, 'I can only read text messages.', log) : undefined))
}

async function answer(
  deps: HandlerDeps,
  ctx: Context,
  chatId: number,
  userId: number,
  text: string,
  replyToMessageId: number | undefined,
): Promise<void> {
  const { log, usage, chatModel, conversations } = deps
  const refusal = await budgetRefusal(deps, userId)
  if (refusal !== null) {
    await sendReply(ctx.telegram, chatId, refusal, { format: 'plain', replyToMessageId }, log)
    return
  }
  let outcome: { answer: string } | { error: unknown }
  const stopTyping = keepTyping(ctx, chatId, log)
  try {
    outcome = { answer: await usage.withMetadata({ chatId, userId }, () => chatModel.answer(conversations.prompt(chatId, text))) }
  } catch (error) {
    outcome = { error }
  } finally {
    stopTyping()
  }
  if ('error' in outcome) {
    const failure = classifyProviderError(outcome.error)
    log[failure === 'rejected_key' ? 'error' : 'warn']({ chatId, failure, err: describeError(outcome.error) }, 'model call failed')
    await sendReply(ctx.telegram, chatId, friendlyFailureReplies[failure], { format: 'plain', replyToMessageId }, log)
    return
  }
  if (outcome.answer.trim() === '') {
    await sendReply(ctx.telegram, chatId, 'The model returned no text for this message. Try rephrasing it.', { format: 'plain', replyToMessageId }, log)
    return
  }
  conversations.recordExchange(chatId, text, outcome.answer)
  const sent = await sendReply(ctx.telegram, chatId, outcome.answer, { format: 'markdown', replyToMessageId }, log)
  log.debug({ chatId, messages: sent, chars: outcome.answer.length }, 'answered')
}

/** Runs tasks one at a time per chat, so that two quick messages see each other's history. */
class ChatQueue {
  readonly #tails = new Map<number, Promise<void>>()

  run(chatId: number, task: () => Promise<void>): Promise<void> {
    const previous = this.#tails.get(chatId) ?? Promise.resolve()
    const current = previous.then(task, task)
    const tail = current.catch(() => undefined)
    this.#tails.set(chatId, tail)
    void tail.then(() => {
      if (this.#tails.get(chatId) === tail) this.#tails.delete(chatId)
    })
    return current
  }
}

function keepTyping(ctx: Context, chatId: number, log: BotLogger): () => void {
  const send = (): void => {
    ctx.telegram.sendChatAction(chatId, 'typing').catch((error: unknown) => {
      log.debug({ err: describeError(error) }, 'sendChatAction failed')
    })
  }
  send()
  const timer = setInterval(send, typingRefreshMs)
  return () => clearInterval(timer)
}
