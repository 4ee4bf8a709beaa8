/**
 * The rule every usage with token parts obeys (ingest and price quotes): parts never exceed the
 * total they are part of. Returns the first problem, naming the field, or null.
 */
export interface UsageParts {
  inputTokens: number
  outputTokens: number
  cacheReadTokens?: number
  cacheWriteTokens?: number
  cacheWrite1hTokens?: number
  reasoningTokens?: number
  inputAudioTokens?: number
  outputAudioTokens?: number
}

export function usagePartProblem(u: UsageParts): { field: string; message: (at: (field: string) => string) => string } | null {
  const cacheRead = u.cacheReadTokens ?? 0
  const cacheWrite = u.cacheWriteTokens ?? 0
  const cacheWrite1h = u.cacheWrite1hTokens ?? 0
  const reasoning = u.reasoningTokens ?? 0
  const inputAudio = u.inputAudioTokens ?? 0
  const outputAudio = u.outputAudioTokens ?? 0
  if (cacheRead + cacheWrite > u.inputTokens) {
    return {
      field: 'cacheReadTokens',
      message: (at) =>
        `${at('cacheReadTokens')} + cacheWriteTokens (${cacheRead + cacheWrite}) exceed inputTokens (${u.inputTokens}): inputTokens must include cache reads and writes`,
    }
  }
  if (cacheWrite1h > cacheWrite) {
    return { field: 'cacheWrite1hTokens', message: (at) => `${at('cacheWrite1hTokens')} (${cacheWrite1h}) exceeds cacheWriteTokens (${cacheWrite})` }
  }
  if (reasoning > u.outputTokens) {
    return {
      field: 'reasoningTokens',
      message: (at) => `${at('reasoningTokens')} (${reasoning}) exceeds outputTokens (${u.outputTokens}): outputTokens must include reasoning`,
    }
  }
  if (inputAudio > u.inputTokens) {
    return {
      field: 'inputAudioTokens',
      message: (at) => `${at('inputAudioTokens')} (${inputAudio}) exceeds inputTokens (${u.inputTokens}): inputTokens must include audio input`,
    }
  }
  if (outputAudio + reasoning > u.outputTokens) {
    return {
      field: 'outputAudioTokens',
      message: (at) =>
        `${at('outputAudioTokens')} + reasoningTokens (${outputAudio + reasoning}) exceed outputTokens (${u.outputTokens}): outputTokens must include audio output and reasoning`,
    }
  }
  return null
}
