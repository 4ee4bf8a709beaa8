import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'
import { DATE_OR_TIMESTAMP_FORMAT, isTimestamp, isYearMonth, parseInstant, SUPPORTED_DATES, YEAR_MONTH_FORMAT } from './time.js'

// ajv-formats ships CJS with a default export; under NodeNext ESM it arrives wrapped.
const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv

function makeAjv(coerce: boolean): Ajv {
  const ajv = new Ajv({
    // Unknown fields are an error, not silently dropped: a misspelt field is a client bug.
    removeAdditional: false,
    useDefaults: true,
    // Query strings are text and need coercion; JSON bodies must carry the right types.
    coerceTypes: coerce ? 'array' : false,
    allErrors: false,
    strict: false,
  })
  addFormats(ajv)
  // Stricter than ajv-formats: a timestamp must also be one the database and JavaScript both
  // represent (no leap second 23:59:60, no year 0000 or 9999-12-31 plus a day).
  ajv.addFormat('date-time', { type: 'string', validate: isTimestamp })
  ajv.addFormat(DATE_OR_TIMESTAMP_FORMAT, { type: 'string', validate: (v: string) => parseInstant(v) !== null })
  ajv.addFormat(YEAR_MONTH_FORMAT, { type: 'string', validate: isYearMonth })
  return ajv
}

const bodyAjv = makeAjv(false)
const textAjv = makeAjv(true)

/** How deeply objects and arrays may nest in any request part, counted from its root. */
export const MAX_JSON_DEPTH = 32

/** The ajv keyword of the errors findUnstorable reports (describeValidationError renders them). */
const UNSTORABLE = 'unstorable'

// A high surrogate not followed by a low one, or a low one without a high one before it.
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

// Either of the above may be present: one scan, which almost every string passes.
const NUL_OR_SURROGATE = /[\u0000\uD800-\uDFFF]/

function stringProblem(s: string): string | null {
  if (!NUL_OR_SURROGATE.test(s)) return null
  if (s.includes('\u0000')) return 'contains a NUL character'
  if (LONE_SURROGATE.test(s)) return 'contains a lone UTF-16 surrogate (not valid Unicode)'
  return null
}

const escapePointer = (key: string) => key.replace(/~/g, '~0').replace(/\//g, '~1')

type SchemaNode = { properties?: Record<string, SchemaNode>; items?: unknown } | undefined

/**
 * Finds the first value no database column can hold, which JSON Schema cannot express: a NUL
 * character or a lone surrogate in any string or object key (Postgres text and jsonb refuse
 * both), a number JSON.parse turned into Infinity, or nesting deeper than MAX_JSON_DEPTH.
 * Free-form parts (metadata) are searched all the way down.
 *
 * An array whose items schema accepts anything ({}, e.g. the events of a batch) is left to the
 * handler, which validates each item on its own so that one bad item rejects only itself.
 */
export function findUnstorable(value: unknown, schema: SchemaNode = undefined, path = '', depth = 0): ErrorObject | null {
  const found = unstorableIn(value, schema, depth)
  if (!found) return null
  // The path is built only for the value found (joining it for every key cost more than the search).
  return { keyword: UNSTORABLE, instancePath: path + found.segments.reverse().join(''), schemaPath: '', params: { reason: found.reason } }
}

/** The problem and the JSON-pointer segments to it, innermost first. */
interface Unstorable {
  reason: string
  segments: string[]
}

function unstorableIn(value: unknown, schema: SchemaNode, depth: number): Unstorable | null {
  if (typeof value === 'string') {
    const reason = stringProblem(value)
    return reason ? { reason, segments: [] } : null
  }
  if (typeof value === 'number') return Number.isFinite(value) ? null : { reason: 'must be a finite number', segments: [] }
  if (value === null || typeof value !== 'object') return null
  if (depth >= MAX_JSON_DEPTH) return { reason: `is nested more than ${MAX_JSON_DEPTH} levels deep`, segments: [] }
  if (Array.isArray(value)) {
    const items = schema && typeof schema.items === 'object' && schema.items !== null ? (schema.items as NonNullable<SchemaNode>) : undefined
    if (items && Object.keys(items).length === 0) return null
    for (let i = 0; i < value.length; i++) {
      const found = unstorableIn(value[i], items, depth + 1)
      if (found) {
        found.segments.push(`/${i}`)
        return found
      }
    }
    return null
  }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue
    const keyReason = stringProblem(key)
    if (keyReason) return { reason: `has a key that ${keyReason}`, segments: [] }
    const found = unstorableIn((value as Record<string, unknown>)[key], schema?.properties?.[key], depth + 1)
    if (found) {
      found.segments.push(`/${escapePointer(key)}`)
      return found
    }
  }
  return null
}

/** An ajv validator that also refuses what findUnstorable finds, reporting it as an ajv error. */
function refusingUnstorable(validate: ValidateFunction, schema: object, startDepth: number): ValidateFunction {
  const wrapped = ((data: unknown) => {
    const problem = findUnstorable(data, schema as SchemaNode, '', startDepth)
    if (problem) {
      wrapped.errors = [problem]
      return false
    }
    const ok = validate(data) as boolean
    wrapped.errors = validate.errors
    return ok
  }) as ValidateFunction
  wrapped.schema = validate.schema
  return wrapped
}

/**
 * Fastify validator: strict types for bodies, coercion for querystring, params and headers; on
 * every part of every route, nothing the database would refuse (findUnstorable) gets through.
 */
export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) =>
  refusingUnstorable((httpPart === 'body' ? bodyAjv : textAjv).compile(schema) as ValidateFunction, schema, 0)

/**
 * The same rules for a value the handler validates itself (a batch item); `startDepth` is how
 * deep in the request body it sits, so the nesting limit counts from the body's root.
 */
export function compileBodyValidator(schema: object, startDepth = 0): ValidateFunction {
  return refusingUnstorable(bodyAjv.compile(schema), schema, startDepth)
}

function fieldPath(root: string, instancePath: string): string {
  if (!instancePath) return root
  const parts = instancePath
    .split('/')
    .slice(1)
    .map((p) => p.replace(/~1/g, '/').replace(/~0/g, '~'))
  return parts.reduce((acc, p) => (/^\d+$/.test(p) ? `${acc}[${p}]` : `${acc}.${p}`), root)
}

/**
 * One sentence naming the offending field, e.g. "body.inputTokens must be >= 0" or
 * "body has unknown field 'foo'". Used for route validation and for batch items alike.
 */
export function describeValidationError(root: string, error: ErrorObject): string {
  const at = fieldPath(root, error.instancePath)
  const p = error.params as Record<string, unknown>
  switch (error.keyword) {
    case 'required':
      return `${at}.${String(p.missingProperty)} is required`
    case 'additionalProperties':
      return `${at} has unknown field '${String(p.additionalProperty)}'`
    case 'type':
      return `${at} must be ${String(p.type)}`
    case 'format':
      if (p.format === 'date-time') {
        return `${at} must be a valid date-time (ISO 8601 with zone, e.g. 2024-01-01T12:00:00Z, ${SUPPORTED_DATES}; no leap second)`
      }
      if (p.format === DATE_OR_TIMESTAMP_FORMAT) {
        return `${at} must be a date (YYYY-MM-DD) or an ISO 8601 timestamp with zone, ${SUPPORTED_DATES}`
      }
      if (p.format === YEAR_MONTH_FORMAT) return `${at} must be a month (YYYY-MM) ${SUPPORTED_DATES}`
      return `${at} must be a valid ${String(p.format)}`
    case UNSTORABLE:
      return `${at} ${String(p.reason)}`
    case 'pattern':
      return `${at} has invalid characters (must match ${String(p.pattern)})`
    case 'minLength':
      return Number(p.limit) === 1 ? `${at} must not be empty` : `${at} must be at least ${String(p.limit)} characters`
    case 'maxLength':
      return `${at} must be at most ${String(p.limit)} characters`
    case 'minItems':
      return `${at} must have at least ${String(p.limit)} items`
    case 'maxItems':
      return `${at} must have at most ${String(p.limit)} items`
    case 'enum':
      return `${at} must be one of ${(p.allowedValues as unknown[]).map(String).join(', ')}`
    case 'const':
      return `${at} must be ${JSON.stringify(p.allowedValue)}`
    default:
      return `${at} ${error.message ?? 'is invalid'}`
  }
}
