import protobuf from 'protobufjs'
import { gunzipSync } from 'node:zlib'
import { traceServiceDescriptor } from './trace-service-descriptor.js'

/**
 * OTLP/HTTP request bodies (protobuf or JSON, optionally gzip) turned into one plain list of
 * spans. Anything that is not an ExportTraceServiceRequest is a MalformedPayload naming where.
 */

export type AttributeValue = string | number | boolean | null | AttributeValue[] | { [key: string]: AttributeValue }
export type Attributes = Record<string, AttributeValue>

export interface OtlpSpan {
  /** Where the span sits in the request, for messages: resourceSpans[0].scopeSpans[1].spans[2]. */
  path: string
  /** Lower-case hex, 32 and 16 characters; empty when the sender sent none. */
  traceId: string
  spanId: string
  name: string
  startNs: bigint
  endNs: bigint
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number
  statusMessage: string
  attributes: Attributes
  scope: { name: string; version: string }
  resource: Attributes
}

export class MalformedPayload extends Error {}

export type Encoding = 'protobuf' | 'json'

const root = protobuf.Root.fromJSON(traceServiceDescriptor)
const RequestType = root.lookupType('otlp.ExportTraceServiceRequest')
const ResponseType = root.lookupType('otlp.ExportTraceServiceResponse')

/** Inflates a gzip body without ever holding more than maxBytes. */
export function inflate(body: Buffer, contentEncoding: string | undefined, maxBytes: number): Buffer {
  const encoding = (contentEncoding ?? 'identity').trim().toLowerCase()
  if (encoding === 'identity' || encoding === '') return body
  if (encoding !== 'gzip') throw new UnsupportedEncoding(encoding)
  try {
    return gunzipSync(body, { maxOutputLength: maxBytes })
  } catch (err) {
    if ((err as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw new InflatedTooLarge(maxBytes)
    throw new MalformedPayload('body is not valid gzip')
  }
}

export class UnsupportedEncoding extends Error {
  constructor(readonly encoding: string) {
    super(`Content-Encoding ${encoding} is not supported; send gzip or none`)
  }
}

export class InflatedTooLarge extends Error {
  constructor(readonly limit: number) {
    super(`the decompressed body exceeds the limit of ${limit} bytes`)
  }
}

export function decodeRequest(body: Buffer, encoding: Encoding): OtlpSpan[] {
  if (encoding === 'protobuf') {
    let message
    try {
      message = RequestType.decode(body)
    } catch (err) {
      throw new MalformedPayload(`body is not a protobuf ExportTraceServiceRequest: ${(err as Error).message}`)
    }
    const plain = RequestType.toObject(message, { longs: String, bytes: String, defaults: false, arrays: true })
    return readRequest(plain, 'base64')
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(body.toString('utf8'))
  } catch (err) {
    throw new MalformedPayload(`body is not valid JSON: ${(err as Error).message}`)
  }
  return readRequest(parsed, 'hex')
}

/** The OTLP response, in the request's encoding. `rejected` 0 means full success (no partial_success). */
export function encodeResponse(encoding: Encoding, rejected: number, errorMessage: string): Buffer | Record<string, unknown> {
  const partial = rejected > 0 || errorMessage !== '' ? { rejectedSpans: rejected, errorMessage } : undefined
  if (encoding === 'json') return partial ? { partialSuccess: { rejectedSpans: String(rejected), errorMessage } } : {}
  return Buffer.from(ResponseType.encode(ResponseType.fromObject(partial ? { partialSuccess: partial } : {})).finish())
}

type Plain = Record<string, unknown>

const isObject = (v: unknown): v is Plain => typeof v === 'object' && v !== null && !Array.isArray(v)

function list(value: unknown, path: string): unknown[] {
  if (value === undefined || value === null) return []
  if (!Array.isArray(value)) throw new MalformedPayload(`${path} must be an array`)
  return value
}

function object(value: unknown, path: string): Plain {
  if (value === undefined || value === null) return {}
  if (!isObject(value)) throw new MalformedPayload(`${path} must be an object`)
  return value
}

function text(value: unknown, path: string): string {
  if (value === undefined || value === null) return ''
  if (typeof value !== 'string') throw new MalformedPayload(`${path} must be a string`)
  return value
}

/** fixed64/int64: a decimal string or a safe JSON integer. */
function unsigned64(value: unknown, path: string): bigint {
  if (value === undefined || value === null) return 0n
  if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) return BigInt(value)
  if (typeof value === 'string' && /^\d{1,20}$/.test(value)) return BigInt(value)
  throw new MalformedPayload(`${path} must be an unsigned integer (nanoseconds since the epoch)`)
}

const STATUS_NAMES: Record<string, number> = { STATUS_CODE_UNSET: 0, STATUS_CODE_OK: 1, STATUS_CODE_ERROR: 2 }

function statusCode(value: unknown, path: string): number {
  if (value === undefined || value === null) return 0
  if (typeof value === 'number' && Number.isInteger(value)) return value
  if (typeof value === 'string' && value in STATUS_NAMES) return STATUS_NAMES[value]
  throw new MalformedPayload(`${path} must be 0, 1 or 2`)
}

function spanIdentifier(value: unknown, idEncoding: 'hex' | 'base64', bytes: number, path: string): string {
  const raw = text(value, path)
  if (raw === '') return ''
  const hex = idEncoding === 'hex' ? raw.toLowerCase() : Buffer.from(raw, 'base64').toString('hex')
  if (!new RegExp(`^[0-9a-f]{${bytes * 2}}$`).test(hex)) throw new MalformedPayload(`${path} must be ${bytes} bytes (${bytes * 2} hex characters in JSON)`)
  return hex
}

function anyValue(value: unknown, path: string, depth: number): AttributeValue {
  if (depth > 8) throw new MalformedPayload(`${path} is nested too deeply`)
  const v = object(value, path)
  if ('stringValue' in v) return text(v.stringValue, `${path}.stringValue`)
  if ('boolValue' in v) {
    if (typeof v.boolValue !== 'boolean') throw new MalformedPayload(`${path}.boolValue must be a boolean`)
    return v.boolValue
  }
  if ('intValue' in v) {
    const n = typeof v.intValue === 'string' ? Number(v.intValue) : v.intValue
    if (typeof n !== 'number' || !Number.isInteger(n)) throw new MalformedPayload(`${path}.intValue must be an integer`)
    return n
  }
  if ('doubleValue' in v) {
    const n = typeof v.doubleValue === 'string' ? Number(v.doubleValue) : v.doubleValue
    if (typeof n !== 'number' || Number.isNaN(n)) throw new MalformedPayload(`${path}.doubleValue must be a number`)
    return n
  }
  if ('arrayValue' in v) {
    return list(object(v.arrayValue, `${path}.arrayValue`).values, `${path}.arrayValue.values`).map((item, i) =>
      anyValue(item, `${path}.arrayValue.values[${i}]`, depth + 1),
    )
  }
  if ('kvlistValue' in v) return attributes(object(v.kvlistValue, `${path}.kvlistValue`).values, `${path}.kvlistValue.values`, depth + 1)
  if ('bytesValue' in v) return text(v.bytesValue, `${path}.bytesValue`)
  return null
}

function attributes(value: unknown, path: string, depth = 0): Attributes {
  const out: Attributes = {}
  list(value, path).forEach((item, i) => {
    const kv = object(item, `${path}[${i}]`)
    const key = text(kv.key, `${path}[${i}].key`)
    out[key] = anyValue(kv.value, `${path}[${i}].value`, depth)
  })
  return out
}

function readRequest(body: unknown, idEncoding: 'hex' | 'base64'): OtlpSpan[] {
  if (!isObject(body)) throw new MalformedPayload('body must be an ExportTraceServiceRequest object')
  const spans: OtlpSpan[] = []
  list(body.resourceSpans, 'resourceSpans').forEach((rsValue, r) => {
    const rsPath = `resourceSpans[${r}]`
    const rs = object(rsValue, rsPath)
    const resource = attributes(object(rs.resource, `${rsPath}.resource`).attributes, `${rsPath}.resource.attributes`)
    list(rs.scopeSpans, `${rsPath}.scopeSpans`).forEach((ssValue, s) => {
      const ssPath = `${rsPath}.scopeSpans[${s}]`
      const ss = object(ssValue, ssPath)
      const scopeValue = object(ss.scope, `${ssPath}.scope`)
      const scope = { name: text(scopeValue.name, `${ssPath}.scope.name`), version: text(scopeValue.version, `${ssPath}.scope.version`) }
      list(ss.spans, `${ssPath}.spans`).forEach((spanValue, i) => {
        const path = `${ssPath}.spans[${i}]`
        const span = object(spanValue, path)
        const status = object(span.status, `${path}.status`)
        spans.push({
          path,
          traceId: spanIdentifier(span.traceId, idEncoding, 16, `${path}.traceId`),
          spanId: spanIdentifier(span.spanId, idEncoding, 8, `${path}.spanId`),
          name: text(span.name, `${path}.name`),
          startNs: unsigned64(span.startTimeUnixNano, `${path}.startTimeUnixNano`),
          endNs: unsigned64(span.endTimeUnixNano, `${path}.endTimeUnixNano`),
          statusCode: statusCode(status.code, `${path}.status.code`),
          statusMessage: text(status.message, `${path}.status.message`),
          attributes: attributes(span.attributes, `${path}.attributes`),
          scope,
          resource,
        })
      })
    })
  })
  return spans
}
