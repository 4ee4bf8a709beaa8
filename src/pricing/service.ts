import type { Database } from '../db/connect.js'
import type { PriceEvent } from '../usage/ingest.js'
import type { Reprice } from '../usage/repository.js'
import { PriceCatalog } from './catalog.js'
import { SERVICE_TIERS, type ServiceTier } from '../lib/schemas.js'
import { listOverrides } from './repository.js'

/**
 * The catalog the service prices with: the bundled dataset plus the overrides stored in the
 * database. Overrides are reloaded at once after a change through this instance, by the other
 * instances when it is announced to them, and every refreshMs in case an announcement was lost.
 */
export class PricingService {
  readonly catalog = new PriceCatalog()
  private timer: NodeJS.Timeout | null = null

  constructor(
    private readonly database: Database,
    private readonly opts: {
      refreshMs: number
      onRefreshError: (err: unknown) => void
      /** Tells the other instances that overrides changed (see ChangeFeed); they then reload(). */
      announceChange?: () => void
    },
  ) {}

  async start(): Promise<void> {
    await this.reload()
    if (this.opts.refreshMs > 0) {
      this.timer = setInterval(() => void this.reload().catch(this.opts.onRefreshError), this.opts.refreshMs)
      this.timer.unref()
    }
  }

  async reload(): Promise<void> {
    this.catalog.setOverrides(await listOverrides(this.database.db))
  }

  /** After overrides changed through this instance: reload here, announce to the others. */
  async changed(): Promise<void> {
    await this.reload()
    this.opts.announceChange?.()
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
  }

  /**
   * The server's cost is authoritative. An event the catalog cannot price keeps the client's
   * reported cost (if any) as its cost but stays marked unpriced, so it is never a silent $0.
   */
  readonly priceEvent: PriceEvent = (e) => {
    const quote = this.catalog.quote(e.provider, e.model, e.createdAt, e)
    if (quote.priced) return { cost: quote.cost, priced: true, priceSource: quote.price.sourceLabel }
    return { cost: e.reportedCost, priced: false, priceSource: e.reportedCost === null ? null : 'reported' }
  }
}

// The column is written only from the validated enum; anything else (a hand edit) prices as standard.
const asServiceTier = (value: string): ServiceTier => ((SERVICE_TIERS as readonly string[]).includes(value) ? (value as ServiceTier) : 'standard')

/** Re-prices a stored event exactly as ingest would price it now. */
export function repriceWith(priceEvent: PriceEvent): Reprice {
  return (r) =>
    priceEvent({
      provider: r.provider,
      model: r.model,
      createdAt: new Date(r.created_at),
      inputTokens: r.input_tokens,
      outputTokens: r.output_tokens,
      cacheReadTokens: r.cache_read_tokens,
      cacheWriteTokens: r.cache_write_tokens,
      cacheWrite1hTokens: r.cache_write_1h_tokens,
      reasoningTokens: r.reasoning_tokens,
      inputAudioTokens: r.input_audio_tokens,
      outputAudioTokens: r.output_audio_tokens,
      webSearchRequests: r.web_search_requests,
      serviceTier: asServiceTier(r.service_tier),
      inferenceGeo: r.inference_geo,
      reportedCost: r.reported_cost,
    })
}
