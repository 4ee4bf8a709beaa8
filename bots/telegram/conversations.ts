import type { HistoryLimits } from './config.js'

export interface Turn {
  readonly role: 'user' | 'assistant'
  readonly text: string
}

/** A rough, provider-independent estimate: about 4 characters per token for English text. */
export function estimateTokens(text: string): number {
  return Math.ceil(text.length / 4)
}

/**
 * The newest turns that fit both bounds, oldest dropped first. The last turn is always kept (it is
 * the message being answered), and the result starts with a user turn, as the providers require.
 */
export function boundHistory(turns: readonly Turn[], limits: Pick<HistoryLimits, 'maxMessages' | 'maxTokens'>): Turn[] {
  let start = Math.max(0, turns.length - limits.maxMessages)
  let tokens = 0
  for (let i = start; i < turns.length; i++) tokens += estimateTokens(turns[i].text)
  while (start < turns.length - 1 && tokens > limits.maxTokens) {
    tokens -= estimateTokens(turns[start].text)
    start++
  }
  while (start < turns.length - 1 && turns[start].role !== 'user') start++
  return turns.slice(start)
}

/**
 * Conversation memory of every chat, bounded three ways so that no chat and no number of chats
 * can grow it without limit: messages and approximate tokens per chat, and chats in total (the
 * least recently active chat is forgotten first).
 */
export class ConversationStore {
  readonly #limits: HistoryLimits
  /** Map iteration order is insertion order: re-inserting on use keeps the oldest chat first. */
  readonly #chats = new Map<number, Turn[]>()

  constructor(limits: HistoryLimits) {
    this.#limits = limits
  }

  get chatCount(): number {
    return this.#chats.size
  }

  /** The turns to send to the model: this chat's history plus the new message, within the bounds. */
  prompt(chatId: number, userText: string): Turn[] {
    return boundHistory([...this.history(chatId), { role: 'user', text: userText }], this.#limits)
  }

  history(chatId: number): readonly Turn[] {
    return this.#chats.get(chatId) ?? []
  }

  /** Records one answered exchange. Failed calls record nothing, so a retry is not a duplicate. */
  recordExchange(chatId: number, userText: string, answer: string): void {
    const turns = boundHistory(
      [...this.history(chatId), { role: 'user', text: userText }, { role: 'assistant', text: answer }],
      this.#limits,
    )
    // An answer that alone exceeds the budget leaves nothing that starts with a user turn.
    const kept = turns[0]?.role === 'user' ? turns : []
    this.#chats.delete(chatId)
    this.#chats.set(chatId, kept)
    while (this.#chats.size > this.#limits.maxChats) {
      const oldest = this.#chats.keys().next()
      if (oldest.done === true) break
      this.#chats.delete(oldest.value)
    }
  }

  forget(chatId: number): boolean {
    return this.#chats.delete(chatId)
  }
}
