import Anthropic from '@anthropic-ai/sdk'
import {
  GoogleGenerativeAI,
  GoogleGenerativeAIAbortError,
  GoogleGenerativeAIError,
  GoogleGenerativeAIFetchError,
} from '@google/generative-ai'
import OpenAI from 'openai'
import { instrumentAnthropic, instrumentGemini, instrumentOpenAI, type Tracker } from '../../src/client/index.js'
import type { LlmConfig } from './config.js'
import type { Turn } from './conversations.js'

/** One provider's chat model behind the official SDK, every call reported through the tracker. */
export interface ChatModel {
  /** The model's text answer to the conversation; throws the SDK's error when the call fails. */
  answer(turns: readonly Turn[]): Promise<string>
}

export function createChatModel(config: LlmConfig, tracker: Tracker): ChatModel {
  switch (config.provider) {
    case 'anthropic':
      return anthropicModel(config, tracker)
    case 'openai':
      return openAIModel(config, tracker)
    case 'google':
      return geminiModel(config, tracker)
  }
}

function anthropicModel(config: LlmConfig, tracker: Tracker): ChatModel {
  const client = instrumentAnthropic(
    new Anthropic({ apiKey: config.apiKey, baseURL: config.baseUrl ?? null, timeout: config.timeoutMs, maxRetries: config.maxRetries }),
    tracker,
  )
  return {
    async answer(turns) {
      const message = await client.messages.create({
        model: config.model,
        max_tokens: config.maxOutputTokens,
        system: config.systemPrompt,
        messages: turns.map((turn) => ({ role: turn.role, content: turn.text })),
      })
      return message.content.map((block) => (block.type === 'text' ? block.text : '')).join('')
    },
  }
}

function openAIModel(config: LlmConfig, tracker: Tracker): ChatModel {
  const client = instrumentOpenAI(
    new OpenAI({ apiKey: config.apiKey, baseURL: config.baseUrl ?? null, timeout: config.timeoutMs, maxRetries: config.maxRetries }),
    tracker,
  )
  return {
    async answer(turns) {
      const completion = await client.chat.completions.create({
        model: config.model,
        max_completion_tokens: config.maxOutputTokens,
        messages: [
          { role: 'system', content: config.systemPrompt },
          ...turns.map((turn) => ({ role: turn.role, content: turn.text })),
        ],
      })
      const message = completion.choices[0]?.message
      return message?.content ?? message?.refusal ?? ''
    },
  }
}

function geminiModel(config: LlmConfig, tracker: Tracker): ChatModel {
  const genAI = instrumentGemini(new GoogleGenerativeAI(config.apiKey), tracker)
  const model = genAI.getGenerativeModel(
    { model: config.model, systemInstruction: config.systemPrompt, generationConfig: { maxOutputTokens: config.maxOutputTokens } },
    config.baseUrl === undefined ? {} : { baseUrl: config.baseUrl },
  )
  return {
    async answer(turns) {
      // A signal, not the SDK's `timeout` option: that one leaves an uncleared timer per request
      // that holds the process open for the whole timeout after the answer came.
      const result = await model.generateContent(
        { contents: turns.map((turn) => ({ role: turn.role === 'assistant' ? 'model' : 'user', parts: [{ text: turn.text }] })) },
        { signal: AbortSignal.timeout(config.timeoutMs) },
      )
      try {
        return result.response.text()
      } catch {
        // text() throws when the answer was blocked (safety, recitation): there is no text to send.
        return ''
      }
    },
  }
}

export type ProviderFailure = 'rate_limited' | 'timeout' | 'unavailable' | 'rejected_key' | 'bad_request' | 'unknown'

/** What kind of failure a provider SDK's error is, across the three SDKs. */
export function classifyProviderError(error: unknown): ProviderFailure {
  if (
    error instanceof Anthropic.APIConnectionTimeoutError ||
    error instanceof OpenAI.APIConnectionTimeoutError ||
    error instanceof GoogleGenerativeAIAbortError
  ) {
    return 'timeout'
  }
  const status =
    error instanceof Anthropic.APIError || error instanceof OpenAI.APIError || error instanceof GoogleGenerativeAIFetchError
      ? error.status
      : undefined
  if (status === undefined) {
    const connectionFailed =
      error instanceof Anthropic.APIConnectionError ||
      error instanceof OpenAI.APIConnectionError ||
      (error instanceof GoogleGenerativeAIError && error.message.startsWith('Error fetching from'))
    return connectionFailed ? 'unavailable' : 'unknown'
  }
  if (status === 429) return 'rate_limited'
  if (status === 401 || status === 403) return 'rejected_key'
  if (status === 408 || status === 504) return 'timeout'
  if (status >= 500) return 'unavailable'
  if (status >= 400) return 'bad_request'
  return 'unknown'
}

/** What the user reads when the model call failed: short, no internals. */
export const friendlyFailureReplies: Record<ProviderFailure, string> = {
  rate_limited: 'I am getting too many requests right now. Please try again in a minute.',
  timeout: 'The model took too long to answer. Please try again.',
  unavailable: 'The model is unavailable right now. Please try again in a little while.',
  rejected_key: 'I cannot reach the model because of a configuration problem on my side. Please tell the bot operator.',
  bad_request: 'The model could not process this message. Try a shorter message, or /reset to start over.',
  unknown: 'Something went wrong while asking the model. Please try again.',
}
