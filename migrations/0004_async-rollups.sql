CREATE TABLE "rollup_watermark" (
	"id" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"rolled_below" "xid8" NOT NULL,
	CONSTRAINT "rollup_watermark_one_row" CHECK ("rollup_watermark"."id")
);
--> statement-breakpoint
ALTER TABLE "usage_events" ADD COLUMN "txid" "xid8" DEFAULT pg_current_xact_id() NOT NULL;--> statement-breakpoint
CREATE INDEX "usage_events_txid_idx" ON "usage_events" USING btree ("txid");--> statement-breakpoint
-- BEGIN hand-written backfill (async-rollups): keep when regenerating this migration.
-- The rows already stored got this migration's transaction id as txid above, and they are
-- already in every rollup (folded by the old ingest statement): the watermark starts just past it.
INSERT INTO "rollup_watermark" ("rolled_below") VALUES (((pg_current_xact_id()::text::bigint + 1)::text)::xid8);
-- END hand-written backfill (async-rollups)
