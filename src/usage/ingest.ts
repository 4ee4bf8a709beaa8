import { uuidv7 } from '../lib/uuidv7.js'
import { formatUsd, usdFromNumber } from '../lib/money.js'
import { compileBodyValidator, describeValidationError } from '../lib/validation.js'
import { usagePartProblem } from '../lib/usage-parts.js'
import type { NewUsageEvent } from './repository.js'
import { MAX_METADATA_BYTES, UsageEventInput, type BatchItemResult } from './schemas.js'

/** What pricing needs to know about an event. */
export type PriceableEvent = Pick<
  NewUsageEvent,
  | 'provider'
  | 'model'
  | 'createdAt'
  | 'inputTokens'
  | 'outputTokens'
  | 'cacheReadTokens'
  | 'cacheWriteTokens'
  | 'cacheWrite1hTokens'
  | 'reasoningTokens'
  | 'inputAudioTokens'
  | 'outputAudioTokens'
  | 'webSearchRequests'
  | 'serviceTier'
  | 'inferenceGeo'
  | 'reportedCost'
>

/** Decides an event's authoritative cost. Supplied by the pricing feature. */
export type PriceEvent = (e: PriceableEvent) => Pick<NewUsageEvent, 'cost' | 'priced' | 'priceSource'>

export interface IngestLimits {
  maxFutureSkewMs: number
}

export class EventRejected extends Error {
  constructor(readonly field: string, message: string) {
    super(message)
  }
}

const EARLIEST = Date.UTC(2000, 0, 1)

/** Turns a schema-valid input into a storable event, or throws EventRejected naming the field. */
export function normalizeEvent(
  input: UsageEventInput,
  ctx: { root: string; botId: string | undefined; now: Date; limits: IngestLimits; price: PriceEvent },
): NewUsageEvent {
  const at = (f: string) => `${ctx.root}.${f}`
  const botId = input.botId ?? ctx.botId
  if (botId === undefined) throw new EventRejected(at('botId'), `${at('botId')} is required`)

  const cacheRead = input.cacheReadTokens ?? 0
  const cacheWrite = input.cacheWriteTokens ?? 0
  const cacheWrite1h = input.cacheWrite1hTokens ?? 0
  const reasoning = input.reasoningTokens ?? 0
  const total = input.inputTokens + input.outputTokens
  if (input.totalTokens !== undefined && input.totalTokens !== total) {
    throw new EventRejected(
      at('totalTokens'),
      `${at('totalTokens')} (${input.totalTokens}) must equal inputTokens + outputTokens (${total})`,
    )
  }
  const problem = usagePartProblem(input)
  if (problem !== null) throw new EventRejected(at(problem.field), problem.message(at))

  let createdAt = ctx.now
  if (input.createdAt !== undefined) {
    createdAt = new Date(input.createdAt)
    const ms = createdAt.getTime()
    if (Number.isNaN(ms) || ms < EARLIEST) throw new EventRejected(at('createdAt'), `${at('createdAt')} must be a timestamp after 2000-01-01`)
    if (ms > ctx.now.getTime() + ctx.limits.maxFutureSkewMs) {
      throw new EventRejected(
        at('createdAt'),
        `${at('createdAt')} is more than ${Math.round(ctx.limits.maxFutureSkewMs / 1000)} s in the future`,
      )
    }
  }

  let metadata: Record<string, unknown> | null = null
  if (input.metadata !== undefined) {
    const bytes = Buffer.byteLength(JSON.stringify(input.metadata))
    if (bytes > MAX_METADATA_BYTES) {
      throw new EventRejected(at('metadata'), `${at('metadata')} is ${bytes} bytes; at most ${MAX_METADATA_BYTES} are allowed`)
    }
    metadata = input.metadata as Record<string, unknown>
  }

  const event: NewUsageEvent = {
    id: input.id ?? uuidv7(ctx.now.getTime()),
    botId,
    createdAt,
    provider: input.provider,
    model: input.model,
    requestType: input.requestType ?? 'message',
    success: input.success ?? true,
    errorMessage: input.errorMessage ?? null,
    inputTokens: input.inputTokens,
    outputTokens: input.outputTokens,
    totalTokens: total,
    cacheReadTokens: cacheRead,
    cacheWriteTokens: cacheWrite,
    cacheWrite1hTokens: cacheWrite1h,
    reasoningTokens: reasoning,
    inputAudioTokens: input.inputAudioTokens ?? 0,
    outputAudioTokens: input.outputAudioTokens ?? 0,
    webSearchRequests: input.webSearchRequests ?? 0,
    serviceTier: input.serviceTier ?? 'standard',
    inferenceGeo: input.inferenceGeo ?? null,
    latencyMs: input.latencyMs ?? null,
    // The JSON number's shortest decimal form, exact to 12 places; stored as numeric.
    reportedCost: input.estimatedCost === undefined ? null : formatUsd(usdFromNumber(input.estimatedCost)),
    cost: null,
    priced: false,
    priceSource: null,
    metadata,
  }
  return { ...event, ...ctx.price(event) }
}

// A batch item sits two levels below the body's root (body, events).
const validateEventInput = compileBodyValidator(UsageEventInput, 2)

/** Validates one untrusted batch item against the same schema as POST /api/usage. */
export function checkEventInput(item: unknown, root: string): UsageEventInput {
  if (validateEventInput(item)) return item as UsageEventInput
  const first = validateEventInput.errors?.[0]
  const message = first ? describeValidationError(root, first) : `${root} is invalid`
  throw new EventRejected(root, message)
}

/** What listeners learn about each newly stored event. */
export type CommittedEvent = Pick<NewUsageEvent, 'botId' | 'provider' | 'model' | 'createdAt' | 'cost' | 'metadata'>

export type { BatchItemResult }
