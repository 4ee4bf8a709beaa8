/**
 * Committed corrections of the bundled @pydantic/genai-prices dataset: prices the dataset lacks or
 * gets wrong, each with the provider's page it comes from and the date it was checked. They apply
 * over the dataset price of the named model (only the fields they set), within their validity
 * range; admin overrides still win over both. `GET /api/prices/resolve` lists the corrections a
 * price carries, and each event priced with one records it in its priceSource.
 *
 * `verified` says how the value was checked on `checked`: 'provider page' when the provider's
 * page (or its wording quoted by the dataset) was read, 'secondary' when only the provider's
 * announcement as reported by others and the independent check could be read from here.
 *
 * When the dataset is upgraded and fixes an entry, test/pricing/corrections.test.ts fails for
 * that entry (it checks the dataset still differs), and the entry should be removed.
 */
import type { PriceTier } from './types.js'

export interface CorrectedPrices {
  input?: string
  output?: string
  cacheRead?: string
  cacheWrite?: string
  cacheWrite1h?: string
  reasoning?: string
  inputAudio?: string
  cacheAudioRead?: string
  outputAudio?: string
  thinkingOutput?: string
  /** USD per 1,000 web search requests. */
  webSearch?: string
  /** Replaces the dataset's long-context tiers. */
  tiers?: PriceTier[]
}

export interface CatalogCorrection {
  id: string
  /** Dataset provider id. */
  provider: string
  /** The dataset model id corrected; for a model the dataset lacks, the id it gets. */
  model: string
  /**
   * Names (lower-case) that resolve to `model` although the dataset matches none of them: exact
   * names, or prefixes ending in '*'. A correction with `adds` for a model the dataset lacks must
   * set input and output.
   */
  adds?: string[]
  /** First UTC day it applies (inclusive), or null: since always. */
  effectiveFrom: string | null
  /** First UTC day it no longer applies (exclusive), or null: open-ended. */
  effectiveTo: string | null
  prices: CorrectedPrices
  source: string
  checked: string
  verified: 'provider page' | 'secondary'
  why: string
}

export const CORRECTIONS: readonly CatalogCorrection[] = [
  {
    id: 'anthropic-claude-sonnet-4-long-context',
    provider: 'anthropic',
    model: 'claude-sonnet-4-0',
    effectiveFrom: null,
    effectiveTo: null,
    prices: {
      tiers: [{ aboveInputTokens: 200_000, input: '6', output: '22.5', cacheRead: '0.6', cacheWrite: '7.5', cacheWrite1h: '12' }],
    },
    source: 'https://docs.anthropic.com/en/docs/build-with-claude/context-windows#1m-token-context-window',
    checked: '2026-12-02',
    verified: 'secondary',
    why:
      'Claude Sonnet 4 with the 1M-token context bills a whole request whose input exceeds 200K tokens at $6 input / ' +
      '$22.50 output (cache prices scale the same: 0.6 read, 7.5 5-minute write, 12 1-hour write); the dataset has no tier.',
  },
  {
    id: 'openai-o3-cached-input-before-2025-06-10',
    provider: 'openai',
    model: 'o3',
    effectiveFrom: null,
    effectiveTo: '2025-06-10',
    prices: { cacheRead: '2.5' },
    source: 'https://openai.com/index/introducing-o3-and-o4-mini/',
    checked: '2026-12-02',
    verified: 'secondary',
    why:
      'o3 launched at $10 input, $2.50 cached input, $40 output; the 2025-06-10 cut took it to $2 / $0.50 / $8. The dataset ' +
      'carries the post-cut $0.50 cached price into the launch period.',
  },
  {
    id: 'openai-ft-gpt-4o-cached-input',
    provider: 'openai',
    model: 'ft:gpt-4o',
    effectiveFrom: null,
    effectiveTo: null,
    prices: { cacheRead: '1.875' },
    source: 'https://platform.openai.com/docs/pricing#fine-tuning',
    checked: '2026-12-02',
    verified: 'secondary',
    why: 'Fine-tuned gpt-4o-2024-08-06: $3.75 input, $1.875 cached input, $15 output; the dataset has no cached price.',
  },
  {
    id: 'openai-ft-gpt-4o-mini-cached-input',
    provider: 'openai',
    model: 'ft:gpt-4o-mini',
    effectiveFrom: null,
    effectiveTo: null,
    prices: { cacheRead: '0.15' },
    source: 'https://platform.openai.com/docs/pricing#fine-tuning',
    checked: '2026-12-02',
    verified: 'secondary',
    why: 'Fine-tuned gpt-4o-mini-2024-07-18: $0.30 input, $0.15 cached input, $1.20 output; the dataset has no cached price.',
  },
  {
    id: 'openai-ft-gpt-4.1',
    provider: 'openai',
    model: 'ft:gpt-4.1',
    adds: ['ft:gpt-4.1-2025-04-14:*'],
    effectiveFrom: null,
    effectiveTo: null,
    prices: { input: '3', cacheRead: '0.75', output: '12' },
    source: 'https://platform.openai.com/docs/pricing#fine-tuning',
    checked: '2026-12-02',
    verified: 'secondary',
    why: 'Fine-tuned gpt-4.1-2025-04-14: $3 input, $0.75 cached input, $12 output; the dataset has no entry.',
  },
  {
    id: 'openai-ft-gpt-4.1-mini',
    provider: 'openai',
    model: 'ft:gpt-4.1-mini',
    adds: ['ft:gpt-4.1-mini-2025-04-14:*'],
    effectiveFrom: null,
    effectiveTo: null,
    prices: { input: '0.8', cacheRead: '0.2', output: '3.2' },
    source: 'https://platform.openai.com/docs/pricing#fine-tuning',
    checked: '2026-12-02',
    verified: 'secondary',
    why: 'Fine-tuned gpt-4.1-mini-2025-04-14: $0.80 input, $0.20 cached input, $3.20 output; the dataset has no entry.',
  },
  {
    id: 'openai-ft-gpt-4.1-nano',
    provider: 'openai',
    model: 'ft:gpt-4.1-nano',
    adds: ['ft:gpt-4.1-nano-2025-04-14:*'],
    effectiveFrom: null,
    effectiveTo: null,
    prices: { input: '0.2', cacheRead: '0.05', output: '0.8' },
    source: 'https://platform.openai.com/docs/pricing#fine-tuning',
    checked: '2026-12-02',
    verified: 'secondary',
    why: 'Fine-tuned gpt-4.1-nano-2025-04-14: $0.20 input, $0.05 cached input, $0.80 output; the dataset has no entry.',
  },
  {
    id: 'google-gemini-1.5-pro-cached-input',
    provider: 'google',
    model: 'gemini-1.5-pro',
    effectiveFrom: null,
    effectiveTo: null,
    prices: {
      cacheRead: '0.3125',
      tiers: [{ aboveInputTokens: 128_000, input: '2.5', output: '10', cacheRead: '0.625' }],
    },
    source: 'https://ai.google.dev/gemini-api/docs/pricing#gemini-1.5-pro',
    checked: '2026-12-02',
    verified: 'secondary',
    why:
      'Gemini 1.5 Pro context caching: $0.3125 per million cached tokens for prompts up to 128K, $0.625 above (a quarter ' +
      'of the input price, as for 1.5 Flash, which the dataset has); the dataset bills cached tokens at the full input price.',
  },
  {
    id: 'google-gemini-2.5-flash-preview-thinking',
    provider: 'google',
    model: 'gemini-2.5-flash-preview',
    effectiveFrom: null,
    effectiveTo: null,
    prices: { thinkingOutput: '3.5', inputAudio: '1' },
    source: 'https://ai.google.dev/gemini-api/docs/pricing#gemini-2.5-flash-preview',
    checked: '2026-12-02',
    verified: 'secondary',
    why:
      'Gemini 2.5 Flash Preview (04-17, 05-20): output $0.60 without thinking, $3.50 with thinking; audio input $1.00. ' +
      'The dataset has only the non-thinking output price and bills audio at the text price.',
  },
  {
    id: 'openai-gpt-4o-audio-preview-audio',
    provider: 'openai',
    model: 'gpt-4o-audio-preview',
    effectiveFrom: null,
    effectiveTo: null,
    prices: { inputAudio: '40', outputAudio: '80' },
    source: 'https://platform.openai.com/docs/pricing#audio-tokens',
    checked: '2026-12-02',
    verified: 'secondary',
    why:
      'gpt-4o-audio-preview (2024-12-17 and later snapshots): audio $40 input / $80 output per million, text $2.50 / $10. ' +
      'The dataset has only the text prices, so audio was billed at the text rate. (The retired 2024-10-01 snapshot ' +
      'cost $100 / $200 for audio: add an override if you still have such events.)',
  },
  {
    id: 'openai-gpt-4o-mini-audio-preview-audio',
    provider: 'openai',
    model: 'gpt-4o-mini-audio-preview',
    effectiveFrom: null,
    effectiveTo: null,
    prices: { inputAudio: '10', outputAudio: '20' },
    source: 'https://platform.openai.com/docs/pricing#audio-tokens',
    checked: '2026-12-02',
    verified: 'secondary',
    why: 'gpt-4o-mini-audio-preview: audio $10 input / $20 output per million, text $0.15 / $0.60; the dataset has only text.',
  },
  {
    id: 'anthropic-claude-2.1-spelling',
    provider: 'anthropic',
    model: 'claude-2',
    adds: ['claude-2.1', 'claude-2.0'],
    effectiveFrom: null,
    effectiveTo: null,
    prices: {},
    source: 'https://docs.anthropic.com/en/docs/about-claude/model-deprecations',
    checked: '2026-12-02',
    verified: 'secondary',
    why:
      'Claude 2.0 and 2.1 were both $8 / $24, the dataset price of claude-2. Strict matching refuses a minor-version ' +
      'suffix (claude-2.1 could have been a newer model); this names them explicitly.',
  },
]
