// Compile-time guard, checked by `npm run typecheck` (never run): the client's hand-written wire
// types must stay what the service's TypeBox schemas accept. The client cannot derive them from
// src/usage/schemas.ts: the published `llm-usage-tracker/client` is built from src/client alone
// (tsconfig.build.json) and must not pull the server's schemas or typebox into its types.
import type { UsageEvent } from '../../src/client/index.js'
import type { BatchItemResult as ClientBatchItemResult } from '../../src/client/transport.js'
import type { BatchItemResult, UsageEventInput } from '../../src/usage/schemas.js'

type Assert<T extends true> = T
type Assignable<From, To> = [From] extends [To] ? true : false

/** Every event the client sends is one the service's schema accepts, field by field. */
export type ClientEventIsServerInput = Assert<Assignable<UsageEvent, UsageEventInput>>
/** Every field the service accepts is one the client can send (no field missing on either side). */
export type SameFields = Assert<Assignable<keyof UsageEventInput, keyof UsageEvent>>
export type SameFieldsBack = Assert<Assignable<keyof UsageEvent, keyof UsageEventInput>>
/** The item statuses the client understands are the service's. */
export type SameStatuses = Assert<Assignable<BatchItemResult['status'], ClientBatchItemResult['status']>>
