CREATE TABLE "rollup_watermark" (
	"id" boolean PRIMARY KEY DEFAULT true NOT NULL,
	"rolled_below" "xid8" NOT NULL,
	CONSTRAINT "rollup_watermark_one_row" CHECK ("rollup_watermark"."id")
);
--> statement-breakpoint
CREATE TABLE "usage_daily_totals" (
	"day" timestamp with time zone NOT NULL,
	"success" boolean NOT NULL,
	"calls" bigint DEFAULT 0 NOT NULL,
	"input_tokens" bigint DEFAULT 0 NOT NULL,
	"output_tokens" bigint DEFAULT 0 NOT NULL,
	"total_tokens" bigint DEFAULT 0 NOT NULL,
	"cache_read_tokens" bigint DEFAULT 0 NOT NULL,
	"cache_write_tokens" bigint DEFAULT 0 NOT NULL,
	"reasoning_tokens" bigint DEFAULT 0 NOT NULL,
	"input_audio_tokens" bigint DEFAULT 0 NOT NULL,
	"output_audio_tokens" bigint DEFAULT 0 NOT NULL,
	"web_search_requests" bigint DEFAULT 0 NOT NULL,
	"cost" numeric(30, 12) DEFAULT '0' NOT NULL,
	"unpriced_calls" bigint DEFAULT 0 NOT NULL,
	"unpriced_input_tokens" bigint DEFAULT 0 NOT NULL,
	"unpriced_output_tokens" bigint DEFAULT 0 NOT NULL,
	"latency_sum_ms" bigint DEFAULT 0 NOT NULL,
	"latency_count" bigint DEFAULT 0 NOT NULL,
	"latency_max_ms" integer,
	"latency_ge_0" bigint,
	"latency_ge_10" bigint,
	"latency_ge_25" bigint,
	"latency_ge_50" bigint,
	"latency_ge_100" bigint,
	"latency_ge_125" bigint,
	"latency_ge_160" bigint,
	"latency_ge_200" bigint,
	"latency_ge_250" bigint,
	"latency_ge_315" bigint,
	"latency_ge_400" bigint,
	"latency_ge_500" bigint,
	"latency_ge_630" bigint,
	"latency_ge_800" bigint,
	"latency_ge_1000" bigint,
	"latency_ge_1250" bigint,
	"latency_ge_1600" bigint,
	"latency_ge_2000" bigint,
	"latency_ge_2500" bigint,
	"latency_ge_3150" bigint,
	"latency_ge_4000" bigint,
	"latency_ge_5000" bigint,
	"latency_ge_6300" bigint,
	"latency_ge_8000" bigint,
	"latency_ge_10000" bigint,
	"latency_ge_12500" bigint,
	"latency_ge_16000" bigint,
	"latency_ge_20000" bigint,
	"latency_ge_25000" bigint,
	"latency_ge_31500" bigint,
	"latency_ge_40000" bigint,
	"latency_ge_50000" bigint,
	"latency_ge_63000" bigint,
	"latency_ge_80000" bigint,
	"latency_ge_100000" bigint,
	CONSTRAINT "usage_daily_totals_pkey" PRIMARY KEY("day","success")
);
--> statement-breakpoint
CREATE TABLE "usage_hourly_errors_models" (
	"hour" timestamp with time zone NOT NULL,
	"provider" text NOT NULL,
	"model" text NOT NULL,
	"request_type" text NOT NULL,
	"message" text,
	"failures" bigint DEFAULT 0 NOT NULL,
	"last_seen" timestamp with time zone NOT NULL,
	CONSTRAINT "usage_hourly_errors_models_key" UNIQUE NULLS NOT DISTINCT("hour","provider","model","request_type","message")
);
--> statement-breakpoint
CREATE TABLE "usage_hourly_totals" (
	"hour" timestamp with time zone NOT NULL,
	"success" boolean NOT NULL,
	"calls" bigint DEFAULT 0 NOT NULL,
	"input_tokens" bigint DEFAULT 0 NOT NULL,
	"output_tokens" bigint DEFAULT 0 NOT NULL,
	"total_tokens" bigint DEFAULT 0 NOT NULL,
	"cache_read_tokens" bigint DEFAULT 0 NOT NULL,
	"cache_write_tokens" bigint DEFAULT 0 NOT NULL,
	"reasoning_tokens" bigint DEFAULT 0 NOT NULL,
	"input_audio_tokens" bigint DEFAULT 0 NOT NULL,
	"output_audio_tokens" bigint DEFAULT 0 NOT NULL,
	"web_search_requests" bigint DEFAULT 0 NOT NULL,
	"cost" numeric(30, 12) DEFAULT '0' NOT NULL,
	"unpriced_calls" bigint DEFAULT 0 NOT NULL,
	"unpriced_input_tokens" bigint DEFAULT 0 NOT NULL,
	"unpriced_output_tokens" bigint DEFAULT 0 NOT NULL,
	"latency_sum_ms" bigint DEFAULT 0 NOT NULL,
	"latency_count" bigint DEFAULT 0 NOT NULL,
	"latency_max_ms" integer,
	"latency_ge_0" bigint,
	"latency_ge_10" bigint,
	"latency_ge_25" bigint,
	"latency_ge_50" bigint,
	"latency_ge_100" bigint,
	"latency_ge_125" bigint,
	"latency_ge_160" bigint,
	"latency_ge_200" bigint,
	"latency_ge_250" bigint,
	"latency_ge_315" bigint,
	"latency_ge_400" bigint,
	"latency_ge_500" bigint,
	"latency_ge_630" bigint,
	"latency_ge_800" bigint,
	"latency_ge_1000" bigint,
	"latency_ge_1250" bigint,
	"latency_ge_1600" bigint,
	"latency_ge_2000" bigint,
	"latency_ge_2500" bigint,
	"latency_ge_3150" bigint,
	"latency_ge_4000" bigint,
	"latency_ge_5000" bigint,
	"latency_ge_6300" bigint,
	"latency_ge_8000" bigint,
	"latency_ge_10000" bigint,
	"latency_ge_12500" bigint,
	"latency_ge_16000" bigint,
	"latency_ge_20000" bigint,
	"latency_ge_25000" bigint,
	"latency_ge_31500" bigint,
	"latency_ge_40000" bigint,
	"latency_ge_50000" bigint,
	"latency_ge_63000" bigint,
	"latency_ge_80000" bigint,
	"latency_ge_100000" bigint,
	CONSTRAINT "usage_hourly_totals_pkey" PRIMARY KEY("hour","success")
);
--> statement-breakpoint
CREATE TABLE "usage_quarter_hourly_totals" (
	"quarter_hour" timestamp with time zone NOT NULL,
	"success" boolean NOT NULL,
	"calls" bigint DEFAULT 0 NOT NULL,
	"input_tokens" bigint DEFAULT 0 NOT NULL,
	"output_tokens" bigint DEFAULT 0 NOT NULL,
	"total_tokens" bigint DEFAULT 0 NOT NULL,
	"cache_read_tokens" bigint DEFAULT 0 NOT NULL,
	"cache_write_tokens" bigint DEFAULT 0 NOT NULL,
	"reasoning_tokens" bigint DEFAULT 0 NOT NULL,
	"input_audio_tokens" bigint DEFAULT 0 NOT NULL,
	"output_audio_tokens" bigint DEFAULT 0 NOT NULL,
	"web_search_requests" bigint DEFAULT 0 NOT NULL,
	"cost" numeric(30, 12) DEFAULT '0' NOT NULL,
	"unpriced_calls" bigint DEFAULT 0 NOT NULL,
	"unpriced_input_tokens" bigint DEFAULT 0 NOT NULL,
	"unpriced_output_tokens" bigint DEFAULT 0 NOT NULL,
	"latency_sum_ms" bigint DEFAULT 0 NOT NULL,
	"latency_count" bigint DEFAULT 0 NOT NULL,
	"latency_max_ms" integer,
	"latency_ge_0" bigint,
	"latency_ge_10" bigint,
	"latency_ge_25" bigint,
	"latency_ge_50" bigint,
	"latency_ge_100" bigint,
	"latency_ge_125" bigint,
	"latency_ge_160" bigint,
	"latency_ge_200" bigint,
	"latency_ge_250" bigint,
	"latency_ge_315" bigint,
	"latency_ge_400" bigint,
	"latency_ge_500" bigint,
	"latency_ge_630" bigint,
	"latency_ge_800" bigint,
	"latency_ge_1000" bigint,
	"latency_ge_1250" bigint,
	"latency_ge_1600" bigint,
	"latency_ge_2000" bigint,
	"latency_ge_2500" bigint,
	"latency_ge_3150" bigint,
	"latency_ge_4000" bigint,
	"latency_ge_5000" bigint,
	"latency_ge_6300" bigint,
	"latency_ge_8000" bigint,
	"latency_ge_10000" bigint,
	"latency_ge_12500" bigint,
	"latency_ge_16000" bigint,
	"latency_ge_20000" bigint,
	"latency_ge_25000" bigint,
	"latency_ge_31500" bigint,
	"latency_ge_40000" bigint,
	"latency_ge_50000" bigint,
	"latency_ge_63000" bigint,
	"latency_ge_80000" bigint,
	"latency_ge_100000" bigint,
	CONSTRAINT "usage_quarter_hourly_totals_pkey" PRIMARY KEY("quarter_hour","success")
);
--> statement-breakpoint
ALTER TABLE "usage_events" ADD COLUMN "txid" "xid8" DEFAULT pg_current_xact_id() NOT NULL;--> statement-breakpoint
CREATE INDEX "usage_events_txid_idx" ON "usage_events" USING btree ("txid");
--> statement-breakpoint
-- HAND-WRITTEN (keep when regenerating): an exact bigint sum with a by-value state, which the readers
-- use for every count measure (src/analytics/sources.ts, aggregateOf); overflow raises an error.
CREATE AGGREGATE sum_int8(int8) (sfunc = int8pl, stype = int8);
--> statement-breakpoint
-- HAND-WRITTEN BACKFILL (keep when regenerating): the totals rollups are sums of the per-model rollups of
-- the same grain (what an existing database already holds, retention included), so no answer changes;
-- the hourly error rollup comes from the raw failures still retained (what raw reads saw before).
INSERT INTO usage_daily_totals (day, success, calls, input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, input_audio_tokens, output_audio_tokens, web_search_requests, cost, unpriced_calls, unpriced_input_tokens, unpriced_output_tokens, latency_sum_ms, latency_count, latency_max_ms, latency_ge_0, latency_ge_10, latency_ge_25, latency_ge_50, latency_ge_100, latency_ge_125, latency_ge_160, latency_ge_200, latency_ge_250, latency_ge_315, latency_ge_400, latency_ge_500, latency_ge_630, latency_ge_800, latency_ge_1000, latency_ge_1250, latency_ge_1600, latency_ge_2000, latency_ge_2500, latency_ge_3150, latency_ge_4000, latency_ge_5000, latency_ge_6300, latency_ge_8000, latency_ge_10000, latency_ge_12500, latency_ge_16000, latency_ge_20000, latency_ge_25000, latency_ge_31500, latency_ge_40000, latency_ge_50000, latency_ge_63000, latency_ge_80000, latency_ge_100000) SELECT date_trunc('day', day, 'UTC'), success, sum(calls), sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(input_audio_tokens), sum(output_audio_tokens), sum(web_search_requests), sum(cost), sum(unpriced_calls), sum(unpriced_input_tokens), sum(unpriced_output_tokens), sum(latency_sum_ms), sum(latency_count), max(latency_max_ms), sum(latency_ge_0), sum(latency_ge_10), sum(latency_ge_25), sum(latency_ge_50), sum(latency_ge_100), sum(latency_ge_125), sum(latency_ge_160), sum(latency_ge_200), sum(latency_ge_250), sum(latency_ge_315), sum(latency_ge_400), sum(latency_ge_500), sum(latency_ge_630), sum(latency_ge_800), sum(latency_ge_1000), sum(latency_ge_1250), sum(latency_ge_1600), sum(latency_ge_2000), sum(latency_ge_2500), sum(latency_ge_3150), sum(latency_ge_4000), sum(latency_ge_5000), sum(latency_ge_6300), sum(latency_ge_8000), sum(latency_ge_10000), sum(latency_ge_12500), sum(latency_ge_16000), sum(latency_ge_20000), sum(latency_ge_25000), sum(latency_ge_31500), sum(latency_ge_40000), sum(latency_ge_50000), sum(latency_ge_63000), sum(latency_ge_80000), sum(latency_ge_100000) FROM usage_daily_models GROUP BY 1, 2;
--> statement-breakpoint
INSERT INTO usage_hourly_totals (hour, success, calls, input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, input_audio_tokens, output_audio_tokens, web_search_requests, cost, unpriced_calls, unpriced_input_tokens, unpriced_output_tokens, latency_sum_ms, latency_count, latency_max_ms, latency_ge_0, latency_ge_10, latency_ge_25, latency_ge_50, latency_ge_100, latency_ge_125, latency_ge_160, latency_ge_200, latency_ge_250, latency_ge_315, latency_ge_400, latency_ge_500, latency_ge_630, latency_ge_800, latency_ge_1000, latency_ge_1250, latency_ge_1600, latency_ge_2000, latency_ge_2500, latency_ge_3150, latency_ge_4000, latency_ge_5000, latency_ge_6300, latency_ge_8000, latency_ge_10000, latency_ge_12500, latency_ge_16000, latency_ge_20000, latency_ge_25000, latency_ge_31500, latency_ge_40000, latency_ge_50000, latency_ge_63000, latency_ge_80000, latency_ge_100000) SELECT date_trunc('hour', hour, 'UTC'), success, sum(calls), sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(input_audio_tokens), sum(output_audio_tokens), sum(web_search_requests), sum(cost), sum(unpriced_calls), sum(unpriced_input_tokens), sum(unpriced_output_tokens), sum(latency_sum_ms), sum(latency_count), max(latency_max_ms), sum(latency_ge_0), sum(latency_ge_10), sum(latency_ge_25), sum(latency_ge_50), sum(latency_ge_100), sum(latency_ge_125), sum(latency_ge_160), sum(latency_ge_200), sum(latency_ge_250), sum(latency_ge_315), sum(latency_ge_400), sum(latency_ge_500), sum(latency_ge_630), sum(latency_ge_800), sum(latency_ge_1000), sum(latency_ge_1250), sum(latency_ge_1600), sum(latency_ge_2000), sum(latency_ge_2500), sum(latency_ge_3150), sum(latency_ge_4000), sum(latency_ge_5000), sum(latency_ge_6300), sum(latency_ge_8000), sum(latency_ge_10000), sum(latency_ge_12500), sum(latency_ge_16000), sum(latency_ge_20000), sum(latency_ge_25000), sum(latency_ge_31500), sum(latency_ge_40000), sum(latency_ge_50000), sum(latency_ge_63000), sum(latency_ge_80000), sum(latency_ge_100000) FROM usage_hourly_models GROUP BY 1, 2;
--> statement-breakpoint
INSERT INTO usage_quarter_hourly_totals (quarter_hour, success, calls, input_tokens, output_tokens, total_tokens, cache_read_tokens, cache_write_tokens, reasoning_tokens, input_audio_tokens, output_audio_tokens, web_search_requests, cost, unpriced_calls, unpriced_input_tokens, unpriced_output_tokens, latency_sum_ms, latency_count, latency_max_ms, latency_ge_0, latency_ge_10, latency_ge_25, latency_ge_50, latency_ge_100, latency_ge_125, latency_ge_160, latency_ge_200, latency_ge_250, latency_ge_315, latency_ge_400, latency_ge_500, latency_ge_630, latency_ge_800, latency_ge_1000, latency_ge_1250, latency_ge_1600, latency_ge_2000, latency_ge_2500, latency_ge_3150, latency_ge_4000, latency_ge_5000, latency_ge_6300, latency_ge_8000, latency_ge_10000, latency_ge_12500, latency_ge_16000, latency_ge_20000, latency_ge_25000, latency_ge_31500, latency_ge_40000, latency_ge_50000, latency_ge_63000, latency_ge_80000, latency_ge_100000) SELECT date_bin('15 minutes', quarter_hour, TIMESTAMPTZ '2000-01-01 00:00:00+00'), success, sum(calls), sum(input_tokens), sum(output_tokens), sum(total_tokens), sum(cache_read_tokens), sum(cache_write_tokens), sum(reasoning_tokens), sum(input_audio_tokens), sum(output_audio_tokens), sum(web_search_requests), sum(cost), sum(unpriced_calls), sum(unpriced_input_tokens), sum(unpriced_output_tokens), sum(latency_sum_ms), sum(latency_count), max(latency_max_ms), sum(latency_ge_0), sum(latency_ge_10), sum(latency_ge_25), sum(latency_ge_50), sum(latency_ge_100), sum(latency_ge_125), sum(latency_ge_160), sum(latency_ge_200), sum(latency_ge_250), sum(latency_ge_315), sum(latency_ge_400), sum(latency_ge_500), sum(latency_ge_630), sum(latency_ge_800), sum(latency_ge_1000), sum(latency_ge_1250), sum(latency_ge_1600), sum(latency_ge_2000), sum(latency_ge_2500), sum(latency_ge_3150), sum(latency_ge_4000), sum(latency_ge_5000), sum(latency_ge_6300), sum(latency_ge_8000), sum(latency_ge_10000), sum(latency_ge_12500), sum(latency_ge_16000), sum(latency_ge_20000), sum(latency_ge_25000), sum(latency_ge_31500), sum(latency_ge_40000), sum(latency_ge_50000), sum(latency_ge_63000), sum(latency_ge_80000), sum(latency_ge_100000) FROM usage_quarter_hourly_models GROUP BY 1, 2;
--> statement-breakpoint
INSERT INTO usage_hourly_errors_models AS r (hour, provider, model, request_type, message, failures, last_seen) SELECT date_trunc('hour', created_at, 'UTC'), provider, model, request_type, left(error_message, 300), count(*), max(created_at) FROM usage_events WHERE NOT success AND TRUE GROUP BY 1, 2, 3, 4, 5 ORDER BY 1, 2, 3, 4, 5 ON CONFLICT ON CONSTRAINT usage_hourly_errors_models_key DO UPDATE SET failures = r.failures + excluded.failures, last_seen = greatest(r.last_seen, excluded.last_seen);
--> statement-breakpoint
-- BEGIN hand-written backfill (async-rollups): keep when regenerating this migration.
-- The rows already stored got this migration's transaction id as txid above, and they are
-- already in every rollup (folded by the old ingest statement): the watermark starts just past it.
INSERT INTO "rollup_watermark" ("rolled_below") VALUES (((pg_current_xact_id()::text::bigint + 1)::text)::xid8);
-- END hand-written backfill (async-rollups)
