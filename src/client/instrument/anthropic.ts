import type Anthropic from '@anthropic-ai/sdk'
import type { Tracker } from '../event.js'
import { CallRecorder, num, observeApiPromise, observeStream, record, replaceMethod, serviceTierOf, stringOr, type InstrumentOptions, type NormalizedUsage } from './shared.js'

type MessageCreate = Anthropic['messages']['create']
export type AnthropicCreateParams = Parameters<MessageCreate>[0]

/** What instrumentAnthropic needs: an Anthropic client (or anything shaped like one). */
export interface AnthropicLike {
  messages: { create: MessageCreate }
}

/**
 * Reports every `client.messages.create` call (streaming or not; `messages.stream()` and
 * `messages.parse()` go through it too) to `tracker`. Returns the same client, instrumented.
 */
export function instrumentAnthropic<C extends AnthropicLike>(
  client: C,
  tracker: Tracker,
  options: InstrumentOptions<AnthropicCreateParams> = {},
): C {
  replaceMethod(client.messages, 'create', (create) => {
    const instrumented = (params: AnthropicCreateParams, requestOptions?: Parameters<MessageCreate>[1]) => {
      const call = new CallRecorder(tracker, 'anthropic', params, record(params)?.model as string | undefined, options)
      let promise: ReturnType<MessageCreate>
      try {
        promise = create(params, requestOptions)
      } catch (error) {
        call.report({ error })
        throw error
      }
      return observeApiPromise(
        promise,
        (data) => onAnthropicData(data, call),
        (error) => call.report({ error }),
      )
    }
    return instrumented as MessageCreate
  })
  return client
}

function onAnthropicData(data: unknown, call: CallRecorder<AnthropicCreateParams>): void {
  const message = record(data)
  if (message && message.type === 'message') {
    call.report({ model: stringOr(message.model), usage: anthropicUsage(record(message.usage)) })
    return
  }
  if (!message || typeof (data as { [Symbol.asyncIterator]?: unknown })[Symbol.asyncIterator] !== 'function') {
    call.report({})
    return
  }
  let model: string | undefined
  let usage: Record<string, unknown> | undefined
  let finalUsageSeen = false
  observeStream<object, unknown>(message, {
    onItem(item) {
      const event = record(item)
      if (!event) return
      if (event.type === 'message_start') {
        const started = record(event.message)
        model = stringOr(started?.model)
        usage = { ...record(started?.usage) }
      } else if (event.type === 'message_delta') {
        // message_delta usage is cumulative; null fields mean "unchanged since message_start".
        const delta = record(event.usage) ?? {}
        usage = { ...usage }
        for (const [key, value] of Object.entries(delta)) if (value !== null && value !== undefined) usage[key] = value
        finalUsageSeen = true
      }
    },
    onEnd(error) {
      call.report({ model, usage: usage ? anthropicUsage(usage) : undefined, error, usageIncomplete: !finalUsageSeen })
    },
  })
}

/** Anthropic's input_tokens excludes cache reads and writes; the service's inputTokens includes them. */
export function anthropicUsage(usage: Record<string, unknown> | undefined): NormalizedUsage {
  const input = num(usage?.input_tokens) ?? 0
  const cacheRead = num(usage?.cache_read_input_tokens)
  const cacheWrite = num(usage?.cache_creation_input_tokens)
  const normalized: NormalizedUsage = {
    inputTokens: input + (cacheRead ?? 0) + (cacheWrite ?? 0),
    outputTokens: num(usage?.output_tokens) ?? 0,
  }
  if (cacheRead !== undefined) normalized.cacheReadTokens = cacheRead
  if (cacheWrite !== undefined) normalized.cacheWriteTokens = cacheWrite
  const oneHour = num(record(usage?.cache_creation)?.ephemeral_1h_input_tokens)
  if (oneHour !== undefined) normalized.cacheWrite1hTokens = oneHour
  const thinking = num(record(usage?.output_tokens_details)?.thinking_tokens)
  if (thinking !== undefined) normalized.reasoningTokens = thinking
  // Server-side web searches are billed per search ($10 per 1,000), on top of the tokens.
  const searches = num(record(usage?.server_tool_use)?.web_search_requests)
  if (searches !== undefined && searches > 0) normalized.webSearchRequests = searches
  const tier = serviceTierOf(usage?.service_tier)
  if (tier !== undefined) normalized.serviceTier = tier
  // 'us' (US-only inference) is billed 1.1x; 'not_available' (a model without regions) says nothing.
  const geo = usage?.inference_geo
  if (typeof geo === 'string' && /^[a-z][a-z0-9_-]{0,31}$/.test(geo) && geo !== 'not_available') normalized.inferenceGeo = geo
  return normalized
}
