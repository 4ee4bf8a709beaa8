import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Test } from 'tap'
import type { TrackEvent, Tracker, UsageClientError, UsageClientOptions } from '../../src/client/index.js'
import { UsageClient } from '../../src/client/index.js'
import { FakeUsageServer } from '../helpers/fake-usage-server.js'

export interface RecordingTracker extends Tracker {
  readonly events: TrackEvent[]
}

export function recordingTracker(): RecordingTracker {
  const events: TrackEvent[] = []
  return { events, track: (event) => void events.push(event) }
}

export async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'usage-client-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  return dir
}

/** Small, fast retry settings for tests. */
export const fastRetry = { maxRetries: 2, baseDelayMs: 5, maxDelayMs: 50, maxRetryAfterMs: 5000 }

export async function startUsageServer(t: Test): Promise<FakeUsageServer> {
  const server = await FakeUsageServer.start()
  t.teardown(() => server.close())
  return server
}

/** A client against `server` that records onError calls; closed at teardown. */
export function clientFor(
  t: Test,
  server: FakeUsageServer,
  options: Partial<UsageClientOptions> = {},
): { client: UsageClient; errors: UsageClientError[] } {
  const errors: UsageClientError[] = []
  const client = new UsageClient({
    baseUrl: server.url,
    apiKey: 'test-key',
    botId: 'test-bot',
    flushIntervalMs: 20,
    timeoutMs: 2000,
    retry: fastRetry,
    onError: (error) => errors.push(error),
    ...options,
  })
  t.teardown(() => client.close({ deadlineMs: 500 }))
  return { client, errors }
}

export function sampleEvent(n: number): TrackEvent {
  return { model: 'claude-sonnet-4-6', provider: 'anthropic', inputTokens: 100 + n, outputTokens: 10 + n, metadata: { n } }
}
