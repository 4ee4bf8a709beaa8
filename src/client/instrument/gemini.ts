import type { GenerativeModel, GoogleGenerativeAI, ChatSession } from '@google/generative-ai'
import type { Tracker } from '../event.js'
import { CallRecorder, num, record, replaceMethod, stringOr, type InstrumentOptions, type NormalizedUsage } from './shared.js'

export type GeminiRequest = Parameters<GenerativeModel['generateContent']>[0]

interface GeminiCall {
  readonly modelName: string
  readonly tracker: Tracker
  readonly options: InstrumentOptions<GeminiRequest>
}

/**
 * Instruments a `GenerativeModel` (from `getGenerativeModel`) in place: `generateContent`,
 * `generateContentStream` and the chat sessions from `startChat`. Given the `GoogleGenerativeAI`
 * client instead, every model it creates afterwards is instrumented. Returns its argument.
 */
export function instrumentGemini<T extends GenerativeModel | GoogleGenerativeAI>(
  target: T,
  tracker: Tracker,
  options: InstrumentOptions<GeminiRequest> = {},
): T {
  if ('getGenerativeModel' in target) {
    const genAI: GoogleGenerativeAI = target
    replaceMethod(genAI, 'getGenerativeModel', (original) => (...args) => instrumentModel(original(...args), tracker, options))
    replaceMethod(
      genAI,
      'getGenerativeModelFromCachedContent',
      (original) => (...args) => instrumentModel(original(...args), tracker, options),
    )
    return target
  }
  instrumentModel(target, tracker, options)
  return target
}

function instrumentModel(model: GenerativeModel, tracker: Tracker, options: InstrumentOptions<GeminiRequest>): GenerativeModel {
  const call: GeminiCall = { modelName: model.model.replace(/^models\//, ''), tracker, options }
  replaceMethod(model, 'generateContent', (original) => (request, requestOptions) => observeResult(call, request, original(request, requestOptions)))
  replaceMethod(model, 'generateContentStream', (original) => (request, requestOptions) =>
    observeStreamResult(call, request, original(request, requestOptions)),
  )
  replaceMethod(model, 'startChat', (original) => (params) => instrumentChat(original(params), call))
  return model
}

function instrumentChat(chat: ChatSession, call: GeminiCall): ChatSession {
  replaceMethod(chat, 'sendMessage', (original) => (request, requestOptions) =>
    observeResult(call, { contents: [] }, original(request, requestOptions)),
  )
  replaceMethod(chat, 'sendMessageStream', (original) => (request, requestOptions) =>
    observeStreamResult(call, { contents: [] }, original(request, requestOptions)),
  )
  return chat
}

function recorder(call: GeminiCall, request: GeminiRequest): CallRecorder<GeminiRequest> {
  return new CallRecorder(call.tracker, 'google', request, call.modelName, call.options)
}

function observeResult<R extends { response: object }>(call: GeminiCall, request: GeminiRequest, promise: Promise<R>): Promise<R> {
  const recording = recorder(call, request)
  return promise.then(
    (result) => {
      const response = record(result.response)
      recording.report({ model: stringOr(response?.modelVersion), usage: geminiUsage(record(response?.usageMetadata)) })
      return result
    },
    (error: unknown) => {
      recording.report({ error })
      throw error
    },
  )
}

/**
 * The SDK tees the SSE body: `stream` for the caller, `response` aggregating every chunk. The
 * aggregate is read to the end even when the caller stops iterating early, so its usageMetadata is
 * the provider's final count; the call is reported when it settles.
 */
function observeStreamResult<R extends { response: Promise<object> }>(
  call: GeminiCall,
  request: GeminiRequest,
  promise: Promise<R>,
): Promise<R> {
  const recording = recorder(call, request)
  return promise.then(
    (result) => {
      result.response.then(
        (response) => {
          const aggregated = record(response)
          recording.report({ usage: geminiUsage(record(aggregated?.usageMetadata)) })
        },
        (error: unknown) => recording.report({ error, usageIncomplete: true }),
      )
      return result
    },
    (error: unknown) => {
      recording.report({ error })
      throw error
    },
  )
}

/**
 * promptTokenCount includes cached tokens; thoughtsTokenCount is not part of candidatesTokenCount
 * (both missing from the 0.24 typings). Tool-use prompt tokens are billed as input.
 */
export function geminiUsage(usage: Record<string, unknown> | undefined): NormalizedUsage {
  const thoughts = num(usage?.thoughtsTokenCount)
  const cached = num(usage?.cachedContentTokenCount)
  const normalized: NormalizedUsage = {
    inputTokens: (num(usage?.promptTokenCount) ?? 0) + (num(usage?.toolUsePromptTokenCount) ?? 0),
    outputTokens: (num(usage?.candidatesTokenCount) ?? 0) + (thoughts ?? 0),
  }
  if (cached !== undefined) normalized.cacheReadTokens = cached
  if (thoughts !== undefined) normalized.reasoningTokens = thoughts
  // Audio is billed at its own price (Gemini 2.5 Flash: $1.00 vs $0.30 per million): the
  // per-modality details say how much of the prompt (and of the answer) was audio.
  const audioIn = modalityTokens(usage?.promptTokensDetails, 'AUDIO') + modalityTokens(usage?.toolUsePromptTokensDetails, 'AUDIO')
  if (audioIn > 0) normalized.inputAudioTokens = Math.min(audioIn, normalized.inputTokens)
  const audioOut = modalityTokens(usage?.candidatesTokensDetails, 'AUDIO')
  if (audioOut > 0) normalized.outputAudioTokens = Math.min(audioOut, normalized.outputTokens - (thoughts ?? 0))
  return normalized
}

function modalityTokens(details: unknown, modality: string): number {
  if (!Array.isArray(details)) return 0
  let total = 0
  for (const entry of details) {
    const d = record(entry)
    if (d?.modality === modality) total += num(d.tokenCount) ?? 0
  }
  return total
}
