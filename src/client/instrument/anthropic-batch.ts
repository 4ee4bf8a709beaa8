import { createHash } from 'node:crypto'
import { limits, type Metadata, type TrackEvent, type Tracker } from '../event.js'
import { anthropicUsage } from './anthropic.js'
import { definedOnly, record, stringOr } from './shared.js'

export interface AnthropicBatchResultsOptions {
  /** Merged into every event's metadata (next to `anthropicBatchId` and `customId`). */
  metadata?: Metadata
  /** Default 'message'. */
  requestType?: string
  /** Default 'anthropic'. */
  provider?: string
  /** Model of errored results, which carry none (default 'unknown'). */
  model?: string
  /** Time of the events, e.g. the batch's `ended_at`; default: when each is tracked. */
  createdAt?: Date | string | number
}

export interface AnthropicBatchResultCounts {
  /** Succeeded results, tracked with their usage at the batch tier. */
  tracked: number
  /** Errored results, tracked as failed events with 0 tokens (Anthropic does not bill them). */
  failed: number
  /** Canceled and expired results (never run, not billed) and lines that are not results. */
  skipped: number
}

/**
 * Tracks the results of an Anthropic Message Batch, e.g.
 * `trackAnthropicBatchResults(usage, batchId, await anthropic.messages.batches.results(batchId))`.
 * Each event's id is derived from the batch id and the result's `custom_id`, so importing the same
 * results again stores nothing twice (the service deduplicates on the bot and the id).
 */
export async function trackAnthropicBatchResults(
  tracker: Tracker,
  batchId: string,
  results: AsyncIterable<unknown> | Iterable<unknown>,
  options: AnthropicBatchResultsOptions = {},
): Promise<AnthropicBatchResultCounts> {
  const counts: AnthropicBatchResultCounts = { tracked: 0, failed: 0, skipped: 0 }
  for await (const line of results) {
    const item = record(line)
    const customId = stringOr(item?.custom_id)
    const result = record(item?.result)
    if (customId === undefined || (result?.type !== 'succeeded' && result?.type !== 'errored')) {
      counts.skipped++
      continue
    }
    const event: TrackEvent = {
      id: batchEventId(batchId, customId),
      provider: options.provider ?? 'anthropic',
      model: options.model ?? 'unknown',
      inputTokens: 0,
      outputTokens: 0,
      requestType: options.requestType ?? 'message',
      metadata: { ...options.metadata, anthropicBatchId: batchId, customId },
    }
    if (options.createdAt !== undefined) event.createdAt = options.createdAt
    if (result.type === 'succeeded') {
      const message = record(result.message)
      Object.assign(event, definedOnly(anthropicUsage(record(message?.usage))), { serviceTier: 'batch', success: true })
      event.model = stringOr(message?.model) ?? event.model
      counts.tracked++
    } else {
      // ErrorResponse: { type: 'error', error: { type, message }, request_id }.
      const error = record(record(result.error)?.error)
      event.success = false
      event.errorMessage = stringOr(error?.message) ?? 'errored'
      event.metadata = { ...event.metadata, errorType: stringOr(error?.type) ?? 'error' }
      counts.failed++
    }
    tracker.track(event)
  }
  return counts
}

/** `anthropic-batch:<batch>:<custom_id>`, or a hash of the pair when that is not a valid event id. */
export function batchEventId(batchId: string, customId: string): string {
  const plain = `anthropic-batch:${batchId}:${customId}`
  if (limits.idPattern.test(plain)) return plain
  const digest = createHash('sha256').update(JSON.stringify([batchId, customId])).digest('hex')
  return `anthropic-batch:${digest}`
}
