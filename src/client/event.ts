import { uuidv7 } from '../lib/uuidv7.js'
import { InvalidEventError, MetadataDroppedError } from './errors.js'

export type Metadata = Record<string, unknown>

/** What a caller passes to `track()`. Only model, provider and the two token counts are required. */
export interface TrackEvent {
  model: string
  provider: string
  /** All prompt tokens, including cache reads and cache writes. */
  inputTokens: number
  /** All generated tokens, including reasoning/thinking. */
  outputTokens: number
  /** Idempotency key, unique per bot; a UUIDv7 is assigned when absent. */
  id?: string
  totalTokens?: number
  cacheReadTokens?: number
  cacheWriteTokens?: number
  cacheWrite1hTokens?: number
  reasoningTokens?: number
  /** Part of inputTokens that was audio. */
  inputAudioTokens?: number
  /** Part of outputTokens that was generated audio. */
  outputAudioTokens?: number
  /** Server-side web searches the call ran. */
  webSearchRequests?: number
  /** The tier the provider billed the call at; the service assumes 'standard'. */
  serviceTier?: ServiceTier
  /** The region the provider reported running the call in (Anthropic usage.inference_geo). */
  inferenceGeo?: string
  estimatedCost?: number
  requestType?: string
  success?: boolean
  errorMessage?: string
  latencyMs?: number
  metadata?: Metadata
  /** Time of the call; defaults to the time `track()` was called. */
  createdAt?: Date | string | number
}

/** The event exactly as it goes over the wire and into the spool: a TrackEvent with its id, bot and time fixed. */
export interface UsageEvent extends Omit<TrackEvent, 'id' | 'createdAt'> {
  id: string
  botId: string
  createdAt: string
}

export interface Tracker {
  track(event: TrackEvent): void
  /** Metadata of the caller's current context (UsageClient.withMetadata), captured when an instrumented call starts. */
  currentMetadata?(): Metadata | undefined
}

export const limits = {
  idPattern: /^[A-Za-z0-9_.:-]{1,128}$/,
  errorMessageChars: 4000,
  /** The service's limit (MAX_METADATA_BYTES): bytes of the metadata's JSON. */
  metadataBytes: 16 * 1024,
} as const

/** The optional counts of an event, each a part of inputTokens or outputTokens or a count of its own. */
export const OPTIONAL_COUNTS = [
  'cacheReadTokens',
  'cacheWriteTokens',
  'cacheWrite1hTokens',
  'reasoningTokens',
  'inputAudioTokens',
  'outputAudioTokens',
  'webSearchRequests',
] as const

/** The service's processing tiers (kept here: the published client carries no server code). */
export const SERVICE_TIERS = ['standard', 'flex', 'priority', 'batch'] as const
export type ServiceTier = (typeof SERVICE_TIERS)[number]

export interface PreparedEvent {
  readonly event: UsageEvent
  readonly json: string
  /** Non-fatal problems (metadata dropped) to report while still sending the event. */
  readonly warning?: MetadataDroppedError
}

/**
 * Validates and normalizes one `track()` input into its wire form, checking locally what the
 * service would reject, so that a bad event fails here (reported, counted) and never poisons a batch.
 * Unknown fields are left out: the service rejects them.
 */
export function prepareEvent(input: unknown, botId: string, extraMetadata?: Metadata): PreparedEvent {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new InvalidEventError(`event must be an object, got ${input === null ? 'null' : typeof input}`)
  }
  const raw = input as Record<string, unknown>
  const event: UsageEvent = {
    id: '',
    botId,
    model: text(raw, 'model', 200),
    provider: text(raw, 'provider', 64),
    inputTokens: count(raw, 'inputTokens'),
    outputTokens: count(raw, 'outputTokens'),
    createdAt: '',
  }
  if (raw.id !== undefined) {
    if (typeof raw.id !== 'string' || !limits.idPattern.test(raw.id)) {
      throw new InvalidEventError('id must be 1..128 characters of [A-Za-z0-9_.:-]')
    }
    event.id = raw.id
  } else {
    event.id = uuidv7()
  }
  if (raw.totalTokens !== undefined) {
    const total = count(raw, 'totalTokens')
    if (total !== event.inputTokens + event.outputTokens) {
      throw new InvalidEventError(
        `totalTokens (${total}) must equal inputTokens + outputTokens (${event.inputTokens + event.outputTokens})`,
      )
    }
    event.totalTokens = total
  }
  for (const field of OPTIONAL_COUNTS) {
    if (raw[field] !== undefined) event[field] = count(raw, field)
  }
  if ((event.inputAudioTokens ?? 0) > event.inputTokens) {
    throw new InvalidEventError(`inputAudioTokens (${event.inputAudioTokens}) exceeds inputTokens (${event.inputTokens})`)
  }
  if ((event.outputAudioTokens ?? 0) + (event.reasoningTokens ?? 0) > event.outputTokens) {
    throw new InvalidEventError(`outputAudioTokens + reasoningTokens exceed outputTokens (${event.outputTokens})`)
  }
  if (raw.serviceTier !== undefined) {
    if (typeof raw.serviceTier !== 'string' || !(SERVICE_TIERS as readonly string[]).includes(raw.serviceTier)) {
      throw new InvalidEventError(`serviceTier must be one of ${SERVICE_TIERS.join(', ')}`)
    }
    event.serviceTier = raw.serviceTier as ServiceTier
  }
  if (raw.inferenceGeo !== undefined) {
    if (typeof raw.inferenceGeo !== 'string' || !/^[a-z][a-z0-9_-]{0,31}$/.test(raw.inferenceGeo)) {
      throw new InvalidEventError('inferenceGeo must be 1..32 characters of [a-z0-9_-], starting with a letter')
    }
    event.inferenceGeo = raw.inferenceGeo
  }
  if (raw.estimatedCost !== undefined) {
    if (typeof raw.estimatedCost !== 'number' || !Number.isFinite(raw.estimatedCost) || raw.estimatedCost < 0) {
      throw new InvalidEventError('estimatedCost must be a finite number >= 0')
    }
    event.estimatedCost = raw.estimatedCost
  }
  if (raw.requestType !== undefined) event.requestType = text(raw, 'requestType', 64)
  if (raw.success !== undefined) {
    if (typeof raw.success !== 'boolean') throw new InvalidEventError('success must be a boolean')
    event.success = raw.success
  }
  if (raw.errorMessage !== undefined && raw.errorMessage !== null) {
    // Often an SDK's error text, which may carry anything: never refuse it, make it storable.
    const message = typeof raw.errorMessage === 'string' ? raw.errorMessage : String(raw.errorMessage)
    event.errorMessage = storableText(truncateCodePoints(message, limits.errorMessageChars))
  }
  if (raw.latencyMs !== undefined) {
    if (typeof raw.latencyMs !== 'number' || !Number.isFinite(raw.latencyMs) || raw.latencyMs < 0) {
      throw new InvalidEventError('latencyMs must be a finite number >= 0')
    }
    event.latencyMs = Math.round(raw.latencyMs)
  }
  event.createdAt = timestamp(raw.createdAt)

  let warning: MetadataDroppedError | undefined
  const metadata = mergeMetadata(extraMetadata, raw.metadata)
  if (metadata !== undefined) {
    const checked = checkMetadata(metadata)
    if (checked.ok) event.metadata = checked.metadata
    else warning = checked.error
  }
  const json = JSON.stringify(event)
  if (warning) warning.eventIds = [event.id]
  return { event, json, warning }
}

function mergeMetadata(context: Metadata | undefined, own: unknown): unknown {
  if (context === undefined) return own
  if (own === undefined || own === null) return context
  if (typeof own !== 'object' || Array.isArray(own)) return own
  return { ...context, ...(own as Metadata) }
}

function checkMetadata(value: unknown): { ok: true; metadata: Metadata } | { ok: false; error: MetadataDroppedError } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, error: new MetadataDroppedError('metadata must be a plain JSON object; sent without it') }
  }
  let serialized: string
  try {
    serialized = JSON.stringify(value)
  } catch (cause) {
    return { ok: false, error: new MetadataDroppedError('metadata is not serializable (circular?); sent without it', { cause }) }
  }
  if (Buffer.byteLength(serialized) > limits.metadataBytes) {
    return {
      ok: false,
      error: new MetadataDroppedError(`metadata is larger than ${limits.metadataBytes} bytes serialized; sent without it`),
    }
  }
  // JSON.stringify writes a NUL or a lone surrogate as an escape (\u0000, \ud83d): only then copy
  // the metadata with those replaced, as the service refuses them.
  if (/\\u(0000|d[89a-f])/i.test(serialized)) return { ok: true, metadata: storableJson(JSON.parse(serialized)) as Metadata }
  return { ok: true, metadata: value as Metadata }
}

/** Cuts `text` to at most `max` UTF-16 units without splitting a surrogate pair. */
export function truncateCodePoints(text: string, max: number): string {
  if (text.length <= max) return text
  const last = text.charCodeAt(max - 1)
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? max - 1 : max)
}

const unstorable = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]|\u0000/g

/** Replaces what the service's database refuses (NUL, lone surrogates) with U+FFFD. */
export function storableText(text: string): string {
  return text.replace(unstorable, '\uFFFD')
}

function storableJson(value: unknown): unknown {
  if (typeof value === 'string') return storableText(value)
  if (Array.isArray(value)) return value.map(storableJson)
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([key, inner]) => [storableText(key), storableJson(inner)]))
  }
  return value
}

function text(raw: Record<string, unknown>, field: string, max: number): string {
  const value = raw[field]
  if (typeof value !== 'string' || value.length === 0 || value.length > max) {
    throw new InvalidEventError(`${field} must be a string of 1..${max} characters`)
  }
  if (storableText(value) !== value) throw new InvalidEventError(`${field} contains a NUL character or a lone surrogate`)
  return value
}

function count(raw: Record<string, unknown>, field: string): number {
  const value = raw[field]
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new InvalidEventError(`${field} must be a non-negative integer, got ${JSON.stringify(value) ?? String(value)}`)
  }
  return value
}

function timestamp(value: unknown): string {
  if (value === undefined || value === null) return new Date().toISOString()
  const date = value instanceof Date ? value : typeof value === 'string' || typeof value === 'number' ? new Date(value) : null
  if (date === null || Number.isNaN(date.getTime())) throw new InvalidEventError('createdAt must be a Date, ISO string or epoch ms')
  return date.toISOString()
}
