import type OpenAI from 'openai'
import type { Tracker } from '../event.js'
import {
  CallRecorder,
  definedOnly,
  num,
  observeApiPromise,
  observeStream,
  record,
  replaceMethod,
  serviceTierOf,
  stringOr,
  type InstrumentOptions,
  type NormalizedUsage,
} from './shared.js'

type ChatCreate = OpenAI['chat']['completions']['create']
type ResponsesCreate = OpenAI['responses']['create']
export type OpenAIChatParams = Parameters<ChatCreate>[0]
export type OpenAIResponsesParams = Parameters<ResponsesCreate>[0]

export interface OpenAILike {
  chat: { completions: { create: ChatCreate } }
  responses?: { create: ResponsesCreate }
}

/**
 * Reports `chat.completions.create` and `responses.create` calls, streaming or not. For chat
 * streams without `stream_options.include_usage`, the option is added so the usage arrives, and
 * the extra usage-only chunk is hidden from the caller, who sees the stream they asked for.
 */
export function instrumentOpenAI<C extends OpenAILike>(
  client: C,
  tracker: Tracker,
  options: InstrumentOptions<OpenAIChatParams | OpenAIResponsesParams> = {},
): C {
  replaceMethod(client.chat.completions, 'create', (create) => {
    const instrumented = (params: OpenAIChatParams, requestOptions?: Parameters<ChatCreate>[1]) => {
      const call = new CallRecorder(tracker, 'openai', params, stringOr(record(params)?.model), options)
      const callerWantsUsage = params.stream === true && params.stream_options?.include_usage === true
      const sent: OpenAIChatParams =
        params.stream === true && !callerWantsUsage
          ? { ...params, stream_options: { ...params.stream_options, include_usage: true } }
          : params
      let promise: ReturnType<ChatCreate>
      try {
        promise = create(sent, requestOptions)
      } catch (error) {
        call.report({ error })
        throw error
      }
      return observeApiPromise(promise, (data) => onChatData(data, call, !callerWantsUsage), (error) => call.report({ error }))
    }
    return instrumented as ChatCreate
  })
  if (client.responses) {
    replaceMethod(client.responses, 'create', (create) => {
      const instrumented = (params: OpenAIResponsesParams, requestOptions?: Parameters<ResponsesCreate>[1]) => {
        const call = new CallRecorder(tracker, 'openai', params, stringOr(record(params)?.model), options)
        let promise: ReturnType<ResponsesCreate>
        try {
          promise = create(params, requestOptions)
        } catch (error) {
          call.report({ error })
          throw error
        }
        return observeApiPromise(promise, (data) => onResponsesData(data, call), (error) => call.report({ error }))
      }
      return instrumented as ResponsesCreate
    })
  }
  return client
}

function isStream(data: unknown): data is object {
  return typeof data === 'object' && data !== null && typeof (data as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] === 'function'
}

function onChatData<P>(data: unknown, call: CallRecorder<P>, hideUsageChunk: boolean): void {
  if (!isStream(data)) {
    const completion = record(data)
    call.report({ model: stringOr(completion?.model), usage: chatUsage(record(completion?.usage), completion?.service_tier) })
    return
  }
  let model: string | undefined
  let usage: Record<string, unknown> | undefined
  let serviceTier: unknown
  observeStream<object, unknown>(data, {
    onItem(item) {
      const chunk = record(item)
      model ??= stringOr(chunk?.model)
      serviceTier = chunk?.service_tier ?? serviceTier
      const chunkUsage = record(chunk?.usage)
      if (chunkUsage) usage = chunkUsage
    },
    hide(item) {
      const chunk = record(item)
      return hideUsageChunk && Array.isArray(chunk?.choices) && chunk.choices.length === 0 && record(chunk.usage) !== undefined
    },
    onEnd(error) {
      call.report({ model, usage: usage ? chatUsage(usage, serviceTier) : undefined, error, usageIncomplete: usage === undefined })
    },
  })
}

function onResponsesData<P>(data: unknown, call: CallRecorder<P>): void {
  if (!isStream(data)) {
    const response = record(data)
    call.report({ model: stringOr(response?.model), usage: responsesUsage(record(response?.usage), response), error: responseFailure(response) })
    return
  }
  let model: string | undefined
  let usage: Record<string, unknown> | undefined
  let final: Record<string, unknown> | undefined
  let failure: Error | undefined
  observeStream<object, unknown>(data, {
    onItem(item) {
      const event = record(item)
      const response = record(event?.response)
      if (response) {
        model = stringOr(response.model) ?? model
        usage = record(response.usage) ?? usage
        final = response
      }
      if (event?.type === 'response.failed') failure = responseFailure(response)
      if (event?.type === 'error') failure = new Error(String(event.message ?? 'stream error'))
    },
    onEnd(error) {
      call.report({ model, usage: usage ? responsesUsage(usage, final) : undefined, error: error ?? failure, usageIncomplete: usage === undefined })
    },
  })
}

function responseFailure(response: Record<string, unknown> | undefined): Error | undefined {
  if (response?.status !== 'failed') return undefined
  const error = record(response.error)
  return new Error(String(error?.message ?? 'response failed'))
}

/** Chat Completions: prompt_tokens already includes cached tokens. */
export function chatUsage(usage: Record<string, unknown> | undefined, serviceTier?: unknown): NormalizedUsage {
  const prompt = record(usage?.prompt_tokens_details)
  const completion = record(usage?.completion_tokens_details)
  return definedOnly({
    inputTokens: num(usage?.prompt_tokens) ?? 0,
    outputTokens: num(usage?.completion_tokens) ?? 0,
    cacheReadTokens: num(prompt?.cached_tokens),
    cacheWriteTokens: num(prompt?.cache_write_tokens),
    reasoningTokens: num(completion?.reasoning_tokens),
    inputAudioTokens: positive(num(prompt?.audio_tokens)),
    outputAudioTokens: positive(num(completion?.audio_tokens)),
    serviceTier: serviceTierOf(serviceTier),
  })
}

// OpenAI reports audio_tokens: 0 on every text call: sent only when there is audio.
const positive = (n: number | undefined) => (n === undefined || n === 0 ? undefined : n)

/** Responses API: input_tokens includes cached tokens, output_tokens includes reasoning. */
export function responsesUsage(usage: Record<string, unknown> | undefined, response?: Record<string, unknown>): NormalizedUsage {
  const input = record(usage?.input_tokens_details)
  const output = record(usage?.output_tokens_details)
  // Each web search the model ran is a web_search_call output item, billed per call.
  const searches = Array.isArray(response?.output) ? response.output.filter((item) => record(item)?.type === 'web_search_call').length : 0
  return definedOnly({
    inputTokens: num(usage?.input_tokens) ?? 0,
    outputTokens: num(usage?.output_tokens) ?? 0,
    cacheReadTokens: num(input?.cached_tokens),
    cacheWriteTokens: num(input?.cache_write_tokens),
    reasoningTokens: num(output?.reasoning_tokens),
    inputAudioTokens: positive(num(input?.audio_tokens)),
    outputAudioTokens: positive(num(output?.audio_tokens)),
    webSearchRequests: searches > 0 ? searches : undefined,
    serviceTier: serviceTierOf(response?.service_tier),
  })
}
