/**
 * Usage client costs: SDK instrumentation overhead against an uninstrumented baseline (same run,
 * same fake provider on 127.0.0.1), track() cost per call, and throughput with the service down
 * while events spool to disk (fsync per spill).
 *
 *   npx tsx bench/client-track.ts [--calls 2000]
 */
import Anthropic from '@anthropic-ai/sdk'
import OpenAI from 'openai'
import { GoogleGenerativeAI } from '@google/generative-ai'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { instrumentAnthropic, instrumentGemini, instrumentOpenAI, UsageClient } from '../src/client/index.js'
import { startFakeAnthropic, startFakeGemini, startFakeOpenAI } from '../test/helpers/fake-providers.js'
import { FakeUsageServer } from '../test/helpers/fake-usage-server.js'

const argIndex = process.argv.indexOf('--calls')
const calls = argIndex > 0 ? Number(process.argv[argIndex + 1]) : 2000
const log = (line: string): void => void process.stdout.write(`${line}\n`)

async function timeCalls(fn: () => Promise<unknown>, count: number): Promise<number> {
  for (let i = 0; i < 50; i++) await fn() // warm up connections and JIT
  const started = performance.now()
  for (let i = 0; i < count; i++) await fn()
  return ((performance.now() - started) * 1000) / count // µs per call
}

/**
 * Alternates rounds of: uninstrumented baseline, instrumented reporting to a no-op tracker (the
 * wrapper alone), instrumented reporting into a live UsageClient (wrapper + track() + the batches
 * it sends to the in-process fake service). Medians; ratios against the baseline of this run.
 */
async function compare(name: string, plain: () => Promise<unknown>, noop: () => Promise<unknown>, live: () => Promise<unknown>): Promise<void> {
  const rounds = 7
  const runs: number[][] = [[], [], []]
  for (let r = 0; r < rounds; r++) {
    runs[0].push(await timeCalls(plain, Math.ceil(calls / rounds)))
    runs[1].push(await timeCalls(noop, Math.ceil(calls / rounds)))
    runs[2].push(await timeCalls(live, Math.ceil(calls / rounds)))
  }
  const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]
  const [b, n, l] = runs.map(median)
  log(
    `${name.padEnd(34)} baseline ${b.toFixed(0).padStart(5)} µs  wrapper-only ${n.toFixed(0).padStart(5)} µs (x${(n / b).toFixed(3)})  with live client ${l.toFixed(0).padStart(5)} µs (x${(l / b).toFixed(3)})`,
  )
}

async function main(): Promise<void> {
  const anthropicFake = await startFakeAnthropic()
  const openaiFake = await startFakeOpenAI()
  const geminiFake = await startFakeGemini()
  const server = await FakeUsageServer.start()
  const client = new UsageClient({ baseUrl: server.url, apiKey: 'test-key', botId: 'test-bot', flushIntervalMs: 100 })
  try {
    log(`# instrumentation overhead (${calls} calls each, fake provider on 127.0.0.1, reporting into a live UsageClient)`)
    const anthropicPlain = new Anthropic({ apiKey: 'k', baseURL: anthropicFake.url, maxRetries: 0 })
    const noop = { track: (): void => undefined }
    const anthropicNoop = instrumentAnthropic(new Anthropic({ apiKey: 'k', baseURL: anthropicFake.url, maxRetries: 0 }), noop)
    const anthropicInst = instrumentAnthropic(new Anthropic({ apiKey: 'k', baseURL: anthropicFake.url, maxRetries: 0 }), client)
    const aParams = { model: 'claude-sonnet-4-6', max_tokens: 100, messages: [{ role: 'user' as const, content: 'hi' }] }
    await compare('anthropic messages.create', () => anthropicPlain.messages.create(aParams), () => anthropicNoop.messages.create(aParams), () => anthropicInst.messages.create(aParams))
    const drain = async (stream: AsyncIterable<unknown>): Promise<void> => {
      for await (const _event of stream) {
        // consume
      }
    }
    await compare(
      'anthropic messages.create stream',
      async () => drain(await anthropicPlain.messages.create({ ...aParams, stream: true })),
      async () => drain(await anthropicNoop.messages.create({ ...aParams, stream: true })),
      async () => drain(await anthropicInst.messages.create({ ...aParams, stream: true })),
    )
    const openaiPlain = new OpenAI({ apiKey: 'k', baseURL: `${openaiFake.url}/v1`, maxRetries: 0 })
    const openaiNoop = instrumentOpenAI(new OpenAI({ apiKey: 'k', baseURL: `${openaiFake.url}/v1`, maxRetries: 0 }), noop)
    const openaiInst = instrumentOpenAI(new OpenAI({ apiKey: 'k', baseURL: `${openaiFake.url}/v1`, maxRetries: 0 }), client)
    const oParams = { model: 'gpt-5-mini', messages: [{ role: 'user' as const, content: 'hi' }] }
    await compare('openai chat.completions.create', () => openaiPlain.chat.completions.create(oParams), () => openaiNoop.chat.completions.create(oParams), () => openaiInst.chat.completions.create(oParams))
    await compare(
      'openai chat stream (usage on)',
      async () => drain(await openaiPlain.chat.completions.create({ ...oParams, stream: true, stream_options: { include_usage: true } })),
      async () => drain(await openaiNoop.chat.completions.create({ ...oParams, stream: true, stream_options: { include_usage: true } })),
      async () => drain(await openaiInst.chat.completions.create({ ...oParams, stream: true, stream_options: { include_usage: true } })),
    )
    const geminiPlain = new GoogleGenerativeAI('k').getGenerativeModel({ model: 'gemini-2.5-flash' }, { baseUrl: geminiFake.url })
    const geminiNoop = instrumentGemini(new GoogleGenerativeAI('k').getGenerativeModel({ model: 'gemini-2.5-flash' }, { baseUrl: geminiFake.url }), noop)
    const geminiInst = instrumentGemini(new GoogleGenerativeAI('k').getGenerativeModel({ model: 'gemini-2.5-flash' }, { baseUrl: geminiFake.url }), client)
    await compare('gemini generateContent', () => geminiPlain.generateContent('hi'), () => geminiNoop.generateContent('hi'), () => geminiInst.generateContent('hi'))
    await client.flush()
    log(`usage events delivered during the overhead runs: ${client.stats().sent}`)

    log('\n# track() cost per call (service up, events batched and sent in the background)')
    const event = { model: 'claude-sonnet-4-6', provider: 'anthropic', inputTokens: 1200, outputTokens: 300, cacheReadTokens: 1000, latencyMs: 850, metadata: { chatId: 123456, userId: 42 } }
    // Bursts of 1000 with a turn of the event loop between them, as a busy bot would produce.
    const burst = async (target: UsageClient, total: number): Promise<number> => {
      let busy = 0
      for (let done = 0; done < total; done += 1000) {
        const t0 = performance.now()
        for (let i = 0; i < 1000; i++) target.track(event)
        busy += performance.now() - t0
        await new Promise((resolve) => setImmediate(resolve))
      }
      return busy
    }
    const n = 100_000
    // A queue that holds the whole run: with the default 10,000 a fast burst drops events, which
    // would make both track() and the end-to-end rate look better than they are.
    const tracker = new UsageClient({ baseUrl: server.url, apiKey: 'test-key', botId: 'test-bot', flushIntervalMs: 100, maxQueue: n })
    let started = performance.now()
    let elapsed = await burst(tracker, n)
    log(`track(): ${((elapsed * 1000) / n).toFixed(2)} µs/call (${n} calls in bursts of 1000)`)
    started = performance.now()
    await tracker.flush()
    elapsed = performance.now() - started
    const tracked = tracker.stats()
    log(`flush of the rest of ${n} events to the fake service: ${elapsed.toFixed(0)} ms; sent ${tracked.sent}, dropped ${tracked.dropped}`)
    log(`stats: ${JSON.stringify(tracked)}`)
    await tracker.close()

    log('\n# service down, spooling to disk (fsync per spill)')
    const dir = await mkdtemp(join(tmpdir(), 'usage-bench-'))
    await server.down()
    const down = new UsageClient({
      baseUrl: server.url, apiKey: 'test-key', botId: 'test-bot', spoolDir: dir, maxQueue: 10_000,
      retry: { maxRetries: 1, baseDelayMs: 10, maxDelayMs: 1000 }, onError: () => undefined,
    })
    const m = 200_000
    started = performance.now()
    elapsed = await burst(down, m)
    log(`track() with service down: ${((elapsed * 1000) / m).toFixed(2)} µs/call; ${m} events tracked in ${(performance.now() - started).toFixed(0)} ms wall (${(m / ((performance.now() - started) / 1000)).toFixed(0)} events/s)`)
    started = performance.now()
    await down.flush()
    elapsed = performance.now() - started
    log(`all ${m} events durably spooled after ${elapsed.toFixed(0)} ms more; stats ${JSON.stringify(down.stats())}`)
    // fsync cost: many small spills (one per event) vs batched.
    const fsyncDir = await mkdtemp(join(tmpdir(), 'usage-bench-fsync-'))
    const small = new UsageClient({
      baseUrl: server.url, apiKey: 'test-key', botId: 'test-bot', spoolDir: fsyncDir, maxQueue: 1,
      retry: { maxRetries: 0, baseDelayMs: 10, maxDelayMs: 1000 }, onError: () => undefined,
    })
    const k = 2000
    started = performance.now()
    for (let i = 0; i < k; i++) {
      small.track(event)
      await small.flush()
    }
    elapsed = performance.now() - started
    log(`spool append + fdatasync, one event per write: ${((elapsed * 1000) / k).toFixed(0)} µs per write (${k} writes)`)
    await server.up()
    started = performance.now()
    await new Promise<void>((resolve) => {
      const timer = setInterval(() => {
        if (down.stats().sent >= m) {
          clearInterval(timer)
          resolve()
        }
      }, 10)
    })
    elapsed = performance.now() - started
    log(`replay of ${m} spooled events once the service is back: ${elapsed.toFixed(0)} ms (${(m / (elapsed / 1000)).toFixed(0)} events/s)`)
    await down.close()
    await small.close({ deadlineMs: 100 })
    await rm(dir, { recursive: true, force: true })
    await rm(fsyncDir, { recursive: true, force: true })
  } finally {
    await client.close()
    await Promise.all([anthropicFake.close(), openaiFake.close(), geminiFake.close(), server.close()])
  }
}

await main()
