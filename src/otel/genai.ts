import type { UsageEventInput } from '../usage/schemas.js'
import type { AttributeValue, Attributes, OtlpSpan } from './decode.js'

/**
 * GenAI spans read as usage events. docs/otel.md documents every attribute read here and the
 * per-emitter table below; keep the two in step.
 */

/** Whether an emitter's input-token attribute already counts cache reads and writes. */
export type CacheConvention = 'included' | 'excluded'

/**
 * Emitters (instrumentation scope names) whose input tokens leave cache tokens out. Our
 * convention is the GenAI semantic conventions': input counts every prompt token, cache included.
 * Emitters not listed follow the conventions, except that a span whose cache tokens exceed its
 * input tokens can only have left them out, and is read that way.
 */
export const EMITTER_CACHE_CONVENTIONS: Record<string, CacheConvention> = {
  // Sets gen_ai.usage.input_tokens to Anthropic's usage.input_tokens, which excludes cache.
  '@traceloop/instrumentation-anthropic': 'excluded',
  '@traceloop/instrumentation-bedrock': 'excluded',
  'opentelemetry.instrumentation.anthropic': 'excluded',
  // Copy OpenAI's prompt_tokens, which includes cached tokens.
  '@traceloop/instrumentation-openai': 'included',
  '@opentelemetry/instrumentation-openai': 'included',
}

/** Operations that summarise their child model calls: counting them too would double count. */
const AGGREGATE_OPERATIONS = new Set(['invoke_agent', 'create_agent', 'execute_tool', 'invoke_workflow'])

/** gen_ai.provider.name / gen_ai.system values spelled as our providers. */
const PROVIDERS: Record<string, string> = {
  openai: 'openai',
  anthropic: 'anthropic',
  'gcp.gemini': 'google',
  'gcp.vertex_ai': 'google',
  'gcp.gen_ai': 'google',
  gemini: 'google',
  vertex_ai: 'google',
  google: 'google',
  'azure.ai.openai': 'azure',
  'az.ai.openai': 'azure',
  'aws.bedrock': 'bedrock',
}

export type SpanReading =
  | { kind: 'ignored' }
  | { kind: 'rejected'; reason: string }
  | { kind: 'event'; event: UsageEventInput & { botId?: string } }

function first(attributes: Attributes, names: string[]): AttributeValue | undefined {
  for (const name of names) {
    const v = attributes[name]
    if (v !== undefined && v !== null && v !== '') return v
  }
  return undefined
}

function firstString(attributes: Attributes, names: string[]): string | undefined {
  const v = first(attributes, names)
  if (v === undefined) return undefined
  if (typeof v === 'string') return v
  if (typeof v === 'number' || typeof v === 'boolean') return String(v)
  return undefined
}

type TokenRead = { value: number | undefined } | { invalid: string }

function tokens(attributes: Attributes, names: string[]): TokenRead {
  for (const name of names) {
    const v = attributes[name]
    if (v === undefined || v === null) continue
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) return { invalid: `${name} must be a non-negative integer` }
    return { value: n }
  }
  return { value: undefined }
}

const INPUT = ['gen_ai.usage.input_tokens', 'gen_ai.usage.prompt_tokens', 'llm.usage.prompt_tokens']
const OUTPUT = ['gen_ai.usage.output_tokens', 'gen_ai.usage.completion_tokens', 'llm.usage.completion_tokens']
const CACHE_READ = ['gen_ai.usage.cache_read.input_tokens', 'gen_ai.usage.cache_read_input_tokens', 'llm.usage.cache_read_input_tokens']
const CACHE_WRITE = ['gen_ai.usage.cache_creation.input_tokens', 'gen_ai.usage.cache_creation_input_tokens', 'llm.usage.cache_creation_input_tokens']
const REASONING = ['gen_ai.usage.reasoning.output_tokens', 'gen_ai.usage.reasoning_tokens', 'llm.usage.reasoning_tokens']
const MODEL = ['gen_ai.response.model', 'gen_ai.request.model', 'llm.response.model', 'llm.request.model']
const PROVIDER = ['gen_ai.provider.name', 'gen_ai.system', 'llm.vendor']

function requestTypeOf(operation: string | undefined): string {
  if (operation === undefined || ['chat', 'text_completion', 'generate_content', 'completion'].includes(operation)) return 'message'
  if (operation === 'embeddings') return 'embedding'
  return operation
}

/** Far beyond any valid createdAt, but still a valid JavaScript date. */
const LATEST_NANOS = 4_102_444_800_000n * 1_000_000n

/** A nanosecond timestamp as ISO 8601 (millisecond precision). */
function isoFromNanos(ns: bigint): string {
  return new Date(Number(ns / 1_000_000n)).toISOString()
}

/**
 * What one span means for usage: an event (an LLM call), nothing (any other span), or a
 * rejection saying why an LLM span cannot be stored.
 */
export function readSpan(span: OtlpSpan, botId: string | null): SpanReading {
  const a = span.attributes
  const operation = firstString(a, ['gen_ai.operation.name', 'llm.request.type'])
  const model = firstString(a, MODEL)
  const providerRaw = firstString(a, PROVIDER)
  const input = tokens(a, INPUT)
  const output = tokens(a, OUTPUT)
  const hasUsage = ('value' in input && input.value !== undefined) || ('value' in output && output.value !== undefined)
  // An LLM span names a model and either its provider or its token usage.
  if (model === undefined || (providerRaw === undefined && !hasUsage)) return { kind: 'ignored' }
  if (operation !== undefined && AGGREGATE_OPERATIONS.has(operation)) return { kind: 'ignored' }

  const where = `span ${span.spanId || '(no id)'} (${span.path})`
  const reject = (reason: string): SpanReading => ({ kind: 'rejected', reason: `${where}: ${reason}` })
  if (span.traceId === '' || span.spanId === '') return reject('traceId and spanId are required (they make the event idempotent)')
  if (span.startNs === 0n) return reject('startTimeUnixNano is required')
  if (span.endNs < span.startNs) return reject('endTimeUnixNano is before startTimeUnixNano')
  if (span.startNs > LATEST_NANOS) return reject('startTimeUnixNano is not a plausible time')

  const reads = { input, output, cacheRead: tokens(a, CACHE_READ), cacheWrite: tokens(a, CACHE_WRITE), reasoning: tokens(a, REASONING) }
  const values: Record<keyof typeof reads, number> = { input: 0, output: 0, cacheRead: 0, cacheWrite: 0, reasoning: 0 }
  for (const [name, read] of Object.entries(reads) as [keyof typeof reads, TokenRead][]) {
    if ('invalid' in read) return reject(read.invalid)
    values[name] = read.value ?? 0
  }
  const cache = values.cacheRead + values.cacheWrite
  const convention = EMITTER_CACHE_CONVENTIONS[span.scope.name] ?? (cache > values.input ? 'excluded' : 'included')
  const inputTokens = convention === 'excluded' ? values.input + cache : values.input
  // Reasoning is part of output in the conventions; an emitter reporting more reasoning than
  // output counted it apart.
  const outputTokens = values.reasoning > values.output ? values.output + values.reasoning : values.output

  const errorType = firstString(a, ['error.type'])
  const failed = span.statusCode === 2 || errorType !== undefined
  const provider = providerRaw === undefined ? 'unknown' : (PROVIDERS[providerRaw.toLowerCase()] ?? providerRaw.toLowerCase())

  const metadata: Record<string, string> = { traceId: span.traceId, spanId: span.spanId }
  const extra: [string, string[]][] = [
    ['responseId', ['gen_ai.response.id']],
    ['conversationId', ['gen_ai.conversation.id']],
    ['userId', ['user.id', 'enduser.id']],
    ['sessionId', ['session.id']],
  ]
  for (const [key, names] of extra) {
    const v = firstString(a, names) ?? firstString(span.resource, names)
    if (v !== undefined) metadata[key] = v
  }
  if (span.scope.name !== '') metadata.instrumentation = span.scope.version ? `${span.scope.name}@${span.scope.version}` : span.scope.name

  const event: UsageEventInput & { botId?: string } = {
    id: `otel-${span.traceId}-${span.spanId}`,
    model,
    provider,
    inputTokens,
    outputTokens,
    cacheReadTokens: values.cacheRead,
    cacheWriteTokens: values.cacheWrite,
    reasoningTokens: values.reasoning,
    requestType: requestTypeOf(operation),
    success: !failed,
    latencyMs: Number((span.endNs - span.startNs) / 1_000_000n),
    createdAt: isoFromNanos(span.startNs),
    metadata,
  }
  if (failed) event.errorMessage = (span.statusMessage || errorType || 'span status ERROR').slice(0, 4000)
  const bot = botId ?? firstString(span.resource, ['usage.bot_id', 'service.name'])
  if (bot !== undefined) event.botId = bot
  return { kind: 'event', event }
}
