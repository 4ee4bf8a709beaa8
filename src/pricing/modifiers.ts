/**
 * Price modifiers of the providers' processing tiers, which the bundled dataset does not carry:
 * batch jobs, OpenAI's and Gemini's flex and priority tiers. A modifier multiplies every token
 * bucket of a call (after the long-context tier is chosen); web searches are per request and not
 * multiplied. Each entry names the provider's page it comes from and when it was checked.
 *
 * A tier with no entry here (Anthropic has no flex tier; its Priority Tier is a negotiated
 * commitment with no published multiplier) is billed at the standard price, and the quote says so
 * in `unbilled`. An admin override records a negotiated price; the modifiers apply on top of it.
 * docs/pricing.md, "Service tiers", explains each row.
 *
 * `checked` is when the value was compared with its source. As for the corrections marked
 * 'secondary' (corrections.ts), the pages could not be read in full from where they were
 * checked: the values come from the pages' excerpts and the providers' announcements as others
 * report them.
 */
import type { AppliedModifier, ServiceTier } from './types.js'

export interface TierModifier {
  /** Dataset provider id. */
  provider: string
  serviceTier: Exclude<ServiceTier, 'standard'>
  /** Decimal multiplier of every token price. */
  multiplier: string
  source: string
  /** YYYY-MM-DD: when the value was checked against the source. */
  checked: string
  note: string
}

export const TIER_MODIFIERS: readonly TierModifier[] = [
  {
    provider: 'openai',
    serviceTier: 'batch',
    multiplier: '0.5',
    source: 'https://platform.openai.com/docs/guides/batch',
    checked: '2026-12-02',
    note: 'Batch API: 50% of the synchronous price for every model.',
  },
  {
    provider: 'openai',
    serviceTier: 'flex',
    multiplier: '0.5',
    source: 'https://platform.openai.com/docs/guides/flex-processing',
    checked: '2026-12-02',
    note: 'Flex processing is billed at Batch API rates (o3 $10/$40 -> $5/$20 at launch).',
  },
  {
    provider: 'openai',
    serviceTier: 'priority',
    multiplier: '2',
    source: 'https://platform.openai.com/docs/guides/priority-processing',
    checked: '2026-12-02',
    note:
      'About 2x: the GPT-5.4 family is exactly 2x; older models list per-model priority prices (gpt-4.1 $3.50 vs $2, ' +
      'i.e. 1.75x). Use an override for an exact per-model priority price.',
  },
  {
    provider: 'anthropic',
    serviceTier: 'batch',
    multiplier: '0.5',
    source: 'https://docs.anthropic.com/en/docs/build-with-claude/batch-processing#pricing',
    checked: '2026-12-02',
    note: 'Message Batches API: 50% of the standard input and output prices; cache prices follow the same discount.',
  },
  {
    provider: 'google',
    serviceTier: 'batch',
    multiplier: '0.5',
    source: 'https://ai.google.dev/gemini-api/docs/batch-mode',
    checked: '2026-12-02',
    note: 'Gemini Batch Mode: 50% of the interactive price.',
  },
  {
    provider: 'google',
    serviceTier: 'flex',
    multiplier: '0.5',
    source: 'https://blog.google/innovation-and-ai/technology/developers-tools/introducing-flex-and-priority-inference',
    checked: '2026-12-02',
    note: 'Flex inference (from 2026-04-01): half the Standard price.',
  },
  {
    provider: 'google',
    serviceTier: 'priority',
    multiplier: '2',
    source: 'https://blog.google/innovation-and-ai/technology/developers-tools/introducing-flex-and-priority-inference',
    checked: '2026-12-02',
    note:
      'Priority inference (from 2026-04-01) costs a 75-100% premium depending on the model; 2x is the published upper ' +
      'bound. Use an override for a model whose premium is lower.',
  },
]

export interface RegionModifier {
  provider: string
  /** The region as the provider reports it. */
  inferenceGeo: string
  multiplier: string
  source: string
  checked: string
  note: string
}

/**
 * Regional processing. Anthropic reports usage.inference_geo; 'us' (US-only inference, requested
 * with inference_geo) costs 1.1x on the models that support it, and the others report
 * 'not_available', so the region alone decides. OpenAI's regional endpoints (+10% on GPT-5.4)
 * are not reported in responses and are not modelled.
 */
export const REGION_MODIFIERS: readonly RegionModifier[] = [
  {
    provider: 'anthropic',
    inferenceGeo: 'us',
    multiplier: '1.1',
    source: 'https://docs.anthropic.com/en/docs/build-with-claude/data-residency',
    checked: '2026-12-02',
    note: 'US-only inference (inference_geo "us") is priced at 1.1x every token price; "global" is the standard price.',
  },
]

/** The modifier for the region a call reports, or null. */
export function regionModifierFor(providerId: string, inferenceGeo: string | null | undefined, serviceTier: ServiceTier): AppliedModifier | null {
  if (inferenceGeo == null) return null
  const entry = REGION_MODIFIERS.find((m) => m.provider === providerId && m.inferenceGeo === inferenceGeo)
  if (entry === undefined) return null
  return { serviceTier, inferenceGeo, multiplier: entry.multiplier, source: entry.source, checked: entry.checked, note: entry.note }
}

/** The modifier for a provider's tier, or null for standard and for tiers with no published modifier. */
export function modifierFor(providerId: string, serviceTier: ServiceTier): AppliedModifier | null {
  if (serviceTier === 'standard') return null
  const entry = TIER_MODIFIERS.find((m) => m.provider === providerId && m.serviceTier === serviceTier)
  if (entry === undefined) return null
  return { serviceTier, multiplier: entry.multiplier, source: entry.source, checked: entry.checked, note: entry.note }
}
