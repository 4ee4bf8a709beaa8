/**
 * A function that builds one object literal, compiled once from a table of fields.
 *
 * Code that loops over a table (`for (const m of MEASURES) out[m.name] = f(row[m.column])`) reads
 * and writes properties by computed keys: V8 treats those as megamorphic lookups, so turning one
 * aggregate row into totals cost 3-5 µs, and a 90-day series by model parses and renders ~1000
 * of them per request. The same work written out as a literal with fixed keys (what this
 * compiles) is 10-17x faster. The compiled text holds only JSON-quoted names from the static
 * tables and the expressions the callers write; no request data ever reaches it.
 */

export interface RecordField {
  /** Property name in the built object. */
  name: string
  /** JavaScript expression of the compiled function's parameters and helpers. */
  expression: string
}

/** `JSON.stringify(name)`: a property name or string literal that is safe in compiled code. */
export const quoted = (name: string): string => JSON.stringify(name)

/** `(...params) => ({ name: expression, ... })` with `helpers` in scope. */
export function compileRecordBuilder<F extends (...args: never[]) => unknown>(
  params: readonly string[],
  fields: readonly RecordField[],
  helpers: Record<string, unknown> = {},
): F {
  const literal = fields.map((f) => `${quoted(f.name)}: ${f.expression}`).join(',\n')
  const names = Object.keys(helpers)
  const factory = new Function(...names, `'use strict'; return function build(${params.join(', ')}) { return {\n${literal}\n} }`)
  return factory(...names.map((n) => helpers[n])) as F
}
