import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv'
import addFormatsModule from 'ajv-formats'
import type { FastifySchemaCompiler } from 'fastify'

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
  return ajv
}

const bodyAjv = makeAjv(false)
const textAjv = makeAjv(true)

/** Fastify validator: strict types for bodies, coercion for querystring, params and headers. */
export const validatorCompiler: FastifySchemaCompiler<object> = ({ schema, httpPart }) =>
  (httpPart === 'body' ? bodyAjv : textAjv).compile(schema) as ValidateFunction

export function compileBodyValidator(schema: object): ValidateFunction {
  return bodyAjv.compile(schema)
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
      return `${at} must be a valid ${String(p.format)}${p.format === 'date-time' ? ' (ISO 8601 with zone, e.g. 2024-01-01T12:00:00Z)' : ''}`
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
