import { performance } from 'node:perf_hooks'
import { OPTIONAL_COUNTS, type Metadata, type ServiceTier, type TrackEvent, type Tracker } from '../event.js'

/** Token counts per the service's convention (README, "Token conventions"), and the tier billed. */
export interface NormalizedUsage {
  inputTokens: number
  outputTokens: number
  cacheReadTokens?: number
  cacheWriteTokens?: number
  cacheWrite1hTokens?: number
  reasoningTokens?: number
  inputAudioTokens?: number
  outputAudioTokens?: number
  webSearchRequests?: number
  serviceTier?: ServiceTier
  inferenceGeo?: string
}

export interface InstrumentOptions<Params = unknown> {
  /** Static metadata, or a function of the call's params, merged into every event. */
  metadata?: Metadata | ((params: Params) => Metadata | undefined)
  /** Default 'message'. */
  requestType?: string | ((params: Params) => string | undefined)
  /** Overrides the provider name (e.g. a gateway speaking the OpenAI protocol). */
  provider?: string
}

export interface CallOutcome {
  usage?: NormalizedUsage
  model?: string
  error?: unknown
  /** The stream ended before the provider sent its final usage (consumer stopped early, or error). */
  usageIncomplete?: boolean
}

/**
 * One model call being observed: started when the SDK method is called, reported once when the
 * response (or the stream) ends. Reporting never throws into the caller.
 */
export class CallRecorder<Params> {
  readonly #tracker: Tracker
  readonly #provider: string
  readonly #requestModel: string | undefined
  readonly #metadata: Metadata | undefined
  readonly #requestType: string
  readonly #started = performance.now()
  #reported = false

  constructor(tracker: Tracker, defaultProvider: string, params: Params, requestModel: string | undefined, options: InstrumentOptions<Params>) {
    this.#tracker = tracker
    this.#provider = options.provider ?? defaultProvider
    this.#requestModel = requestModel
    // Captured now: a stream may be consumed, or the promise awaited, outside the caller's context.
    const context = safely(() => tracker.currentMetadata?.())
    const own = safely(() => (typeof options.metadata === 'function' ? options.metadata(params) : options.metadata))
    this.#metadata = context && own ? { ...own, ...context } : (context ?? own)
    this.#requestType =
      safely(() => (typeof options.requestType === 'function' ? options.requestType(params) : options.requestType)) ?? 'message'
  }

  get reported(): boolean {
    return this.#reported
  }

  report(outcome: CallOutcome): void {
    if (this.#reported) return
    this.#reported = true
    try {
      const latencyMs = Math.round(performance.now() - this.#started)
      const usage = outcome.usage ?? { inputTokens: 0, outputTokens: 0 }
      const extra: Metadata = {}
      if (outcome.error !== undefined) {
        extra.errorType = errorType(outcome.error)
        const status = errorStatus(outcome.error)
        if (status !== undefined) extra.errorStatus = status
      }
      if (outcome.usageIncomplete) extra.usageIncomplete = true
      const metadata = Object.keys(extra).length > 0 ? { ...this.#metadata, ...extra } : this.#metadata
      const event: TrackEvent = {
        model: outcome.model || this.#requestModel || 'unknown',
        provider: this.#provider,
        ...definedOnly(usage),
        latencyMs,
        success: outcome.error === undefined,
        requestType: this.#requestType,
      }
      if (outcome.error !== undefined) event.errorMessage = errorMessage(outcome.error)
      if (metadata !== undefined) event.metadata = metadata
      this.#tracker.track(event)
    } catch {
      // A broken tracker must not break the model call.
    }
  }
}

export interface StreamObserver<Item> {
  onItem(item: Item): void
  /** Items for which this returns true are observed but not shown to the consumer. */
  hide?(item: Item): boolean
  onEnd(error?: unknown): void
}

/**
 * Observes an SDK `Stream` in place (same object, same class): its item iterator is wrapped so the
 * observer sees every item, the end, an error, or the consumer stopping early (`return()`).
 * The Anthropic and OpenAI `Stream` keep a private `iterator` factory used by both iteration and
 * `tee()`; wrapping it covers both. Other iterables get their `Symbol.asyncIterator` wrapped.
 */
export function observeStream<S extends object, Item>(stream: S, observer: StreamObserver<Item>): S {
  const holder = stream as unknown as { iterator?: unknown; [Symbol.asyncIterator]?: unknown }
  if (Object.hasOwn(holder, 'iterator') && typeof holder.iterator === 'function') {
    const original = holder.iterator as () => AsyncIterator<Item>
    holder.iterator = () => observeIterator(original.call(stream), observer)
  } else if (typeof holder[Symbol.asyncIterator] === 'function') {
    const original = holder[Symbol.asyncIterator] as () => AsyncIterator<Item>
    holder[Symbol.asyncIterator] = () => observeIterator(original.call(stream), observer)
  }
  return stream
}

function observeIterator<Item>(inner: AsyncIterator<Item>, observer: StreamObserver<Item>): AsyncIterableIterator<Item> {
  let ended = false
  const end = (error?: unknown): void => {
    if (ended) return
    ended = true
    safely(() => observer.onEnd(error))
  }
  const iterator: AsyncIterableIterator<Item> = {
    async next(): Promise<IteratorResult<Item>> {
      for (;;) {
        let result: IteratorResult<Item>
        try {
          result = await inner.next()
        } catch (error) {
          end(error)
          throw error
        }
        if (result.done) {
          end()
          return result
        }
        const item = result.value
        safely(() => observer.onItem(item))
        if (observer.hide && safely(() => observer.hide?.(item)) === true) continue
        return result
      }
    },
    async return(value?: unknown): Promise<IteratorResult<Item>> {
      end()
      if (inner.return) return inner.return(value)
      return { done: true, value: value as Item }
    },
    async throw(error?: unknown): Promise<IteratorResult<Item>> {
      end(error)
      if (inner.throw) return inner.throw(error)
      throw error
    },
    [Symbol.asyncIterator]() {
      return iterator
    },
  }
  return iterator
}

interface ApiPromiseLike {
  then: PromiseLike<unknown>['then']
  _thenUnwrap?: (transform: (data: unknown, props: unknown) => unknown) => unknown
}

/**
 * Observes the `APIPromise` an Anthropic or OpenAI SDK method returns without changing its type:
 * the result is still an `APIPromise` (so `.withResponse()`, `.asResponse()` and SDK helpers built on
 * `_thenUnwrap` keep working). Data passes through `onData` (which may wrap a stream in place); a
 * rejection is shown to `onError` and re-thrown as the very same object.
 */
export function observeApiPromise<P extends object>(
  promise: P,
  onData: (data: unknown) => void,
  onError: (error: unknown) => void,
): P {
  const apiPromise = promise as unknown as ApiPromiseLike
  if (typeof apiPromise._thenUnwrap !== 'function' || typeof apiPromise.then !== 'function') {
    // Not an SDK APIPromise we know: observe it as a plain promise.
    return Promise.resolve(promise).then(
      (data) => {
        safely(() => onData(data))
        return data
      },
      (error: unknown) => {
        safely(() => onError(error))
        throw error
      },
    ) as unknown as P
  }
  const transformed = apiPromise._thenUnwrap((data) => {
    safely(() => onData(data))
    return data
  }) as P
  return observeRejections(transformed, onError)
}

function observeRejections<P extends object>(target: P, onError: (error: unknown) => void): P {
  const rethrow = (error: unknown): never => {
    safely(() => onError(error))
    throw error
  }
  const observed = (): Promise<unknown> => (target as unknown as PromiseLike<unknown>).then((value) => value, rethrow) as Promise<unknown>
  const proxy: P = new Proxy(target, {
    get(object, property) {
      switch (property) {
        case 'then':
          return (onFulfilled?: (value: unknown) => unknown, onRejected?: (reason: unknown) => unknown) =>
            observed().then(onFulfilled, onRejected)
        case 'catch':
          return (onRejected?: (reason: unknown) => unknown) => observed().catch(onRejected)
        case 'finally':
          return (onFinally?: () => void) => observed().finally(onFinally)
        case 'withResponse':
        case 'asResponse': {
          const method = Reflect.get(object, property, object) as () => Promise<unknown>
          return () => method.call(object).then((value) => value, rethrow)
        }
        case '_thenUnwrap': {
          const method = Reflect.get(object, property, object) as (fn: unknown) => object
          return (fn: unknown) => observeRejections(method.call(object, fn), onError)
        }
        default: {
          const value: unknown = Reflect.get(object, property, object)
          return typeof value === 'function' ? value.bind(object) : value
        }
      }
    },
  })
  return proxy
}

const instrumented = Symbol.for('llm-usage-tracker.instrumented')

/**
 * Replaces `holder[name]` with `wrap(original)` on this one object (the SDK class and other
 * clients are untouched). Instrumenting the same method twice is a no-op, so events are never
 * reported twice.
 */
export function replaceMethod<H extends object, K extends keyof H>(
  holder: H,
  name: K,
  wrap: (original: H[K]) => H[K],
): void {
  const original = holder[name]
  if (typeof original !== 'function') return
  const marks = holder as { [instrumented]?: Set<PropertyKey> }
  const done = marks[instrumented] ?? new Set<PropertyKey>()
  if (done.has(name)) return
  holder[name] = wrap((original as unknown as (...args: unknown[]) => unknown).bind(holder) as H[K])
  done.add(name)
  Object.defineProperty(holder, instrumented, { value: done, enumerable: false, configurable: true })
}

export function safely<T>(fn: () => T): T | undefined {
  try {
    return fn()
  } catch {
    return undefined
  }
}

export function num(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) && value >= 0 ? Math.round(value) : undefined
}

export function stringOr(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined
}

export function record(value: unknown): Record<string, unknown> | undefined {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : undefined
}

/** The usage without its undefined parts (the wire form leaves them out). */
export function definedOnly(usage: NormalizedUsage): NormalizedUsage {
  const result: NormalizedUsage = { inputTokens: usage.inputTokens, outputTokens: usage.outputTokens }
  for (const key of OPTIONAL_COUNTS) if (usage[key] !== undefined) result[key] = usage[key]
  if (usage.serviceTier !== undefined) result.serviceTier = usage.serviceTier
  if (usage.inferenceGeo !== undefined) result.inferenceGeo = usage.inferenceGeo
  return result
}

/**
 * A provider's own tier name as the service's: OpenAI 'default' and Anthropic/Gemini 'standard'
 * are standard; 'flex', 'priority' and 'batch' are themselves; anything else (OpenAI 'scale',
 * a prepaid commitment) is left out, which the service reads as standard.
 */
export function serviceTierOf(value: unknown): ServiceTier | undefined {
  if (typeof value !== 'string') return undefined
  const tier = value.toLowerCase()
  if (tier === 'default' || tier === 'standard') return 'standard'
  return tier === 'flex' || tier === 'priority' || tier === 'batch' ? tier : undefined
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message || error.name
  return String(error)
}

function errorType(error: unknown): string {
  if (error instanceof Error) return error.constructor.name === 'Error' ? error.name : error.constructor.name
  return typeof error
}

function errorStatus(error: unknown): number | undefined {
  const status = record(error)?.status
  return typeof status === 'number' ? status : undefined
}
