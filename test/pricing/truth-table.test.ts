// Expected costs computed by hand from the providers' published prices (the page each row names),
// written as exact decimals; the computation is each row's comment. Covers plain calls, cache
// reads and 5-minute/1-hour writes, reasoning, audio, web searches, long-context tiers at and
// around each threshold, every service tier, dated price changes and unknown models.
import t from 'tap'
import { usageOf } from '../helpers/pricing.js'
import { PriceCatalog, type BillableUsage } from '../../src/pricing/catalog.js'
import { parseUsd } from '../../src/lib/money.js'

const ANTHROPIC = 'https://docs.anthropic.com/en/docs/about-claude/pricing'
const ANTHROPIC_SEARCH = 'https://docs.anthropic.com/en/docs/agents-and-tools/tool-use/web-search-tool#usage-and-pricing'
const ANTHROPIC_BATCH = 'https://docs.anthropic.com/en/docs/build-with-claude/batch-processing#pricing'
const ANTHROPIC_1M = 'https://docs.anthropic.com/en/docs/build-with-claude/context-windows#1m-token-context-window'
const ANTHROPIC_GEO = 'https://docs.anthropic.com/en/docs/build-with-claude/data-residency'
const OPENAI = 'https://platform.openai.com/docs/pricing'
const OPENAI_LONG = 'https://developers.openai.com/api/docs/pricing'
const OPENAI_FLEX = 'https://platform.openai.com/docs/guides/flex-processing'
const OPENAI_PRIORITY = 'https://platform.openai.com/docs/guides/priority-processing'
const OPENAI_BATCH = 'https://platform.openai.com/docs/guides/batch'
const OPENAI_O3 = 'https://openai.com/index/introducing-o3-and-o4-mini/'
const GEMINI = 'https://ai.google.dev/gemini-api/docs/pricing'
const GEMINI_BATCH = 'https://ai.google.dev/gemini-api/docs/batch-mode'
const GEMINI_TIERS = 'https://blog.google/innovation-and-ai/technology/developers-tools/introducing-flex-and-priority-inference'
const UNKNOWN = 'no published price: must be flagged unpriced, never priced as another model'

interface Row {
  source: string
  provider: string
  model: string
  /** Default 2025-10-01T12:00:00Z. */
  at?: string
  usage: Partial<BillableUsage>
  /** Exact USD, or null: flagged unpriced. */
  cost: string | null
  /** Something the quote must say it leaves out. */
  unbilled?: RegExp
}

const rows: Row[] = [
  // ---- Anthropic: claude-sonnet-4-5 3 / 15, cache read 0.3, 5m write 3.75, 1h write 6; above 200k 6 / 22.5 / 0.6 / 7.5 / 12
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-sonnet-4-5-20250929', usage: { inputTokens: 10_000, outputTokens: 2000 }, cost: '0.06' }, // 10000*3/1e6 + 2000*15/1e6
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 500 }, cost: '0.0159' }, // 2000*3 + 8000*0.3 + 500*15, /1e6
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 10_000, cacheWriteTokens: 6000, outputTokens: 500 }, cost: '0.042' }, // 4000*3 + 6000*3.75 + 500*15
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 10_000, cacheWriteTokens: 6000, cacheWrite1hTokens: 6000, outputTokens: 500 }, cost: '0.0555' }, // 4000*3 + 6000*6 + 500*15
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 10_000, cacheReadTokens: 2000, cacheWriteTokens: 6000, cacheWrite1hTokens: 2000, outputTokens: 1000 }, cost: '0.0486' }, // 2000*3 + 2000*0.3 + 4000*3.75 + 2000*6 + 1000*15
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 199_999 }, cost: '0.599997' }, // 199999*3
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 200_000 }, cost: '0.6' }, // "more than 200K": exactly 200000 is base, 200000*3
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 200_001 }, cost: '1.200006' }, // whole request at the tier: 200001*6
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 1000, outputTokens: 3000, reasoningTokens: 2500 }, cost: '0.048' }, // thinking is output: 1000*3 + 3000*15
  { source: ANTHROPIC_SEARCH, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 10_000, outputTokens: 1000, webSearchRequests: 5 }, cost: '0.095' }, // 10000*3/1e6 + 1000*15/1e6 + 5*10/1000
  { source: ANTHROPIC_BATCH, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 10_000, outputTokens: 2000, serviceTier: 'batch' }, cost: '0.03' }, // (10000*3 + 2000*15)/1e6 * 0.5
  { source: ANTHROPIC_BATCH, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 500, serviceTier: 'batch' }, cost: '0.00795' }, // (2000*3 + 8000*0.3 + 500*15)/1e6 * 0.5
  { source: ANTHROPIC_BATCH, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 10_000, outputTokens: 2000, webSearchRequests: 1, serviceTier: 'batch' }, cost: '0.04' }, // 0.06 * 0.5 + 1*10/1000 (searches are not discounted)
  { source: ANTHROPIC_BATCH, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 250_000, outputTokens: 2000, serviceTier: 'batch' }, cost: '0.7725' }, // tier then batch: (250000*6 + 2000*22.5)/1e6 * 0.5
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 10_000, outputTokens: 2000, serviceTier: 'priority' }, cost: '0.06', unbilled: /serviceTier priority: no published modifier for anthropic/ }, // Priority Tier is a negotiated commitment: list price, flagged
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-sonnet-4-5', usage: { inputTokens: 10_000, outputTokens: 2000, serviceTier: 'flex' }, cost: '0.06', unbilled: /serviceTier flex/ }, // Anthropic has no flex tier: list price, flagged
  // claude-haiku-4-5 1 / 5, cache read 0.1, 5m 1.25, 1h 2; claude-opus-4-1 15 / 75 / 1.5; claude-opus-4-5 5 / 25; claude-3-5-haiku 0.8 / 4
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-haiku-4-5-20251001', usage: { inputTokens: 20_000, outputTokens: 1000 }, cost: '0.025' }, // 20000*1 + 1000*5
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-haiku-4-5', usage: { inputTokens: 5000, cacheWriteTokens: 5000, cacheWrite1hTokens: 5000, outputTokens: 100 }, cost: '0.0105' }, // 5000*2 + 100*5
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-haiku-4-5', usage: { inputTokens: 5000, cacheWriteTokens: 5000, outputTokens: 100 }, cost: '0.00675' }, // 5000*1.25 + 100*5
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-opus-4-1-20250805', usage: { inputTokens: 1000, cacheReadTokens: 500, outputTokens: 200 }, cost: '0.02325' }, // 500*15 + 500*1.5 + 200*75
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-opus-4-5-20251101', usage: { inputTokens: 10_000, outputTokens: 1000 }, cost: '0.075' }, // 10000*5 + 1000*25
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-3-5-haiku-20241022', usage: { inputTokens: 1000, outputTokens: 1000 }, cost: '0.0048' }, // 1000*0.8 + 1000*4
  // claude-sonnet-4 with the 1M context (corrected): above 200k 6 / 22.5
  { source: ANTHROPIC_1M, provider: 'anthropic', model: 'claude-sonnet-4-20250514', at: '2025-09-01T00:00:00Z', usage: { inputTokens: 200_000 }, cost: '0.6' }, // 200000*3
  { source: ANTHROPIC_1M, provider: 'anthropic', model: 'claude-sonnet-4-20250514', at: '2025-09-01T00:00:00Z', usage: { inputTokens: 200_001 }, cost: '1.200006' }, // 200001*6
  { source: ANTHROPIC_1M, provider: 'anthropic', model: 'claude-sonnet-4-0', at: '2025-09-01T00:00:00Z', usage: { inputTokens: 400_000, cacheReadTokens: 200_000, outputTokens: 4000 }, cost: '1.41' }, // 200000*6 + 200000*0.6 + 4000*22.5
  // claude-sonnet-4-6: tiered until 2026-03-13, flat afterwards (dated change)
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-sonnet-4-6', at: '2026-03-12T23:59:59Z', usage: { inputTokens: 300_000, outputTokens: 1000 }, cost: '1.8225' }, // 300000*6 + 1000*22.5
  { source: ANTHROPIC, provider: 'anthropic', model: 'claude-sonnet-4-6', at: '2026-03-13T00:00:00Z', usage: { inputTokens: 300_000, outputTokens: 1000 }, cost: '0.915' }, // 300000*3 + 1000*15
  // regional inference: claude-opus-4-6 5 / 25; inference_geo 'us' is 1.1x every token price
  { source: ANTHROPIC_GEO, provider: 'anthropic', model: 'claude-opus-4-6', usage: { inputTokens: 10_000, outputTokens: 1000, inferenceGeo: 'us' }, cost: '0.0825' }, // (10000*5 + 1000*25)/1e6 * 1.1
  { source: ANTHROPIC_GEO, provider: 'anthropic', model: 'claude-opus-4-6', usage: { inputTokens: 10_000, outputTokens: 1000, inferenceGeo: 'global' }, cost: '0.075' }, // global is the standard price
  { source: ANTHROPIC_GEO, provider: 'anthropic', model: 'claude-opus-4-6', usage: { inputTokens: 10_000, outputTokens: 1000, inferenceGeo: 'us', serviceTier: 'batch' }, cost: '0.04125' }, // 0.075 * 0.5 * 1.1
  { source: ANTHROPIC_GEO, provider: 'anthropic', model: 'claude-opus-4-6', usage: { inputTokens: 10_000, outputTokens: 1000, inferenceGeo: 'us', webSearchRequests: 1 }, cost: '0.0925' }, // 0.075 * 1.1 + 1*10/1000 (searches not multiplied)
  { source: UNKNOWN, provider: 'anthropic', model: 'claude-sonnet-5-5', usage: { inputTokens: 1000, outputTokens: 1000 }, cost: null }, // a newer sonnet, not claude-sonnet-5's $2 / $10
  { source: UNKNOWN, provider: 'anthropic', model: 'claude-opus-9', usage: { inputTokens: 1000, outputTokens: 1000 }, cost: null },

  // ---- OpenAI: gpt-4o 2.5 / 1.25 cached / 10; gpt-4o-mini 0.15 / 0.075 / 0.6; gpt-4.1 2 / 0.5 / 8; gpt-4.1-nano 0.1 / 0.025 / 0.4
  { source: OPENAI, provider: 'openai', model: 'gpt-4o-2024-08-06', usage: { inputTokens: 1000, outputTokens: 500 }, cost: '0.0075' }, // 1000*2.5 + 500*10
  { source: OPENAI, provider: 'openai', model: 'gpt-4o', usage: { inputTokens: 3000, cacheReadTokens: 2048, outputTokens: 100 }, cost: '0.00594' }, // 952*2.5 + 2048*1.25 + 100*10
  { source: OPENAI, provider: 'openai', model: 'gpt-4o-mini', usage: { inputTokens: 10_000, cacheReadTokens: 5000, outputTokens: 2000 }, cost: '0.002325' }, // 5000*0.15 + 5000*0.075 + 2000*0.6
  { source: OPENAI, provider: 'openai', model: 'gpt-4.1', usage: { inputTokens: 1000, outputTokens: 100, webSearchRequests: 2 }, cost: '0.0228' }, // 1000*2/1e6 + 100*8/1e6 + 2*10/1000
  { source: OPENAI, provider: 'openai', model: 'gpt-4.1-nano-2025-04-14', usage: { inputTokens: 100_000, outputTokens: 10_000 }, cost: '0.014' }, // 100000*0.1 + 10000*0.4
  // o3: 10 / 2.5 cached / 40 until the 2025-06-10 cut, then 2 / 0.5 / 8 (dated change; the cached price is corrected)
  { source: OPENAI_O3, provider: 'openai', model: 'o3-2025-04-16', at: '2025-05-01T00:00:00Z', usage: { inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 1000 }, cost: '0.08' }, // 2000*10 + 8000*2.5 + 1000*40
  { source: OPENAI_O3, provider: 'openai', model: 'o3', at: '2025-06-09T23:59:59Z', usage: { inputTokens: 1000, outputTokens: 1000, reasoningTokens: 900 }, cost: '0.05' }, // 1000*10 + 1000*40
  { source: OPENAI, provider: 'openai', model: 'o3', at: '2025-06-10T00:00:00Z', usage: { inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 1000 }, cost: '0.016' }, // 2000*2 + 8000*0.5 + 1000*8
  // o4-mini 1.1 / 0.275 / 4.4; gpt-5 1.25 / 0.125 / 10; gpt-5-mini 0.25 / 0.025 / 2
  { source: OPENAI, provider: 'openai', model: 'o4-mini-2025-04-16', usage: { inputTokens: 2000, outputTokens: 3000, reasoningTokens: 2500 }, cost: '0.0154' }, // 2000*1.1 + 3000*4.4
  { source: OPENAI_FLEX, provider: 'openai', model: 'o4-mini', usage: { inputTokens: 2000, outputTokens: 3000, reasoningTokens: 2500, serviceTier: 'flex' }, cost: '0.0077' }, // 0.0154 * 0.5
  { source: OPENAI_BATCH, provider: 'openai', model: 'gpt-5', usage: { inputTokens: 10_000, cacheReadTokens: 4000, outputTokens: 2000, serviceTier: 'batch' }, cost: '0.014' }, // (6000*1.25 + 4000*0.125 + 2000*10)/1e6 * 0.5
  { source: OPENAI_PRIORITY, provider: 'openai', model: 'gpt-5-2025-08-07', usage: { inputTokens: 10_000, outputTokens: 1000, serviceTier: 'priority' }, cost: '0.045' }, // (10000*1.25 + 1000*10)/1e6 * 2
  { source: OPENAI, provider: 'openai', model: 'gpt-5-mini', usage: { inputTokens: 10_000, outputTokens: 1000, serviceTier: 'standard' }, cost: '0.0045' }, // 10000*0.25 + 1000*2
  // gpt-5.4: 2.5 / 0.25 / 15; from 272K prompt tokens ("<272K" is standard) 5 / 0.5 / 22.5
  { source: OPENAI_LONG, provider: 'openai', model: 'gpt-5.4', at: '2026-04-01T00:00:00Z', usage: { inputTokens: 271_999 }, cost: '0.6799975' }, // 271999*2.5
  { source: OPENAI_LONG, provider: 'openai', model: 'gpt-5.4', at: '2026-04-01T00:00:00Z', usage: { inputTokens: 272_000 }, cost: '1.36' }, // 272000*5: exactly 272K is not "<272K"
  { source: OPENAI_LONG, provider: 'openai', model: 'gpt-5.4-2026-03-05', at: '2026-04-01T00:00:00Z', usage: { inputTokens: 272_001 }, cost: '1.360005' }, // 272001*5
  { source: OPENAI_LONG, provider: 'openai', model: 'gpt-5.4', at: '2026-04-01T00:00:00Z', usage: { inputTokens: 300_000, cacheReadTokens: 100_000, outputTokens: 1000 }, cost: '1.0725' }, // 200000*5 + 100000*0.5 + 1000*22.5
  { source: OPENAI_LONG, provider: 'openai', model: 'gpt-5.4', at: '2026-04-01T00:00:00Z', usage: { inputTokens: 300_000, outputTokens: 1000, serviceTier: 'batch' }, cost: '0.76125' }, // "for standard, batch, and flex": (300000*5 + 1000*22.5)/1e6 * 0.5
  // audio: gpt-audio text 2.5 / 10, audio 32 / 64; gpt-4o-audio-preview text 2.5 / 10, audio 40 / 80; gpt-4o-mini-audio-preview 0.15 / 0.6, audio 10 / 20
  { source: OPENAI, provider: 'openai', model: 'gpt-audio', usage: { inputTokens: 1000, inputAudioTokens: 600, outputTokens: 500, outputAudioTokens: 300 }, cost: '0.0414' }, // 400*2.5 + 600*32 + 200*10 + 300*64
  { source: OPENAI, provider: 'openai', model: 'gpt-audio-2025-08-28', usage: { inputTokens: 1000, outputTokens: 500, outputAudioTokens: 500 }, cost: '0.0345' }, // 1000*2.5 + 500*64
  { source: OPENAI, provider: 'openai', model: 'gpt-4o-audio-preview-2024-12-17', usage: { inputTokens: 1000, inputAudioTokens: 800, outputTokens: 500, outputAudioTokens: 400 }, cost: '0.0655' }, // 200*2.5 + 800*40 + 100*10 + 400*80
  { source: OPENAI, provider: 'openai', model: 'gpt-4o-mini-audio-preview', usage: { inputTokens: 1000, inputAudioTokens: 800, outputTokens: 500, outputAudioTokens: 400 }, cost: '0.01609' }, // 200*0.15 + 800*10 + 100*0.6 + 400*20
  // fine-tuned models (corrected): ft:gpt-4o 3.75 / 1.875 / 15; ft:gpt-4.1 3 / 0.75 / 12
  { source: OPENAI, provider: 'openai', model: 'ft:gpt-4o-2024-08-06:acme::abc', usage: { inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 1000 }, cost: '0.0375' }, // 2000*3.75 + 8000*1.875 + 1000*15
  { source: OPENAI, provider: 'openai', model: 'ft:gpt-4.1-2025-04-14:acme::abc', usage: { inputTokens: 10_000, cacheReadTokens: 8000, outputTokens: 1000 }, cost: '0.024' }, // 2000*3 + 8000*0.75 + 1000*12
  { source: UNKNOWN, provider: 'openai', model: 'gpt-4o-2', usage: { inputTokens: 1000, outputTokens: 1000 }, cost: null },
  { source: UNKNOWN, provider: 'openai', model: 'gpt-7', usage: { inputTokens: 1000, outputTokens: 1000 }, cost: null },

  // ---- Gemini: 2.5 Flash text 0.3, audio 1.0, output 2.5, cache 0.03 (audio 0.1)
  { source: GEMINI, provider: 'google', model: 'gemini-2.5-flash', usage: { inputTokens: 10_000, outputTokens: 1000 }, cost: '0.0055' }, // 10000*0.3 + 1000*2.5
  { source: GEMINI, provider: 'google', model: 'models/gemini-2.5-flash', usage: { inputTokens: 1_000_000, inputAudioTokens: 1_000_000 }, cost: '1' }, // the case: 1000000*1.0 (not 0.30)
  { source: GEMINI, provider: 'google', model: 'gemini-2.5-flash', usage: { inputTokens: 100_000, inputAudioTokens: 40_000, cacheReadTokens: 20_000, outputTokens: 1000 }, cost: '0.0551' }, // 40000*0.3 + 40000*1 + 20000*0.03 + 1000*2.5
  { source: GEMINI, provider: 'google', model: 'gemini-2.5-flash', usage: { inputTokens: 10_000, inputAudioTokens: 10_000, cacheReadTokens: 4000 }, cost: '0.0064' }, // cached audio: 6000*1 + 4000*0.1
  { source: GEMINI, provider: 'google', model: 'gemini-2.5-flash', usage: { inputTokens: 1000, outputTokens: 5000, reasoningTokens: 4000 }, cost: '0.0128' }, // thinking is output: 1000*0.3 + 5000*2.5
  { source: GEMINI_BATCH, provider: 'google', model: 'gemini-2.5-flash', usage: { inputTokens: 10_000, outputTokens: 1000, serviceTier: 'batch' }, cost: '0.00275' }, // 0.0055 * 0.5
  { source: GEMINI_TIERS, provider: 'gemini', model: 'gemini-2.5-flash', at: '2026-05-01T00:00:00Z', usage: { inputTokens: 10_000, outputTokens: 1000, serviceTier: 'flex' }, cost: '0.00275' }, // 0.0055 * 0.5
  { source: GEMINI_TIERS, provider: 'google', model: 'gemini-2.5-flash', at: '2026-05-01T00:00:00Z', usage: { inputTokens: 10_000, outputTokens: 1000, serviceTier: 'priority' }, cost: '0.011' }, // 0.0055 * 2 (the published premium's upper bound)
  { source: GEMINI, provider: 'google', model: 'gemini-2.5-flash', usage: { inputTokens: 10_000, outputTokens: 1000, webSearchRequests: 2 }, cost: '0.0055', unbilled: /webSearchRequests: no web search price/ }, // grounding has a daily free allowance: not priced per call, flagged
  // 2.5 Pro: up to 200k 1.25 / 0.125 / 10, above 2.5 / 0.25 / 15
  { source: GEMINI, provider: 'google', model: 'gemini-2.5-pro', usage: { inputTokens: 200_000, outputTokens: 1000 }, cost: '0.26' }, // "prompts <= 200k": 200000*1.25 + 1000*10
  { source: GEMINI, provider: 'google', model: 'gemini-2.5-pro', usage: { inputTokens: 200_001, outputTokens: 1000 }, cost: '0.5150025' }, // 200001*2.5 + 1000*15
  { source: GEMINI, provider: 'google', model: 'gemini-2.5-pro', usage: { inputTokens: 300_000, cacheReadTokens: 100_000, outputTokens: 5000, reasoningTokens: 3000 }, cost: '0.6' }, // 200000*2.5 + 100000*0.25 + 5000*15
  // 2.0 Flash text 0.1, audio 0.7, output 0.4; 2.5 Flash-Lite text 0.1, audio 0.3, output 0.4
  { source: GEMINI, provider: 'google', model: 'gemini-2.0-flash-001', usage: { inputTokens: 10_000, inputAudioTokens: 10_000, outputTokens: 100 }, cost: '0.00704' }, // 10000*0.7 + 100*0.4
  { source: GEMINI, provider: 'google', model: 'gemini-2.5-flash-lite', usage: { inputTokens: 10_000, inputAudioTokens: 5000, outputTokens: 1000 }, cost: '0.0024' }, // 5000*0.1 + 5000*0.3 + 1000*0.4
  // 1.5 Flash: up to 128k 0.075 / 0.3 (cache 0.01875), above 0.15 / 0.6
  { source: GEMINI, provider: 'google', model: 'gemini-1.5-flash', at: '2025-03-10T00:00:00Z', usage: { inputTokens: 128_000, outputTokens: 1000 }, cost: '0.0099' }, // 128000*0.075 + 1000*0.3
  { source: GEMINI, provider: 'google', model: 'gemini-1.5-flash-002', at: '2025-03-10T00:00:00Z', usage: { inputTokens: 128_001, outputTokens: 1000 }, cost: '0.01980015' }, // 128001*0.15 + 1000*0.6
  // 1.5 Pro (cache corrected): up to 128k 1.25 / 5, cache 0.3125; above 2.5 / 10, cache 0.625
  { source: GEMINI, provider: 'google', model: 'gemini-1.5-pro', at: '2025-03-10T00:00:00Z', usage: { inputTokens: 10_000, cacheReadTokens: 4000 }, cost: '0.00875' }, // 6000*1.25 + 4000*0.3125
  { source: GEMINI, provider: 'google', model: 'gemini-1.5-pro-002', at: '2025-03-10T00:00:00Z', usage: { inputTokens: 200_000, cacheReadTokens: 100_000, outputTokens: 1000 }, cost: '0.3225' }, // 100000*2.5 + 100000*0.625 + 1000*10
  // 2.5 Flash Preview 04-17 (corrected): 0.15 input, output 0.60, or 3.50 when thinking
  { source: GEMINI, provider: 'google', model: 'gemini-2.5-flash-preview-04-17', at: '2025-05-01T00:00:00Z', usage: { inputTokens: 1000, outputTokens: 3000, reasoningTokens: 2000 }, cost: '0.01065' }, // 1000*0.15 + 3000*3.5
  { source: GEMINI, provider: 'google', model: 'gemini-2.5-flash-preview-04-17', at: '2025-05-01T00:00:00Z', usage: { inputTokens: 1000, outputTokens: 3000 }, cost: '0.00195' }, // no thinking: 1000*0.15 + 3000*0.6
  { source: UNKNOWN, provider: 'google', model: 'gemini-9-ultra', usage: { inputTokens: 1000, outputTokens: 1000 }, cost: null },
]

const catalog = new PriceCatalog()

t.ok(rows.length >= 60, `${rows.length} cases`)
for (const provider of ['anthropic', 'openai', 'google']) {
  t.ok(rows.filter((r) => r.provider === provider || (provider === 'google' && r.provider === 'gemini')).length >= 20, `${provider}: at least 20 cases`)
}

for (const row of rows) {
  const at = row.at ?? '2025-10-01T12:00:00Z'
  t.test(`${row.provider} ${row.model} at ${at}: ${JSON.stringify(row.usage)}`, async (t) => {
    t.match(row.source, /^(https:\/\/|no published price)/, 'names its source')
    const quote = catalog.quote(row.provider, row.model, new Date(at), usageOf(row.usage))
    if (row.cost === null) {
      t.notOk(quote.priced, 'flagged unpriced')
      if (!quote.priced) t.match(quote.reason, `no price for provider ${row.provider} model ${row.model}`)
      return
    }
    if (!quote.priced) {
      t.fail(quote.reason)
      return
    }
    t.equal(quote.cost, row.cost, row.source)
    const parts = Object.values(quote.breakdown).reduce((sum, part) => sum + parseUsd(part), 0n)
    t.equal(parts, quote.costPico, 'the breakdown adds up to the cost')
    if (row.unbilled === undefined) t.same(quote.unbilled, [], 'nothing left out')
    else t.match(quote.unbilled.join('\n'), row.unbilled)
  })
}
